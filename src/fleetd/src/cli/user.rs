//! `fleetd user`: console accounts from the command line: add (the password from standard
//! input, optionally with two-step sign-in already set up), list, disable, enable, remove,
//! passwd (from standard input), signout, unlock and reset-mfa, each with `--json`. Works on
//! the database directly; a running fleetd sees each change at the next use of a session.
//! Never prints a password; prints a TOTP secret and recovery codes only when asked to set
//! them up (`add --with-totp`).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use telekiosk_protocol::api::{RecoveryCodes, UserInfo};

use super::{Common, print, unix_user, when};
use crate::accounts::throttle::{Attempts, Decision, Policy};
use crate::accounts::{Accounts, Role};
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
    }
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
        UserCommand::Add { name, role, with_totp, common, .. } => {
            let cannot = || format!("cannot add user {name:?}");
            if with_totp {
                let (secret, codes) =
                    accounts.add_user_with_totp(&name, role, &password).with_context(cannot)?;
                let out = RecoveryCodes { totp_secret: Some(secret), recovery_codes: codes };
                return print(common.json, &out, |o| {
                    println!("Added {} {name} with two-step sign-in.", role.as_str());
                    println!("TOTP secret: {}", o.totp_secret.as_deref().unwrap_or(""));
                    println!("Recovery codes (each works once): {}", o.recovery_codes.join(" "));
                });
            }
            accounts.add_user(&name, role, &password).with_context(cannot)?;
            tracing::info!(target: "fleetd::audit", user = %name, by = %unix_user(), "user added");
            let done = Done { user: &name, done: "added" };
            return print(common.json, &done, |_| println!("Added {} {name}.", role.as_str()));
        }
        UserCommand::List { common } => {
            let users: Vec<UserInfo> = accounts.list()?.iter().map(user_info).collect();
            return print(common.json, &users, |users| {
                for u in users {
                    let mut flags = vec![];
                    if u.disabled {
                        flags.push("disabled".to_string());
                    }
                    if !u.mfa {
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
            accounts.set_disabled(&name, true)?;
            (name, common.json, "disabled")
        }
        UserCommand::Enable(Named { name, common }) => {
            accounts.set_disabled(&name, false)?;
            (name, common.json, "enabled")
        }
        UserCommand::Remove(Named { name, common }) => {
            accounts.remove(&name)?;
            (name, common.json, "removed")
        }
        UserCommand::Passwd { named: Named { name, common }, .. } => {
            accounts.set_password(&name, &password)?;
            (name, common.json, "given a new password")
        }
        UserCommand::Signout(Named { name, common }) => {
            accounts.sign_out_everywhere(&name)?;
            (name, common.json, "signed out everywhere")
        }
        UserCommand::Unlock(Named { name, common }) => {
            accounts.unlock(&name)?;
            (name, common.json, "unlocked")
        }
        UserCommand::ResetMfa(Named { name, common }) => {
            accounts.reset_mfa(&name)?;
            (name, common.json, "reset: two-step sign-in is set up again at the next sign-in")
        }
    };
    tracing::info!(target: "fleetd::audit", user = %name, by = %unix_user(), "user {done}");
    print(json, &Done { user: &name, done }, |d| println!("User {} {}.", d.user, d.done))
}
