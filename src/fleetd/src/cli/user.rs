//! `fleetd user`: console users, added from the command line (the password from standard input).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;

use crate::accounts::{Accounts, Role};
use crate::data_dir::DataDir;
use crate::store::Store;

/// `fleetd user` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a console user; the password is read from standard input.
    Add {
        /// Sign-in name: letters, digits, '.', '_', '-' or '@'.
        name: String,
        /// What the user may do.
        #[arg(long, value_enum, default_value = "clinician")]
        role: Role,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// Runs one `fleetd user` subcommand.
pub fn run(command: UserCommand, data_dir: &Path) -> anyhow::Result<()> {
    let UserCommand::Add { name, role, .. } = command;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("cannot read the password")?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let dir = DataDir::prepare(data_dir)?;
    let accounts = Accounts::new(Store::open(&dir.db())?);
    accounts
        .add_user(&name, role, password)
        .with_context(|| format!("cannot add user {name:?}"))?;
    println!("Added {} {name}.", role.as_str());
    Ok(())
}
