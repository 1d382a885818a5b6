//! What kiosks say to the router: a visit waiting (with the place the registry gives, and a
//! checked visit code or none), a kiosk back in a visit after a reconnect or a fleetd restart,
//! its offer, candidates and end relayed to the console that owns the visit, a message that was
//! refused, and presence (online, offline). Part of the pure router ([`super::Router`]).

use super::*;

impl Router {
    pub(super) fn on_kiosk(
        &mut self,
        device_id: String,
        msg: KioskToServer,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let current = self.visits.iter().position(|v| v.device_id == device_id);
        let current = current.filter(|&i| self.visits[i].visit_id == msg.visit_id());
        match msg {
            KioskToServer::Waiting { visit_id, visit_code: Some(_), .. } => {
                // Codes are checked by the hub, which never passes one on unchecked.
                let what = "kiosk sent a visit code that was not checked: refused";
                out.push(note(NoteLevel::Warn, what).device(&device_id).visit_id(&visit_id).into());
                let reason = telekiosk_protocol::visit::CodeRefusal::Unknown;
                let msg = ServerToKiosk::CodeRefused { visit_id, reason, retry_after_secs: 0 };
                out.push(Output::ToKiosk { device_id, msg });
            }
            KioskToServer::Waiting { visit_id, clinic, room, language, visit_code: None } => {
                let mut v = Visit::new(visit_id, device_id, clinic, room, now);
                v.language = language;
                self.waiting(v, out)
            }
            KioskToServer::InVisit { visit_id, clinic, room, clinician } => {
                let v = Visit::new(visit_id, device_id, clinic, room, now);
                self.in_visit(current, v, clinician, now, out)
            }
            KioskToServer::Help { visit_id } => self.help(device_id, visit_id, None, now, out),
            _ if current.is_none() => {
                let n =
                    note(NoteLevel::Warn, "kiosk message for a visit it does not have: ignored");
                out.push(n.device(&device_id).visit_id(msg.visit_id()).into());
            }
            KioskToServer::Offer { visit_id, sdp, e2ee } => {
                let what = format!("offer relayed to console ({} bytes)", sdp.len());
                // The hub adds the device's enrolled key (it reads the registry; we do not).
                let msg = ServerToConsole::Offer { visit_id, sdp, e2ee, device_key: String::new() };
                self.to_owner(current, msg, what, out);
            }
            KioskToServer::KeyConfirm { visit_id, confirm } => {
                let what = "kiosk's key confirmation relayed to console".to_string();
                self.to_owner(
                    current,
                    ServerToConsole::KeyConfirm { visit_id, confirm },
                    what,
                    out,
                );
            }
            KioskToServer::Ice { visit_id, ice } => {
                let v = &mut self.visits[current.expect("checked above")];
                if let (false, warn) = v.count_ice(IceFrom::Kiosk) {
                    if warn {
                        let what = format!(
                            "kiosk sent more than {MAX_ICE_PER_VISIT} candidates for one visit: \
                             the rest are dropped"
                        );
                        out.push(note(NoteLevel::Warn, what).visit(v).into());
                    }
                    return;
                }
                let what = "kiosk candidate relayed to console".to_string();
                self.to_owner(current, ServerToConsole::Ice { visit_id, ice }, what, out);
            }
            KioskToServer::End { reason, .. } => {
                let i = current.expect("checked above");
                let what = match reason {
                    EndReason::SecurityCheckFailed => "kiosk refused the visit: end-to-end \
                                                       security check failed (key confirmation)"
                        .to_string(),
                    _ => format!("kiosk ended the visit ({reason:?})"),
                };
                out.push(note(NoteLevel::Audit, what).visit(&self.visits[i]).into());
                self.end(i, None, Some(reason), out);
            }
        }
    }

    /// The kiosk says it is in a visit: its fleet link came back, or fleetd restarted and
    /// learns of the call from it. A console that asked to resume it gets it.
    pub(super) fn in_visit(
        &mut self,
        current: Option<usize>,
        mut new: Visit,
        clinician: String,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let i = match current {
            Some(i) if self.visits[i].clinician.as_deref() == Some(clinician.as_str()) => {
                self.visits[i].kiosk_away = None;
                i
            }
            Some(i) => {
                let what = "kiosk named another clinician for its visit: refused";
                out.push(note(NoteLevel::Warn, what).visit(&self.visits[i]).into());
                return;
            }
            None => {
                if self.visits.iter().any(|v| v.visit_id == new.visit_id) {
                    let what = "visit id already used by another kiosk: refused";
                    out.push(note(NoteLevel::Warn, what).visit(&new).into());
                    return;
                }
                // A visit of this kiosk fleetd still had is over: the kiosk is in another now.
                if let Some(old) = self.visits.iter().position(|v| v.device_id == new.device_id) {
                    self.end(old, None, Some(EndReason::ConnectionLost), out);
                }
                (new.clinician, new.console_away) = (Some(clinician), Some(now));
                out.push(
                    note(NoteLevel::Audit, "kiosk is in a visit: taken up again")
                        .visit(&new)
                        .into(),
                );
                self.visits.push(new);
                self.visits.len() - 1
            }
        };
        let claimed = self.claims.iter().position(|c| {
            c.visit_id == self.visits[i].visit_id
                && self.visits[i].clinician.as_deref() == Some(self.user(c.conn).as_str())
        });
        if let Some(c) = claimed {
            let claim = self.claims.remove(c);
            self.resume(claim.conn, i, out);
        }
    }

