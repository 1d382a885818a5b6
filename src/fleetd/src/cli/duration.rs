//! The one duration syntax of fleetd's command line and `serve` options: a whole number and a
//! unit (`90s`, `15m`, `2h`, `7d`, `6y`).

use std::time::Duration;

/// A duration such as `90s`, `15m`, `2h`, `7d` or `6y` (365 days a year): a whole number and a
/// unit, at least 1 s.
/// Callers bound it further.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a duration: write a number and a unit (s, m, h, d or y), e.g. 15m")
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs) {
        Some(0) => Err(format!("{s:?} is too short: at least 1s")),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_fit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("6y"), Ok(Duration::from_secs(6 * 365 * 86_400)));
        for bad in ["", "15", "m", "24x", "-1h", "1.5h", "0s", "99999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
