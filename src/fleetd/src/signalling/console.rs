//! What consoles ask of the router: join a waiting visit (or, with a reason, one outside the
//! user's clinics; never another clinician's visit-code visit without one), claim it before the
//! kiosk confirms, resume it after a reconnect, relay answers, candidates and ends to the kiosk,
//! and answer calls for help ([`super::help`]). Part of the pure router ([`super::Router`]).

use super::*;

impl Router {
    pub(super) fn on_console(
        &mut self,
        conn: ConnId,
        msg: Result<ConsoleToServer, DecodeError>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let user = self.user(conn);
        let owned = self.visits.iter().position(|v| v.owner == Some(conn));
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                let what = format!("refused console message: {}", redact(&e));
                out.push(note(NoteLevel::Warn, what).user(&user).into());
                out.push(error_to(conn, &format!("Your last message was refused: {e}")));
                if let Some(i) = owned {
                    let what = "visit ended after a malformed console message";
                    out.push(
                        note(NoteLevel::Audit, what).user(&user).visit(&self.visits[i]).into(),
                    );
                    let reason = EndReason::ProtocolError;
                    self.end(i, Some(reason), Some(reason), out);
                }
                return;
            }
        };
        if let ConsoleToServer::Join { visit_id } = msg {
            return self.join(conn, &user, owned, visit_id, None, out);
        }
        if let ConsoleToServer::EmergencyJoin { visit_id, reason } = msg {
            return self.join(conn, &user, owned, visit_id, Some(reason), out);
        }
        if let ConsoleToServer::Resume { visit_id } = msg {
            return self.claim(conn, &user, visit_id, now, out);
        }
        if let ConsoleToServer::AnswerHelp { visit_id } = msg {
            return self.answer_help(conn, &user, visit_id, out);
        }
        let target = self.visits.iter().position(|v| v.visit_id == visit_id_of(&msg));
        if target.is_none() && matches!(msg, ConsoleToServer::Ice { .. }) {
            // The browser trickles candidates until it hears the visit ended: one sent just
            // before is late, not wrong, and an error would replace the end's reason on screen.
            let what = "late ICE candidate for a visit that has ended: dropped";
            out.push(note(NoteLevel::Debug, what).user(&user).visit_id(visit_id_of(&msg)).into());
            return;
        }
        let Some(i) = target.filter(|&i| self.visits[i].owner == Some(conn)) else {
            let what = "console acted on a visit it does not own: refused";
            out.push(note(NoteLevel::Warn, what).user(&user).visit_id(visit_id_of(&msg)).into());
            out.push(error_to(conn, NOT_YOUR_VISIT));
            return;
        };
        let device_id = self.visits[i].device_id.clone();
        let (level, what, msg) = match msg {
            ConsoleToServer::Answer { visit_id, sdp, e2ee } => {
                let what = format!("answer relayed to kiosk ({} bytes)", sdp.len());
                (NoteLevel::Audit, what, ServerToKiosk::Answer { visit_id, sdp, e2ee })
            }
            ConsoleToServer::SecurityRefused { check, .. } => {
                let what = format!(
                    "clinician's browser refused the visit: end-to-end security check failed \
                     ({})",
                    check_name(check)
                );
                out.push(note(NoteLevel::Audit, what).user(&user).visit(&self.visits[i]).into());
                let reason = EndReason::SecurityCheckFailed;
                return self.end(i, Some(reason), Some(reason), out);
            }
            ConsoleToServer::Ice { visit_id, ice } => {
                let v = &mut self.visits[i];
                if let (false, warn) = v.count_ice(IceFrom::Console) {
                    if warn {
                        let what = format!(
                            "console sent more than {MAX_ICE_PER_VISIT} candidates for one \
                             visit: the rest are dropped"
                        );
                        out.push(note(NoteLevel::Warn, what).user(&user).visit(v).into());
                    }
                    return;
                }
                let what = "console candidate relayed to kiosk".to_string();
                (NoteLevel::Debug, what, ServerToKiosk::Ice { visit_id, ice })
            }
            ConsoleToServer::End { .. } => {
                out.push(
                    note(NoteLevel::Audit, "clinician ended the visit")
                        .user(&user)
                        .visit(&self.visits[i])
                        .into(),
                );
                let reason = EndReason::ClinicianEnded;
                return self.end(i, Some(reason), Some(reason), out);
            }
            ConsoleToServer::Join { .. }
            | ConsoleToServer::EmergencyJoin { .. }
            | ConsoleToServer::Resume { .. }
            | ConsoleToServer::AnswerHelp { .. } => {
                unreachable!("handled above")
            }
        };
        out.push(note(level, what).user(&user).visit(&self.visits[i]).into());
        out.push(Output::ToKiosk { device_id, msg });
    }

    pub(super) fn join(
        &mut self,
        conn: ConnId,
        user: &str,
        owned: Option<usize>,
        visit_id: String,
        emergency: Option<String>,
        out: &mut Vec<Output>,
    ) {
        let scope = self.scope(conn);
        if !scope.may(Permission::JoinVisits) {
            let what =
                format!("join refused: the {} role does not join visits", scope.role.as_str());
            out.push(note(NoteLevel::Warn, what).user(user).visit_id(&visit_id).into());
            out.push(error_to(conn, MAY_NOT_JOIN));
            return;
        }
        let Some(i) = self.visits.iter().position(|v| v.visit_id == visit_id) else {
            out.push(
                note(NoteLevel::Warn, "join refused: no such visit")
                    .user(user)
                    .visit_id(&visit_id)
                    .into(),
            );
            out.push(error_to(conn, NO_LONGER_WAITING));
            return;
        };
        if self.visits[i].clinician.as_deref() == Some(user) && self.visits[i].owner.is_none() {
            // Their own visit, whose console went away (a reload, a new tab): resume.
            return self.resume(conn, i, out);
        }
        let outside = !scope.reaches(&self.visits[i].clinic);
        if outside && emergency.is_none() {
            let what = "join refused: a visit outside the clinician's clinics";
            out.push(note(NoteLevel::Warn, what).user(user).visit(&self.visits[i]).into());
            out.push(error_to(conn, NOT_YOUR_CLINIC));
            return;
        }
        // A visit-code visit waits for its clinician; another joins it only with emergency
        // access, noted as loudly as one outside their clinics.
        let v = &self.visits[i];
        let for_another =
            v.clinician.is_none() && v.code.as_ref().is_some_and(|c| c.clinician != user);
        if for_another && emergency.is_none() {
            let what = "join refused: the visit waits for the clinician whose visit code it has";
            out.push(note(NoteLevel::Warn, what).user(user).visit(v).into());
            out.push(error_to(conn, WAITS_FOR_ANOTHER));
            return;
        }
        let emergency = emergency.filter(|_| outside || for_another);
        let v = &mut self.visits[i];
        let taken = v.clinician.is_some() && v.owner != Some(conn);
        match (v.owner, owned) {
            _ if taken => {
                out.push(
                    note(NoteLevel::Audit, "join refused: already taken")
                        .user(user)
                        .visit(v)
                        .into(),
                );
                out.push(Output::ToConsole {
                    conn,
                    msg: ServerToConsole::AlreadyTaken { visit_id },
                });
            }
            (None, Some(_)) => {
                out.push(
                    note(NoteLevel::Warn, "join refused: already in a visit")
                        .user(user)
                        .visit(v)
                        .into(),
                );
                out.push(error_to(conn, ALREADY_IN_A_VISIT));
            }
            (owner, _) => {
                // `Joined` goes first so the console is ready for the offer `Accepted` triggers.
                let (clinic, room) = (v.clinic.clone(), v.room.clone());
                // The hub adds the ICE servers and this visit's TURN credentials on the way out.
                let ice = IceSettings::default();
                let joined =
                    ServerToConsole::Joined { visit_id: visit_id.clone(), clinic, room, ice };
                out.push(Output::ToConsole { conn, msg: joined });
                if owner.is_none() {
                    (v.owner, v.clinician) = (Some(conn), Some(user.to_string()));
                    match &emergency {
                        Some(reason) => out.push(emergency_note(user, v, reason).into()),
                        None => out.push(
                            note(NoteLevel::Audit, "clinician joined").user(user).visit(v).into(),
                        ),
                    }
                    let msg = ServerToKiosk::Accepted { visit_id, clinician: user.to_string() };
                    out.push(Output::ToKiosk { device_id: v.device_id.clone(), msg });
                }
            }
        }
    }

    /// A console asks for its visit back. Fleetd may not know the visit yet (it restarted and
    /// the kiosk has not said it is in it): the claim waits for the kiosk.
    pub(super) fn claim(
        &mut self,
        conn: ConnId,
        user: &str,
        visit_id: String,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(i) = self.visits.iter().position(|v| v.visit_id == visit_id) else {
            let what = "console asked to resume a visit not known yet: waiting for the kiosk";
            out.push(note(NoteLevel::Audit, what).user(user).visit_id(&visit_id).into());
            self.claims.retain(|c| c.conn != conn);
            self.claims.push(Claim { conn, visit_id, since: now });
            return;
        };
        if self.visits[i].clinician.as_deref() != Some(user) {
            let what = "resume refused: another clinician's visit";
            out.push(note(NoteLevel::Warn, what).user(user).visit(&self.visits[i]).into());
            out.push(error_to(conn, NOT_YOUR_VISIT));
            return;
        }
        self.resume(conn, i, out);
    }

    /// Gives visit `i` to console `conn` (its clinician's): it is theirs again.
    pub(super) fn resume(&mut self, conn: ConnId, i: usize, out: &mut Vec<Output>) {
        let user = self.user(conn);
        let v = &mut self.visits[i];
        if let Some(old) = v.owner.filter(|&o| o != conn) {
            // The same clinician in a newer tab or connection: the older one lets go.
            let msg = ServerToConsole::Ended {
                visit_id: v.visit_id.clone(),
                reason: EndReason::ClinicianLeft,
            };
            out.push(Output::ToConsole { conn: old, msg });
        }
        (v.owner, v.console_away) = (Some(conn), None);
        out.push(note(NoteLevel::Audit, "clinician resumed the visit").user(&user).visit(v).into());
        let msg = ServerToConsole::Resumed {
            visit_id: v.visit_id.clone(),
            clinic: v.clinic.clone(),
            room: v.room.clone(),
        };
        out.push(Output::ToConsole { conn, msg });
    }
}