    pub(super) fn waiting(&mut self, new: Visit, out: &mut Vec<Output>) {
        if self.visits.iter().any(|v| v.visit_id == new.visit_id && v.device_id != new.device_id) {
            let what = "visit id already used by another kiosk: refused";
            out.push(note(NoteLevel::Warn, what).visit(&new).into());
            out.extend(release_code(&new));
            let msg =
                ServerToKiosk::End { visit_id: new.visit_id, reason: EndReason::ProtocolError };
            out.push(Output::ToKiosk { device_id: new.device_id, msg });
            return;
        }
        if let Some(i) = self.visits.iter().position(|v| v.device_id == new.device_id) {
            if self.visits[i].clinician.is_some() {
                // The kiosk is waiting again, so the call its clinician was in is gone.
                let what = "kiosk is waiting again: the call in progress ended";
                out.push(note(NoteLevel::Warn, what).visit(&self.visits[i]).into());
                self.end_for_console(i, EndReason::ConnectionLost, out);
            }
            let old = &mut self.visits[i];
            if old.visit_id == new.visit_id {
                // A repeat (e.g. after a reconnect): the patient keeps their place in the queue.
                if old.code != new.code {
                    out.extend(release_code(old));
                }
                (old.clinic, old.room, old.language) = (new.clinic, new.room, new.language);
                (old.code, old.told_ahead) = (new.code, None);
                (old.owner, old.clinician, old.console_away, old.kiosk_away) =
                    (None, None, None, None);
                out.push(queued(old));
                return;
            }
            let what = "kiosk started a new visit: the older one was dropped";
            out.push(note(NoteLevel::Audit, what).visit(old).into());
            out.extend(release_code(old));
            self.visits.remove(i);
        }
        out.push(note(NoteLevel::Audit, "kiosk is waiting").visit(&new).into());
        out.push(queued(&new));
        self.visits.push(new);
    }

    pub(super) fn kiosk_refused(
        &mut self,
        device_id: &str,
        e: &DecodeError,
        out: &mut Vec<Output>,
    ) {
        let what = format!("refused kiosk message: {}", redact(e));
        out.push(note(NoteLevel::Warn, what).device(device_id).into());
        if let Some(i) = self.visits.iter().position(|v| v.device_id == device_id) {
            let what = "visit ended after a malformed kiosk message";
            out.push(note(NoteLevel::Audit, what).visit(&self.visits[i]).into());
            let reason = EndReason::ProtocolError;
            self.end(i, Some(reason), Some(reason), out);
        }
    }

    pub(super) fn presence(
        &mut self,
        device_id: &str,
        state: Result<DeviceState, DecodeError>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        match state {
            Err(e) => {
                let what = format!("refused kiosk state: {}", redact(&e));
                out.push(note(NoteLevel::Warn, what).device(device_id).into());
            }
            Ok(s) if s.presence == Presence::Online => {
                out.push(note(NoteLevel::Debug, "kiosk online").device(device_id).into());
            }
            Ok(_) => {
                out.push(note(NoteLevel::Audit, "kiosk offline").device(device_id).into());
                let Some(i) = self.visits.iter().position(|v| v.device_id == device_id) else {
                    return;
                };
                if self.visits[i].clinician.is_some() {
                    // In a call: its media may still flow peer to peer. Keep the visit for it.
                    let what = "kiosk offline during a call: visit kept for it to come back";
                    out.push(note(NoteLevel::Audit, what).visit(&self.visits[i]).into());
                    self.visits[i].kiosk_away.get_or_insert(now);
                } else {
                    let what = "visit ended: kiosk went offline";
                    out.push(note(NoteLevel::Audit, what).visit(&self.visits[i]).into());
                    self.end(i, None, Some(EndReason::ConnectionLost), out);
                }
            }
        }
    }
}
