//! Certificate renewal (review H4): at two thirds of its certificate's life (at once if that
//! is past), the kiosk sends a CSR for the same TPM key to fleetd's `POST /api/device/renew`,
//! over HTTPS on which it presents its current certificate (mutual TLS: that certificate is
//! the credential). The new certificate is checked against the key, stored atomically in the
//! enrolment file, and handed to [`RenewableCert`], which every TLS connection asks for the
//! client certificate: the next connection (MQTT reconnect, HTTPS) presents it; open ones stay.
//! A failure is logged in plain words and tried again with back-off (1 min doubling to 1 h).
//!
//! Owns the timing rule ([`wait_before_renewal`], pure) and the swap. It never changes the key,
//! never stores a certificate that is not for this key, and never logs a certificate.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use telekiosk_protocol::api::{ApiError, RenewRequest, RenewResponse};
use telekiosk_protocol::{decode, encode};

use crate::enrol::{self, Credentials, EnrolError};
use crate::identity::DeviceKey;

/// First wait after a failed renewal; doubled after each failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// How long to wait at `now` before renewing a certificate valid from `not_before` to
/// `not_after` (Unix seconds): until two thirds of its life have passed; zero if they have.
pub fn wait_before_renewal(not_before: i64, not_after: i64, now: i64) -> Duration {
    let life = not_after.saturating_sub(not_before).max(0);
    let due = not_before.saturating_add(life / 3 * 2);
    Duration::from_secs(u64::try_from(due.saturating_sub(now)).unwrap_or(0))
}

/// The wait after `failures` failed attempts in a row (at least one).
pub fn retry_after(failures: u32) -> Duration {
    FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(6)).min(MAX_RETRY)
}

/// (notBefore, notAfter) of a DER certificate, Unix seconds.
pub fn validity(der: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// The client certificate every connection presents, replaced when renewed.
pub struct RenewableCert {
    key: DeviceKey,
    current: RwLock<Arc<dyn ResolvesClientCert>>,
}

impl std::fmt::Debug for RenewableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenewableCert")
    }
}

impl RenewableCert {
    /// Presents `chain` with `key` until [`RenewableCert::replace`].
    pub fn new(key: DeviceKey, chain: Vec<CertificateDer<'static>>) -> Arc<Self> {
        let current = RwLock::new(key.client_auth(chain));
        Arc::new(Self { key, current })
    }

    /// From now on, new connections present `chain`.
    pub fn replace(&self, chain: Vec<CertificateDer<'static>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = self.key.client_auth(chain);
    }
}

impl ResolvesClientCert for RenewableCert {
    fn resolve(
        &self,
        hints: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).resolve(hints, sigschemes)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// What the renewal loop needs.
pub struct Renewal {
    pub server: url::Url,
    /// TLS trusting the fleet CA and presenting [`RenewableCert`].
    pub tls: Arc<rustls::ClientConfig>,
    pub key: DeviceKey,
    pub cert: Arc<RenewableCert>,
    pub state_dir: PathBuf,
}

impl Renewal {
    /// Renews `creds`' certificate whenever it is due, forever.
    pub async fn run(self, mut creds: Credentials) {
        let mut failures = 0;
        loop {
            let wait = match creds.chain().ok().and_then(|c| validity(&c[0])) {
                Some((from, to)) => wait_before_renewal(from, to, now()),
                None => {
                    tracing::error!("the stored certificate cannot be read; renewing it now");
                    Duration::ZERO
                }
            };
            if failures == 0 && !wait.is_zero() {
                tracing::info!("certificate renewal due in {} days", wait.as_secs() / 86_400);
                tokio::time::sleep(wait).await;
            }
            match self.renew_once(&creds).await {
                Ok(renewed) => {
                    tracing::info!(device = %renewed.device_id, "certificate renewed");
                    creds = renewed;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    let again = retry_after(failures);
                    tracing::warn!(
                        "certificate renewal failed ({e}); trying again in {} min",
                        again.as_secs() / 60
                    );
                    tokio::time::sleep(again).await;
                }
            }
        }
    }

    /// One renewal: CSR, request, checks, durable store, swap.
    pub async fn renew_once(&self, creds: &Credentials) -> Result<Credentials, EnrolError> {
        let url = self.server.join("api/device/renew").map_err(|e| bad(e.to_string()))?;
        let unreachable = |e: reqwest::Error| EnrolError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let key = self.key.clone();
        let csr_pem = tokio::task::spawn_blocking(move || key.csr_pem("telekiosk"))
            .await
            .map_err(|e| EnrolError::Csr(e.to_string()))?
            .map_err(|e| EnrolError::Csr(e.to_string()))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(unreachable)?;
        let res = client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(encode(&RenewRequest { csr_pem }))
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(EnrolError::Refused(message));
        }
        let answer = decode::<RenewResponse>(&bytes).map_err(|e| bad(e.to_string()))?;
        if answer.device_id != creds.device_id {
            return Err(bad(format!("it names {} instead of this kiosk", answer.device_id)));
        }
        let renewed = Credentials { certificate_pem: answer.certificate_pem, ..creds.clone() };
        let chain = renewed.chain()?;
        if !self.key.matches_certificate(&chain[0]) {
            return Err(EnrolError::WrongKey);
        }
        enrol::store(&self.state_dir, &renewed)?;
        self.cert.replace(chain);
        Ok(renewed)
    }
}

/// The running renewal loop; dropping it stops the loop.
#[derive(Debug)]
pub struct RenewalTask(tokio::task::JoinHandle<()>);

impl RenewalTask {
    /// Starts [`Renewal::run`] for `creds` on the current runtime.
    pub fn spawn(renewal: Renewal, creds: Credentials) -> Self {
        Self(tokio::spawn(renewal.run(creds)))
    }
}

impl Drop for RenewalTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bad(reason: String) -> EnrolError {
    EnrolError::BadAnswer(reason)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_certificates_life() {
        let (from, to) = (1_000 * DAY, 1_365 * DAY);
        // Issued today: wait 243 days (two thirds of 365, rounded down to whole seconds).
        let wait = wait_before_renewal(from, to, from);
        assert_eq!(wait.as_secs(), (365 * DAY / 3 * 2) as u64);
        assert_eq!(
            wait_before_renewal(from, to, from + 100 * DAY).as_secs(),
            wait.as_secs() - 100 * DAY as u64
        );
    }

    #[test]
    fn a_certificate_past_two_thirds_or_expired_is_renewed_at_once() {
        let (from, to) = (1_000 * DAY, 1_365 * DAY);
        assert_eq!(wait_before_renewal(from, to, from + 244 * DAY), Duration::ZERO);
        assert_eq!(wait_before_renewal(from, to, to + DAY), Duration::ZERO);
        // A nonsensical validity (ends before it starts) is renewed at once too.
        assert_eq!(wait_before_renewal(to, from, to), Duration::ZERO);
    }

    #[test]
    fn failed_renewals_back_off_from_a_minute_to_an_hour() {
        assert_eq!(retry_after(1), Duration::from_secs(60));
        assert_eq!(retry_after(2), Duration::from_secs(120));
        assert_eq!(retry_after(6), Duration::from_secs(1920));
        assert_eq!(retry_after(7), Duration::from_secs(3600));
        assert_eq!(retry_after(50), Duration::from_secs(3600));
    }
}
