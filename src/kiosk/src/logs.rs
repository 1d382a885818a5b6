//! Logging set-up: the level the fleet config sets (changed at run time through a reload
//! handle) and the last WARN/ERROR lines kept in memory for the diagnostics command.
//!
//! Owns: the tracing subscriber of the kiosk process. Must never: write logs anywhere but
//! stderr (the journal) — and the kiosk logs no patient data by design, so the recent lines are
//! PHI-free too; they are capped at [`RECENT`] lines of [`MAX_LINE`] bytes each.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use telekiosk_protocol::config::LogLevel;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

/// How many WARN/ERROR lines are kept.
pub const RECENT: usize = 20;
/// Longest line kept, in bytes.
pub const MAX_LINE: usize = 400;

/// The last [`RECENT`] WARN and ERROR lines. Cheap to clone.
#[derive(Clone, Default)]
pub struct RecentErrors {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl RecentErrors {
    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == RECENT {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

impl<S: tracing::Subscriber> Layer<S> for RecentErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut line = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut LineVisitor(&mut line));
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        self.push(line);
    }
}

struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// Changes the log level at run time.
pub type SetLevel = Box<dyn Fn(LogLevel) + Send + Sync>;

/// Installs the process's subscriber: stderr, `RUST_LOG` (or info) until the fleet config sets a
/// level, and the recent-errors buffer. Returns the buffer and the level setter.
pub fn init() -> (RecentErrors, SetLevel) {
    use std::io::IsTerminal;
    let initial =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,telekiosk=info"));
    let (filter, handle) = reload::Layer::new(initial);
    let recent = RecentErrors::default();
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(recent.clone())
        .init();
    let set: SetLevel = Box::new(move |level| {
        if let Err(e) = handle.reload(EnvFilter::new(directive(level))) {
            tracing::warn!("cannot change the log level: {e}");
        }
    });
    (recent, set)
}

/// The filter directive for a configured level.
pub fn directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "info,telekiosk=debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_twenty_warnings_and_errors_only() {
        let recent = RecentErrors::default();
        let subscriber = tracing_subscriber::registry().with(recent.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            for i in 0..25 {
                tracing::warn!(n = i, "warning");
            }
            tracing::error!(target: "audit", "{}", "x".repeat(1000));
        });
        let lines = recent.lines();
        assert_eq!(lines.len(), RECENT);
        assert_eq!(lines[0], "WARN telekiosk::logs::tests: warning n=6");
        assert!(lines[RECENT - 1].starts_with("ERROR audit: xxx"));
        assert_eq!(lines[RECENT - 1].len(), MAX_LINE);
        assert!(!lines.iter().any(|l| l.contains("not kept")));
    }
}
