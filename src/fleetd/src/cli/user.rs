//! `fleetd user`: console accounts from the command line: add (the password from standard
//! input, optionally with two-step sign-in already set up), list, disable, enable, remove,
//! passwd (from standard input), signout, unlock, reset-mfa, role and clinics (the clinics a
//! clinician's visits or a technician's kiosks belong to), each with `--json`. Works on
//! the database directly; a running fleetd sees each change at the next use of a session.
//! Never prints a password; prints a TOTP secret and recovery codes only when asked to set
//! them up (`add --with-totp`).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use telekiosk_protocol::api::{Me, RecoveryCodes, UserInfo};

use super::{Common, audited, print, when};
use crate::accounts::throttle::{Attempts, Decision, Policy};
use crate::accounts::{Accounts, Role, User};
use crate::audit;
use crate::data_dir::DataDir;
use crate::store::users::AccountState;
use crate::store::{Store, unix_now};

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
        /// A clinic assigned to the user (repeat for more): a clinician sees and joins the
        /// visits of their clinics only, a technician works on their clinics' kiosks only.
        #[arg(long = "clinic")]
        clinics: Vec<String>,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Set up two-step sign-in now and print its secret and recovery codes (to hand to the
        /// user, or for provisioning scripts); otherwise the user sets it up at first sign-in.
        #[arg(long)]
        with_totp: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List console users.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Disable an account: its sessions end at once and it cannot sign in.
    Disable(Named),
    /// Enable a disabled account.
    Enable(Named),
    /// Remove an account; its sessions end at once.
    Remove(Named),
    /// Set a new password, read from standard input; the user's sessions end.
    Passwd {
        #[command(flatten)]
        named: Named,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// End every session of a user.
    Signout(Named),
    /// Lift the lock (and back-off) after failed sign-ins.
    Unlock(Named),
    /// Remove a user's two-step sign-in; they set it up again at their next sign-in.
    ResetMfa(Named),
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

/// A subcommand on one named user.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// The user's sign-in name.
    name: String,
    #[command(flatten)]
    common: Common,
}

/// What a lifecycle subcommand prints with `--json`.
#[derive(Debug, serde::Serialize)]
struct Done<'a> {
    user: &'a str,
    done: &'a str,
}

/// The API's view of an account.
pub fn user_info(a: &AccountState) -> UserInfo {
    let attempts = Attempts { failures: a.failures, last_failure: a.last_failure };
    let now = unix_now();
    let locked_until = match Policy::ACCOUNT.decide(&attempts, now) {
        Decision::Go => None,
        Decision::Wait { secs } | Decision::Locked { secs } => Some(now + secs as i64),
    };
    UserInfo {
        username: a.username.clone(),
        role: a.role.clone(),
        created_at: a.created_at,
        disabled: a.disabled,
        mfa: a.totp_secret.is_some(),
        failures: a.failures,
        locked_until,
        identity_provider: None,
    }
}

/// Every account as the API shows it, with the identity provider of those that use one.
pub fn user_infos(accounts: &Accounts) -> Result<Vec<UserInfo>, crate::accounts::AccountsError> {
    let external: std::collections::HashMap<String, String> =
        accounts.idp_accounts()?.into_iter().collect();
    let mut users: Vec<UserInfo> = accounts.list()?.iter().map(user_info).collect();
    for u in &mut users {
        u.identity_provider = external.get(&u.username).cloned();
    }
    Ok(users)
}

fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("cannot read the password")?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_string())
}

