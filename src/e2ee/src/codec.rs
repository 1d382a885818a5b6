//! How many leading bytes of an encoded frame stay in the clear, per codec.
//!
//! The clear prefix is what packetizers and depacketizers on the path read (and it is bound into
//! the AAD as SFrame metadata, so it cannot be altered either). The counts follow the browsers'
//! insertable-streams demos and are mirrored in `e2ee.js`:
//! - Opus: the TOC byte (1).
//! - VP8: the frame tag (3 bytes; bit 0 of the first clear on a keyframe) and on a keyframe the
//!   start code and dimensions (7 more), then the first 16 bytes of the first partition (fewer if
//!   the tag says it is shorter). Those 16 bytes hold the frame header (segmentation, loop filter,
//!   partition count), not picture data: GStreamer's VP8 payloader decodes that header to find
//!   the partitions and refuses a frame whose header is sealed. Browsers read only the first 10/3.
//! - H.264: protected per slice NAL, not per frame (`h264.rs`): the NAL header and the next 4
//!   bytes of each slice (5).
//!
//! Owns only the count. It does not clamp: a frame shorter than its clear prefix is refused by
//! the sender (`Error::TooShort`), since the receiver could not tell where the prefix ends.

/// How many bytes of a VP8 frame's first partition stay clear (its frame header).
pub const VP8_CLEAR_HEADER: usize = 16;

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
        Codec::Vp8 => {
            let &[b0, b1, b2, ..] = frame else { return 3 };
            let keyframe = b0 & 0x01 == 0;
            let first_partition =
                (usize::from(b2) << 11) | (usize::from(b1) << 3) | usize::from(b0 >> 5);
            (if keyframe { 10 } else { 3 }) + first_partition.min(VP8_CLEAR_HEADER)
        }
        Codec::H264 => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_per_codec() {
        assert_eq!(clear_prefix_len(Codec::Opus, &[0x78, 1, 2]), 1);
        // Keyframe, first partition 0x10 >> 5 | 0x10 << 3 | 0x10 << 11 bytes (long): 10 + 16.
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x10; 40]), 26);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x11; 40]), 19);
        // A delta frame whose first partition is 5 bytes: those 5 stay clear.
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0xa1, 0, 0, 1, 2, 3, 4, 5, 6, 7]), 8);
        assert_eq!(clear_prefix_len(Codec::H264, &[0x65, 9, 9, 9, 9, 9]), 5);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[0x10, 1]), 3);
        assert_eq!(clear_prefix_len(Codec::Opus, &[]), 1);
        assert_eq!(clear_prefix_len(Codec::Vp8, &[]), 3);
    }
}
