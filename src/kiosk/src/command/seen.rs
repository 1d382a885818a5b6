//! The ids of commands already run, on disk (`state_dir/commands-seen.json`), so a command
//! replayed after a restart is still refused.
//!
//! Owns: that small file. Must never: let a command run before its id is on disk (an id is
//! written first, so a crash makes a command run at most once, never twice).

use std::path::{Path, PathBuf};

use super::RecentIds;

/// The file in the state directory.
pub const FILE: &str = "commands-seen.json";

/// Why the ids could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("cannot record command ids in {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The ids on disk.
#[derive(Debug, Clone)]
pub struct SeenStore {
    path: PathBuf,
}

impl SeenStore {
    /// The store in `state_dir`.
    pub fn new(state_dir: &Path) -> SeenStore {
        SeenStore { path: state_dir.join(FILE) }
    }

    /// The remembered ids. A missing file is an empty set; a damaged one is reported in the log
    /// and read as empty (expiry still bounds what could be replayed: at most an hour's commands).
    pub fn load(&self) -> RecentIds {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), "command ids file damaged ({e}); starting empty");
                RecentIds::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RecentIds::default(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot read command ids ({e}); starting empty");
                RecentIds::default()
            }
        }
    }

    /// Replaces the file with `ids`, atomically.
    pub fn save(&self, ids: &RecentIds) -> Result<(), SeenError> {
        let bytes = serde_json::to_vec(ids).expect("ids serialise");
        crate::durable::write_atomically(&self.path, &bytes)
            .map_err(|e| SeenError::Write { path: self.path.clone(), reason: e.to_string() })
    }
}
