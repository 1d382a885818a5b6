//! End-to-end frame protection inside a pipeline: every encoded frame is sealed with AES-256-GCM
//! (`telekiosk-e2ee`) between the encoder (or parser) and its payloader, and opened between the
//! depayloader and the decoder, so what DTLS-SRTP carries is ciphertext even to whoever relays
//! or terminates the transport.
//!
//! [`attach`] finds the payloaders and depayloaders of a pipeline by factory name, now and as
//! they are added (decodebin adds the depayloaders when the clinician's streams arrive), and puts
//! a buffer probe on each. Until [`Protection::set_keys`] installs the visit's keys, every frame
//! is dropped both ways: nothing ever leaves in the clear. A frame that fails authentication is
//! dropped and counted, and the depayloader is asked for a keyframe (at most once a second).
//!
//! A probe that drops a frame returns `Handled`, not `Drop`: gstreamer-rs hands the probe the
//! buffer's reference, so the buffer is consumed here (with `Drop` GStreamer 1.22 then unrefs a
//! NULL buffer and logs a critical warning for every frame).
//!
//! The same code protects the test clinicians' pipelines (with the directions swapped), so the
//! tests exercise exactly what the kiosk runs. It must never pass a frame it could not seal or
//! open, and never log key material.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use telekiosk_e2ee::{Codec, Receiver, Sender};

/// The keys of one direction pair: ours to send with, the peer's to open with.
#[derive(Clone)]
pub struct FrameKeys {
    pub send_key: [u8; 32],
    pub send_kid: u64,
    pub receive_key: [u8; 32],
    pub receive_kid: u64,
}

impl std::fmt::Debug for FrameKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FrameKeys {{ send_kid: {}, receive_kid: {}, <redacted> }}",
            self.send_kid, self.receive_kid
        )
    }
}

/// What the probes did so far (PHI-free counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtectionStats {
    /// Frames sealed and sent.
    pub sealed: u64,
    /// Frames opened and passed to a decoder.
    pub opened: u64,
    /// Frames that failed authentication (wrong key, altered, or sent in the clear).
    pub auth_failures: u64,
    /// Frames dropped because no keys were installed yet.
    pub dropped_without_keys: u64,
}

struct Active {
    sender: Sender,
    receive_key: [u8; 32],
    receive_kid: u64,
    /// Bumped on each rekey, so each receiving probe rebuilds its own replay window.
    epoch: u64,
}

/// One call's frame protection, shared by its probes.
#[derive(Default)]
pub struct Protection {
    active: Mutex<Option<Active>>,
    sealed: AtomicU64,
    opened: AtomicU64,
    auth_failures: AtomicU64,
    dropped_without_keys: AtomicU64,
}

impl Protection {
    pub fn new() -> Arc<Protection> {
        Arc::new(Protection::default())
    }

    /// Installs (or, on a rekey, replaces) the keys. Frames flow from now on.
    pub fn set_keys(&self, keys: &FrameKeys) -> Result<(), telekiosk_e2ee::Error> {
        let sender = Sender::new(&keys.send_key, keys.send_kid)?;
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = active.as_ref().map_or(1, |a| a.epoch + 1);
        *active = Some(Active {
            sender,
            receive_key: keys.receive_key,
            receive_kid: keys.receive_kid,
            epoch,
        });
        Ok(())
    }

    pub fn stats(&self) -> ProtectionStats {
        ProtectionStats {
            sealed: self.sealed.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            dropped_without_keys: self.dropped_without_keys.load(Ordering::Relaxed),
        }
    }

    fn seal(&self, codec: Codec, frame: &[u8]) -> Option<Vec<u8>> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(active) = active.as_mut() else {
            self.dropped_without_keys.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match active.sender.protect(codec, frame) {
            Ok(sealed) => {
                self.sealed.fetch_add(1, Ordering::Relaxed);
                Some(sealed)
            }
            Err(e) => {
                tracing::warn!(error = %e, "a media frame could not be sealed: dropped");
                None
            }
        }
    }
}

/// A receiving probe's own replay window, rebuilt when the keys change.
struct Opener {
    protection: Arc<Protection>,
    codec: Codec,
    receiver: Option<(u64, Receiver)>,
    last_keyframe_ask: Option<Instant>,
}

enum Opened {
    Frame(Vec<u8>),
    NoKeys,
    Failed,
}

impl Opener {
    fn open(&mut self, frame: &[u8]) -> Opened {
        let guard = self.protection.active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(active) = guard.as_ref() else {
            self.protection.dropped_without_keys.fetch_add(1, Ordering::Relaxed);
            return Opened::NoKeys;
        };
        if self.receiver.as_ref().is_none_or(|(epoch, _)| *epoch != active.epoch) {
            let mut receiver = Receiver::new();
            if receiver.set_key(&active.receive_key, active.receive_kid).is_err() {
                return Opened::Failed;
            }
            self.receiver = Some((active.epoch, receiver));
        }
        drop(guard);
        let (_, receiver) = self.receiver.as_mut().expect("set above");
        match receiver.unprotect(self.codec, frame) {
            Ok(plain) => {
                self.protection.opened.fetch_add(1, Ordering::Relaxed);
                Opened::Frame(plain)
            }
            Err(e) => {
                let n = self.protection.auth_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_power_of_two() {
                    tracing::warn!(error = %e, failures = n, "a media frame failed authentication: dropped");
                }
                Opened::Failed
            }
        }
    }

    /// Whether to ask for a keyframe now (at most once a second).
    fn keyframe_due(&mut self) -> bool {
        let due = self.last_keyframe_ask.is_none_or(|t| t.elapsed().as_secs() >= 1);
        if due {
            self.last_keyframe_ask = Some(Instant::now());
        }
        due
    }
}

