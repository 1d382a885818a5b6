//! The negotiation on webrtcbin's side: the offer (the kiosk always offers), the clinician's answer,
//! ICE candidates both ways and the connection state. Only SDP text and candidates leave here;
//! carrying them is the visit/fleet code's job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::{WebRTCICEConnectionState as IceState, WebRTCPeerConnectionState as PcState};

use super::answer::{self, Shaped};
use super::{Ice, MediaError, MediaEvent, Shared};

/// The m-line the kiosk's offer bundles every stream on.
const BUNDLE_MLINE: u32 = 0;

/// How long webrtcbin may take to accept or refuse a remote description.
const DESCRIPTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Local candidates found before the offer went out wait here, so the shell always sees
/// `LocalOffer` before any `LocalIce`.
#[derive(Default)]
struct OfferGate {
    offer_sent: bool,
    pending: Vec<Ice>,
}

/// Connects the offer, ICE and state handlers. The closures hold no strong reference to the
/// webrtcbin (they get it from the signal), so the pipeline can be freed.
pub(crate) fn connect(webrtc: &gst::Element, shared: &Arc<Shared>) {
    let gate = Arc::new(Mutex::new(OfferGate::default()));
    let offered = AtomicBool::new(false);
    let (sh, g) = (Arc::clone(shared), Arc::clone(&gate));
    webrtc.connect("on-negotiation-needed", false, move |values| {
        // One offer per call; the kiosk never renegotiates (same tracks for the whole visit).
        if offered.swap(true, Ordering::SeqCst) {
            tracing::debug!("negotiation needed again; renegotiation is not supported");
        } else if let Some(Ok(webrtc)) = values.first().map(|v| v.get::<gst::Element>()) {
            create_offer(&webrtc, Arc::clone(&sh), Arc::clone(&g));
        }
        None
    });

    let (sh, g) = (Arc::clone(shared), gate);
    webrtc.connect("on-ice-candidate", false, move |values| {
        let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
        let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
        if let (Some(mline), Some(candidate)) = (mline, candidate) {
            let ice = Ice { mline, candidate };
            let mut gate = g.lock().unwrap_or_else(|e| e.into_inner());
            if gate.offer_sent {
                sh.send(MediaEvent::LocalIce(ice));
            } else {
                gate.pending.push(ice);
            }
        }
        None
    });

    let sh = Arc::clone(shared);
    webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
        let state = webrtc.property::<PcState>("connection-state");
        tracing::debug!(?state, "webrtcbin connection state");
        match state {
            PcState::Connected => sh.connected(),
            PcState::Failed => sh.fail("the WebRTC connection failed (webrtcbin)".into()),
            _ => {}
        }
    });

    let sh = Arc::clone(shared);
    webrtc.connect_notify(Some("ice-connection-state"), move |webrtc, _| {
        let state = webrtc.property::<IceState>("ice-connection-state");
        tracing::debug!(?state, "webrtcbin ICE connection state");
        match state {
            // `Connected` waits for the connection state, which also covers the DTLS handshake
            // (measured ≈ 5 ms later on loopback): only then can media flow.
            IceState::Failed => sh.fail(
                "no network path to the clinician: ICE failed (webrtcbin); check the network \
                 and STUN/TURN settings"
                    .into(),
            ),
            IceState::Disconnected => tracing::warn!("ICE disconnected; it may recover"),
            _ => {}
        }
    });
}

/// Creates the offer, sets it as local description, then sends it and any waiting candidates.
/// The first offer of a webrtcbin generates its DTLS certificate (140–250 ms on 2 cores).
fn create_offer(webrtc: &gst::Element, shared: Arc<Shared>, gate: Arc<Mutex<OfferGate>>) {
    let started = Instant::now();
    let weak = webrtc.downgrade();
    let promise = gst::Promise::with_change_func(move |reply| {
        let offer = match reply {
            Ok(Some(reply)) => {
                reply.get::<gst_webrtc::WebRTCSessionDescription>("offer").map_err(|_| {
                    reply
                        .get::<gst::glib::Error>("error")
                        .map_or(reply.to_string(), |e| e.to_string())
                })
            }
            Ok(None) => Err("empty reply".to_string()),
            Err(e) => Err(format!("{e:?}")),
        };
        let offer = match offer {
            Ok(offer) => offer,
            Err(message) => {
                return shared.fail(format!("webrtcbin could not create the offer: {message}"));
            }
        };
        let Some(webrtc) = weak.upgrade() else { return };
        let sdp = match offer.sdp().as_text() {
            Ok(sdp) => sdp,
            Err(e) => return shared.fail(format!("webrtcbin made an unprintable offer: {e}")),
        };
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "offer created");
        // The offer goes out only once webrtcbin holds it as its local description: an answer
        // arriving earlier would find no offer to match (seen in a slow VM, where setting it
        // took longer than the clinician's browser took to answer).
        let (shared, gate) = (Arc::clone(&shared), Arc::clone(&gate));
        let set = gst::Promise::with_change_func(move |reply| {
            if let Ok(Some(reply)) = reply
                && let Ok(e) = reply.get::<gst::glib::Error>("error")
            {
                return shared.fail(format!("webrtcbin refused its own offer: {e}"));
            }
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "offer set");
            let mut gate = gate.lock().unwrap_or_else(|e| e.into_inner());
            shared.send(MediaEvent::LocalOffer { sdp });
            gate.offer_sent = true;
            for ice in gate.pending.drain(..) {
                shared.send(MediaEvent::LocalIce(ice));
            }
        });
        webrtc.emit_by_name::<()>("set-local-description", &[&offer, &set]);
    });
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
}

