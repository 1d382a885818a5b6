//! Opening hours: whether the kiosk takes visits at a given moment, in the clinic's time zone.
//!
//! Owns: turning the config's periods (`"HH:MM"`, local time, per weekday) into a yes/no for a
//! local date-time. Pure apart from looking the IANA zone up once in the system tz database
//! ([`Schedule::new`]); the moment is always injected, so tests need no clock. Must never: close
//! the kiosk on a visit in progress (that is the visit state machine's rule: it only gates Join).

use jiff::civil::{DateTime, Weekday as CivilDay};
use jiff::tz::TimeZone;
use telekiosk_protocol::config::{ConfigBody, OpeningHours, Weekday};

/// Why a schedule could not be made.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HoursError {
    /// The time zone is not in this system's tz database.
    #[error("time zone {0:?} is not an IANA time zone known to this kiosk")]
    UnknownZone(String),
    /// A period's time is not `HH:MM` (the config check refuses these before they get here).
    #[error("opening hours time {0:?} is not HH:MM")]
    BadTime(String),
}

/// One open period: a weekday, minutes since local midnight `[open, close)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    day: CivilDay,
    open: u32,
    close: u32,
}

/// When the kiosk is open, and what it shows when it is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    zone: TimeZone,
    /// Empty: always open.
    periods: Vec<Period>,
    message: String,
}

impl Schedule {
    /// The schedule of a config body; looks its time zone up in the system tz database.
    pub fn new(body: &ConfigBody) -> Result<Schedule, HoursError> {
        let zone = TimeZone::get(&body.timezone)
            .map_err(|_| HoursError::UnknownZone(body.timezone.clone()))?;
        Schedule::with_zone(zone, &body.opening_hours, &body.out_of_service_message)
    }

    /// A schedule that is always open (built-in defaults).
    pub fn always_open() -> Schedule {
        Schedule { zone: TimeZone::UTC, periods: vec![], message: String::new() }
    }

    /// A schedule in `zone`.
    pub fn with_zone(
        zone: TimeZone,
        hours: &[OpeningHours],
        message: &str,
    ) -> Result<Schedule, HoursError> {
        let periods = hours
            .iter()
            .map(|h| {
                Ok(Period {
                    day: civil_day(h.day),
                    open: minutes(&h.open)?,
                    close: minutes(&h.close)?,
                })
            })
            .collect::<Result<_, HoursError>>()?;
        Ok(Schedule { zone, periods, message: message.to_string() })
    }

    /// True when the clinic is open at local date-time `local`: some period of that weekday has
    /// `open <= time < close`. No periods means always open.
    pub fn is_open_local(&self, local: DateTime) -> bool {
        if self.periods.is_empty() {
            return true;
        }
        let now = local.hour() as u32 * 60 + local.minute() as u32;
        self.periods.iter().any(|p| p.day == local.weekday() && p.open <= now && now < p.close)
    }

    /// No opening hours are set (always open).
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// `None` when open at instant `at`; otherwise the out-of-service message to show.
    pub fn closed_message(&self, at: jiff::Timestamp) -> Option<&str> {
        let local = at.to_zoned(self.zone.clone()).datetime();
        (!self.is_open_local(local)).then_some(self.message.as_str())
    }
}

impl Schedule {
    /// The open periods of the clinic's day at instant `at`, as (open, close) minutes since
    /// local midnight, in order; empty when always open or closed all day.
    pub fn hours_on(&self, at: jiff::Timestamp) -> Vec<(u32, u32)> {
        let day = at.to_zoned(self.zone.clone()).datetime().weekday();
        let mut hours: Vec<(u32, u32)> =
            self.periods.iter().filter(|p| p.day == day).map(|p| (p.open, p.close)).collect();
        hours.sort_unstable();
        hours
    }
}

fn civil_day(day: Weekday) -> CivilDay {
    match day {
        Weekday::Mon => CivilDay::Monday,
        Weekday::Tue => CivilDay::Tuesday,
        Weekday::Wed => CivilDay::Wednesday,
        Weekday::Thu => CivilDay::Thursday,
        Weekday::Fri => CivilDay::Friday,
        Weekday::Sat => CivilDay::Saturday,
        Weekday::Sun => CivilDay::Sunday,
    }
}

