//! Fetching a bundle from fleetd over mutual TLS, built for rural links: the file grows in
//! `bundle.raucb.part`, each new connection asks for the rest with an HTTP range request, a
//! dropped connection is tried again with back-off (10 s doubling to 5 min) for as long as
//! the order stands, and only a complete file whose size and SHA-256 match the signed order
//! becomes `bundle.raucb`. The bundle's own signature is RAUC's to check at install.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use telekiosk_protocol::update::{UpdateOrder, bundle_path};

use super::files::UpdateFiles;

/// First wait after a failed attempt; doubled after each up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// A connection that has sent nothing for this long is dropped and tried again.
const STALL: Duration = Duration::from_secs(60);

/// Why one attempt stopped.
#[derive(Debug)]
enum Stop {
    /// Worth another attempt (network, server busy).
    Again(String),
    /// Not worth one (fleetd does not have it, refuses this kiosk, no room on disk).
    Final(String),
}

/// Fetches bundles from one fleetd.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    server: url::Url,
}

impl Fetcher {
    /// A client presenting the kiosk's certificate (`tls`) to `server`.
    pub fn new(server: url::Url, tls: rustls::ClientConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(STALL)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make the HTTPS client: {e}"))?;
        Ok(Self { client, server })
    }

    /// Fetches the order's bundle into `files`, reporting bytes held after each piece; returns
    /// once it is complete and checked, or why it cannot be.
    pub async fn fetch(
        &self,
        order: &UpdateOrder,
        files: &UpdateFiles,
        progress: impl Fn(u64),
    ) -> Result<(), String> {
        let (bundle, part) = files.bundle();
        if bundle.exists() {
            if matches(&bundle, order).await? {
                return Ok(());
            }
            std::fs::remove_file(&bundle)
                .map_err(|e| format!("cannot remove a stale bundle: {e}"))?;
        }
        let url = self
            .server
            .join(bundle_path(&order.sha256).trim_start_matches('/'))
            .map_err(|e| format!("bad server address: {e}"))?;
        let (mut failures, mut mismatches) = (0u32, 0u32);
        loop {
            let outcome = match self.attempt(&url, order, &part, &progress).await {
                Ok(()) if matches(&part, order).await? => {
                    std::fs::rename(&part, &bundle)
                        .map_err(|e| format!("cannot keep the fetched bundle: {e}"))?;
                    return Ok(());
                }
                Ok(()) => {
                    let _ = std::fs::remove_file(&part);
                    mismatches += 1;
                    let why = "the bundle fetched does not match the SHA-256 of its order";
                    if mismatches >= 2 {
                        return Err(format!("{why} (twice); it was deleted"));
                    }
                    Stop::Again(format!("{why}; fetching it again from the start"))
                }
                Err(stop) => stop,
            };
            match outcome {
                Stop::Final(why) => return Err(why),
                Stop::Again(why) => {
                    failures += 1;
                    let wait =
                        FIRST_RETRY.saturating_mul(1 << (failures - 1).min(5)).min(MAX_RETRY);
                    tracing::warn!(version = %order.version, "bundle fetch stopped ({why}); trying again in {} s", wait.as_secs());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One connection: asks for what `part` does not hold yet and appends it.
    async fn attempt(
        &self,
        url: &url::Url,
        order: &UpdateOrder,
        part: &Path,
        progress: &impl Fn(u64),
    ) -> Result<(), Stop> {
        let local =
            |e: std::io::Error| Stop::Final(format!("cannot write {}: {e}", part.display()));
        let mut have = std::fs::metadata(part).map_or(0, |m| m.len());
        if have > order.size {
            std::fs::remove_file(part).map_err(local)?;
            have = 0;
        }
        if have == order.size {
            return Ok(());
        }
        room_for(part, order.size - have)?;
        let mut req = self.client.get(url.clone());
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let net = |e: reqwest::Error| Stop::Again(e.to_string());
        let mut res = req.send().await.map_err(net)?;
        let status = res.status();
        let resumed = match status {
            StatusCode::PARTIAL_CONTENT => {
                let from = res.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok());
                if from.and_then(range_start) != Some(have) {
                    return Err(Stop::Again(format!("fleetd sent the wrong part ({from:?})")));
                }
                true
            }
            StatusCode::OK => false,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                std::fs::remove_file(part).map_err(local)?;
                return Err(Stop::Again("fleetd's bundle is shorter than the part held".into()));
            }
            StatusCode::NOT_FOUND => {
                return Err(Stop::Final(format!(
                    "fleetd does not have the bundle of version {} any more",
                    order.version
                )));
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Stop::Final(format!("fleetd refused the download ({status})")));
            }
            _ => return Err(Stop::Again(format!("fleetd answered {status}"))),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(part)
            .map_err(local)?;
        if !resumed {
            have = 0;
        }
        while let Some(chunk) = res.chunk().await.map_err(net)? {
            if have + chunk.len() as u64 > order.size {
                drop(file);
                std::fs::remove_file(part).map_err(local)?;
                return Err(Stop::Again("fleetd sent more than the bundle's size".into()));
            }
            file.write_all(&chunk).map_err(local)?;
            have += chunk.len() as u64;
            progress(have);
        }
        file.sync_all().map_err(local)?;
        if have < order.size {
            return Err(Stop::Again(format!(
                "the connection ended after {have} of {} bytes",
                order.size
            )));
        }
        Ok(())
    }
}

/// The first byte of a `Content-Range: bytes A-B/N` header.
fn range_start(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Refuses to fetch when the file system cannot hold the rest (plus 16 MiB to spare).
fn room_for(part: &Path, rest: u64) -> Result<(), Stop> {
    let dir = part.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Stop::Final(format!("cannot make {}: {e}", dir.display())))?;
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else { return Ok(()) };
    // The field types differ between targets (u32 on some 32-bit boards).
    #[allow(clippy::unnecessary_cast)]
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let need = rest + (16 << 20);
    if free < need {
        let mib = |b: u64| b >> 20;
        return Err(Stop::Final(format!(
            "not enough room for the bundle: it needs {} MiB more, the state partition has {} MiB free",
            mib(need),
            mib(free)
        )));
    }
    Ok(())
}

/// Whether a file has the order's size and SHA-256 (hashed off the async threads).
async fn matches(path: &Path, order: &UpdateOrder) -> Result<bool, String> {
    let (path, order) = (path.to_path_buf(), order.clone());
    tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len != order.size {
            return Ok(false);
        }
        Ok(sha256_hex(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            == order.sha256)
    })
    .await
    .map_err(|e| format!("the checksum task failed: {e}"))?
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_range_says_where_the_part_starts() {
        assert_eq!(range_start("bytes 1000-1999/2000"), Some(1000));
        assert_eq!(range_start("bytes */2000"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }

    #[test]
    fn the_file_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_hex(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