/// Sets the clinician's answer, reshaped for webrtcbin (see [`super::answer`]); waits (bounded)
/// for webrtcbin to accept or refuse it. Returns what the answer chose.
pub(crate) fn set_remote_answer(webrtc: &gst::Element, sdp: &str) -> Result<Shaped, MediaError> {
    let refused = |message: String| MediaError::Answer { message };
    let offer = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .and_then(|offer| offer.sdp().as_text().ok())
        .ok_or_else(|| refused("it came before the offer was made".into()))?;
    let shaped = answer::shape_answer(&offer, sdp).map_err(refused)?;
    tracing::debug!(answer = %shaped.sdp, "the clinician's answer as given to webrtcbin");
    if !shaped.rejected.is_empty() {
        tracing::warn!(rejected = ?shaped.rejected, "the clinician's browser rejected media");
    }
    let message = gst_sdp::SDPMessage::parse_buffer(shaped.sdp.as_bytes())
        .map_err(|_| refused("the text is not SDP".into()))?;
    let answer =
        gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, message);
    let (tx, rx) = mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let result = match reply {
            Ok(None) => Ok(()),
            Ok(Some(reply)) => match reply.get::<gst::glib::Error>("error") {
                Ok(e) => Err(e.to_string()),
                Err(_) => Ok(()),
            },
            Err(e) => Err(format!("{e:?}")),
        };
        let _ = tx.send(result);
    });
    webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
    match rx.recv_timeout(DESCRIPTION_TIMEOUT) {
        Ok(result) => result.map(|()| shaped).map_err(refused),
        Err(_) => {
            promise.interrupt();
            Err(refused(format!("no reply within {} s", DESCRIPTION_TIMEOUT.as_secs())))
        }
    }
}

/// Adds one remote candidate; mDNS and end-of-candidates are skipped (see [`super::Call`]).
pub(crate) fn add_remote_ice(webrtc: &gst::Element, ice: &Ice) -> Result<(), MediaError> {
    if ice.candidate.is_empty() {
        tracing::debug!(mline = ice.mline, "remote end of candidates");
        return Ok(());
    }
    if !ice.candidate.starts_with("candidate:") {
        let message = "does not start with 'candidate:'".into();
        return Err(MediaError::Candidate { mline: ice.mline, message });
    }
    if is_mdns(&ice.candidate) {
        // Browsers hide host addresses behind random `.local` names; libnice cannot resolve
        // them. The clinician's server-reflexive or relay candidates still work.
        tracing::debug!(mline = ice.mline, "skipping mDNS candidate");
        return Ok(());
    }
    // One transport for every m-line (max-bundle), which webrtcbin files under the offer's
    // first m-line; a browser may name any m-line it kept, and webrtcbin would drop candidates
    // naming another.
    webrtc.emit_by_name::<()>("add-ice-candidate", &[&BUNDLE_MLINE, &ice.candidate]);
    Ok(())
}

/// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ …`
fn is_mdns(candidate: &str) -> bool {
    candidate.split_whitespace().nth(4).is_some_and(|address| address.ends_with(".local"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_candidates_are_recognised_by_their_address() {
        let mdns = "candidate:1 1 udp 2122260223 4b7a1f0e-2c.local 54321 typ host generation 0";
        let ipv4 = "candidate:1 1 UDP 2015363327 192.168.1.20 40321 typ host";
        let ipv6 = "candidate:2 1 UDP 2015363071 fe80::1 40322 typ host";
        assert!(is_mdns(mdns));
        assert!(!is_mdns(ipv4) && !is_mdns(ipv6));
    }
}
