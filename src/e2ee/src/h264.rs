//! Protecting an H.264 access unit (Annex B, as `h264parse` and browsers hand it over) slice by
//! slice, so that every packetizer and depacketizer on the path still sees valid NAL units.
//!
//! Each slice NAL (types 1 to 5) becomes
//! `NAL header || next 4 bytes || escape(SFrame header || ciphertext || tag) || 0x80`:
//! - the header and the 4 bytes after it stay clear (browsers read `first_mb_in_slice`,
//!   `slice_type` and `pps_id` before the transform; hiding them causes keyframe-request storms)
//!   and are the SFrame metadata, so they are authenticated;
//! - `escape` is H.264's emulation prevention (an `0x03` after two zero bytes when the next byte
//!   is 0 to 3), so no start code can appear inside the ciphertext;
//! - the final `0x80` keeps the NAL from ending in a zero byte, which parsers may strip.
//!
//! Parameter sets, SEI and delimiters stay clear: they carry no picture, and a receiver only
//! accepts an access unit whose every slice authenticates. Each slice spends one counter.

use crate::Error;
use crate::frame::{Receiver, Sender};

/// NAL header plus the slice header bytes browsers read before the transform.
const CLEAR_AFTER_START_CODE: usize = 5;
/// Appended to every protected slice.
const TRAILER: u8 = 0x80;

/// One NAL unit inside an access unit: where its start code begins, where its header begins,
/// and where it ends.
struct Nal {
    start: usize,
    body: usize,
    end: usize,
}

fn is_slice(nal_header: u8) -> bool {
    (1..=5).contains(&(nal_header & 0x1f))
}

/// The NAL units of an Annex B access unit (bytes before the first start code are ignored).
fn nal_units(au: &[u8]) -> Vec<Nal> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            let start = if i > 0 && au[i - 1] == 0 { i - 1 } else { i };
            starts.push((start, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &(start, body)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(au.len(), |next| next.0);
        nals.push(Nal { start, body, end });
    }
    nals
}

/// How many zero bytes end `bytes` (0, 1 or 2: all emulation prevention looks at).
fn trailing_zeros(bytes: &[u8]) -> usize {
    bytes.iter().rev().take(2).take_while(|b| **b == 0).count()
}

/// Emulation prevention over `data`, continuing after `zeros` zero bytes already written.
pub fn escape(mut zeros: usize, data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// The inverse of `escape`.
pub fn unescape(mut zeros: usize, data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Copies `au` to a new access unit, each slice NAL's body replaced by what `slice` writes (its
/// clear bytes are the first `clear`); `None` if `au` has no NAL unit at all.
fn map_slices(
    au: &[u8],
    mut slice: impl FnMut(&[u8], usize, &mut Vec<u8>) -> Result<(), Error>,
) -> Option<Result<Vec<u8>, Error>> {
    let nals = nal_units(au);
    let first = nals.first()?;
    let mut out = Vec::with_capacity(au.len() + 64);
    out.extend_from_slice(&au[..first.start]);
    for nal in &nals {
        let body = &au[nal.body..nal.end];
        out.extend_from_slice(&au[nal.start..nal.body]);
        if body.first().is_some_and(|h| is_slice(*h)) {
            let clear = body.len().min(CLEAR_AFTER_START_CODE);
            if let Err(e) = slice(body, clear, &mut out) {
                return Some(Err(e));
            }
        } else {
            out.extend_from_slice(body);
        }
    }
    Some(Ok(out))
}

/// Protects every slice of an access unit with `sender`. Bytes with no NAL unit (not Annex B)
/// are refused: nothing could be found to seal, so nothing may be sent.
pub fn protect(sender: &mut Sender, au: &[u8]) -> Result<Vec<u8>, Error> {
    map_slices(au, |body, clear, out| {
        let sealed = sender.protect_with_prefix(clear, body)?;
        out.extend_from_slice(&body[..clear]);
        escape(trailing_zeros(&body[..clear]), &sealed[clear..], out);
        out.push(TRAILER);
        Ok(())
    })
    .unwrap_or(Err(Error::MalformedHeader))
}

/// Opens every slice of an access unit; any slice that is not protected or does not
/// authenticate fails the whole access unit.
pub fn unprotect(receiver: &mut Receiver, au: &[u8]) -> Result<Vec<u8>, Error> {
    let opened = map_slices(au, |body, clear, out| {
        let Some((&TRAILER, escaped)) = body[clear..].split_last() else {
            return Err(receiver.count_malformed());
        };
        let mut sealed = body[..clear].to_vec();
        unescape(trailing_zeros(&body[..clear]), escaped, &mut sealed);
        out.extend_from_slice(&receiver.unprotect_with_prefix(clear, &sealed)?);
        Ok(())
    });
    opened.unwrap_or_else(|| Err(receiver.count_malformed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_start_code(bytes: &[u8]) -> bool {
        bytes.windows(3).any(|w| w == [0, 0, 1])
    }

    #[test]
    fn escaping_round_trips_and_hides_start_codes() {
        for data in [vec![0, 0, 0, 1, 0, 0, 3, 0, 0], vec![0; 40], vec![1, 0, 0, 2, 0]] {
            for zeros in 0..=2 {
                let mut escaped = vec![0; zeros];
                escape(zeros, &data, &mut escaped);
                assert!(!has_start_code(&escaped) && !escaped.windows(3).any(|w| w == [0, 0, 0]));
                let mut back = Vec::new();
                unescape(zeros, &escaped[zeros..], &mut back);
                assert_eq!(back, data);
            }
        }
    }

    #[test]
    fn only_slices_are_sealed_and_start_codes_survive() {
        let au = [
            &[0, 0, 0, 1, 0x67, 0x42, 0, 0x1f][..],
            &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
            &[0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 0],
        ]
        .concat();
        let mut sender = Sender::new(&[7; 32], 1).unwrap();
        let protected = protect(&mut sender, &au).unwrap();
        let nals = nal_units(&protected);
        assert_eq!(nals.len(), 3, "no start code was added inside the ciphertext");
        assert_eq!(&protected[..16], &au[..16], "SPS and PPS stay clear");
        assert_eq!(&protected[nals[2].body..nals[2].body + 5], &[0x65, 0x88, 0x84, 0, 0]);
        assert_eq!(protected.last(), Some(&TRAILER));

        let mut receiver = Receiver::new();
        receiver.set_key(&[7; 32], 1).unwrap();
        assert_eq!(unprotect(&mut receiver, &protected).unwrap(), au);
        assert_eq!(receiver.stats().opened, 1);
    }

    #[test]
    fn a_clear_or_altered_slice_fails_the_access_unit() {
        let au = [0, 0, 0, 1, 0x41, 0x9a, 1, 2, 3, 4, 5, 6];
        let mut receiver = Receiver::new();
        receiver.set_key(&[7; 32], 1).unwrap();
        assert!(unprotect(&mut receiver, &au).is_err(), "a slice sent in the clear");
        assert!(unprotect(&mut receiver, &au[4..]).is_err(), "bytes with no NAL unit at all");

        let mut sender = Sender::new(&[7; 32], 1).unwrap();
        let mut protected = protect(&mut sender, &au).unwrap();
        protected[6] ^= 1; // the clear slice header is authenticated too
        assert_eq!(unprotect(&mut receiver, &protected), Err(Error::Authentication));
        assert_eq!(receiver.stats().auth_failures, 1);
    }
}
