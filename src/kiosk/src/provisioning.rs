//! Provisioning without a keyboard: the file a clinic's IT person drops on the appliance's ESP
//! (`telekiosk/provision.toml`), which the image's start-up moves into the state directory
//! before the kiosk starts. It says where the fleet is, which CA to trust, the one-time
//! enrolment code and the hardware profile:
//!
//! ```toml
//! server = "https://fleet.example.org:8443/"
//! fleet_ca = """-----BEGIN CERTIFICATE-----
//! …
//! -----END CERTIFICATE-----"""
//! enrol_code = "K7Q2-…"
//! profile = "generic-x86"
//! ```
//!
//! The first boot enrols with the code; once enrolled the kiosk rewrites the file without it
//! (the code is spent), and later boots read only the server, CA and profile. Command-line
//! options, where given, take precedence over the file (development and tests).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The provisioning file's contents, checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioning {
    /// The fleet server's HTTPS address.
    pub server: url::Url,
    /// The fleet's CA certificate (PEM), trusted for enrolment.
    pub fleet_ca: String,
    /// The fleet's MQTT broker, if not the server's host on port 8883.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<url::Url>,
    /// The one-time enrolment code; gone once the kiosk has enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrol_code: Option<String>,
    /// The hardware profile's name: `<profile-dir>/<name>.toml`.
    pub profile: String,
}

/// Why a provisioning file cannot be used; each message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("the provisioning file {path} cannot be read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the provisioning file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
    #[error("the provisioning file {path} cannot be updated: {source}")]
    Write { path: String, source: std::io::Error },
}

/// What the kiosk tells the clinic when it has no provisioning at all.
pub const NOT_SET_UP: &str = "Copy a provisioning file (provision.toml, from your fleet \
    administrator) into the telekiosk folder of this kiosk's boot partition, then restart it.";

impl Provisioning {
    /// Reads and checks the file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, ProvisioningError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ProvisioningError::Read { path: shown, source }),
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|message| ProvisioningError::Invalid { path: shown, message })
    }

    /// Parses and checks a provisioning file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Provisioning = toml::from_str(text).map_err(|e| e.message().to_string())?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), String> {
        if self.server.scheme() != "https" || self.server.host_str().is_none() {
            return Err(format!("server {} must be an https:// address", self.server));
        }
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_slice_iter(self.fleet_ca.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("fleet_ca is not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("fleet_ca holds no certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        let name_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.profile.is_empty() || self.profile.len() > 40 || !self.profile.chars().all(name_ok)
        {
            return Err(format!(
                "profile {:?} must be a profile name (a-z, 0-9, '-'), e.g. generic-x86",
                self.profile
            ));
        }
        if self.enrol_code.as_deref().is_some_and(|c| c.trim().is_empty() || c.len() > 200) {
            return Err("enrol_code is empty or too long".into());
        }
        Ok(())
    }

    /// The hardware profile's file in `dir`.
    pub fn profile_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.toml", self.profile))
    }

    /// Rewrites the file without the enrolment code (spent once the kiosk has enrolled),
    /// atomically: a power cut leaves either the old file or the new one.
    pub fn forget_code(&self, path: &Path) -> Result<(), ProvisioningError> {
        let rest = Provisioning { enrol_code: None, ..self.clone() };
        let text = toml::to_string(&rest).expect("provisioning serialises");
        crate::durable::write_atomically(path, text.as_bytes())
            .map_err(|source| ProvisioningError::Write { path: path.display().to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUfake\n-----END CERTIFICATE-----\n";

    fn text(server: &str, ca: &str, code: &str, profile: &str) -> String {
        format!(
            "server = {server:?}\nfleet_ca = {ca:?}\n{code}profile = {profile:?}\n",
            code = if code.is_empty() { String::new() } else { format!("enrol_code = {code:?}\n") }
        )
    }

    #[test]
    fn a_complete_file_is_accepted() {
        let p = Provisioning::parse(&text("https://10.0.2.2:18443/", CA, "ABC-123", "qemu"))
            .expect("valid");
        assert_eq!(p.enrol_code.as_deref(), Some("ABC-123"));
        assert_eq!(p.profile_path(Path::new("/usr/share/p")), Path::new("/usr/share/p/qemu.toml"));
    }

    #[test]
    fn each_bad_field_is_named() {
        for (bad, needle) in [
            (text("http://fleet/", CA, "X", "qemu"), "https://"),
            (text("https://fleet/", "not a cert", "X", "qemu"), "fleet_ca"),
            (text("https://fleet/", CA, "X", "../etc/passwd"), "profile"),
            (text("https://fleet/", CA, "  ", "qemu"), "enrol_code"),
            ("server = \"https://fleet/\"\n".to_string(), "fleet_ca"),
            (text("https://fleet/", CA, "X", "qemu") + "wifi = 1\n", "wifi"),
            ("server = [".to_string(), ""),
        ] {
            let err = Provisioning::parse(&bad).expect_err(&bad);
            assert!(err.contains(needle), "{err:?} should name {needle:?}");
        }
    }

    #[test]
    fn a_missing_file_is_none_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Provisioning::load(&dir.path().join("provision.toml")).expect("ok").is_none());
        let err = Provisioning::load(dir.path()).expect_err("a directory is not a file");
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }

    #[test]
    fn forgetting_the_code_keeps_everything_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("provision.toml");
        std::fs::write(&path, text("https://fleet:8443/", CA, "ABC", "qemu")).expect("write");
        let p = Provisioning::load(&path).expect("ok").expect("some");
        p.forget_code(&path).expect("rewritten");
        let after = Provisioning::load(&path).expect("ok").expect("some");
        assert_eq!(after, Provisioning { enrol_code: None, ..p });
    }
}
