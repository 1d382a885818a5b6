//! `linkemu`: joins two network namespaces through an emulated link, for browser benches.
//!
//! ```text
//! linkemu tun --ns-a clinic --ns-b hospital --addr-a 10.77.0.1 --addr-b 10.77.0.2 \
//!     --a-to-b floor --b-to-a floor --seed 1 --log-dir DIR \
//!     --schedule "20s:a-to-b=rate=300k;50s:a-to-b=rate=2500k"
//! linkemu presets
//! ```
//!
//! Stdout carries one JSON object per line: `{"event":"ready"}` once the link is up, an
//! `applied` or `error` event per control line or schedule item, and a `summary` event (both
//! directions) after SIGINT or SIGTERM. Stdin takes control lines such as `a-to-b rate=300k`,
//! `both outage` or `b-to-a floor`, applied on top of the current profiles.

use std::io::{self, BufRead};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use linkemu::control::parse_schedule;
use linkemu::{Change, LinkProfile, PRESETS, Summary, TunConfig, TunLink};
use nix::sys::signal::{SigSet, Signal};
use serde::Serialize;
use serde_json::json;

#[derive(Parser)]
#[command(version, about = "Link emulator: delay, jitter, loss and rate between two namespaces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Joins two network namespaces (created if missing) through TUN devices until SIGINT or
    /// SIGTERM. Needs root.
    Tun(Box<TunArgs>),
    /// Prints every preset as a spec, one JSON object per line.
    Presets,
}

#[derive(clap::Args)]
struct TunArgs {
    /// Namespace of side A.
    #[arg(long)]
    ns_a: String,
    /// Namespace of side B.
    #[arg(long)]
    ns_b: String,
    /// A's address (B reaches A at this address).
    #[arg(long)]
    addr_a: Ipv4Addr,
    /// B's address (A reaches B at this address).
    #[arg(long)]
    addr_b: Ipv4Addr,
    /// Profile from A to B: a preset or a spec such as `rate=300k,delay=150ms,loss=5%`.
    #[arg(long, default_value = "clean")]
    a_to_b: LinkProfile,
    /// Profile from B to A.
    #[arg(long, default_value = "clean")]
    b_to_a: LinkProfile,
    /// Seed of the random choices (loss, jitter).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Writes a-to-b.csv, b-to-a.csv (one line per packet) and summary.json here on exit.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Timed changes from when the link is up: `TIME:DIRECTION=SPEC;…`.
    #[arg(long)]
    schedule: Option<String>,
    /// TUN device name in both namespaces.
    #[arg(long, default_value = "tk0")]
    dev: String,
    /// Device MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Tun(args) => run_tun(*args),
        Command::Presets => {
            for name in PRESETS {
                let profile = LinkProfile::preset(name).expect("every listed preset exists");
                println!("{}", json!({ "preset": name, "spec": profile.to_string() }));
            }
            Ok(())
        }
    }
}

fn run_tun(args: TunArgs) -> anyhow::Result<()> {
    let schedule =
        parse_schedule(args.schedule.as_deref().unwrap_or_default()).context("bad --schedule")?;
    // Blocked before any thread starts, so every thread inherits the mask and the signals wait
    // for `sigwait` below instead of killing the process mid-write.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking SIGINT and SIGTERM")?;

    let config = TunConfig {
        device: args.dev,
        mtu: args.mtu,
        a_to_b: args.a_to_b,
        b_to_a: args.b_to_a,
        seed: args.seed,
        ..TunConfig::new(&args.ns_a, &args.ns_b, args.addr_a, args.addr_b)
    };
    let link = Arc::new(TunLink::start(config).context("starting the TUN link")?);
    println!("{}", json!({ "event": "ready" }));

    let control = link.clone();
    thread::Builder::new().name("control".into()).spawn(move || read_control(&control))?;
    if !schedule.is_empty() {
        let scheduled = link.clone();
        thread::Builder::new().name("schedule".into()).spawn(move || {
            let start = Instant::now();
            for (at, change) in schedule {
                thread::sleep(at.saturating_sub(start.elapsed()));
                apply(&scheduled, &change, "schedule");
            }
        })?;
    }

    let signal = signals.wait().context("waiting for SIGINT or SIGTERM")?;
    let (a_to_b, b_to_a) = link.link().summary();
    print_event(&SummaryEvent { event: "summary", signal: signal.as_str(), a_to_b, b_to_a });
    if let Some(dir) = &args.log_dir {
        link.link()
            .write_logs(dir)
            .with_context(|| format!("writing logs to {}", dir.display()))?;
    }
    Ok(())
}

/// Applies control lines from stdin until it closes; the link keeps running after that.
fn read_control(link: &TunLink) {
    for line in io::stdin().lock().lines().map_while(Result::ok) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<Change>() {
            Ok(change) => apply(link, &change, "stdin"),
            Err(error) => report_error(line, &error.to_string()),
        }
    }
}

fn apply(link: &TunLink, change: &Change, source: &str) {
    if let Err(error) = link.link().apply(change) {
        return report_error(&change.to_string(), &error.to_string());
    }
    let (a_to_b, b_to_a) = link.link().profiles();
    print_event(&Applied {
        event: "applied",
        source,
        change: change.to_string(),
        a_to_b: a_to_b.to_string(),
        b_to_a: b_to_a.to_string(),
    });
}

fn report_error(input: &str, message: &str) {
    eprintln!("linkemu: ignored `{input}`: {message}");
    print_event(&json!({ "event": "error", "input": input, "message": message }));
}

/// Prints one JSON line on stdout (line-buffered, so a waiting script sees it at once).
fn print_event(event: &impl Serialize) {
    println!("{}", serde_json::to_string(event).expect("events serialise"));
}

/// A profile change was applied (from stdin or the schedule); the profiles are now these.
#[derive(Serialize)]
struct Applied<'a> {
    event: &'static str,
    source: &'a str,
    change: String,
    a_to_b: String,
    b_to_a: String,
}

/// Both directions' summaries, printed on exit.
#[derive(Serialize)]
struct SummaryEvent {
    event: &'static str,
    signal: &'static str,
    a_to_b: Summary,
    b_to_a: Summary,
}
