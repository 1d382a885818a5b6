//! Calls for help: a patient pressed "Get help from staff" on a kiosk. The router keeps each
//! open call ([`Alert`]) until a staff member answers it ("I'm on my way") or
//! [`HELP_EXPIRES`] passes, and every console of the kiosk's clinic's staff sees the open
//! calls ([`sees_help`]). Part of the pure router ([`super::Router`]): no I/O, no clock.
//! Carries no patient data: the kiosk's id and place, and when.

use telekiosk_protocol::console::HelpAlert;

use super::*;

/// An unanswered call for help is dropped after this long.
pub const HELP_EXPIRES: Duration = Duration::from_secs(30 * 60);

/// Shown to a console that answers a call for help no longer open.
pub const HELP_GONE: &str = "That call for help was already answered or is over.";

/// One open call for help (one per kiosk).
#[derive(Debug)]
pub(super) struct Alert {
    visit_id: String,
    device_id: String,
    clinic: String,
    room: String,
    since: Instant,
}

/// Whether a console of `scope` sees the calls for help of `clinic`: the staff of that clinic
/// (clinicians and technicians it is assigned to), not the fleet-wide roles.
pub(super) fn sees_help(scope: &Scope, clinic: &str) -> bool {
    !scope.role.fleet_wide() && scope.reaches(clinic)
}

impl Router {
    /// Kiosk `device_id` asks for help; `place` is its registry place, else its visit's.
    pub(super) fn help(
        &mut self,
        device_id: String,
        visit_id: String,
        place: Option<(String, String)>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let of_visit = || {
            let v = self.visits.iter().find(|v| v.device_id == device_id)?;
            Some((v.clinic.clone(), v.room.clone()))
        };
        let Some((clinic, room)) = place.or_else(of_visit) else {
            let what = "call for help from a kiosk of no known place: dropped";
            out.push(note(NoteLevel::Warn, what).device(&device_id).visit_id(&visit_id).into());
            return;
        };
        let what = format!("kiosk asked for staff help ({clinic} / {room})");
        let asked = note(NoteLevel::Audit, what).device(&device_id).visit_id(&visit_id);
        match self.alerts.iter_mut().find(|a| a.device_id == device_id) {
            // Asked again: still one call, as old as the first, recorded once (a kiosk that
            // keeps pressing cannot flood the audit trail).
            Some(a) => {
                out.push(Note { level: NoteLevel::Debug, ..asked }.into());
                (a.visit_id, a.clinic, a.room) = (visit_id, clinic, room);
            }
            None => {
                out.push(asked.into());
                self.alerts.push(Alert { visit_id, device_id, clinic, room, since: now });
            }
        }
    }

    /// A staff member's console answers the call for help named `visit_id`.
    pub(super) fn answer_help(
        &mut self,
        conn: ConnId,
        user: &str,
        visit_id: String,
        out: &mut Vec<Output>,
    ) {
        let scope = self.scope(conn);
        let open = self.alerts.iter().position(|a| a.visit_id == visit_id);
        let Some(i) = open.filter(|&i| sees_help(&scope, &self.alerts[i].clinic)) else {
            let what = "answer to a call for help that is not open to this console: refused";
            out.push(note(NoteLevel::Warn, what).user(user).visit_id(&visit_id).into());
            out.push(error_to(conn, HELP_GONE));
            return;
        };
        let a = self.alerts.remove(i);
        let what = format!("staff answered a call for help ({} / {})", a.clinic, a.room);
        out.push(
            note(NoteLevel::Audit, what)
                .user(user)
                .visit_id(&a.visit_id)
                .device(&a.device_id)
                .into(),
        );
        let msg = ServerToKiosk::HelpComing { visit_id: a.visit_id };
        out.push(Output::ToKiosk { device_id: a.device_id, msg });
    }

    /// Drops the calls for help open longer than [`HELP_EXPIRES`].
    pub(super) fn expire_help(&mut self, now: Instant, out: &mut Vec<Output>) {
        let (open, over): (Vec<_>, Vec<_>) = std::mem::take(&mut self.alerts)
            .into_iter()
            .partition(|a| now.saturating_duration_since(a.since) < HELP_EXPIRES);
        self.alerts = open;
        for a in over {
            let what = "call for help unanswered for 30 minutes: dropped";
            out.push(
                note(NoteLevel::Audit, what).device(&a.device_id).visit_id(&a.visit_id).into(),
            );
        }
    }

    /// The calls for help a console of `scope` sees, to detect when they changed.
    pub(super) fn help_shape(&self, scope: &Scope) -> Vec<(String, String)> {
        let seen = self.alerts.iter().filter(|a| sees_help(scope, &a.clinic));
        seen.map(|a| (a.visit_id.clone(), format!("{}\n{}", a.clinic, a.room))).collect()
    }

    /// The open calls for help a console of `scope` sees, oldest first.
    pub(super) fn help_for(&self, scope: &Scope, now: Instant) -> ServerToConsole {
        let seen = self.alerts.iter().filter(|a| sees_help(scope, &a.clinic));
        let alerts = seen.map(|a| HelpAlert {
            visit_id: a.visit_id.clone(),
            device_id: a.device_id.clone(),
            clinic: a.clinic.clone(),
            room: a.room.clone(),
            waiting_secs: now.saturating_duration_since(a.since).as_secs(),
        });
        ServerToConsole::Help { alerts: alerts.collect() }
    }
}
