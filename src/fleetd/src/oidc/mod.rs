//! Sign-in through an identity provider (OpenID Connect), beside local accounts: the `fleetd
//! serve` options ([`OidcArgs`]) and what they make ([`Settings`], checked at start-up: all
//! absent is off, partly given is an error naming what is missing), the provider's client
//! ([`provider`]) and the sign-ins sent to it and not back yet ([`pending`]). What the claims
//! make of a user is in `accounts/oidc_claims.rs`; the routes in `http/oidc.rs`.
//! Never logs the client secret, an authorization code or a token.

pub mod pending;
pub mod provider;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::accounts::oidc_claims::ClaimNames;

/// The button's words when `--oidc-label` is not given.
pub const DEFAULT_LABEL: &str = "Sign in with your organisation's account";

/// `fleetd serve`'s OpenID Connect options (each also from an environment variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OidcArgs {
    /// Sign-in through this OpenID Connect provider (its issuer URL, https://…); with
    /// --oidc-client-id and --oidc-client-secret-file. Register
    /// https://FLEETD-NAME:PORT/api/oidc/callback as the redirect URI there.
    #[arg(long, env = "FLEETD_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// fleetd's client id at the identity provider.
    #[arg(long, env = "FLEETD_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// File holding fleetd's client secret at the identity provider (read once at start-up;
    /// must not be readable by every user). Never logged.
    #[arg(long, env = "FLEETD_OIDC_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Also trust this CA (PEM) for the identity provider's HTTPS (besides the usual public
    /// roots).
    #[arg(long, env = "FLEETD_OIDC_CA", value_name = "PEM")]
    pub oidc_ca: Option<PathBuf>,
    /// The words on the consoles' button, e.g. "Sign in with Maple Health".
    #[arg(long, env = "FLEETD_OIDC_LABEL", value_name = "TEXT")]
    pub oidc_label: Option<String>,
    /// The ID token claim with the user's telekiosk role (a list holding exactly one of admin,
    /// clinician, auditor, technician).
    #[arg(long, env = "FLEETD_OIDC_ROLES_CLAIM", default_value = "telekiosk_roles")]
    pub oidc_roles_claim: String,
    /// The ID token claim with the user's clinics (a list of clinic names).
    #[arg(long, env = "FLEETD_OIDC_CLINICS_CLAIM", default_value = "telekiosk_clinics")]
    pub oidc_clinics_claim: String,
    /// Refuse an ID token whose `amr` shows no second factor.
    #[arg(long, env = "FLEETD_OIDC_REQUIRE_MFA")]
    pub oidc_require_mfa: bool,
}

/// A checked OpenID Connect configuration.
#[derive(Clone)]
pub struct Settings {
    /// The issuer URL as given (it must match the ID tokens' `iss`).
    pub issuer: String,
    pub client_id: String,
    /// Kept out of `Debug`.
    pub client_secret: String,
    /// Extra trust anchors (DER) for the provider's HTTPS.
    pub extra_roots: Vec<Vec<u8>>,
    pub label: String,
    pub claims: ClaimNames,
    pub require_mfa: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"(not shown)")
            .field("label", &self.label)
            .field("claims", &self.claims)
            .field("require_mfa", &self.require_mfa)
            .finish_non_exhaustive()
    }
}

impl OidcArgs {
    /// Whether any option says OpenID Connect is wanted.
    fn any_given(&self) -> bool {
        let defaults = OidcArgs::defaults();
        self.oidc_issuer.is_some()
            || self.oidc_client_id.is_some()
            || self.oidc_client_secret_file.is_some()
            || self.oidc_ca.is_some()
            || self.oidc_label.is_some()
            || self.oidc_require_mfa
            || self.oidc_roles_claim != defaults.oidc_roles_claim
            || self.oidc_clinics_claim != defaults.oidc_clinics_claim
    }

    fn defaults() -> Self {
        let claims = ClaimNames::default();
        Self {
            oidc_roles_claim: claims.roles,
            oidc_clinics_claim: claims.clinics,
            ..Self::default()
        }
    }

    /// The options that are required once any is given, and missing: by flag name.
    pub fn missing(&self) -> Vec<&'static str> {
        if !self.any_given() {
            return vec![];
        }
        let mut missing = vec![];
        if self.oidc_issuer.is_none() {
            missing.push("--oidc-issuer");
        }
        if self.oidc_client_id.is_none() {
            missing.push("--oidc-client-id");
        }
        if self.oidc_client_secret_file.is_none() {
            missing.push("--oidc-client-secret-file");
        }
        missing
    }

    /// The configuration, reading the secret and CA files; `None` when no option is given.
    pub fn settings(&self) -> anyhow::Result<Option<Settings>> {
        let missing = self.missing();
        if !missing.is_empty() {
            bail!(
                "sign-in through an identity provider is partly configured: {} missing",
                missing.join(", ")
            );
        }
        let (Some(issuer), Some(client_id), Some(secret_file)) =
            (&self.oidc_issuer, &self.oidc_client_id, &self.oidc_client_secret_file)
        else {
            return Ok(None);
        };
        check_issuer(issuer)?;
        if client_id.trim().is_empty() {
            bail!("--oidc-client-id is empty");
        }
        let client_secret = read_secret(secret_file)?;
        let extra_roots = match &self.oidc_ca {
            Some(path) => read_roots(path)?,
            None => vec![],
        };
        let label = self.oidc_label.clone().unwrap_or_else(|| DEFAULT_LABEL.into());
        if label.trim().is_empty() || label.len() > 80 || label.chars().any(char::is_control) {
            bail!("--oidc-label must be 1-80 printable characters");
        }
        let claims = ClaimNames {
            roles: self.oidc_roles_claim.clone(),
            clinics: self.oidc_clinics_claim.clone(),
        };
        Ok(Some(Settings {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret,
            extra_roots,
            label,
            claims,
            require_mfa: self.oidc_require_mfa,
        }))
    }
}

