//! The per-packet log of a direction (what happened to each packet: [`Verdict`]) and the
//! [`Summary`] computed from it.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

/// Length of the windows of [`Summary::offered_bps`] and [`Summary::delivered_bps`].
pub const WINDOW: Duration = Duration::from_secs(1);

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Random loss ([`crate::model::Loss`]).
    Random,
    /// It would have waited longer than the profile's `queue` for the bottleneck.
    QueueFull,
}

/// What happens to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The packet leaves the link at `at` (same epoch as the `now` it was offered at).
    Deliver {
        /// Delivery time.
        at: Duration,
    },
    /// The packet is dropped.
    Drop(DropReason),
}

/// One offered packet. About 48 bytes each, so a 90 s test at a few hundred packets a second
/// keeps well under a megabyte per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRecord {
    /// When the packet was offered.
    pub t_in: Duration,
    /// Its size in bytes, as counted against the rate.
    pub size: usize,
    /// What happened to it.
    pub verdict: Verdict,
    /// How long it waited for the bottleneck (zero if dropped).
    pub queue_delay: Duration,
}

/// Counters and rates of one direction, computed from its [`PacketRecord`]s.
///
/// Bitrate windows are [`WINDOW`] long and start at the first packet's arrival; offered traffic
/// is binned by arrival time, delivered traffic by delivery time, each packet whole. So a
/// delivered window can exceed the link's rate by at most one packet, and a last partial window
/// is reported as if it were whole, so it reads low.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Summary {
    /// Packets offered.
    pub packets_in: u64,
    /// Packets delivered (or scheduled for delivery).
    pub packets_delivered: u64,
    /// Packets dropped by random loss.
    pub dropped_random: u64,
    /// Packets dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Bytes offered.
    pub bytes_in: u64,
    /// Bytes delivered.
    pub bytes_delivered: u64,
    /// Start of the first window, in microseconds since the epoch.
    pub window_origin_us: u64,
    /// Offered bits per second, one value per window.
    pub offered_bps: Vec<u64>,
    /// Delivered bits per second, one value per window.
    pub delivered_bps: Vec<u64>,
    /// Median time delivered packets waited for the bottleneck, in milliseconds.
    pub queue_delay_p50_ms: f64,
    /// 95th percentile of the same, in milliseconds.
    pub queue_delay_p95_ms: f64,
}

impl Summary {
    /// Computes the summary of `records` (in offer order).
    pub fn from_records(records: &[PacketRecord]) -> Self {
        let mut summary = Summary::default();
        let Some(origin) = records.first().map(|r| r.t_in) else {
            return summary;
        };
        summary.window_origin_us = micros(origin);
        let mut queue_delays = Vec::new();
        for record in records {
            let size = record.size as u64;
            summary.packets_in += 1;
            summary.bytes_in += size;
            add_to_window(&mut summary.offered_bps, origin, record.t_in, size * 8);
            match record.verdict {
                Verdict::Deliver { at } => {
                    summary.packets_delivered += 1;
                    summary.bytes_delivered += size;
                    add_to_window(&mut summary.delivered_bps, origin, at, size * 8);
                    queue_delays.push(record.queue_delay);
                }
                Verdict::Drop(DropReason::Random) => summary.dropped_random += 1,
                Verdict::Drop(DropReason::QueueFull) => summary.dropped_queue_full += 1,
            }
        }
        queue_delays.sort_unstable();
        summary.queue_delay_p50_ms = percentile_ms(&queue_delays, 50);
        summary.queue_delay_p95_ms = percentile_ms(&queue_delays, 95);
        summary
    }

