//! The probe's report as a technician reads it on a terminal.

use std::fmt::Write;

use telekiosk_protocol::probe::{EncodeOutcome, ProbeReport};

/// Plain text, one section per part, the suggestion last.
pub fn render(r: &ProbeReport) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let model = if m.model.is_empty() { "(the firmware does not say)" } else { &m.model };
    let _ = writeln!(
        o,
        "Board     {model}, {}, {} processors; telekiosk {}",
        m.arch, m.cpus, r.software
    );
    let _ = writeln!(o, "\nEncoders  (720p30 test pattern, as a call sets each one up)");
    for e in &r.encoders {
        let kind = if e.hardware { "hardware" } else { "software" };
        let what = match &e.outcome {
            EncodeOutcome::Missing => "not installed".to_string(),
            EncodeOutcome::Failed { error } => format!("FAILED: {error}"),
            EncodeOutcome::Encoded { frames, fps, cpu_percent, kbps } => format!(
                "works: {frames} frames at {fps:.0} fps flat out, {cpu_percent:.0} % of a core \
                 at 30 fps, {kbps} kb/s"
            ),
        };
        let _ = writeln!(o, "  {:<14} {kind:<9} {what}", e.name);
    }
    let _ = writeln!(o, "\nCameras");
    if r.cameras.is_empty() {
        let _ = writeln!(o, "  none found");
    }
    for c in &r.cameras {
        let stable =
            if c.stable_name.is_empty() { String::new() } else { format!(" = {}", c.stable_name) };
        let _ = writeln!(o, "  {} ({}{stable})", c.name, c.device);
        for chunk in c.modes.chunks(4) {
            let _ = writeln!(o, "      {}", chunk.join(", "));
        }
    }
    for (title, list) in [("Microphones", &r.microphones), ("Speakers", &r.speakers)] {
        let _ = writeln!(o, "\n{title}");
        if list.is_empty() {
            let _ = writeln!(o, "  none found");
        }
        for d in list {
            let _ = writeln!(o, "  {}: {}", d.name, d.source);
        }
    }
    let t = &r.tpm;
    let state = if t.ok { "answers" } else { "does not answer" };
    let _ = writeln!(o, "\nTPM       {} {state}: {}", t.tcti, t.detail);
    let _ = writeln!(o, "\nDisplays");
    if r.displays.is_empty() {
        let _ = writeln!(o, "  none found (no DRM device)");
    }
    for d in &r.displays {
        let state = if d.connected { "connected" } else { "not connected" };
        let size = match (d.width_mm, d.height_mm, d.px_per_mm) {
            (Some(w), Some(h), Some(px)) => format!(", {w} x {h} mm, {px:.1} px/mm"),
            (Some(w), Some(h), None) => format!(", {w} x {h} mm"),
            _ => String::new(),
        };
        let modes = d.modes.iter().take(4).cloned().collect::<Vec<_>>().join(" ");
        let _ = writeln!(o, "  {} {state}{size} {modes}", d.connector);
    }
    let _ = writeln!(o, "\nWatchdogs");
    if r.watchdogs.is_empty() {
        let _ =
            writeln!(o, "  none found: a hung kiosk would need someone to switch it off and on");
    }
    for w in &r.watchdogs {
        let state = if w.active { "active (pinged by systemd)" } else { "not in use" };
        let timeout = w.timeout_secs.map(|t| format!(", resets after {t} s")).unwrap_or_default();
        let _ = writeln!(o, "  {} ({}): {state}{timeout}", w.device, w.identity);
    }
    let s = &r.suggestion;
    match &s.profile {
        Some(p) => {
            let _ = writeln!(o, "\nSuggested profile: {p} ({})", s.why);
        }
        None => {
            let _ = writeln!(o, "\nSuggested profile: none. {}", s.why);
        }
    }
    for w in &s.warnings {
        let _ = writeln!(o, "  ! {w}");
    }
    o
}
