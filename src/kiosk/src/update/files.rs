//! The update files in the kiosk's state directory (`update/`), through which the unprivileged
//! kiosk asks the appliance's root-owned units to install and reboot, and learns which slot
//! it runs from: the contract in `image/UPDATES.md`. Every file is written whole and renamed
//! into place ([`crate::durable`]).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Booted, Kept, Leftovers};
use crate::durable::write_atomically;

/// The update directory and the running image's os-release.
#[derive(Debug, Clone)]
pub struct UpdateFiles {
    dir: PathBuf,
    os_release: PathBuf,
}

/// `boot.json`, written by the health check unit before the kiosk starts.
#[derive(Debug, Deserialize)]
struct BootJson {
    slot: String,
    #[serde(default)]
    trial: bool,
}

/// `install.result` and `trial.result`.
#[derive(Debug, Deserialize)]
struct ResultJson {
    version: String,
    ok: bool,
    #[serde(default)]
    error: String,
}

#[derive(Serialize)]
struct InstallRequest<'a> {
    version: &'a str,
    bundle: &'a str,
}

#[derive(Serialize)]
struct TrialJson<'a> {
    version: &'a str,
    health_timeout_secs: u32,
}

/// The bundle's file name in the update directory.
pub const BUNDLE: &str = "bundle.raucb";

impl UpdateFiles {
    /// `dir` is `STATE/update`; `os_release` is normally `/etc/os-release`.
    pub fn new(dir: PathBuf, os_release: PathBuf) -> Self {
        Self { dir, os_release }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The finished bundle, and the partial download beside it.
    pub fn bundle(&self) -> (PathBuf, PathBuf) {
        (self.dir.join(BUNDLE), self.dir.join(format!("{BUNDLE}.part")))
    }

    /// The running system: its image version (empty when os-release has none: not an
    /// appliance image) and, on an A/B appliance, the slot and trial state from `boot.json`.
    pub fn booted(&self) -> Booted {
        let version = std::fs::read_to_string(&self.os_release)
            .ok()
            .and_then(|text| os_release_value(&text, "IMAGE_VERSION"))
            .unwrap_or_default();
        let boot: Option<BootJson> = self.read_json("boot.json");
        let trial_failed = self
            .read_json::<ResultJson>("trial.result")
            .filter(|r| !r.ok)
            .map(|r| (r.version, r.error));
        match boot {
            Some(b) if !version.is_empty() => {
                Booted { version, slot: b.slot, trial: b.trial, trial_failed }
            }
            _ => Booted { version, ..Booted::default() },
        }
    }

    /// What was kept, or nothing (a missing or unreadable file: logged, then started afresh).
    pub fn kept(&self) -> Kept {
        self.read_json("state.json").unwrap_or_default()
    }

    pub fn keep(&self, kept: &Kept) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(kept).expect("kept state serialises");
        write_atomically(&self.dir.join("state.json"), &json)
    }

    /// Asks for the fetched bundle to be installed (an old result is removed first).
    pub fn request_install(&self, version: &str) -> io::Result<()> {
        remove_if_there(&self.dir.join("install.result"))?;
        let req = InstallRequest { version, bundle: BUNDLE };
        write_atomically(&self.dir.join("install.request"), &serde_json::to_vec(&req)?)
    }

    /// The install's result for `version`, once there: `Ok` or the error in plain words.
    pub fn install_result(&self, version: &str) -> Option<Result<(), String>> {
        let r: ResultJson = self.read_json("install.result")?;
        if r.version != version {
            return None;
        }
        Some(if r.ok { Ok(()) } else { Err(r.error) })
    }

    /// Says how long `version` has to become healthy, then asks for the reboot.
    pub fn request_reboot(&self, version: &str, health_timeout_secs: u32) -> io::Result<()> {
        remove_if_there(&self.dir.join("trial.result"))?;
        let trial = TrialJson { version, health_timeout_secs };
        write_atomically(&self.dir.join("trial.json"), &serde_json::to_vec(&trial)?)?;
        write_atomically(&self.dir.join("reboot.request"), b"{}")
    }