/// An issuer URL must be https:// with a host (OpenID Connect Discovery).
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let ok = issuer.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty() && !rest.starts_with('/') && !rest.contains(['?', '#'])
    });
    if !ok {
        bail!("--oidc-issuer must be an https:// URL with a host, not {issuer:?}");
    }
    Ok(())
}

/// The host (and port) of an issuer URL, for the audit trail.
pub fn issuer_host(issuer: &str) -> &str {
    let rest = issuer.split_once("://").map_or(issuer, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Reads the client secret: the file must exist, not be readable by every user, and hold a
/// non-empty secret (a final newline is dropped).
fn read_secret(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!("cannot read the OpenID Connect client secret file {}", path.display())
    })?;
    if meta.permissions().mode() & 0o004 != 0 {
        bail!(
            "the OpenID Connect client secret file {} is readable by every user: \
             make it private (chmod 600 or 640) and start fleetd again",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the OpenID Connect client secret file {}", path.display())
    })?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        bail!("the OpenID Connect client secret file {} is empty", path.display());
    }
    Ok(secret)
}

/// The certificates of a PEM file, for trust.
fn read_roots(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let pem = std::fs::read(path).with_context(|| {
        format!("cannot read the identity provider's CA file {}", path.display())
    })?;
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        oidc: OidcArgs,
    }

    fn parse(args: &[&str]) -> OidcArgs {
        Serve::try_parse_from([&["serve"][..], args].concat()).unwrap().oidc
    }

    fn secret_file(mode: u32) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let path = path.to_str().unwrap().to_string();
        (dir, path)
    }

    #[test]
    fn no_option_means_off() {
        assert!(parse(&[]).settings().unwrap().is_none());
    }

    #[test]
    fn a_partial_configuration_names_what_is_missing() {
        let only_issuer = parse(&["--oidc-issuer", "https://idp.example"]);
        let err = only_issuer.settings().unwrap_err().to_string();
        assert!(
            err.contains("--oidc-client-id") && err.contains("--oidc-client-secret-file"),
            "{err}"
        );
        assert!(!err.contains("--oidc-issuer,"), "{err}");
        let label_only = parse(&["--oidc-label", "Sign in with Maple Health"]);
        assert_eq!(
            label_only.missing(),
            ["--oidc-issuer", "--oidc-client-id", "--oidc-client-secret-file"]
        );
        assert!(!parse(&["--oidc-require-mfa"]).missing().is_empty());
    }

    #[test]
    fn a_complete_configuration_reads_the_secret_once_and_hides_it() {
        let (_dir, path) = secret_file(0o600);
        let args = parse(&[
            "--oidc-issuer",
            "https://idp.example/realms/maple",
            "--oidc-client-id",
            "fleetd",
            "--oidc-client-secret-file",
            &path,
            "--oidc-label",
            "Sign in with Maple Health",
            "--oidc-require-mfa",
        ]);
        let s = args.settings().unwrap().unwrap();
        assert_eq!(s.client_secret, "s3cret");
        assert_eq!(s.label, "Sign in with Maple Health");
        assert!(s.require_mfa);
        assert_eq!(s.claims, ClaimNames::default());
        assert!(!format!("{s:?}").contains("s3cret"), "the secret is in Debug");
    }

    #[test]
    fn a_world_readable_secret_file_is_refused_by_name() {
        let (_dir, path) = secret_file(0o644);
        let args = parse(&[
            "--oidc-issuer",
            "https://idp.example",
            "--oidc-client-id",
            "fleetd",
            "--oidc-client-secret-file",
            &path,
        ]);
        let err = args.settings().unwrap_err().to_string();
        assert!(err.contains(&path) && err.contains("readable by every user"), "{err}");
    }

    #[test]
    fn an_issuer_must_be_https() {
        let (_dir, path) = secret_file(0o600);
        for bad in ["http://idp.example", "idp.example", "https://", "https:///x"] {
            let args = parse(&[
                "--oidc-issuer",
                bad,
                "--oidc-client-id",
                "fleetd",
                "--oidc-client-secret-file",
                &path,
            ]);
            assert!(args.settings().is_err(), "{bad} was taken");
        }
        assert_eq!(issuer_host("https://idp.example:8443/realms/x"), "idp.example:8443");
    }
}
