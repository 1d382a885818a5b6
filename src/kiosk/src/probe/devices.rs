//! Cameras, microphones and speakers as GStreamer's device monitor sees them (V4L2, libcamera,
//! ALSA, PulseAudio or PipeWire, whichever providers are installed).

use std::path::Path;

use gst::prelude::*;
use telekiosk_protocol::probe::{AudioDevice, CaptureDevice};

use super::system::stable_name;

/// At most this many modes per camera, largest first.
const MAX_MODES: usize = 24;

/// Every camera; `links` is where the udev rules' stable names are.
pub fn cameras(links: &Path) -> Vec<CaptureDevice> {
    listed("Video/Source")
        .into_iter()
        .map(|d| {
            let device = device_path(&d);
            CaptureDevice {
                name: d.display_name().to_string(),
                stable_name: stable_name(&device, links),
                modes: d.caps().map(|c| modes(&c)).unwrap_or_default(),
                device,
            }
        })
        .collect()
}

/// Every microphone (`Audio/Source`) or speaker (`Audio/Sink`).
pub fn audio(class: &str) -> Vec<AudioDevice> {
    listed(class)
        .into_iter()
        .map(|d| AudioDevice { name: d.display_name().to_string(), source: launch_line(&d) })
        .collect()
}

fn listed(class: &str) -> Vec<gst::Device> {
    if gst::init().is_err() {
        return vec![];
    }
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some(class), None);
    // Started and stopped: the providers probe once, with no thread left behind.
    if monitor.start().is_err() {
        return vec![];
    }
    let devices = monitor.devices().into_iter().collect();
    monitor.stop();
    devices
}

/// The device node (`/dev/video0`) from the provider's properties, else its element's.
fn device_path(d: &gst::Device) -> String {
    let props = d.properties();
    for key in ["device.path", "api.v4l2.path", "object.path"] {
        if let Some(Ok(path)) = props.as_ref().map(|p| p.get::<String>(key)) {
            return path;
        }
    }
    element_device(d).unwrap_or_default()
}

/// The launch line that opens it, e.g. `alsasrc device=hw:1` or `pulsesrc device=…`.
fn launch_line(d: &gst::Device) -> String {
    let Ok(element) = d.create_element(None) else { return String::new() };
    let factory = element.factory().map(|f| f.name().to_string()).unwrap_or_default();
    match element_device(d) {
        Some(dev) if !dev.is_empty() => format!("{factory} device={dev}"),
        _ => factory,
    }
}

fn element_device(d: &gst::Device) -> Option<String> {
    let element = d.create_element(None).ok()?;
    element.find_property("device")?;
    element.property_value("device").get::<Option<String>>().ok().flatten()
}

/// `1280x720@30 YUY2`, one per size and format at its highest frame rate, largest first.
fn modes(caps: &gst::Caps) -> Vec<String> {
    let mut found: Vec<(i32, i32, i32, String)> = vec![];
    for s in caps.iter() {
        let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height")) else { continue };
        let format = match s.name().as_str() {
            "image/jpeg" => "MJPG".to_string(),
            "video/x-raw" => s.get::<String>("format").unwrap_or_else(|_| "raw".into()),
            other => other.trim_start_matches("video/x-").to_string(),
        };
        let fps = max_fps(s);
        match found.iter_mut().find(|m| m.0 == w && m.1 == h && m.3 == format) {
            Some(m) => m.2 = m.2.max(fps),
            None => found.push((w, h, fps, format)),
        }
    }
    found.sort_by_key(|m| std::cmp::Reverse((m.0 * m.1, m.2)));
    found.into_iter().take(MAX_MODES).map(|(w, h, f, fmt)| format!("{w}x{h}@{f} {fmt}")).collect()
}

/// The highest whole frame rate a caps structure allows (a fraction, a list or a range).
fn max_fps(s: &gst::StructureRef) -> i32 {
    let whole = |f: gst::Fraction| if f.denom() > 0 { f.numer() / f.denom() } else { 0 };
    if let Ok(f) = s.get::<gst::Fraction>("framerate") {
        return whole(f);
    }
    if let Ok(list) = s.get::<gst::List>("framerate") {
        return list
            .iter()
            .filter_map(|v| v.get::<gst::Fraction>().ok())
            .map(whole)
            .max()
            .unwrap_or(0);
    }
    if let Ok(range) = s.get::<gst::FractionRange>("framerate") {
        return whole(range.max());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_keep_each_size_and_format_once_at_its_fastest_largest_first() {
        gst::init().unwrap();
        let caps: gst::Caps = "video/x-raw, format=YUY2, width=640, height=480, framerate=30/1; \
             video/x-raw, format=YUY2, width=1280, height=720, framerate={ 10/1, 5/1 }; \
             image/jpeg, width=1280, height=720, framerate=30/1; \
             video/x-raw, format=YUY2, width=640, height=480, framerate=15/1; \
             video/x-raw, format=NV12, width=1920, height=1080, framerate=[ 1/1, 60/1 ]"
            .parse()
            .unwrap();
        assert_eq!(
            modes(&caps),
            ["1920x1080@60 NV12", "1280x720@30 MJPG", "1280x720@10 YUY2", "640x480@30 YUY2"]
        );
    }
}
