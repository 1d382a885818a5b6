//! Signing in through the identity provider, once its ID token is verified and its claims mapped
//! ([`super::oidc_claims`]): the account of (issuer, subject) is created at its first sign-in,
//! takes the role and clinics of every later one, and gets a full session (a second factor is
//! the provider's business). A locally disabled account is refused whatever the provider says.
//! Never sees or stores a token from the provider; never gives such an account a password.

use std::time::Instant;

use super::oidc_claims::Mapped;
use super::{Accounts, AccountsError, Reach, User, check_username, parse_role};
use crate::store::{StoreError, idp, users};

/// A sign-in through the identity provider that opened a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpSignIn {
    /// The new session's token (for the cookie only).
    pub token: String,
    pub user: User,
    /// The account was created by this sign-in.
    pub created: bool,
    /// What this sign-in changed in an existing account (role, clinics), in words; empty if
    /// nothing.
    pub changed: Vec<String>,
}

impl Accounts {
    /// Signs in the user `mapped` of `issuer`: creates or updates their account, then opens a
    /// full session. Refuses a disabled account, and a first sign-in whose user name is taken by
    /// another account.
    pub fn sign_in_idp(
        &self,
        issuer: &str,
        mapped: &Mapped,
        now: Instant,
    ) -> Result<IdpSignIn, AccountsError> {
        let role = mapped.role.as_str();
        let (username, created, changed) = self.store.write(|c| {
            let found = idp::find(c, issuer, &mapped.subject).map_err(StoreError::from)?;
            let Some(username) = found else {
                check_username(&mapped.username)?;
                if users::user(c, &mapped.username).map_err(StoreError::from)?.is_some() {
                    let taken = StoreError::UserExists(mapped.username.clone());
                    return Err(AccountsError::Store(taken));
                }
                idp::insert(c, &mapped.username, role, issuer, &mapped.subject)?;
                users::set_clinics(c, &mapped.username, &mapped.clinics)
                    .map_err(StoreError::from)?;
                return Ok((mapped.username.clone(), true, vec![]));
            };
            let state = users::state(c, &username).map_err(StoreError::from)?;
            let state = state.ok_or_else(|| AccountsError::NoSuchUser(username.clone()))?;
            if state.disabled {
                return Err(AccountsError::Disabled);
            }
            let mut changed = vec![];
            if state.role != role {
                users::set_role(c, &username, role).map_err(StoreError::from)?;
                changed.push(format!("role {} → {role}", state.role));
            }
            let mut clinics = users::clinics(c, &username).map_err(StoreError::from)?;
            let mut wanted = mapped.clinics.clone();
            clinics.sort();
            wanted.sort();
            if clinics != wanted {
                users::set_clinics(c, &username, &wanted).map_err(StoreError::from)?;
                changed.push(format!("clinics [{}] → [{}]", clinics.join(", "), wanted.join(", ")));
            }
            Ok::<_, AccountsError>((username, false, changed))
        })?;
        let clinics = self.store.read(|c| users::clinics(c, &username))?;
        let user = User { username, role: parse_role(role)?, clinics };
        if !changed.is_empty() {
            // Open sessions take the new role and clinics at their next lookup; tell WebSockets.
            self.revoked.send_modify(|n| *n += 1);
        }
        let token = self.open_session(&user, Reach::Full, now)?;
        Ok(IdpSignIn { token, user, created, changed })
    }

    /// Every account that signs in through an identity provider: (user name, issuer).
    pub fn idp_accounts(&self) -> Result<Vec<(String, String)>, AccountsError> {
        Ok(self.store.read(idp::all)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Role;
    use crate::store::Store;

    const ISSUER: &str = "https://idp.example";

    fn lee(role: Role, clinics: &[&str]) -> Mapped {
        Mapped {
            subject: "sub-lee".into(),
            username: "dr.lee".into(),
            role,
            clinics: clinics.iter().map(|c| c.to_string()).collect(),
            mfa: true,
            amr: vec!["pwd".into(), "otp".into()],
        }
    }

    #[test]
    fn the_first_sign_in_creates_the_account_and_opens_a_full_session() {
        let accounts = Accounts::new(Store::in_memory());
        let now = Instant::now();
        let first = accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &["North"]), now).unwrap();
        assert!(first.created);
        assert_eq!(first.user.clinics, ["North"]);
        assert_eq!(accounts.lookup(&first.token, now, false).unwrap().1, Reach::Full);
        assert_eq!(accounts.idp_accounts().unwrap(), [("dr.lee".into(), ISSUER.into())]);
    }

    #[test]
    fn a_later_sign_in_takes_the_role_and_clinics_the_provider_gives_now() {
        let accounts = Accounts::new(Store::in_memory());
        let now = Instant::now();
        accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &["North"]), now).unwrap();
        let same = accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &["North"]), now).unwrap();
        assert!(!same.created);
        assert!(same.changed.is_empty(), "{:?}", same.changed);
        let moved = accounts.sign_in_idp(ISSUER, &lee(Role::Technician, &["East"]), now).unwrap();
        assert_eq!(moved.changed.len(), 2, "{:?}", moved.changed);
        let user = accounts.user("dr.lee").unwrap();
        assert_eq!((user.role, user.clinics), (Role::Technician, vec!["East".to_string()]));
    }

    #[test]
    fn a_disabled_account_is_refused_even_with_a_valid_token() {
        let accounts = Accounts::new(Store::in_memory());
        let now = Instant::now();
        accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &[]), now).unwrap();
        accounts.set_disabled("dr.lee", true).unwrap();
        let again = accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &[]), now);
        assert!(matches!(again, Err(AccountsError::Disabled)), "{again:?}");
    }

    #[test]
    fn a_local_accounts_name_is_not_taken_over_and_an_idp_account_has_no_password() {
        let accounts = Accounts::new(Store::in_memory());
        let now = Instant::now();
        accounts.add_user("dr.lee", Role::FleetAdmin, "a long local password 1").unwrap();
        let taken = accounts.sign_in_idp(ISSUER, &lee(Role::Clinician, &[]), now);
        assert!(matches!(taken, Err(AccountsError::Store(StoreError::UserExists(_)))), "{taken:?}");
        let other = Mapped { username: "lee2".into(), ..lee(Role::Clinician, &[]) };
        accounts.sign_in_idp(ISSUER, &other, now).unwrap();
        for password in ["", crate::store::idp::NO_PASSWORD, "!identity-provider"] {
            let local = accounts.sign_in("lee2", password, None, now);
            assert!(matches!(local, Err(AccountsError::WrongCredentials)), "{local:?}");
        }
        accounts.set_password("lee2", "a password an admin set 9").unwrap();
        let set = accounts.sign_in("lee2", "a password an admin set 9", None, now);
        assert!(matches!(set, Err(AccountsError::WrongCredentials)), "{set:?}");
    }
}