/// Runs one `fleetd user` subcommand.
pub fn run(command: UserCommand, data_dir: &Path) -> anyhow::Result<()> {
    let password = match &command {
        UserCommand::Add { .. } | UserCommand::Passwd { .. } => read_password()?,
        _ => String::new(),
    };
    let dir = DataDir::prepare(data_dir)?;
    let accounts = Accounts::new(Store::open(&dir.db())?);
    let (name, json, done) = match command {
        UserCommand::Add { name, role, clinics, with_totp, common, .. } => {
            let cannot = || format!("cannot add user {name:?}");
            let object = format!("{name} added as {}", role.as_str());
            if with_totp {
                let added = accounts.add_user_with_totp(&name, role, &clinics, &password);
                let (secret, codes) =
                    audited(&dir, audit::ACCOUNT, &object, added)?.with_context(cannot)?;
                let out = RecoveryCodes { totp_secret: Some(secret), recovery_codes: codes };
                return print(common.json, &out, |o| {
                    println!("Added {} {name} with two-step sign-in.", role.as_str());
                    println!("TOTP secret: {}", o.totp_secret.as_deref().unwrap_or(""));
                    println!("Recovery codes (each works once): {}", o.recovery_codes.join(" "));
                });
            }
            let added = accounts.add_user_in(&name, role, &clinics, &password);
            audited(&dir, audit::ACCOUNT, &object, added)?.with_context(cannot)?;
            let done = Done { user: &name, done: "added" };
            let clinics = if clinics.is_empty() { "no clinic".into() } else { clinics.join(", ") };
            return print(common.json, &done, |_| {
                println!("Added {} {name} ({clinics}).", role.as_str())
            });
        }
        UserCommand::List { common } => {
            let users = user_infos(&accounts)?;
            return print(common.json, &users, |users| {
                for u in users {
                    let mut flags = vec![];
                    if let Some(issuer) = &u.identity_provider {
                        flags.push(format!("signs in through {issuer}"));
                    }
                    if u.disabled {
                        flags.push("disabled".to_string());
                    }
                    if !u.mfa && u.identity_provider.is_none() {
                        flags.push("no two-step sign-in yet".to_string());
                    }
                    if let Some(t) = u.locked_until {
                        flags.push(format!("locked until {}", when(t)));
                    }
                    println!("{:<24} {:<10} {}", u.username, u.role, flags.join(", "));
                }
            });
        }
        UserCommand::Disable(Named { name, common }) => {
            audited(
                &dir,
                audit::ACCOUNT,
                &format!("{name} disabled"),
                accounts.set_disabled(&name, true),
            )??;
            (name, common.json, "disabled")
        }
        UserCommand::Enable(Named { name, common }) => {
            audited(
                &dir,
                audit::ACCOUNT,
                &format!("{name} enabled"),
                accounts.set_disabled(&name, false),
            )??;
            (name, common.json, "enabled")
        }
        UserCommand::Remove(Named { name, common }) => {
            audited(&dir, audit::ACCOUNT, &format!("{name} removed"), accounts.remove(&name))??;
            (name, common.json, "removed")
        }
        UserCommand::Passwd { named: Named { name, common }, .. } => {
            audited(
                &dir,
                audit::ACCOUNT,
                &format!("{name} given a new password"),
                accounts.set_password(&name, &password),
            )??;
            (name, common.json, "given a new password")
        }
        UserCommand::Signout(Named { name, common }) => {
            audited(
                &dir,
                audit::ACCOUNT,
                &format!("{name} signed out everywhere"),
                accounts.sign_out_everywhere(&name),
            )??;
            (name, common.json, "signed out everywhere")
        }
        UserCommand::Unlock(Named { name, common }) => {
            audited(&dir, audit::ACCOUNT, &format!("{name} unlocked"), accounts.unlock(&name))??;
            (name, common.json, "unlocked")
        }
        UserCommand::ResetMfa(Named { name, common }) => {
            let reset = accounts.reset_mfa(&name);
            audited(&dir, audit::ACCOUNT, &format!("{name} two-step sign-in reset"), reset)??;
            let done = "reset: two-step sign-in is set up again at the next sign-in";
            (name, common.json, done)
        }
        UserCommand::Role { name, role, common } => {
            let changed = accounts.set_role(&name, role);
            let object = format!("{name} role {}", role.as_str());
            let user = audited(&dir, audit::ACCOUNT, &object, changed)?
                .with_context(|| format!("cannot change the role of {name:?}"))?;
            return show(common.json, &user);
        }
        UserCommand::Clinics { name, clinics, common } => {
            let changed = accounts.set_clinics(&name, &clinics);
            let object = format!("{name} clinics {}", clinics.join(", "));
            let user = audited(&dir, audit::ACCOUNT, &object, changed)?
                .with_context(|| format!("cannot change the clinics of {name:?}"))?;
            return show(common.json, &user);
        }
    };
    print(json, &Done { user: &name, done }, |d| println!("User {} {}.", d.user, d.done))
}

/// A user's role and clinics, as `/api/me` shows them.
fn show(json: bool, user: &User) -> anyhow::Result<()> {
    let (username, role, clinics) =
        (user.username.clone(), user.role.as_str().into(), user.clinics.clone());
    print(json, &Me { username, role, clinics }, |me| {
        let clinics = match me.clinics.as_slice() {
            [] => "no clinic".to_string(),
            c => c.join(", "),
        };
        println!("Changed: {} is {} ({clinics}).", me.username, me.role);
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
