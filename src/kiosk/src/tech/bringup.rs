//! What bring-up tells the technician screen: the identity once the kiosk has one (public
//! material only), and, while it is not enrolled, the wait for an enrolment code typed on the
//! screen's keypad (the provisioning file and `--enrol-token` keep working as before).
//!
//! Must never: log or keep an enrolment code (it goes straight to bring-up).

use tokio::sync::mpsc::unbounded_channel;

use super::{Enrolment, FleetLink, KeyHolder, SharedFacts};
use crate::enrol::EnrolError;
use crate::startup::{Identity, StartError};

/// After bring-up failed with `e`: when the kiosk is not enrolled (no code, or fleetd refused
/// it), waits for an enrolment code from the technician screen; `None` for any other failure.
pub async fn enrolment_code(e: &StartError, facts: &SharedFacts) -> Option<String> {
    if !matches!(e, StartError::Enrol(EnrolError::NoToken | EnrolError::Refused(_))) {
        return None;
    }
    let (code_tx, mut code_rx) = unbounded_channel();
    facts.update(|f| {
        f.enrolment = Enrolment::NotEnrolled;
        f.enrol_code = Some(code_tx);
    });
    let code = code_rx.recv().await;
    facts.update(|f| {
        f.enrolment = Enrolment::Enrolling;
        f.enrol_code = None;
    });
    code
}

/// What the technician screen shows of the kiosk's identity (public material only).
pub async fn learn_identity(facts: &SharedFacts, identity: &Identity, server: url::Url) {
    let tpm = identity.tpm().cloned();
    let holder = tokio::task::spawn_blocking(move || match tpm {
        Some(tpm) => KeyHolder::Tpm(tpm.vendor().unwrap_or_default()),
        None => KeyHolder::DevelopmentKey,
    })
    .await
    .unwrap_or_default();
    let fingerprint = telekiosk_protocol::fingerprint::key_fingerprint(identity.key.public_point());
    facts.update(|f| {
        f.enrolment = Enrolment::Enrolled;
        f.device_id = identity.credentials.device_id.clone();
        f.key_fingerprint = fingerprint;
        f.tpm = holder;
        f.fleet = Some(FleetLink { server, tls: identity.tls.clone() });
    });
}
