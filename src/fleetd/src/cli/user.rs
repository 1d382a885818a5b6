//! `fleetd user`: console users, added from the command line (the password from standard
//! input), their role and the clinics assigned to them.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use telekiosk_protocol::api::Me;

use super::{Common, print, unix_user};
use crate::accounts::{Accounts, Role, User};
use crate::data_dir::DataDir;
use crate::store::Store;

/// `fleetd user` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a console user; the password is read from standard input.
    Add {
        /// Sign-in name: letters, digits, '.', '_', '-' or '@'.
        name: String,
        /// What the user may do: admin, clinician, auditor or technician.
        #[arg(long, value_enum, default_value = "clinician")]
        role: Role,
        /// A clinic assigned to the user (repeat for several): a clinician sees its visits, a
        /// technician tends its kiosks. Spelt as in the kiosks' enrolment codes.
        #[arg(long = "clinic", value_name = "CLINIC")]
        clinics: Vec<String>,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Change a user's role; their open sessions take it at their next request.
    Role {
        /// Sign-in name.
        name: String,
        /// The new role: admin, clinician, auditor or technician.
        #[arg(value_enum)]
        role: Role,
        #[command(flatten)]
        common: Common,
    },
    /// Replace the clinics assigned to a user (none given: no clinic); their open sessions take
    /// them at their next request (an open console connection keeps its queue until it
    /// reconnects).
    Clinics {
        /// Sign-in name.
        name: String,
        /// Every clinic the user is to have.
        clinics: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs one `fleetd user` subcommand.
pub fn run(command: UserCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, role, clinics, common, .. } => {
            add(data_dir, &name, role, &clinics, common.json)
        }
        UserCommand::Role { name, role, common } => set_role(data_dir, &name, role, common.json),
        UserCommand::Clinics { name, clinics, common } => {
            set_clinics(data_dir, &name, &clinics, common.json)
        }
    }
}

fn accounts(data_dir: &Path) -> anyhow::Result<Accounts> {
    let dir = DataDir::prepare(data_dir)?;
    Ok(Accounts::new(Store::open(&dir.db())?))
}

fn add(
    data_dir: &Path,
    name: &str,
    role: Role,
    clinics: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("cannot read the password")?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let accounts = accounts(data_dir)?;
    accounts
        .add_user_in(name, role, clinics, password)
        .with_context(|| format!("cannot add user {name:?}"))?;
    let user = accounts.user(name)?;
    audit(&user, "user added");
    show(json, &user, "Added")
}

fn set_role(data_dir: &Path, name: &str, role: Role, json: bool) -> anyhow::Result<()> {
    let user = accounts(data_dir)?
        .set_role(name, role)
        .with_context(|| format!("cannot change the role of {name:?}"))?;
    audit(&user, "user role changed");
    show(json, &user, "Changed")
}

fn set_clinics(data_dir: &Path, name: &str, clinics: &[String], json: bool) -> anyhow::Result<()> {
    let user = accounts(data_dir)?
        .set_clinics(name, clinics)
        .with_context(|| format!("cannot change the clinics of {name:?}"))?;
    audit(&user, "user clinics changed");
    show(json, &user, "Changed")
}

/// The one audit line of an account change made from the command line.
fn audit(user: &User, what: &str) {
    let by = format!("cli:{}", unix_user());
    let (role, clinics) = (user.role.as_str(), user.clinics.join(", "));
    tracing::info!(target: "fleetd::audit", %by, user = %user.username, role, %clinics, "{what}");
}

fn show(json: bool, user: &User, verb: &str) -> anyhow::Result<()> {
    let me = Me {
        username: user.username.clone(),
        role: user.role.as_str().into(),
        clinics: user.clinics.clone(),
    };
    print(json, &me, |me| {
        let clinics = match me.clinics.as_slice() {
            [] => "no clinic".to_string(),
            c => c.join(", "),
        };
        println!("{verb} {} {} ({clinics}).", me.role, me.username);
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Option<super::UserCommand> {
        let cli = Cli::try_parse_from([&["fleetd", "user"][..], args].concat()).ok()?;
        match cli.command {
            Command::User { command } => Some(command),
            _ => None,
        }
    }

    #[test]
    fn user_add_takes_repeated_clinics_and_role_and_clinics_take_json() {
        let add = ["add", "t", "--role", "technician", "--clinic", "A", "--clinic", "B C"];
        let Some(super::UserCommand::Add { role, clinics, .. }) =
            parse(&[&add[..], &["--password-stdin", "--json"]].concat())
        else {
            panic!("user add did not parse");
        };
        assert_eq!(
            (role, clinics),
            (crate::access::Role::Technician, vec!["A".into(), "B C".into()])
        );
        assert!(parse(&["role", "t", "auditor", "--json"]).is_some());
        assert!(parse(&["role", "t", "root"]).is_none(), "an unknown role was accepted");
        assert!(parse(&["clinics", "t", "A", "B", "--json"]).is_some());
        assert!(parse(&["clinics", "t"]).is_some(), "clearing every clinic is refused");
    }
}
