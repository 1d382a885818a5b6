//! The data directory and every file fleetd keeps in it: the database, the CA and server
//! certificate ([`crate::pki`]), the revocation list, the signing key, the configuration of
//! the broker fleetd runs, the audit chain head, and the key visit codes are hashed with. Each
//! file name is spelt here and nowhere else; `serve`, `user`, `device`, `config` and `audit`
//! (and the tests) reach the files through [`DataDir`].

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::pki::Pki;

/// A prepared data directory (created owner-only if needed), by its absolute path.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// Creates `dir` (owner-only) if needed and opens it; warns if others may read it.
    pub fn prepare(dir: &Path) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let dir = dir.canonicalize().with_context(|| format!("cannot open {}", dir.display()))?;
        let mode = std::fs::metadata(&dir)?.permissions().mode();
        if open_to_others(mode) {
            tracing::warn!(dir = %dir.display(), "data directory is open to others: chmod 700 it");
        }
        Ok(Self(dir))
    }

    /// Refuses a data directory that its group or others may enter (`serve` calls this: the
    /// database holds password hashes and token hashes).
    pub fn require_private(&self) -> anyhow::Result<()> {
        let mode = std::fs::metadata(&self.0)?.permissions().mode();
        if open_to_others(mode) {
            anyhow::bail!(
                "the data directory {dir} is open to its group or others (mode {mode:o}); \
                 fleetd keeps password and token hashes there. Run `chmod 700 {dir}` and start again",
                dir = self.0.display(),
                mode = mode & 0o777,
            );
        }
        Ok(())
    }

    /// A directory made with `tempfile` (already owner-only), for tests.
    #[cfg(test)]
    pub fn of(dir: &tempfile::TempDir) -> Self {
        Self(dir.path().to_path_buf())
    }

    /// The SQLite database: users, sessions, devices, config, rollouts, commands.
    pub fn db(&self) -> PathBuf {
        self.0.join("fleetd.db")
    }

    /// The CA's and the server's certificates and keys, whether or not they exist yet.
    pub fn pki(&self) -> Pki {
        Pki {
            ca_cert: self.0.join("ca.pem"),
            ca_key: self.0.join("ca-key.pem"),
            server_cert: self.0.join("server.pem"),
            server_key: self.0.join("server-key.pem"),
        }
    }

    /// The certificate revocation list the broker checks.
    pub fn crl(&self) -> PathBuf {
        self.0.join("crl.pem")
    }

    /// The configuration of the broker fleetd runs (written at every start).
    pub fn broker_config(&self) -> PathBuf {
        self.0.join("mosquitto.conf")
    }

    /// The broker's access control list (written at every start).
    pub fn broker_acl(&self) -> PathBuf {
        self.0.join("mosquitto.acl")
    }

    /// The Ed25519 key that signs config and commands.
    pub fn signing_key(&self) -> PathBuf {
        self.0.join("config-signing-key.pem")
    }

    /// The audit chain head (`SEQ HASH`), written apart from the database so that a rewritten
    /// database is caught by `fleetd audit verify`.
    pub fn audit_head(&self) -> PathBuf {
        self.0.join("audit-head")
    }

    /// OS bundles fleetd hands out, each named `{sha256}.raucb`.
    pub fn bundles(&self) -> PathBuf {
        self.0.join("bundles")
    }

    /// The key visit codes are hashed with (HMAC-SHA256), so the database alone does not give
    /// them away.
    pub fn visit_code_key(&self) -> PathBuf {
        self.0.join("visit-code-key")
    }
}

/// True if a file mode lets the group or others read, write or enter.
pub fn open_to_others(mode: u32) -> bool {
    mode & 0o077 != 0
}
