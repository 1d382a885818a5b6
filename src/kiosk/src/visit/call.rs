//! What a visit's state says about its call, as plain functions the state machine uses: which
//! visit is in progress and whose signalling is live, the candidates held until the offer goes
//! out, a call whose media was lost, and when and how its pipeline is rebuilt.

use telekiosk_protocol::e2ee::KioskKey;
use telekiosk_protocol::visit::{Ice, KioskToServer};

use super::{Effect, REBUILD_EVERY_MS, State};

/// The visit in progress, if any.
pub(super) fn current(state: &State) -> Option<&str> {
    match state {
        State::Waiting { visit_id, .. }
        | State::Connecting { visit_id, .. }
        | State::InCall { visit_id, .. }
        | State::Reconnecting { visit_id, .. } => Some(visit_id),
        _ => None,
    }
}

/// The visit whose signalling is live (offer sent), if any.
pub(super) fn sending(state: &State) -> Option<&str> {
    match state {
        State::Connecting { visit_id, unsent: None, .. }
        | State::InCall { visit_id, .. }
        | State::Reconnecting { visit_id, unsent: None, .. } => Some(visit_id),
        _ => None,
    }
}

/// The candidates held until the offer goes out, if the state holds any.
pub(super) fn unsent(state: &mut State) -> Option<&mut Vec<Ice>> {
    match state {
        State::Connecting { unsent, .. } | State::Reconnecting { unsent, .. } => unsent.as_mut(),
        _ => None,
    }
}

pub(super) fn holds_ice(state: &State) -> bool {
    matches!(
        state,
        State::Connecting { unsent: Some(_), .. } | State::Reconnecting { unsent: Some(_), .. }
    )
}

/// A call whose media stopped at `now_ms`: reconnecting, nothing rebuilt yet.
pub(super) fn lost(state: State, now_ms: u64) -> State {
    let State::InCall { visit_id, since_ms, mic_muted, camera_off, clinician } = state else {
        return state;
    };
    State::Reconnecting {
        visit_id,
        since_ms,
        mic_muted,
        camera_off,
        clinician,
        lost_ms: now_ms,
        rebuilt_ms: None,
        unsent: None,
    }
}

/// Whether a reconnecting call is due a new pipeline: media lost [`REBUILD_EVERY_MS`] ago
/// (at once if the pipeline `failed`), or the last rebuild that long ago without media.
pub(super) fn rebuild_due(state: &State, now_ms: u64, failed: bool) -> bool {
    match state {
        State::Reconnecting { rebuilt_ms: Some(at), .. } => {
            now_ms.saturating_sub(*at) >= REBUILD_EVERY_MS
        }
        State::Reconnecting { lost_ms, .. } => {
            failed || now_ms.saturating_sub(*lost_ms) >= REBUILD_EVERY_MS
        }
        _ => false,
    }
}

/// A new media pipeline for a reconnecting call: its offer goes out when made, with its
/// candidates; the patient's mute and camera choices are set on it again.
pub(super) fn rebuild(mut state: State, now_ms: u64) -> (State, Vec<Effect>) {
    let State::Reconnecting { visit_id, mic_muted, camera_off, rebuilt_ms, unsent, .. } =
        &mut state
    else {
        return (state, vec![]);
    };
    (*rebuilt_ms, *unsent) = (Some(now_ms), Some(vec![]));
    let effects = vec![
        Effect::RebuildMedia { visit_id: visit_id.clone() },
        Effect::SetMicMuted(*mic_muted),
        Effect::SetCameraEnabled(!*camera_off),
    ];
    (state, effects)
}

/// The offer (with its signed key) followed by every candidate found so far.
pub(super) fn offer_and_ice(
    visit_id: &str,
    sdp: String,
    key: KioskKey,
    ice: Vec<Ice>,
) -> Vec<Effect> {
    let offer = KioskToServer::Offer { visit_id: visit_id.to_string(), sdp, e2ee: key };
    std::iter::once(offer)
        .chain(
            ice.into_iter().map(|ice| KioskToServer::Ice { visit_id: visit_id.to_string(), ice }),
        )
        .map(Effect::Send)
        .collect()
}
