//! What the kernel says about the board: its model name (device tree or DMI), its display connectors (DRM, with the
//! panel's size from its EDID), its hardware watchdogs and the stable device names the kiosk's
//! udev rules made.

use std::path::{Path, PathBuf};

use telekiosk_protocol::probe::{DisplayProbe, Machine, WatchdogProbe};

/// Where the kiosk's udev rules (`hw/udev/70-telekiosk.rules`) put their links.
pub const STABLE_DIR: &str = "/dev/telekiosk";

/// The board's model name, architecture and processor count.
pub fn machine(root: &Path) -> Machine {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
            .unwrap_or_default()
    };
    // The device tree's own place (/proc/device-tree links to it, and the kiosk's unit hides
    // /proc beyond its own processes: ProcSubset=pid).
    let mut model = read("sys/firmware/devicetree/base/model");
    if model.is_empty() {
        let vendor = read("sys/class/dmi/id/sys_vendor");
        let product = read("sys/class/dmi/id/product_name");
        model = format!("{vendor} {product}").trim().to_string();
    }
    Machine {
        model,
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
    }
}

/// Every DRM connector (`/sys/class/drm/card0-HDMI-A-1`), connected ones first.
pub fn displays(root: &Path) -> Vec<DisplayProbe> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/drm")) else { return vec![] };
    let mut out: Vec<DisplayProbe> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains('-'))
        .map(|e| connector(&e.path()))
        .collect();
    out.sort_by(|a, b| b.connected.cmp(&a.connected).then(a.connector.cmp(&b.connector)));
    out
}

fn connector(dir: &Path) -> DisplayProbe {
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let mut modes: Vec<String> = vec![];
    for m in text("modes").lines().map(str::trim).filter(|m| !m.is_empty()) {
        if !modes.iter().any(|x| x == m) {
            modes.push(m.to_string());
        }
    }
    let size = std::fs::read(dir.join("edid")).ok().and_then(|e| edid_size_mm(&e));
    let px_per_mm = size
        .zip(modes.first().and_then(|m| mode_width(m)))
        .map(|((w, _), px)| (f64::from(px) / f64::from(w) * 10.0).round() / 10.0);
    DisplayProbe {
        connector: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        connected: text("status").trim() == "connected",
        modes,
        width_mm: size.map(|s| s.0),
        height_mm: size.map(|s| s.1),
        px_per_mm,
    }
}

