//! Echo cancellation for open speakers: `webrtcdsp` on the microphone, `webrtcechoprobe` before
//! the speaker. The two must see the same sample rate (webrtcdsp fails the stream otherwise), so
//! both sides are converted to one pinned format first: a 16 kHz USB microphone or a 44.1 kHz
//! speaker then works like any other.
//!
//! Owns: the two chains' elements and the DSP's settings from the profile. The pipeline and the
//! remote side place them; the echo test builds its room from the same functions.

use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use super::MediaError;
use super::elements::{build_error, capsfilter, make};
use crate::profile::{Level, Processing};

/// The rate both the DSP and the probe run at (Opus's own rate: no resampling after the DSP).
pub const RATE: i32 = 48_000;

/// The one format the DSP and the probe see: 48 kHz mono 16-bit.
pub fn pinned_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", RATE)
        .field("channels", 1)
        .build()
}

/// A new echo probe. webrtcdsp finds its probe by name, process-wide, when it starts, so the
/// probe must be in the pipeline by then and its name unique among concurrent calls.
pub fn probe() -> Result<gst::Element, MediaError> {
    super::require("webrtcechoprobe", "gstreamer1.0-plugins-bad")?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("telekiosk-echo-probe-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    gst::ElementFactory::make("webrtcechoprobe")
        .name(name.as_str())
        .build()
        .map_err(|e| build_error("webrtcechoprobe", e))
}

/// The speaker side, from decoded audio to just before the sink: convert → resample → pinned
/// caps → `probe` → queue → convert → resample (so the sink may take whatever format it wants).
///
/// The queue lets the probe take the clinician's audio as soon as it is decoded. For each 10 ms
/// of microphone the DSP asks the probe for what plays its upstream latency later (webrtcbin's
/// jitterbuffer: 200 ms and more); with the probe right before the sink it only holds what the
/// sink has room for, often less, and the DSP is handed silence: no echo is cancelled at all.
pub fn render_chain(probe: &gst::Element) -> Result<Vec<gst::Element>, MediaError> {
    let ahead = make("queue")?;
    ahead.set_property("max-size-time", gst::ClockTime::SECOND.nseconds());
    ahead.set_property("max-size-buffers", 0u32);
    ahead.set_property("max-size-bytes", 0u32);
    Ok(vec![
        make("audioconvert")?,
        make("audioresample")?,
        capsfilter(&pinned_caps())?,
        probe.clone(),
        ahead,
        make("audioconvert")?,
        make("audioresample")?,
    ])
}

/// The microphone side, from the source to the DSP's output: convert → resample → pinned caps
/// → `webrtcdsp` listening to `probe`, set from the profile's `[audio.processing]`.
pub fn capture_chain(
    processing: &Processing,
    probe: &gst::Element,
) -> Result<Vec<gst::Element>, MediaError> {
    super::require("webrtcdsp", "gstreamer1.0-plugins-bad")?;
    let dsp = make("webrtcdsp")?;
    dsp.set_property("probe", probe.name().as_str());
    configure(&dsp, processing);
    Ok(vec![make("audioconvert")?, make("audioresample")?, capsfilter(&pinned_caps())?, dsp])
}

/// Sets webrtcdsp's properties from the profile. High-pass filtering stays on (webrtcdsp's
/// default): it removes rumble the echo canceller would otherwise have to model.
fn configure(dsp: &gst::Element, p: &Processing) {
    dsp.set_property("echo-cancel", true);
    dsp.set_property_from_str("echo-suppression-level", p.echo_suppression.as_str());
    dsp.set_property("noise-suppression", p.noise_suppression != Level::Off);
    if p.noise_suppression != Level::Off {
        dsp.set_property_from_str("noise-suppression-level", p.noise_suppression.as_str());
    }
    dsp.set_property("gain-control", p.gain_control);
    dsp.set_property("target-level-dbfs", p.gain_target_dbfs as i32);
    dsp.set_property("compression-gain-db", p.gain_max_db as i32);
    dsp.set_property("delay-agnostic", p.delay_agnostic);
    dsp.set_property("extended-filter", p.extended_filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_settings_reach_the_dsp() {
        gst::init().unwrap();
        let probe = probe().unwrap();
        let p = Processing {
            echo_suppression: Level::High,
            noise_suppression: Level::Off,
            gain_control: false,
            gain_target_dbfs: 6,
            gain_max_db: 12,
            delay_agnostic: true,
            extended_filter: false,
        };
        let chain = capture_chain(&p, &probe).unwrap();
        let dsp = chain.last().unwrap();
        assert_eq!(dsp.property::<String>("probe"), probe.name().as_str());
        assert!(
            !dsp.property::<bool>("noise-suppression") && !dsp.property::<bool>("gain-control")
        );
        assert!(dsp.property::<bool>("delay-agnostic") && !dsp.property::<bool>("extended-filter"));
        assert_eq!(dsp.property::<i32>("target-level-dbfs"), 6);
        assert_eq!(dsp.property::<i32>("compression-gain-db"), 12);
        let level = dsp.property_value("echo-suppression-level");
        let level = gst::glib::EnumValue::from_value(&level).unwrap().1.nick().to_string();
        assert_eq!(level, "high");
    }
}