/// The codec a payloader or depayloader carries, and whether it sends.
fn role(factory: &str) -> Option<(Codec, bool)> {
    match factory {
        "rtph264pay" => Some((Codec::H264, true)),
        "rtpvp8pay" => Some((Codec::Vp8, true)),
        "rtpopuspay" => Some((Codec::Opus, true)),
        "rtph264depay" => Some((Codec::H264, false)),
        "rtpvp8depay" => Some((Codec::Vp8, false)),
        "rtpopusdepay" => Some((Codec::Opus, false)),
        _ => None,
    }
}

/// Protects every payloader and depayloader of `pipeline`, present and future.
pub fn attach(pipeline: &gst::Bin, protection: &Arc<Protection>) {
    let mut it = pipeline.iterate_recurse();
    while let Ok(Some(element)) = it.next() {
        attach_element(&element, protection);
    }
    let protection = Arc::clone(protection);
    pipeline.connect_deep_element_added(move |_, _, element| {
        attach_element(element, &protection);
    });
}

fn attach_element(element: &gst::Element, protection: &Arc<Protection>) {
    let Some(factory) = element.factory() else { return };
    let Some((codec, sends)) = role(factory.name().as_str()) else { return };
    if sends {
        let Some(pad) = element.static_pad("sink") else { return };
        let protection = Arc::clone(protection);
        let avc = watch_avc(&pad);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
            let is_avc = codec == Codec::H264 && avc.load(Ordering::Relaxed);
            let sealed = match buffer.map_readable() {
                Ok(map) if is_avc => avc_to_annex_b(&map)
                    .and_then(|annex_b| protection.seal(codec, &annex_b))
                    .map(|sealed| annex_b_to_avc(&sealed)),
                Ok(map) => protection.seal(codec, &map),
                Err(_) => None,
            };
            match sealed {
                Some(bytes) => {
                    info.data = Some(gst::PadProbeData::Buffer(replaced(buffer, bytes)));
                    gst::PadProbeReturn::Ok
                }
                None => gst::PadProbeReturn::Handled,
            }
        });
    } else {
        let Some(pad) = element.static_pad("src") else { return };
        let avc = watch_avc(&pad);
        let opener = Mutex::new(Opener {
            protection: Arc::clone(protection),
            codec,
            receiver: None,
            last_keyframe_ask: None,
        });
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let mut opener = opener.lock().unwrap_or_else(|e| e.into_inner());
            let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
            let is_avc = codec == Codec::H264 && avc.load(Ordering::Relaxed);
            let opened = match buffer.map_readable() {
                Ok(map) if is_avc => match avc_to_annex_b(&map) {
                    Some(annex_b) => opener.open(&annex_b),
                    None => Opened::Failed,
                },
                Ok(map) => opener.open(&map),
                Err(_) => Opened::Failed,
            };
            let opened = match opened {
                Opened::Frame(bytes) if is_avc => Opened::Frame(annex_b_to_avc(&bytes)),
                other => other,
            };
            match opened {
                Opened::Frame(bytes) => {
                    info.data = Some(gst::PadProbeData::Buffer(replaced(buffer, bytes)));
                    gst::PadProbeReturn::Ok
                }
                Opened::NoKeys => gst::PadProbeReturn::Handled,
                Opened::Failed => {
                    if codec != Codec::Opus && opener.keyframe_due() {
                        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                            .all_headers(true)
                            .build();
                        pad.send_event(event);
                    }
                    gst::PadProbeReturn::Handled
                }
            }
        });
    }
}

/// A buffer with `bytes` and `old`'s timestamps, flags and metas.
fn replaced(old: &gst::Buffer, bytes: Vec<u8>) -> gst::Buffer {
    let mut new = gst::Buffer::from_mut_slice(bytes);
    if let Some(new_ref) = new.get_mut() {
        let flags = gst::BufferCopyFlags::FLAGS
            | gst::BufferCopyFlags::TIMESTAMPS
            | gst::BufferCopyFlags::META;
        let _ = old.copy_into(new_ref, flags, ..);
    }
    new
}

/// Whether the pad carries H.264 as AVC (length-prefixed NAL units) rather than Annex B, as
/// its caps say: encoders and rtph264depay may choose either; the frames are sealed and opened
/// as Annex B either way.
fn watch_avc(pad: &gst::Pad) -> Arc<std::sync::atomic::AtomicBool> {
    let avc = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&avc);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data
            && let gst::EventView::Caps(caps) = event.view()
        {
            let s = caps.caps().structure(0).and_then(|s| s.get::<String>("stream-format").ok());
            seen.store(s.as_deref() == Some("avc"), Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    avc
}

/// AVC NAL units (4-byte big-endian lengths, as rtph264depay writes them) as Annex B.
fn avc_to_annex_b(avc: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(avc.len());
    let mut rest = avc;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let nal = rest.get(4..4 + len)?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        rest = &rest[4 + len..];
    }
    Some(out)
}

/// Annex B NAL units (4-byte start codes, as `avc_to_annex_b` made them) back to AVC.
fn annex_b_to_avc(annex_b: &[u8]) -> Vec<u8> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 4 <= annex_b.len() {
        if annex_b[i..i + 4] == [0, 0, 0, 1] {
            starts.push(i);
            i += 4;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(annex_b.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(annex_b.len());
        let nal = &annex_b[start + 4..end];
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_and_annex_b_convert_both_ways() {
        let avc = [0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 3, 0x65, 0x88, 0x84];
        let annex_b = avc_to_annex_b(&avc).unwrap();
        assert_eq!(annex_b, [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88, 0x84]);
        assert_eq!(annex_b_to_avc(&annex_b), avc);
        assert_eq!(avc_to_annex_b(&[0, 0, 0, 9, 1]), None, "a length past the end");
    }
}