fn minutes(hh_mm: &str) -> Result<u32, HoursError> {
    let bad = || HoursError::BadTime(hh_mm.to_string());
    let (h, m) = hh_mm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn hours(day: Weekday, open: &str, close: &str) -> OpeningHours {
        OpeningHours { day, open: open.into(), close: close.into() }
    }

    fn weekdays_9_to_17() -> Vec<OpeningHours> {
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
            .into_iter()
            .map(|d| hours(d, "09:00", "17:00"))
            .collect()
    }

    #[test]
    fn open_from_opening_time_until_just_before_closing_on_listed_days_only() {
        let s = Schedule::with_zone(TimeZone::UTC, &weekdays_9_to_17(), "Closed").unwrap();
        // 2025-03-03 is a Monday.
        let table = [
            (date(2025, 3, 3).at(8, 59, 59, 0), false, "a minute before opening"),
            (date(2025, 3, 3).at(9, 0, 0, 0), true, "at opening"),
            (date(2025, 3, 3).at(12, 30, 0, 0), true, "midday"),
            (date(2025, 3, 3).at(16, 59, 59, 0), true, "last minute"),
            (date(2025, 3, 3).at(17, 0, 0, 0), false, "at closing"),
            (date(2025, 3, 7).at(10, 0, 0, 0), true, "Friday"),
            (date(2025, 3, 8).at(10, 0, 0, 0), false, "Saturday"),
            (date(2025, 3, 9).at(10, 0, 0, 0), false, "Sunday"),
        ];
        for (local, open, what) in table {
            assert_eq!(s.is_open_local(local), open, "{what}: {local}");
        }
    }

    #[test]
    fn several_periods_on_one_day_leave_the_lunch_break_closed() {
        let split = [hours(Weekday::Sat, "08:00", "12:00"), hours(Weekday::Sat, "13:00", "16:30")];
        let s = Schedule::with_zone(TimeZone::UTC, &split, "Closed").unwrap();
        let sat = date(2025, 3, 8);
        assert!(s.is_open_local(sat.at(11, 59, 0, 0)));
        assert!(!s.is_open_local(sat.at(12, 30, 0, 0)));
        assert!(s.is_open_local(sat.at(16, 29, 0, 0)));
        assert!(!s.is_open_local(sat.at(16, 30, 0, 0)));
    }

    #[test]
    fn no_periods_means_always_open() {
        let s = Schedule::with_zone(TimeZone::UTC, &[], "Closed").unwrap();
        assert!(s.is_open_local(date(2025, 3, 9).at(3, 0, 0, 0)));
        assert_eq!(Schedule::always_open().closed_message(jiff::Timestamp::UNIX_EPOCH), None);
    }

    #[test]
    fn the_clinics_time_zone_decides_and_the_message_is_shown_when_closed() {
        let body = ConfigBody {
            timezone: "America/New_York".into(),
            opening_hours: weekdays_9_to_17(),
            out_of_service_message: "Back Monday at 9".into(),
            ..ConfigBody::default()
        };
        let s = Schedule::new(&body).unwrap();
        // Monday 2025-03-03 13:30 UTC = 08:30 in New York (EST): closed, though open in UTC.
        let early: jiff::Timestamp = "2025-03-03T13:30:00Z".parse().unwrap();
        assert_eq!(s.closed_message(early), Some("Back Monday at 9"));
        // 21:30 UTC = 16:30 EST: open, though 21:30 is closed in UTC.
        let late: jiff::Timestamp = "2025-03-03T21:30:00Z".parse().unwrap();
        assert_eq!(s.closed_message(late), None);
        // After the switch to summer time (2025-03-09), 13:30 UTC = 09:30 EDT: open.
        let summer: jiff::Timestamp = "2025-03-10T13:30:00Z".parse().unwrap();
        assert_eq!(s.closed_message(summer), None);
    }

    #[test]
    fn an_unknown_time_zone_is_an_error_naming_it() {
        let body = ConfigBody { timezone: "Mars/Olympus_Mons".into(), ..ConfigBody::default() };
        assert_eq!(Schedule::new(&body), Err(HoursError::UnknownZone("Mars/Olympus_Mons".into())));
    }
}
