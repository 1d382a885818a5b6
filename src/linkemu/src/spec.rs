//! Text form of a [`LinkProfile`]: presets and `key=value` specs.
//!
//! A spec is a comma-separated list of items applied left to right. A bare word is a preset
//! name and replaces the whole profile; `key=value` changes one field:
//!
//! | key      | value                                            | example             |
//! |----------|--------------------------------------------------|---------------------|
//! | `rate`   | bits/s with optional `k`/`M`/`G`, or `unlimited` | `rate=300k`         |
//! | `delay`  | duration: `ns`, `us`, `ms` or `s`                | `delay=150ms`       |
//! | `jitter` | duration                                         | `jitter=30ms`       |
//! | `loss`   | Bernoulli loss, `5%` or `0.05`                   | `loss=5%`           |
//! | `ge`     | Gilbert-Elliott `p_gb/p_bg/loss_good/loss_bad`   | `ge=0.01/0.3/0/0.5` |
//! | `queue`  | duration                                         | `queue=100ms`       |
//!
//! Parsing ([`FromStr`]) starts from `clean`; [`LinkProfile::apply_spec`] starts from the
//! current profile, so `rate=2500k` on its own changes only the rate. [`Display`] writes every
//! field and parses back to the same profile.

use std::fmt::{self, Display};
use std::str::FromStr;
use std::time::Duration;

use crate::model::{LinkProfile, Loss, PRESETS};

/// A spec item that could not be parsed; `field` names the key (or the unknown word).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason} (got `{value}`)")]
pub struct SpecError {
    /// The key of the bad item, or the item itself if it has no key.
    pub field: String,
    /// The value that was refused.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

impl SpecError {
    fn new(field: &str, value: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_owned(), value: value.to_owned(), reason: reason.into() }
    }
}

impl LinkProfile {
    /// Applies the items of `spec` to this profile, left to right. On error the profile is left
    /// unchanged.
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), SpecError> {
        let mut next = self.clone();
        for item in spec.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                next = LinkProfile::preset(item).ok_or_else(|| {
                    let presets = PRESETS.join(", ");
                    SpecError::new(item, item, format!("unknown preset; expected one of {presets}"))
                })?;
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "rate" => next.rate_bps = parse_rate(value)?,
                "delay" => next.delay = parse_duration(key, value)?,
                "jitter" => next.jitter = parse_duration(key, value)?,
                "queue" => next.queue = parse_duration(key, value)?,
                "loss" => {
                    let p = parse_probability(key, value)?;
                    next.loss = if p == 0.0 { Loss::None } else { Loss::Bernoulli { p } };
                }
                "ge" => next.loss = parse_gilbert_elliott(value)?,
                _ => {
                    let reason = "unknown field; expected rate, delay, jitter, loss, ge, queue \
                                  or a preset name";
                    return Err(SpecError::new(key, item, reason));
                }
            }
        }
        *self = next;
        Ok(())
    }
}

impl FromStr for LinkProfile {
    type Err = SpecError;

    /// Parses a preset name or spec, starting from `clean`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.trim().is_empty() {
            return Err(SpecError::new(
                "spec",
                spec,
                "empty; expected a preset or key=value items",
            ));
        }
        let mut profile = LinkProfile::clean();
        profile.apply_spec(spec)?;
        Ok(profile)
    }
}

impl Display for LinkProfile {
    /// Every field as a spec, e.g. `rate=300k,delay=150ms,jitter=0ms,loss=0.05,queue=100ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate_bps {
            None => f.write_str("rate=unlimited")?,
            Some(bps) if bps % 1_000_000 == 0 => write!(f, "rate={}M", bps / 1_000_000)?,
            Some(bps) if bps % 1_000 == 0 => write!(f, "rate={}k", bps / 1_000)?,
            Some(bps) => write!(f, "rate={bps}")?,
        }
        write!(f, ",delay={},jitter={}", DurationText(self.delay), DurationText(self.jitter))?;
        match self.loss {
            Loss::None => f.write_str(",loss=0")?,
            Loss::Bernoulli { p } => write!(f, ",loss={p}")?,
            Loss::GilbertElliott { p_good_to_bad, p_bad_to_good, loss_in_good, loss_in_bad } => {
                write!(f, ",ge={p_good_to_bad}/{p_bad_to_good}/{loss_in_good}/{loss_in_bad}")?
            }
        }
        write!(f, ",queue={}", DurationText(self.queue))
    }
}

