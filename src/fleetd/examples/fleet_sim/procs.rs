//! CPU and memory of fleetd and its broker, from /proc.

use std::time::{Duration, Instant};

use anyhow::Context;

pub fn broker_of(pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, rest) = stat.split_once(") ")?;
        let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
        (head.ends_with("(mosquitto") && ppid == pid)
            .then(|| head.split(' ').next()?.parse().ok())?
    })
}

pub fn ticks_per_sec() -> f64 {
    100.0
}

/// CPU ticks and memory of a process.
pub struct Usage {
    pub ticks: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Usage {
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let rest = stat.rsplit_once(") ").context("stat")?.1;
        let f: Vec<&str> = rest.split(' ').collect();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
        let ticks = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Ok(Self { ticks, rss_kb: kb("VmRSS:"), hwm_kb: kb("VmHWM:") })
    }

    /// Percent of one core used since `before`, `elapsed` ago.
    pub fn cpu_over(&self, before: &Usage, elapsed: Duration) -> f64 {
        (self.ticks - before.ticks) as f64 / ticks_per_sec() / elapsed.as_secs_f64().max(0.01)
            * 100.0
    }

    /// Percent of one core used since `before` (read at `at`).
    pub fn cpu_since(&self, before: &Usage, at: Instant) -> f64 {
        (self.ticks - before.ticks) as f64 / ticks_per_sec() / at.elapsed().as_secs_f64() * 100.0
    }
}