    /// Packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_queue_full
    }

    /// Fraction of offered packets that were dropped (0 when nothing was offered).
    pub fn loss_fraction(&self) -> f64 {
        if self.packets_in == 0 { 0.0 } else { self.dropped() as f64 / self.packets_in as f64 }
    }

    /// The longest run of consecutive windows whose offered bitrate is above `bps`, in windows
    /// (seconds). "The sender never exceeded the link for more than 1 s" is
    /// `longest_offered_above(rate) <= 1`.
    pub fn longest_offered_above(&self, bps: u64) -> usize {
        let mut longest = 0;
        let mut run = 0;
        for &window in &self.offered_bps {
            run = if window > bps { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        longest
    }
}

fn add_to_window(windows: &mut Vec<u64>, origin: Duration, t: Duration, bits: u64) {
    let index = (t.saturating_sub(origin).as_nanos() / WINDOW.as_nanos()) as usize;
    if windows.len() <= index {
        windows.resize(index + 1, 0);
    }
    // Windows are one second long, so bits in a window are bits per second.
    windows[index] += bits;
}

/// Nearest-rank percentile of sorted `values`, in milliseconds.
fn percentile_ms(sorted: &[Duration], pct: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn micros(t: Duration) -> u64 {
    u64::try_from(t.as_micros()).unwrap_or(u64::MAX)
}

/// Header line of [`write_csv`]'s output.
pub const CSV_HEADER: &str = "t_in_us,size,verdict,deliver_at_us,queue_delay_us";

/// Writes `records` as CSV: [`CSV_HEADER`], then one line per packet. `verdict` is `deliver`,
/// `drop_random` or `drop_queue_full`; `deliver_at_us` is empty for dropped packets.
pub fn write_csv(records: &[PacketRecord], mut out: impl Write) -> io::Result<()> {
    let mut line = String::new();
    writeln!(out, "{CSV_HEADER}")?;
    for record in records {
        line.clear();
        let (verdict, at) = match record.verdict {
            Verdict::Deliver { at } => ("deliver", micros(at).to_string()),
            Verdict::Drop(DropReason::Random) => ("drop_random", String::new()),
            Verdict::Drop(DropReason::QueueFull) => ("drop_queue_full", String::new()),
        };
        let (t_in, size, queued) = (micros(record.t_in), record.size, micros(record.queue_delay));
        // Writing to a String cannot fail.
        let _ = writeln!(line, "{t_in},{size},{verdict},{at},{queued}");
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// [`write_csv`] into a string.
pub fn to_csv(records: &[PacketRecord]) -> String {
    let mut out = Vec::new();
    write_csv(records, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("CSV is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t_ms: u64, size: usize, verdict: Verdict, queued_ms: u64) -> PacketRecord {
        let ms = Duration::from_millis;
        PacketRecord { t_in: ms(t_ms), size, verdict, queue_delay: ms(queued_ms) }
    }

    fn at(ms: u64) -> Verdict {
        Verdict::Deliver { at: Duration::from_millis(ms) }
    }

    #[test]
    fn summary_counts_windows_and_percentiles() {
        let records = [
            rec(1000, 100, at(1100), 0),
            rec(1500, 100, Verdict::Drop(DropReason::Random), 0),
            rec(1900, 200, at(2050), 10),
            rec(2100, 50, Verdict::Drop(DropReason::QueueFull), 0),
            rec(3200, 100, at(3300), 20),
        ];
        let s = Summary::from_records(&records);
        assert_eq!((s.packets_in, s.packets_delivered), (5, 3));
        assert_eq!((s.dropped_random, s.dropped_queue_full, s.dropped()), (1, 1, 2));
        assert_eq!((s.bytes_in, s.bytes_delivered), (550, 400));
        assert_eq!(s.window_origin_us, 1_000_000);
        assert_eq!(s.offered_bps, vec![3200, 400, 800]);
        assert_eq!(s.delivered_bps, vec![800, 1600, 800]);
        assert_eq!((s.queue_delay_p50_ms, s.queue_delay_p95_ms), (10.0, 20.0));
        assert!((s.loss_fraction() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn longest_run_above_a_rate() {
        let s = Summary { offered_bps: vec![5, 11, 12, 3, 20, 30, 40, 1], ..Summary::default() };
        for (bps, longest) in [(10, 3), (25, 2), (100, 0), (0, 8)] {
            assert_eq!(s.longest_offered_above(bps), longest, "above {bps}");
        }
    }

    #[test]
    fn empty_log_gives_an_empty_summary() {
        assert_eq!(Summary::from_records(&[]), Summary::default());
        assert_eq!(to_csv(&[]), format!("{CSV_HEADER}\n"));
    }

    #[test]
    fn csv_has_one_line_per_packet() {
        let records = [rec(1, 10, at(5), 2), rec(2, 20, Verdict::Drop(DropReason::QueueFull), 0)];
        let csv = to_csv(&records);
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines, [CSV_HEADER, "1000,10,deliver,5000,2000", "2000,20,drop_queue_full,,0"]);
    }
}
