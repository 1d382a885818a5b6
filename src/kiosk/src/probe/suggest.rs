//! Which shipped profile fits what the probe found, and what a technician should know about it.
//! Pure: the report and the profiles in, a [`Suggestion`] out.

use telekiosk_protocol::probe::{EncodeOutcome, ProbeReport, Suggestion};

use crate::profile::Profile;

/// The profile made for this board (its `[board] models` name the firmware's model), else the
/// fallback for the processor architecture; among several, the one whose first working encoder
/// comes earliest in its list.
pub fn suggest(report: &ProbeReport, profiles: &[Profile]) -> Suggestion {
    let model = report.machine.model.to_lowercase();
    let named: Vec<&Profile> = profiles
        .iter()
        .filter(|p| {
            p.board.models.iter().any(|m| !m.is_empty() && model.contains(&m.to_lowercase()))
        })
        .collect();
    let (candidates, how) = if named.is_empty() {
        let arch = Some(report.machine.arch.as_str());
        let generic: Vec<&Profile> = profiles
            .iter()
            .filter(|p| p.board.models.is_empty() && p.board.arch.as_deref() == arch)
            .collect();
        (generic, format!("no profile names this board; the {} fallback", report.machine.arch))
    } else {
        (named, format!("made for this board ({})", report.machine.model))
    };
    let Some(best) = candidates.into_iter().min_by_key(|p| (first_working(p, report), &p.name))
    else {
        return Suggestion {
            profile: None,
            why: format!(
                "no shipped profile is made for {} ({}): copy the closest one and set its \
                 encoders to ones that work here",
                shown(&report.machine.model),
                report.machine.arch
            ),
            warnings: vec![],
        };
    };
    let encoder = first_working(best, report).map(|i| best.video.encoders[i].clone());
    let why = match &encoder {
        Some(e) => format!("{how}; it will encode with {e}"),
        None => how,
    };
    Suggestion { profile: Some(best.name.clone()), why, warnings: warnings(best, report) }
}

/// Index in the profile's list of the first encoder that encoded in the trial.
fn first_working(p: &Profile, report: &ProbeReport) -> Option<usize> {
    p.video.encoders.iter().position(|name| encoded(report, name).is_some())
}

/// The trial's figures for `name` (fps, share of a core) when it encoded.
fn encoded(report: &ProbeReport, name: &str) -> Option<(f64, f64)> {
    report.encoders.iter().find(|e| e.name == name).and_then(|e| match e.outcome {
        EncodeOutcome::Encoded { fps, cpu_percent, .. } => Some((fps, cpu_percent)),
        _ => None,
    })
}

fn warnings(p: &Profile, report: &ProbeReport) -> Vec<String> {
    let mut out = vec![];
    let encoders = &p.video.encoders;
    match first_working(p, report) {
        None => out.push(format!("none of its encoders ({}) works here", encoders.join(", "))),
        Some(0) => {}
        Some(i) => out.push(format!(
            "its first choice {} does not work here: it falls back to {}",
            encoders[0], encoders[i]
        )),
    }
    if let Some(i) = first_working(p, report)
        && let Some((fps, cpu)) = encoded(report, &encoders[i])
    {
        // The trial is 720p; a profile's own size and rate scale the work (pixels a second).
        let v = &p.video;
        let needed = f64::from(v.width) * f64::from(v.height) * f64::from(v.fps);
        if needed > fps * 1280.0 * 720.0 {
            out.push(format!(
                "{} encodes only {fps:.0} frames a second at 720p, too slow for {}x{} at {} fps: \
                 lower video.width/height",
                encoders[i], v.width, v.height, v.fps
            ));
        } else if cpu > 50.0 {
            out.push(format!("{} needs {cpu:.0} % of a core for 720p30", encoders[i]));
        }
    }
    out.extend(camera_warning(p, report));
    let real_audio = |d: &str| {
        ["alsasrc", "alsasink", "pulsesrc", "pulsesink", "pipewire"]
            .iter()
            .any(|e| d.starts_with(e))
    };
    if real_audio(&p.audio.source) && report.microphones.is_empty() {
        out.push("no microphone was found".into());
    }
    if real_audio(&p.audio.sink) && report.speakers.is_empty() {
        out.push("no speaker was found".into());
    }
    out.extend(display_warning(p, report));
    if !report.tpm.ok {
        let tcti = &report.tpm.tcti;
        out.push(format!("no TPM answered at {tcti}: the kiosk cannot enrol without one"));
    }
    out
}

/// The profile names a V4L2 device that is not here, or needs a camera and none was found.
fn camera_warning(p: &Profile, report: &ProbeReport) -> Option<String> {
    let source = &p.video.source;
    if source.starts_with("videotestsrc") {
        return None;
    }
    if report.cameras.is_empty() {
        return Some("no camera was found".into());
    }
    let device = source.split_whitespace().find_map(|w| w.strip_prefix("device="))?;
    let here = report.cameras.iter().any(|c| c.device == device || c.stable_name == device);
    let found: Vec<&str> = report.cameras.iter().map(|c| c.device.as_str()).collect();
    (!here).then(|| format!("its camera {device} is not here (cameras: {})", found.join(", ")))
}

/// The connected display's preferred mode or density differs from the profile's.
fn display_warning(p: &Profile, report: &ProbeReport) -> Option<String> {
    let d = report.displays.iter().find(|d| d.connected)?;
    let preferred = d.modes.first()?;
    let want = format!("{}x{}", p.display.width, p.display.height);
    if *preferred != want {
        return Some(format!("the display's own mode is {preferred}, the profile says {want}"));
    }
    let measured = d.px_per_mm?;
    let off = (measured - f64::from(p.display.px_per_mm)).abs() / measured;
    (off > 0.1).then(|| {
        format!(
            "the display measures {measured:.1} px/mm, the profile says {} (touch targets \
             would be the wrong size)",
            p.display.px_per_mm
        )
    })
}

fn shown(model: &str) -> &str {
    if model.is_empty() { "this machine" } else { model }
}

#[cfg(test)]
#[path = "suggest_tests.rs"]
mod tests;