/// Formats a duration in the largest unit that keeps it exact.
struct DurationText(Duration);

impl Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        match nanos {
            n if n % 1_000_000 == 0 => write!(f, "{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => write!(f, "{}us", n / 1_000),
            n => write!(f, "{n}ns"),
        }
    }
}

/// A finite, non-negative decimal number.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

fn parse_rate(value: &str) -> Result<Option<u64>, SpecError> {
    const EXPECTED: &str = "expected bits per second above 0 such as 300k, 2.5M or unlimited";
    if matches!(value, "unlimited" | "none" | "inf") {
        return Ok(None);
    }
    let digits = value.trim_end_matches("bit/s").trim_end_matches("bps").trim_end_matches("b/s");
    let (digits, scale) = match digits.char_indices().last() {
        Some((i, 'k' | 'K')) => (&digits[..i], 1e3),
        Some((i, 'm' | 'M')) => (&digits[..i], 1e6),
        Some((i, 'g' | 'G')) => (&digits[..i], 1e9),
        _ => (digits, 1.0),
    };
    match number(digits).map(|x| (x * scale).round()) {
        Some(bps) if bps >= 1.0 && bps <= u64::MAX as f64 => Ok(Some(bps as u64)),
        _ => Err(SpecError::new("rate", value, EXPECTED)),
    }
}

pub(crate) fn parse_duration(field: &str, value: &str) -> Result<Duration, SpecError> {
    const UNITS: [(&str, f64); 5] =
        [("ms", 1e6), ("us", 1e3), ("µs", 1e3), ("ns", 1.0), ("s", 1e9)];
    let nanos = if value == "0" {
        Some(0.0)
    } else {
        UNITS.iter().find_map(|&(unit, nanos_per_unit)| {
            value.strip_suffix(unit).and_then(number).map(|x| (x * nanos_per_unit).round())
        })
    };
    match nanos {
        Some(nanos) if nanos <= u64::MAX as f64 => Ok(Duration::from_nanos(nanos as u64)),
        _ => {
            Err(SpecError::new(field, value, "expected a duration such as 150ms, 1.5s, 500us or 0"))
        }
    }
}

/// A probability written as `5%` or `0.05`.
fn parse_probability(field: &str, value: &str) -> Result<f64, SpecError> {
    let p = match value.strip_suffix('%') {
        Some(percent) => number(percent).map(|x| x / 100.0),
        None => number(value),
    };
    match p {
        Some(p) if p <= 1.0 => Ok(p),
        Some(_) => Err(SpecError::new(field, value, "a probability is at most 100%")),
        None => Err(SpecError::new(field, value, "expected a probability such as 5% or 0.05")),
    }
}

fn parse_gilbert_elliott(value: &str) -> Result<Loss, SpecError> {
    let parts: Vec<&str> = value.split('/').collect();
    let &[gb, bg, good, bad] = parts.as_slice() else {
        let reason = "expected p_good_to_bad/p_bad_to_good/loss_in_good/loss_in_bad";
        return Err(SpecError::new("ge", value, reason));
    };
    let p = |text: &str| {
        parse_probability("ge", text.trim()).map_err(|e| SpecError { value: value.into(), ..e })
    };
    Ok(Loss::GilbertElliott {
        p_good_to_bad: p(gb)?,
        p_bad_to_good: p(bg)?,
        loss_in_good: p(good)?,
        loss_in_bad: p(bad)?,
    })
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