    /// Asks the appliance to reboot (a fleet admin's reboot command).
    pub fn request_plain_reboot(&self) -> io::Result<()> {
        write_atomically(&self.dir.join("reboot.request"), b"{}")
    }

    /// Tells the health check this boot is healthy.
    pub fn mark_healthy(&self) -> io::Result<()> {
        write_atomically(&self.dir.join("healthy"), b"{}")
    }

    /// What an interrupted install left: its result, and the bundle.
    pub fn leftovers(&self) -> Leftovers {
        Leftovers {
            install_result: self.dir.join("install.result").exists(),
            bundle: self.dir.join(BUNDLE).exists(),
        }
    }

    /// Removes the concluded trial's files (`trial.json`, `trial.result`).
    pub fn forget_trial(&self) -> io::Result<()> {
        remove_if_there(&self.dir.join("trial.json"))?;
        remove_if_there(&self.dir.join("trial.result"))
    }

    /// Removes the bundle and any partial download.
    pub fn clean(&self) -> io::Result<()> {
        let (bundle, part) = self.bundle();
        remove_if_there(&bundle)?;
        remove_if_there(&part)
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", path.display());
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .inspect_err(|e| tracing::warn!("{} cannot be read: {e}", path.display()))
            .ok()
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A value of an os-release file (`KEY=value`, `KEY="value"`).
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &tempfile::TempDir, os_release: &str) -> UpdateFiles {
        let rel = dir.path().join("os-release");
        std::fs::write(&rel, os_release).unwrap();
        UpdateFiles::new(dir.path().join("update"), rel)
    }

    #[test]
    fn the_booted_slot_needs_an_image_version_and_boot_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(&dir, "ID=debian\nIMAGE_ID=telekiosk\nIMAGE_VERSION=\"1.4.0\"\n");
        assert_eq!(f.booted(), Booted { version: "1.4.0".into(), ..Booted::default() });
        std::fs::create_dir_all(f.dir()).unwrap();
        std::fs::write(f.dir().join("boot.json"), r#"{"slot":"B","trial":true}"#).unwrap();
        std::fs::write(
            f.dir().join("trial.result"),
            r#"{"version":"1.5.0","slot":"B","ok":false,"error":"not healthy within 60 s"}"#,
        )
        .unwrap();
        let b = f.booted();
        assert_eq!((b.version.as_str(), b.slot.as_str(), b.trial), ("1.4.0", "B", true));
        assert_eq!(b.trial_failed, Some(("1.5.0".into(), "not healthy within 60 s".into())));
        // Not an appliance image: no slot, whatever boot.json says.
        let g = files(&dir, "ID=debian\n");
        assert_eq!(g.booted().slot, "");
    }

    #[test]
    fn requests_and_results_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(&dir, "IMAGE_VERSION=1\n");
        f.request_install("2.0").unwrap();
        let req = std::fs::read_to_string(f.dir().join("install.request")).unwrap();
        assert_eq!(req, r#"{"version":"2.0","bundle":"bundle.raucb"}"#);
        assert_eq!(f.install_result("2.0"), None);
        std::fs::write(f.dir().join("install.result"), r#"{"version":"1.9","ok":true}"#).unwrap();
        assert_eq!(f.install_result("2.0"), None, "another version's result");
        std::fs::write(
            f.dir().join("install.result"),
            r#"{"version":"2.0","ok":false,"error":"signature verification failed"}"#,
        )
        .unwrap();
        assert_eq!(f.install_result("2.0"), Some(Err("signature verification failed".into())));
        f.request_reboot("2.0", 120).unwrap();
        let trial = std::fs::read_to_string(f.dir().join("trial.json")).unwrap();
        assert_eq!(trial, r#"{"version":"2.0","health_timeout_secs":120}"#);
        assert!(f.dir().join("reboot.request").exists());
        let names: Vec<String> = std::fs::read_dir(f.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn os_release_values_may_be_quoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nIMAGE_VERSION='2.1'\nIMAGE_ID=telekiosk";
        assert_eq!(os_release_value(text, "IMAGE_VERSION").as_deref(), Some("2.1"));
        assert_eq!(os_release_value(text, "IMAGE_ID").as_deref(), Some("telekiosk"));
        assert_eq!(os_release_value(text, "VERSION"), None);
    }
}
