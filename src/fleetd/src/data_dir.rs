//! The data directory and every file fleetd keeps in it: the database, the CA and server
//! certificate ([`crate::pki`]), the revocation list, the signing key, and the configuration of
//! the broker fleetd runs. `serve`, `user`, `device` and `config` all open them through
//! [`DataDir`].

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
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), "data directory is open to others: chmod 700 it");
        }
        Ok(Self(dir))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite database: users, sessions, devices, config, rollouts, commands.
    pub fn db(&self) -> PathBuf {
        self.0.join("fleetd.db")
    }

    /// The CA's and the server's certificates and keys, whether or not they exist yet.
    pub fn pki(&self) -> Pki {
        Pki::paths(&self.0)
    }

    /// The certificate revocation list the broker checks.
    pub fn crl(&self) -> PathBuf {
        self.0.join(crate::registry::revocation::CRL_FILE)
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
        self.0.join(crate::pki::signing::KEY_FILE)
    }
}
