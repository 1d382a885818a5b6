//! The hub's check of visit codes: a kiosk's `Waiting` with a code is let into the queue
//! ([`Input::CodeWaiting`]) or answered with `CodeRefused`, after the kiosk's back-off
//! ([`crate::visit_codes::rules::Tries`]) and the store (on the blocking pool). Audits both
//! outcomes with the code's short id or the refusal's class; must never log, audit or keep the
//! digits.

use std::time::Instant;

use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, ServerToKiosk};

use super::{Notes, Stores};
use crate::audit::{self, Entry};
use crate::signalling::{Input, Output};
use crate::store;

/// A kiosk's `Waiting` with a visit code, placed by the registry.
pub(super) struct CodeAsk {
    pub(super) device_id: String,
    pub(super) visit_id: String,
    pub(super) clinic: String,
    pub(super) room: String,
    pub(super) language: Option<Language>,
    pub(super) code: String,
}

/// Checks a visit code: the kiosk's back-off first (a kiosk that must wait is not even
/// checked), then the store. Taken up, the router's input; refused, the answer to the kiosk.
/// Both are audited, with the code's id or the reason, never its digits (refusals within the
/// kiosk's budget of [`crate::signalling::RefusalLimit`], so a kiosk that keeps trying cannot
/// flood the trail).
pub(super) async fn take_up_code(
    stores: &mut Stores,
    notes: &mut Notes,
    ask: CodeAsk,
) -> Result<Input, Output> {
    let CodeAsk { device_id, visit_id, clinic, room, language, code } = ask;
    let now = Instant::now();
    let (actor, object) = (audit::device(&device_id), format!("visit {visit_id}"));
    let mut refused = |reason: CodeRefusal, wait: u32, class: &str| {
        let detail = format!("clinic {clinic}; wait {wait} s");
        let entry = Entry::new(&actor, audit::VISIT_CODE_REFUSED, &object, &device_id);
        notes.record(entry.detail(&detail).refused(class), now);
        let msg = ServerToKiosk::CodeRefused {
            visit_id: visit_id.clone(),
            reason,
            retry_after_secs: wait,
        };
        Output::ToKiosk { device_id: device_id.clone(), msg }
    };
    if let Err(wait) = stores.tries.may_try(&device_id, now) {
        return Err(refused(CodeRefusal::TooManyTries, wait, "too_many_tries"));
    }
    let (codes, place, visit) = (stores.codes.clone(), clinic.clone(), visit_id.clone());
    let checked = tokio::task::spawn_blocking(move || {
        codes.take_up(&code, &place, &visit, store::unix_now())
    });
    match checked.await {
        Ok(Ok(Ok(taken))) => {
            stores.tries.right(&device_id);
            let detail = format!("clinic {clinic}; waits for {}", taken.clinician);
            let object = format!("{object} code {}", taken.id);
            let entry = Entry::new(&actor, audit::VISIT_CODE_REDEEMED, &object, &device_id);
            notes.record(entry.detail(&detail), now);
            let (code_id, clinician) = (taken.id, taken.clinician);
            Ok(Input::CodeWaiting {
                device_id,
                visit_id,
                clinic,
                room,
                language,
                code_id,
                clinician,
            })
        }
        Ok(Ok(Err(reason))) => {
            let wait = stores.tries.wrong(&device_id, now);
            let class = refusal_class(reason);
            match wait {
                0 => Err(refused(reason, 0, class)),
                wait => Err(refused(CodeRefusal::TooManyTries, wait, class)),
            }
        }
        Ok(Err(e)) => {
            tracing::error!(device = %device_id, "cannot check a visit code: {e}");
            Err(refused(CodeRefusal::Unknown, 0, "store_error"))
        }
        Err(e) => {
            tracing::error!(device = %device_id, "cannot check a visit code: {e}");
            Err(refused(CodeRefusal::Unknown, 0, "store_error"))
        }
    }
}

/// A refusal's name in the audit trail (as on the wire).
fn refusal_class(reason: CodeRefusal) -> &'static str {
    match reason {
        CodeRefusal::Unknown => "unknown",
        CodeRefusal::Expired => "expired",
        CodeRefusal::Used => "used",
        CodeRefusal::OtherClinic => "other_clinic",
        CodeRefusal::TooManyTries => "too_many_tries",
    }
}
