//! The SFrame header (RFC 9605 §4.3): a config byte `X K(3) Y C(3)`, then the KID and the CTR in
//! minimal big-endian form. A value below 8 lives in the config byte itself (X or Y clear);
//! otherwise the three bits hold its length minus one and the bytes follow.
//!
//! Owns only the encoding. It must never decide keys or counters; it parses what it is given and
//! refuses a truncated header rather than guessing.

use crate::Error;

/// A decoded header: key id and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kid: u64,
    pub ctr: u64,
}

/// Bytes needed for `v` in minimal big-endian form (at least one).
fn min_len(v: u64) -> usize {
    (8 - (v.leading_zeros() as usize) / 8).max(1)
}

fn push_be(out: &mut Vec<u8>, v: u64, len: usize) {
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

impl Header {
    /// The header's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(0);
        let mut config = 0u8;
        if self.kid < 8 {
            config |= (self.kid as u8) << 4;
        } else {
            let len = min_len(self.kid);
            config |= 0x80 | (((len - 1) as u8) << 4);
            push_be(&mut out, self.kid, len);
        }
        if self.ctr < 8 {
            config |= self.ctr as u8;
        } else {
            let len = min_len(self.ctr);
            config |= 0x08 | ((len - 1) as u8);
            push_be(&mut out, self.ctr, len);
        }
        out[0] = config;
        out
    }

    /// Parses a header at the start of `bytes`; returns it and its length.
    pub fn decode(bytes: &[u8]) -> Result<(Header, usize), Error> {
        let config = *bytes.first().ok_or(Error::MalformedHeader)?;
        let mut at = 1;
        let mut field = |extended: bool, bits: u8| -> Result<u64, Error> {
            if !extended {
                return Ok(u64::from(bits));
            }
            let len = usize::from(bits) + 1;
            let raw = bytes.get(at..at + len).ok_or(Error::MalformedHeader)?;
            at += len;
            Ok(raw.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
        };
        let kid = field(config & 0x80 != 0, (config >> 4) & 0x07)?;
        let ctr = field(config & 0x08 != 0, config & 0x07)?;
        Ok((Header { kid, ctr }, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_live_in_the_config_byte() {
        assert_eq!(Header { kid: 7, ctr: 0 }.encode(), [0x70]);
        assert_eq!(Header { kid: 0, ctr: 7 }.encode(), [0x07]);
    }

    #[test]
    fn truncated_headers_are_refused() {
        assert_eq!(Header::decode(&[]), Err(Error::MalformedHeader));
        assert_eq!(Header::decode(&[0x99, 0x01]), Err(Error::MalformedHeader));
        assert_eq!(Header::decode(&[0x0f, 0x01]), Err(Error::MalformedHeader));
    }
}
