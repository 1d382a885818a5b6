//! Runtime profile changes: `a-to-b rate=300k`, `both outage`, and timed schedules of them.
//!
//! A change names a direction (`a-to-b`, `b-to-a` or `both`) and a spec (see [`crate::spec`])
//! applied on top of that direction's current profile: `a-to-b rate=300k` steps the rate and
//! keeps the delay and loss, `both floor` replaces both profiles with the preset.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::model::LinkProfile;
use crate::spec::{SpecError, parse_duration};

/// Which direction(s) a change applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// From peer (or namespace) A to B.
    AToB,
    /// From B to A.
    BToA,
    /// Both directions.
    Both,
}

impl Target {
    /// The name used in commands: `a-to-b`, `b-to-a` or `both`.
    pub fn name(self) -> &'static str {
        match self {
            Target::AToB => "a-to-b",
            Target::BToA => "b-to-a",
            Target::Both => "both",
        }
    }

    /// Indexes of the directions concerned: 0 is A→B, 1 is B→A.
    pub fn directions(self) -> &'static [usize] {
        match self {
            Target::AToB => &[0],
            Target::BToA => &[1],
            Target::Both => &[0, 1],
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = ControlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a-to-b" => Ok(Target::AToB),
            "b-to-a" => Ok(Target::BToA),
            "both" => Ok(Target::Both),
            _ => Err(ControlError::Target(s.to_owned())),
        }
    }
}

/// A profile change: a direction and a spec applied on top of its current profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The direction(s) to change.
    pub target: Target,
    /// The spec, already checked to parse.
    pub spec: String,
}

impl Change {
    /// Applies the spec to `profile`.
    pub fn apply_to(&self, profile: &mut LinkProfile) -> Result<(), SpecError> {
        profile.apply_spec(&self.spec)
    }
}

impl FromStr for Change {
    type Err = ControlError;

    /// Parses `DIRECTION SPEC` or `DIRECTION=SPEC`, e.g. `a-to-b rate=300k`.
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim();
        let (target, spec) = line
            .split_once(|c: char| c == '=' || c.is_whitespace())
            .ok_or_else(|| ControlError::MissingSpec(line.to_owned()))?;
        let target = target.parse()?;
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ControlError::MissingSpec(line.to_owned()));
        }
        // Whether a spec parses does not depend on the profile it is applied to.
        LinkProfile::clean().apply_spec(spec)?;
        Ok(Change { target, spec: spec.to_owned() })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.target, self.spec)
    }
}

/// A change that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The direction is not `a-to-b`, `b-to-a` or `both`.
    #[error("unknown direction `{0}`; expected a-to-b, b-to-a or both")]
    Target(String),
    /// The line has a direction but no spec.
    #[error("`{0}`: expected DIRECTION SPEC, e.g. `a-to-b rate=300k` or `both outage`")]
    MissingSpec(String),
    /// The spec is bad.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A schedule item has no `TIME:` prefix or a bad time.
    #[error("schedule item `{0}`: expected TIME:DIRECTION=SPEC, e.g. `20s:a-to-b=rate=300k`")]
    ScheduleItem(String),
}

/// Parses a schedule: `;`-separated `TIME:DIRECTION=SPEC` items, TIME counted from when the
/// link is up (e.g. `20s:a-to-b=rate=300k;50s:a-to-b=rate=2500k`). Returned in time order.
pub fn parse_schedule(text: &str) -> Result<Vec<(Duration, Change)>, ControlError> {
    let mut items = Vec::new();
    for item in text.split(';').map(str::trim).filter(|item| !item.is_empty()) {
        let bad_item = || ControlError::ScheduleItem(item.to_owned());
        let (time, change) = item.split_once(':').ok_or_else(bad_item)?;
        let time = parse_duration("time", time.trim()).map_err(|_| bad_item())?;
        items.push((time, change.parse()?));
    }
    items.sort_by_key(|(time, _)| *time);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse() {
        let cases = [
            ("a-to-b rate=300k", Target::AToB, "rate=300k"),
            ("both outage", Target::Both, "outage"),
            ("  b-to-a   floor,loss=0 ", Target::BToA, "floor,loss=0"),
            ("a-to-b=rate=2500k", Target::AToB, "rate=2500k"),
        ];
        for (line, target, spec) in cases {
            assert_eq!(line.parse(), Ok(Change { target, spec: spec.to_owned() }), "{line}");
        }
    }

    #[test]
    fn bad_changes_say_what_is_wrong() {
        let cases = [
            ("up rate=1M", "unknown direction `up`"),
            ("both", "expected DIRECTION SPEC"),
            ("a-to-b ", "expected DIRECTION SPEC"),
            ("a-to-b rate=fast", "rate: "),
            ("b-to-a delay=1", "delay: "),
        ];
        for (line, message) in cases {
            let error = line.parse::<Change>().expect_err(line).to_string();
            assert!(error.contains(message), "{line}: {error}");
        }
    }

    #[test]
    fn changes_apply_on_top_of_the_current_profile() {
        let mut profile = LinkProfile::floor();
        let change: Change = "a-to-b rate=2500k".parse().unwrap();
        change.apply_to(&mut profile).unwrap();
        assert_eq!(profile, LinkProfile { rate_bps: Some(2_500_000), ..LinkProfile::floor() });
        assert_eq!(Target::Both.directions(), &[0, 1]);
    }

    #[test]
    fn schedules_parse_in_time_order() {
        let schedule = parse_schedule("50s:a-to-b=rate=2500k; 20s:a-to-b=rate=300k;").unwrap();
        let times: Vec<_> = schedule.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(times, [20, 50]);
        assert_eq!(schedule[0].1.to_string(), "a-to-b rate=300k");
        for bad in ["20s a-to-b=rate=1M", "soon:both=outage", "5s:both=warp=9"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }
}
