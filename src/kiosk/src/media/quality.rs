//! Network quality of a call from webrtcbin's `get-stats`: round-trip time and packet loss as
//! the clinician's side reports them back in RTCP (the `remote-inbound-rtp` entries). No
//! addresses or candidates are read, so the figures are PHI-free and fit device telemetry.
//!
//! Owns: asking for the stats and reducing them to [`NetworkQuality`]. Must never: block a
//! streaming thread (the reply is awaited on the caller's thread, with a deadline).

use std::sync::mpsc;
use std::time::Duration;

use gst::prelude::*;
use telekiosk_protocol::device::NetworkQuality;

/// A cheap, cloneable handle for reading a call's network quality from another thread.
#[derive(Debug, Clone)]
pub struct QualityProbe {
    pub(crate) webrtc: gst::Element,
}

impl QualityProbe {
    /// The worst RTT and loss over the call's streams, or `None` when no RTCP report has come
    /// back yet (or webrtcbin did not answer within `timeout`). Blocks up to `timeout`.
    pub fn read(&self, timeout: Duration) -> Option<NetworkQuality> {
        let (tx, rx) = mpsc::sync_channel(1);
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
        });
        self.webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
        match rx.recv_timeout(timeout) {
            Ok(Some(stats)) => reduce(&stats),
            _ => {
                promise.interrupt();
                None
            }
        }
    }
}

/// Worst round-trip time and loss over every `remote-inbound-rtp` entry.
fn reduce(stats: &gst::StructureRef) -> Option<NetworkQuality> {
    let mut worst: Option<NetworkQuality> = None;
    for (_, value) in stats.iter() {
        let Ok(entry) = value.get::<gst::Structure>() else { continue };
        let is_remote_inbound = entry.name() == "remote-inbound-rtp"
            || entry
                .get::<gst_webrtc::WebRTCStatsType>("type")
                .is_ok_and(|t| t == gst_webrtc::WebRTCStatsType::RemoteInboundRtp);
        let Ok(rtt) = entry.get::<f64>("round-trip-time") else { continue };
        if !is_remote_inbound || !rtt.is_finite() || rtt < 0.0 {
            continue;
        }
        let loss = entry.get::<f64>("fraction-lost").unwrap_or(0.0).clamp(0.0, 1.0);
        let q = NetworkQuality {
            rtt_ms: (rtt * 1000.0).round() as u32,
            loss_permille: (loss * 1000.0).round() as u32,
        };
        worst = Some(match worst {
            Some(w) => NetworkQuality {
                rtt_ms: w.rtt_ms.max(q.rtt_ms),
                loss_permille: w.loss_permille.max(q.loss_permille),
            },
            None => q,
        });
    }
    worst
}
