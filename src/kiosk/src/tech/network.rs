//! The network test to fleetd, with the kiosk's own TLS client (the device certificate and the
//! fleet CA, as every other connection): the round-trip time is the median of five HTTPS GETs
//! of `/api/health`; the bandwidth is how fast a known console asset downloads.
//!
//! Must never: send anything about a visit or the patient, or follow a redirect elsewhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rules::{self, Grade};

/// Round trips measured.
pub const ROUND_TRIPS: usize = 5;
/// The health check, a tiny answer: its time is the round trip.
pub const HEALTH_PATH: &str = "/api/health";
/// A console asset fleetd always serves, fetched for the bandwidth estimate…
pub const BULK_PATH: &str = "/app.js";
/// …this many times.
pub const BULK_FETCHES: usize = 3;

/// What the test measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkReport {
    pub rtt: Duration,
    pub mbit_per_s: f64,
    pub grade: Grade,
}

/// Why the test could not finish, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot reach the clinic's server: {0}")]
    Unreachable(String),
    #[error("the clinic's server answered {0}")]
    Status(u16),
}

fn unreachable(e: reqwest::Error) -> NetworkError {
    NetworkError::Unreachable(e.without_url().to_string())
}

/// Measures the link to `server` with `tls`.
pub async fn run(
    server: &url::Url,
    tls: Arc<rustls::ClientConfig>,
) -> Result<NetworkReport, NetworkError> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(unreachable)?;
    let url = |path: &str| server.join(path).map_err(|e| NetworkError::Unreachable(e.to_string()));
    let health = url(HEALTH_PATH)?;
    // The first request also opens the connection (TCP and TLS): not a round trip, not counted.
    fetch(&client, &health).await?;
    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        fetch(&client, &health).await?;
        trips.push(start.elapsed());
    }
    let rtt = rules::median(trips).unwrap_or_default();
    let bulk = url(BULK_PATH)?;
    let (mut bytes, start) = (0u64, Instant::now());
    for _ in 0..BULK_FETCHES {
        bytes += fetch(&client, &bulk).await?;
    }
    let mbit_per_s = rules::mbit_per_s(bytes, start.elapsed());
    Ok(NetworkReport { rtt, mbit_per_s, grade: rules::grade(rtt, mbit_per_s) })
}

/// One GET, read to the end; the body's length.
async fn fetch(client: &reqwest::Client, url: &url::Url) -> Result<u64, NetworkError> {
    let response = client.get(url.clone()).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(NetworkError::Status(response.status().as_u16()));
    }
    Ok(response.bytes().await.map_err(unreachable)?.len() as u64)
}
