//! Test and bench only (hardware profile `video.stamp_time`): the capture time drawn into the top
//! of a picture, so the far end can measure glass-to-glass latency by reading it back.
//!
//! Format (shared with the bench's browser side): the top band holds 32 square blocks, each
//! `width / 32` pixels, left to right the bits 31..0 of the wall-clock time in milliseconds
//! (modulo 2³²); white is 1, black is 0. Reading samples the centre of each block, so the stamp
//! survives scaling and a low-bitrate encoder.

const BITS: u32 = 32;
/// Luma of a 1 and of a 0 (video range).
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// Wall-clock milliseconds modulo 2³², the stamp's clock (the browser's `Date.now()`).
pub fn now_ms() -> u32 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as u32)
}

/// Milliseconds from `stamp` to `now`, both on the stamp's clock (wrap-around handled).
pub fn elapsed(stamp: u32, now: u32) -> u32 {
    now.wrapping_sub(stamp)
}

/// Draws `value` into the luma plane (`stride` bytes a row) of a `width`-wide picture with at
/// least `width / 32` rows.
pub fn write_luma(luma: &mut [u8], stride: usize, width: usize, value: u32) {
    let block = width / BITS as usize;
    for bit in 0..BITS as usize {
        let on = value >> (BITS as usize - 1 - bit) & 1 == 1;
        for row in 0..block {
            let start = row * stride + bit * block;
            if let Some(cells) = luma.get_mut(start..start + block) {
                cells.fill(if on { WHITE } else { BLACK });
            }
        }
    }
}

/// Reads a stamp from a packed RGB picture (`width * 3` bytes a row), `None` if too small.
pub fn read_rgb(rgb: &[u8], width: usize, height: usize) -> Option<u32> {
    let block = width / BITS as usize;
    if block < 2 || height < block || rgb.len() < width * height * 3 {
        return None;
    }
    let row = block / 2;
    let mut value = 0u32;
    for bit in 0..BITS as usize {
        let x = bit * block + block / 2;
        let p = &rgb[(row * width + x) * 3..][..3];
        let luma = (p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8;
        value = value << 1 | u32::from(luma >= 128);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_written_into_luma_reads_back_from_rgb_after_halving() {
        let (w, h) = (640usize, 360usize);
        let mut luma = vec![100u8; w * h];
        write_luma(&mut luma, w, w, 0xDEAD_BEEF);
        // The far end sees it smaller (320x180) and in RGB: nearest-neighbour halving.
        let (w2, h2) = (w / 2, h / 2);
        let mut rgb = vec![0u8; w2 * h2 * 3];
        for y in 0..h2 {
            for x in 0..w2 {
                rgb[(y * w2 + x) * 3..][..3].fill(luma[(2 * y) * w + 2 * x]);
            }
        }
        assert_eq!(read_rgb(&rgb, w2, h2), Some(0xDEAD_BEEF));
    }

    #[test]
    fn elapsed_time_survives_the_clock_wrapping() {
        assert_eq!(elapsed(u32::MAX - 10, 20), 31);
        assert_eq!(elapsed(1000, 1085), 85);
    }

    #[test]
    fn a_picture_too_small_has_no_stamp() {
        assert_eq!(read_rgb(&[0; 30 * 10 * 3], 30, 10), None);
    }
}
