//! Pictures in memory: RGB appsinks that hand tightly packed [`Frame`]s to the UI, and the black
//! picture that replaces the camera while it is off. Nothing here touches the disk.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gst::prelude::*;
use gst_video::prelude::*;

use super::{Frame, MediaError, Shared};

/// Which [`super::FrameSink`] method an appsink feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The clinician's video; counted in `remote_video_frames`.
    Remote,
    /// The self-view.
    Local,
}

/// An appsink for RGB frames that keeps only the newest one (a slow UI drops frames, it never
/// delays the pipeline), and calls the frame sink for each frame. Remote frames are shown at
/// their presentation time (in step with the clinician's audio); the self-view at once.
pub(crate) fn rgb_appsink(
    name: &str,
    caps: &gst::Caps,
    target: Target,
    shared: &Arc<Shared>,
) -> Result<gst::Element, MediaError> {
    let shared = Arc::clone(shared);
    let sink = gst_app::AppSink::builder()
        .name(name)
        .caps(caps)
        .max_buffers(1)
        .drop(true)
        .sync(target == Target::Remote)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let frame = match to_frame(&sample) {
                        Ok(frame) => frame,
                        Err(message) => {
                            gst::element_error!(
                                sink,
                                gst::StreamError::Decode,
                                ("cannot read a decoded frame: {}", message)
                            );
                            return Err(gst::FlowError::Error);
                        }
                    };
                    match target {
                        Target::Remote => {
                            shared.remote_video_frames.fetch_add(1, Ordering::Relaxed);
                            shared.frames.remote_frame(frame);
                        }
                        Target::Local => shared.frames.local_frame(frame),
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    Ok(sink.upcast())
}

/// Copies an RGB sample into a [`Frame`], dropping any row padding.
fn to_frame(sample: &gst::Sample) -> Result<Frame, String> {
    let caps = sample.caps().ok_or("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    if info.format() != gst_video::VideoFormat::Rgb {
        return Err(format!("expected RGB, got {:?}", info.format()));
    }
    let buffer = sample.buffer().ok_or("sample without buffer")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| e.to_string())?;
    let (width, height) = (info.width(), info.height());
    let row = width as usize * 3;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    let mut rgb = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        let start = y * stride;
        let line = data.get(start..start + row).ok_or("frame smaller than its caps say")?;
        rgb.extend_from_slice(line);
    }
    Ok(Frame { width, height, rgb })
}

/// One black I420 picture of the given size, filled once and then shared (read-only) by every
/// frame sent while the camera is off.
pub(crate) fn black_i420(width: u32, height: u32) -> Result<gst::Buffer, MediaError> {
    let build_error =
        |message: String| MediaError::Build { element: "camera-off picture".into(), message };
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
        .build()
        .map_err(|e| build_error(e.to_string()))?;
    let mut data = vec![0u8; info.size()];
    // Limited-range BT.601 black: luma 16, both chroma planes at the neutral 128.
    for plane in 0..3 {
        let (offset, end) = plane_span(&info, plane);
        data[offset..end].fill(if plane == 0 { 16 } else { 128 });
    }
    Ok(gst::Buffer::from_mut_slice(data))
}

fn plane_span(info: &gst_video::VideoInfo, plane: usize) -> (usize, usize) {
    let offset = info.offset()[plane];
    let end = info.offset().get(plane + 1).copied().filter(|&o| o > 0).unwrap_or(info.size());
    (offset, end)
}

/// A copy of `black` carrying the timing of `original`, so the stream keeps its rhythm.
pub(crate) fn black_like(black: &gst::Buffer, original: &gst::BufferRef) -> gst::Buffer {
    let mut out = black.copy(); // shares the memory: no per-frame fill
    {
        let out = out.make_mut(); // a fresh copy: writable, nothing is copied
        out.set_pts(original.pts());
        out.set_dts(original.dts());
        out.set_duration(original.duration());
        out.set_offset(original.offset());
        out.set_flags(original.flags());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_picture_is_limited_range_black_in_every_plane() {
        gst::init().unwrap();
        let buffer = black_i420(320, 180).unwrap();
        let map = buffer.map_readable().unwrap();
        assert_eq!(map.len(), 320 * 180 * 3 / 2);
        assert!(map[..320 * 180].iter().all(|&y| y == 16));
        assert!(map[320 * 180..].iter().all(|&c| c == 128));
    }

    #[test]
    fn padded_rgb_rows_are_packed_tightly() {
        gst::init().unwrap();
        // 2x2 RGB has 6-byte rows, padded to a stride of 8 by GStreamer's default layout.
        let info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 2, 2).build().unwrap();
        assert_eq!(info.stride()[0], 8);
        let bytes: Vec<u8> = (0..16).collect();
        let caps = info.to_caps().unwrap();
        let sample =
            gst::Sample::builder().buffer(&gst::Buffer::from_slice(bytes)).caps(&caps).build();
        let frame = to_frame(&sample).unwrap();
        assert_eq!((frame.width, frame.height), (2, 2));
        assert_eq!(frame.rgb, vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    }
}
