//! `fleetd audit …`: checks the audit trail (`verify`) and exports it (`export`), on the data
//! directory directly, whether or not `fleetd serve` is running. An export is itself recorded.
//! Never changes a record.

use std::io::Write;

use anyhow::bail;

use super::unix_user;
use crate::audit::export::{DAY_MS, Format, parse_date, render};
use crate::audit::{self, Audit, Entry, VerifyError};
use crate::data_dir::DataDir;

/// `fleetd audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no record was changed, removed or reordered (exit 0 if intact).
    Verify,
    /// Print the records of a date range (UTC days, both included) on stdout.
    Export {
        /// First day, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        from: i64,
        /// Last day, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        to: i64,
        /// csv or json.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
    },
}

/// Runs one `fleetd audit` subcommand.
pub fn run(command: AuditCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = DataDir::prepare(data_dir)?;
    let trail = Audit::open(&dir)?;
    match command {
        AuditCommand::Verify => match trail.verify() {
            Ok(v) => {
                println!(
                    "audit trail intact: {} records, head {} {}",
                    v.records, v.head.seq, v.head.hash
                );
                Ok(())
            }
            Err(VerifyError::Broken(b)) => bail!("audit trail broken: {b}"),
            Err(e) => Err(e.into()),
        },
        AuditCommand::Export { from, to, format } => {
            if to < from {
                bail!("--to is before --from");
            }
            let records = trail.between(from, to + DAY_MS)?;
            let mut out = std::io::stdout().lock();
            out.write_all(render(&records, format).as_bytes())?;
            out.flush()?;
            let range = format!(
                "{}..{}",
                audit::export::rfc3339_ms(from),
                audit::export::rfc3339_ms(to + DAY_MS)
            );
            let detail = format!("{} records as {}", records.len(), format.as_str());
            trail.append(
                Entry::new(&audit::cli(&unix_user()), audit::EXPORT, &range, "cli").detail(&detail),
            )?;
            trail.write_head()?;
            Ok(())
        }
    }
}