/// Every hardware watchdog the kernel drives (`/sys/class/watchdog/watchdog0`), in name order.
pub fn watchdogs(root: &Path) -> Vec<WatchdogProbe> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/watchdog")) else { return vec![] };
    let mut out: Vec<WatchdogProbe> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let read = |f: &str| {
                std::fs::read_to_string(e.path().join(f)).unwrap_or_default().trim().to_string()
            };
            WatchdogProbe {
                device: e.file_name().to_string_lossy().into_owned(),
                identity: read("identity"),
                active: read("state") == "active",
                timeout_secs: read("timeout").parse().ok(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// Width in pixels of a DRM mode name (`1920x1080`, `800x480i`).
fn mode_width(mode: &str) -> Option<u32> {
    mode.split('x').next()?.parse().ok().filter(|w| *w > 0)
}

/// The picture's size in millimetres from an EDID: the first detailed timing descriptor's
/// (millimetres), else the basic block's (centimetres). `None` when the EDID does not say (a
/// projector, a virtual display) or is not an EDID.
pub fn edid_size_mm(edid: &[u8]) -> Option<(u32, u32)> {
    const HEADER: [u8; 8] = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
    if edid.len() < 128 || edid[..8] != HEADER {
        return None;
    }
    let d = &edid[54..72];
    let pixel_clock = u16::from_le_bytes([d[0], d[1]]);
    let w = u32::from(d[12]) | (u32::from(d[14] >> 4) << 8);
    let h = u32::from(d[13]) | (u32::from(d[14] & 0x0f) << 8);
    if pixel_clock != 0 && w > 0 && h > 0 {
        return Some((w, h));
    }
    let (w_cm, h_cm) = (u32::from(edid[21]), u32::from(edid[22]));
    (w_cm > 0 && h_cm > 0).then_some((w_cm * 10, h_cm * 10))
}

/// The stable name (`/dev/telekiosk/camera`) whose link leads to `device`, if one does.
pub fn stable_name(device: &str, dir: &Path) -> String {
    let Ok(target) = std::fs::canonicalize(device) else { return String::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return String::new() };
    let mut names: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| std::fs::canonicalize(p).is_ok_and(|t| t == target))
        .collect();
    names.sort();
    names.first().map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 128-byte EDID block with the given detailed-timing and basic sizes.
    fn edid(dtd_mm: (u32, u32), basic_cm: (u8, u8)) -> Vec<u8> {
        let mut e = vec![0u8; 128];
        e[..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
        e[21] = basic_cm.0;
        e[22] = basic_cm.1;
        e[54] = 0x02; // a pixel clock: the descriptor is a timing
        e[54 + 12] = (dtd_mm.0 & 0xff) as u8;
        e[54 + 13] = (dtd_mm.1 & 0xff) as u8;
        e[54 + 14] = (((dtd_mm.0 >> 8) as u8) << 4) | ((dtd_mm.1 >> 8) as u8 & 0x0f);
        e
    }

    #[test]
    fn edid_size_comes_from_the_timing_in_millimetres_else_the_basic_block_in_centimetres() {
        assert_eq!(edid_size_mm(&edid((476, 268), (48, 27))), Some((476, 268)));
        assert_eq!(edid_size_mm(&edid((0, 0), (48, 27))), Some((480, 270)));
        assert_eq!(edid_size_mm(&edid((0, 0), (0, 0))), None, "a projector says nothing");
        let mut broken = edid((476, 268), (48, 27));
        broken[0] = 0x55;
        assert_eq!(edid_size_mm(&broken), None, "not an EDID");
        assert_eq!(edid_size_mm(&[0u8; 20]), None, "too short");
    }

    #[test]
    fn a_connector_reads_status_modes_and_density_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let drm = root.path().join("sys/class/drm");
        for (name, status, modes) in [
            ("card0-HDMI-A-1", "connected", "1920x1080\n1280x720\n1920x1080\n"),
            ("card0-DP-1", "disconnected", ""),
        ] {
            std::fs::create_dir_all(drm.join(name)).unwrap();
            std::fs::write(drm.join(name).join("status"), format!("{status}\n")).unwrap();
            std::fs::write(drm.join(name).join("modes"), modes).unwrap();
        }
        std::fs::create_dir_all(drm.join("card0")).unwrap();
        std::fs::write(drm.join("card0-HDMI-A-1/edid"), edid((476, 268), (48, 27))).unwrap();
        let found = displays(root.path());
        assert_eq!(found.len(), 2, "the card itself is not a connector: {found:?}");
        let hdmi = &found[0];
        assert_eq!(hdmi.connector, "card0-HDMI-A-1");
        assert!(hdmi.connected);
        assert_eq!(hdmi.modes, ["1920x1080", "1280x720"]);
        assert_eq!(
            (hdmi.width_mm, hdmi.height_mm, hdmi.px_per_mm),
            (Some(476), Some(268), Some(4.0))
        );
        assert!(!found[1].connected && found[1].px_per_mm.is_none());
    }

    #[test]
    fn watchdogs_read_identity_state_and_timeout_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let class = root.path().join("sys/class/watchdog");
        for (name, identity, state, timeout) in [
            ("watchdog1", "iTCO_wdt", "inactive", ""),
            ("watchdog0", "i6300ESB timer", "active", "60"),
        ] {
            let dir = class.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("identity"), format!("{identity}\n")).unwrap();
            std::fs::write(dir.join("state"), format!("{state}\n")).unwrap();
            if !timeout.is_empty() {
                std::fs::write(dir.join("timeout"), format!("{timeout}\n")).unwrap();
            }
        }
        let found = watchdogs(root.path());
        assert_eq!(
            found,
            [
                WatchdogProbe {
                    device: "watchdog0".into(),
                    identity: "i6300ESB timer".into(),
                    active: true,
                    timeout_secs: Some(60),
                },
                WatchdogProbe {
                    device: "watchdog1".into(),
                    identity: "iTCO_wdt".into(),
                    active: false,
                    timeout_secs: None,
                },
            ]
        );
        assert!(watchdogs(&root.path().join("nowhere")).is_empty(), "no watchdog class: none");
    }

    #[test]
    fn the_model_is_the_device_trees_else_dmis_vendor_and_product() {
        let root = tempfile::tempdir().unwrap();
        let dmi = root.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(dmi.join("sys_vendor"), "QEMU\n").unwrap();
        std::fs::write(dmi.join("product_name"), "Standard PC (Q35 + ICH9, 2009)\n").unwrap();
        assert_eq!(machine(root.path()).model, "QEMU Standard PC (Q35 + ICH9, 2009)");
        let dt = root.path().join("sys/firmware/devicetree/base");
        std::fs::create_dir_all(&dt).unwrap();
        std::fs::write(dt.join("model"), "Raspberry Pi 4 Model B Rev 1.5\0").unwrap();
        assert_eq!(machine(root.path()).model, "Raspberry Pi 4 Model B Rev 1.5");
    }

    #[test]
    fn a_device_reached_through_a_stable_link_is_named_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("video2");
        std::fs::write(&device, "").unwrap();
        let links = dir.path().join("telekiosk");
        std::fs::create_dir(&links).unwrap();
        std::os::unix::fs::symlink(&device, links.join("camera")).unwrap();
        let shown = device.display().to_string();
        assert_eq!(stable_name(&shown, &links), links.join("camera").display().to_string());
        assert_eq!(stable_name("/dev/nonexistent-video9", &links), "");
    }
}
