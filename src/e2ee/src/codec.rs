//! How many leading bytes of an encoded frame stay in the clear, per codec.
//!
//! The clear prefix is what packetizers and depacketizers on the path read (and it is bound into
//! the AAD as SFrame metadata, so it cannot be altered either). The counts follow the browsers'
//! insertable-streams demos and are mirrored in `e2ee.js`:
//! - Opus: the TOC byte (1).
//! - VP8: the payload header, 10 bytes on a keyframe (frame tag and the dimensions) and 3 on a
//!   delta frame; the keyframe flag is bit 0 of the first byte, clear meaning keyframe.
//! - H.264: protected per slice NAL, not per frame (`h264.rs`): the NAL header and the next 4
//!   bytes of each slice (5).
//!
//! Owns only the count. It does not clamp: a frame shorter than its clear prefix is refused by
//! the sender (`Error::TooShort`), since the receiver could not tell where the prefix ends.

/// The codecs visit media uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Opus,
    Vp8,
    H264,
}

/// The number of leading bytes of `frame` left in the clear for `codec` (may exceed a short
/// frame's length; such a frame is not protected).
pub fn clear_prefix_len(codec: Codec, frame: &[u8]) -> usize {
    match codec {
        Codec::Opus => 1,
        Codec::Vp8 => match frame.first() {
            Some(b) if b & 0x01 == 0 => 10,
            _ => 3,
        },
        Codec::H264 => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_per_codec() {
        assert_eq!(clear_prefix_len(Codec::Opus, &[0x78, 1, 2]), 1);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x10; 20]), 10);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x11; 20]), 3);
        assert_eq!(clear_prefix_len(Codec::H264, &[0x65, 9, 9, 9, 9, 9]), 5);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x10, 1]), 10);
        assert_eq!(clear_prefix_len(Codec::Opus, &[]), 1);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[]), 3);
    }
}
