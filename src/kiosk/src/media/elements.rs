//! Which GStreamer elements the kiosk needs whatever the profile, and the Debian package that
//! provides each: checked once at start so a missing plugin is named, never a crash mid-visit.

use gst::prelude::*;

use super::MediaError;

/// Every element the kiosk needs whatever the profile, with the Debian package providing it.
/// Profile-dependent ones (sources, sinks, the encoder, `webrtcdsp`) are checked by [`Call::start`].
const REQUIRED: &[(&str, &str)] = &[
    ("webrtcbin", "gstreamer1.0-plugins-bad"),
    ("dtlssrtpenc", "gstreamer1.0-plugins-bad"),
    ("srtpenc", "gstreamer1.0-plugins-bad"),
    ("nicesrc", "gstreamer1.0-nice"),
    ("rtpbin", "gstreamer1.0-plugins-good"),
    ("rtphdrexttwcc", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtpopuspay", "gstreamer1.0-plugins-good"),
    ("rtpopusdepay", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("opusenc", "gstreamer1.0-plugins-base"),
    ("opusdec", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("volume", "gstreamer1.0-plugins-base"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("tee", "libgstreamer1.0-0"),
    ("queue", "libgstreamer1.0-0"),
    ("capsfilter", "libgstreamer1.0-0"),
];

/// H.264 decoders for the clinician's video; one of them is enough.
const H264_DECODERS: &[(&str, &str)] =
    &[("avdec_h264", "gstreamer1.0-libav"), ("openh264dec", "gstreamer1.0-plugins-bad")];

/// Initialises GStreamer and checks that every element the kiosk needs exists.
///
/// The error names the first missing element and the Debian package that provides it.
pub fn init() -> Result<(), MediaError> {
    gst::init()?;
    for (element, package) in REQUIRED {
        require(element, package)?;
    }
    if !H264_DECODERS.iter().any(|(e, _)| exists(e)) {
        let (element, package) = H264_DECODERS[0];
        return Err(missing(element, package));
    }
    Ok(())
}

/// True when an element factory of that name is installed.
pub(crate) fn exists(element: &str) -> bool {
    gst::ElementFactory::find(element).is_some()
}

/// Errors with the package name when `element` is not installed.
pub(crate) fn require(element: &str, package: &str) -> Result<(), MediaError> {
    if exists(element) { Ok(()) } else { Err(missing(element, package)) }
}

pub(crate) fn missing(element: &str, package: &str) -> MediaError {
    MediaError::MissingElement { element: element.into(), package: package.into() }
}

/// Makes one element; the error names the factory.
pub(crate) fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory).build().map_err(|e| build_error(factory, e))
}

pub(crate) fn capsfilter(caps: &gst::Caps) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| build_error("capsfilter", e))
}

/// A queue holding at most `buffers` buffers that drops the oldest when full.
pub(crate) fn leaky_queue(buffers: u32) -> Result<gst::Element, MediaError> {
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", buffers);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    queue.set_property_from_str("leaky", "downstream");
    Ok(queue)
}

pub(crate) fn add(bin: &impl IsA<gst::Bin>, elements: &[&gst::Element]) -> Result<(), MediaError> {
    for element in elements {
        bin.add(*element).map_err(|e| build_error(&element.name(), e))?;
    }
    Ok(())
}

/// Links each element to the next; the error names the pair that would not link.
pub(crate) fn link(elements: &[&gst::Element]) -> Result<(), MediaError> {
    for pair in elements.windows(2) {
        pair[0]
            .link(pair[1])
            .map_err(|e| build_error(&format!("{} → {}", pair[0].name(), pair[1].name()), e))?;
    }
    Ok(())
}

pub(crate) fn static_pad(element: &gst::Element, name: &str) -> Result<gst::Pad, MediaError> {
    element
        .static_pad(name)
        .ok_or_else(|| build_error(&element.name(), format!("has no {name} pad")))
}

pub(crate) fn build_error(element: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Build { element: element.into(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_finds_every_required_element_on_this_machine() {
        init().unwrap();
    }

    #[test]
    fn missing_element_error_names_element_and_package() {
        let err = missing("webrtcbin", "gstreamer1.0-plugins-bad").to_string();
        assert!(err.contains("webrtcbin") && err.contains("gstreamer1.0-plugins-bad"), "{err}");
    }
}
