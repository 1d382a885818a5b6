//! Audit records rendered for an auditor: CSV (one row per record, a header first) or JSON (an
//! array of records), and the dates an export is asked for. Pure: records in, text out. It
//! never adds anything the records do not hold, and defuses cells a spreadsheet would run as
//! a formula.

use time::{Date, Month};

use super::chain::Record;
pub use super::chain::rfc3339_ms;

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// A JSON array.
    Json,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    /// `csv` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// `YYYY-MM-DD` (UTC) → the Unix milliseconds at its start. `--to` exports up to the end of its
/// day, so callers add a day to it ([`DAY_MS`]).
pub fn parse_date(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a date: write YYYY-MM-DD, e.g. 2026-11-30");
    let mut parts = s.splitn(3, '-');
    let mut next = || parts.next().ok_or_else(bad);
    let (y, m, d) = (next()?, next()?, next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// `records` as `format`.
pub fn render(records: &[Record], format: Format) -> String {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).expect("records serialise");
                    v["at"] = rfc3339_ms(r.at_ms).into();
                    v
                })
                .collect();
            serde_json::to_string_pretty(&rows).expect("values serialise") + "\n"
        }
        Format::Csv => {
            let mut out = String::from("seq,at,actor,action,object,where,outcome,detail,hash\n");
            for r in records {
                let cells = [
                    r.seq.to_string(),
                    rfc3339_ms(r.at_ms),
                    r.actor.clone(),
                    r.action.clone(),
                    r.object.clone(),
                    r.place.clone(),
                    r.outcome.clone(),
                    r.detail.clone(),
                    r.hash.clone(),
                ];
                let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                out += &row.join(",");
                out.push('\n');
            }
            out
        }
    }
}

/// One CSV cell: quoted when it must be, and a leading `=`, `+`, `-` or `@` defused with `'`.
fn csv_cell(text: &str) -> String {
    let text = match text.starts_with(['=', '+', '-', '@']) && text != "-" {
        true => format!("'{text}"),
        false => text.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Entry, GENESIS};

    #[test]
    fn dates_are_whole_utc_days() {
        assert_eq!(parse_date("1970-01-02"), Ok(DAY_MS));
        assert_eq!(parse_date("2026-11-30").unwrap() % DAY_MS, 0);
        for bad in ["", "2026-11", "2026-13-01", "2026-02-30", "26-11-30", "2026-11-30T00"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_and_defuses_cells() {
        let entry = Entry::new("user:=cmd|' /C calc'!A0", "session.sign_in", "a,\"b\"", "-");
        let csv = render(&[Record::seal(entry, 1, 0, GENESIS)], Format::Csv);
        let row = csv.lines().nth(1).unwrap();
        assert!(row.contains("\"a,\"\"b\"\"\""), "{row}");
        assert!(row.contains("user:=cmd"), "{row}");
        let formula = Entry::new("@SUM(A1)", "session.sign_in", "-", "-");
        let csv = render(&[Record::seal(formula, 1, 0, GENESIS)], Format::Csv);
        assert!(csv.contains(",'@SUM(A1),"), "{csv}");
    }

    #[test]
    fn json_has_every_field_and_a_readable_time() {
        let r = Record::seal(Entry::new("system", "audit.prune", "x", "y"), 1, 1500, GENESIS);
        let v: serde_json::Value = serde_json::from_str(&render(&[r], Format::Json)).unwrap();
        assert_eq!(v[0]["where"], "y");
        assert_eq!(v[0]["at"], "1970-01-01T00:00:01.5Z");
    }
}
