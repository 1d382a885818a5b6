use std::net::IpAddr;

use super::*;
use crate::store::unix_now;

const PW: &str = "correct horse";

fn settings(require_mfa: RequireMfa) -> Settings {
    Settings { require_mfa, ..Settings::default() }
}

/// Alice, a clinician, where only admins must use two-step sign-in.
fn accounts_with_alice() -> Accounts {
    let accounts = Accounts::with_settings(Store::in_memory(), settings(RequireMfa::Admins));
    accounts.add_user("alice", Role::Clinician, PW).unwrap();
    accounts
}

fn session_token(signed: SignIn) -> String {
    match signed {
        SignIn::Session { token, .. } => token,
        other => panic!("expected a session, got {other:?}"),
    }
}

fn sign_in(
    accounts: &Accounts,
    user: &str,
    password: &str,
    now: Instant,
) -> Result<SignIn, AccountsError> {
    accounts.sign_in(user, password, None, now)
}

fn code_now(secret: &str) -> String {
    totp::code_at(secret, unix_now() as u64).unwrap()
}

#[test]
fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
    let hash = hash_password("alice", PW).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verify_password(&hash, PW));
    assert!(!verify_password(&hash, "correct horsE"));
    assert!(!verify_password("not a hash", PW));
}

#[test]
fn the_same_password_hashes_differently_each_time() {
    assert_ne!(hash_password("a", PW).unwrap(), hash_password("a", PW).unwrap());
}

#[test]
fn a_password_breaking_the_policy_is_refused_for_admins_too() {
    let accounts = Accounts::new(Store::in_memory());
    for bad in ["short", "password1234", "bob-the-admin"] {
        let refused = accounts.add_user("bob-the-admin", Role::FleetAdmin, bad);
        assert!(matches!(refused, Err(AccountsError::Policy(_))), "{bad}");
    }
}

#[test]
fn signing_in_gives_a_256_bit_token_that_identifies_the_user() {
    let accounts = accounts_with_alice();
    let now = Instant::now();
    let signed = sign_in(&accounts, "alice", PW, now).unwrap();
    let SignIn::Session { token, user, reach: scope } = signed else { panic!() };
    assert_eq!(token.len(), 64);
    assert_eq!(scope, Reach::Full);
    assert_eq!(user, User { username: "alice".into(), role: Role::Clinician, clinics: vec![] });
    assert_eq!(accounts.session(&token, now), Some(user));
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_refusal() {
    let accounts = accounts_with_alice();
    let now = Instant::now();
    for (user, password) in [("alice", "wrong password"), ("mallory", PW)] {
        let refused = sign_in(&accounts, user, password, now);
        assert!(matches!(refused, Err(AccountsError::WrongCredentials)), "{user}");
    }
}

#[test]
fn a_session_idle_for_fifteen_minutes_is_gone_but_use_keeps_it_alive() {
    let accounts = accounts_with_alice();
    let t0 = Instant::now();
    let token = session_token(sign_in(&accounts, "alice", PW, t0).unwrap());
    let t1 = t0 + Duration::from_secs(14 * 60);
    assert!(accounts.session(&token, t1).is_some());
    assert!(accounts.session(&token, t1 + Duration::from_secs(14 * 60)).is_some());
    assert!(accounts.session(&token, t1 + Duration::from_secs(44 * 60)).is_none());
}

#[test]
fn a_lookup_without_touch_does_not_extend_the_session() {
    let accounts = accounts_with_alice();
    let t0 = Instant::now();
    let token = session_token(sign_in(&accounts, "alice", PW, t0).unwrap());
    for minute in [5, 10, 14] {
        assert!(accounts.lookup(&token, t0 + Duration::from_secs(minute * 60), false).is_some());
    }
    assert!(accounts.lookup(&token, t0 + Duration::from_secs(15 * 60), false).is_none());
}

#[test]
fn a_session_in_use_still_ends_after_twelve_hours() {
    let accounts = accounts_with_alice();
    let t0 = Instant::now();
    let token = session_token(sign_in(&accounts, "alice", PW, t0).unwrap());
    let mut t = t0;
    while t < t0 + Duration::from_secs(12 * 3600 - 600) {
        t += Duration::from_secs(600);
        assert!(accounts.session(&token, t).is_some());
    }
    assert!(accounts.session(&token, t0 + SESSION_LIFETIME).is_none());
}

#[test]
fn a_session_outlives_a_restart_but_not_sign_out_and_the_store_never_holds_the_token() {
    let accounts = accounts_with_alice();
    let now = Instant::now();
    let token = session_token(sign_in(&accounts, "alice", PW, now).unwrap());
    let other = session_token(sign_in(&accounts, "alice", PW, now).unwrap());
    assert!(
        accounts.store.read(|c| users::session(c, &token)).unwrap().is_none(),
        "the token itself is stored"
    );
    let user = accounts.session(&token, now);
    let restarted = Accounts::with_settings(accounts.store, settings(RequireMfa::Admins));
    assert_eq!(restarted.session(&token, now), user);
    restarted.sign_out(&other);
    let again = Accounts::new(restarted.store);
    assert!(again.session(&other, now).is_none());
    assert!(again.session("not-a-token", now).is_none());
}

#[test]
fn signing_out_ends_the_session() {
    let accounts = accounts_with_alice();
    let now = Instant::now();
    let token = session_token(sign_in(&accounts, "alice", PW, now).unwrap());
    accounts.sign_out(&token);
    assert!(accounts.session(&token, now).is_none());
}

#[test]
fn a_user_who_must_enrol_gets_an_enrol_only_session_until_a_code_confirms() {
    let accounts = Accounts::new(Store::in_memory());
    accounts.add_user("cleo", Role::Clinician, PW).unwrap();
    let now = Instant::now();
    let SignIn::Session { token, reach: scope, .. } = sign_in(&accounts, "cleo", PW, now).unwrap()
    else {
        panic!()
    };
    assert_eq!(scope, Reach::EnrolOnly);
    assert!(accounts.session(&token, now).is_none(), "an enrol-only session reaches nothing");
    let enrolment = accounts.enrol_start("cleo").unwrap();
    assert!(enrolment.qr_svg.contains("<svg"));
    let wrong = accounts.enrol_confirm(&token, "cleo", "000000");
    assert!(matches!(wrong, Err(AccountsError::WrongCode)));
    let codes = accounts.enrol_confirm(&token, "cleo", &code_now(&enrolment.secret)).unwrap();
    assert_eq!(codes.len(), 10);
    assert!(accounts.session(&token, now).is_some());
    assert!(matches!(accounts.enrol_start("cleo"), Err(AccountsError::MfaAlreadySet)));
}

#[test]
fn with_totp_the_password_alone_opens_no_session_and_a_code_is_used_once() {
    let accounts = Accounts::new(Store::in_memory());
    let (secret, _) = accounts.add_user_with_totp("ada", Role::FleetAdmin, &[], PW).unwrap();
    let now = Instant::now();
    let pending = || match sign_in(&accounts, "ada", PW, now).unwrap() {
        SignIn::Code { pending } => pending,
        other => panic!("{other:?}"),
    };
    let p = pending();
    let wrong = accounts.sign_in_code(&p, "000000", None, now);
    assert!(matches!(wrong, Err(AccountsError::WrongCode)), "{wrong:?}");
    let code = code_now(&secret);
    let (token, user) = accounts.sign_in_code(&p, &code, None, now).unwrap();
    assert_eq!(user.role, Role::FleetAdmin);
    assert!(accounts.session(&token, now).is_some());
    assert!(matches!(
        accounts.sign_in_code(&p, &code, None, now),
        Err(AccountsError::PendingExpired)
    ));
    let replay = accounts.sign_in_code(&pending(), &code, None, now);
    assert!(matches!(replay, Err(AccountsError::UsedCode)), "{replay:?}");
}

#[test]
fn a_recovery_code_works_once() {
    let accounts = Accounts::new(Store::in_memory());
    let (_, codes) = accounts.add_user_with_totp("ada", Role::FleetAdmin, &[], PW).unwrap();
    let now = Instant::now();
    let pending = || match sign_in(&accounts, "ada", PW, now).unwrap() {
        SignIn::Code { pending } => pending,
        other => panic!("{other:?}"),
    };
    assert!(accounts.sign_in_code(&pending(), &codes[3].to_uppercase(), None, now).is_ok());
    let again = accounts.sign_in_code(&pending(), &codes[3], None, now);
    assert!(matches!(again, Err(AccountsError::WrongCode)), "{again:?}");
}

#[test]
fn ten_failures_lock_an_account_without_checking_the_password_and_unlock_lifts_it() {
    let accounts = Accounts::with_settings(
        Store::in_memory(),
        Settings {
            account: Policy::ACCOUNT.with_base(Duration::ZERO),
            ..settings(RequireMfa::Admins)
        },
    );
    accounts.add_user("alice", Role::Clinician, PW).unwrap();
    let now = Instant::now();
    for _ in 0..10 {
        assert!(matches!(
            sign_in(&accounts, "alice", "wrong password", now),
            Err(AccountsError::WrongCredentials)
        ));
    }
    let locked = sign_in(&accounts, "alice", PW, now);
    assert!(matches!(locked, Err(AccountsError::Locked { secs }) if secs > 800), "{locked:?}");
    accounts.unlock("alice").unwrap();
    assert!(sign_in(&accounts, "alice", PW, now).is_ok());
}

#[test]
fn an_address_that_keeps_failing_waits_before_it_is_heard_again() {
    let address = Policy { free: 2, base: Duration::from_secs(600), ..Policy::ADDRESS };
    let accounts = Accounts::with_settings(
        Store::in_memory(),
        Settings { address, ..settings(RequireMfa::Admins) },
    );
    accounts.add_user("alice", Role::Clinician, PW).unwrap();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let now = Instant::now();
    for n in 0..3 {
        let r = accounts.sign_in(&format!("nobody{n}"), "wrong password", Some(ip), now);
        assert!(matches!(r, Err(AccountsError::WrongCredentials)), "{n}: {r:?}");
    }
    let r = accounts.sign_in("alice", PW, Some(ip), now);
    assert!(matches!(r, Err(AccountsError::Throttled { .. })), "{r:?}");
    assert!(accounts.sign_in("alice", PW, Some("192.0.2.8".parse().unwrap()), now).is_ok());
}

#[test]
fn disabling_or_removing_an_account_ends_its_sessions_at_once() {
    let accounts = accounts_with_alice();
    accounts.add_user("bob", Role::Clinician, PW).unwrap();
    let now = Instant::now();
    let alice = session_token(sign_in(&accounts, "alice", PW, now).unwrap());
    let bob = session_token(sign_in(&accounts, "bob", PW, now).unwrap());
    let mut told = accounts.revocations();
    accounts.set_disabled("alice", true).unwrap();
    assert!(told.has_changed().unwrap());
    assert!(accounts.session(&alice, now).is_none());
    assert!(matches!(sign_in(&accounts, "alice", PW, now), Err(AccountsError::Disabled)));
    accounts.set_disabled("alice", false).unwrap();
    assert!(sign_in(&accounts, "alice", PW, now).is_ok());
    // A change the CLI makes in the store directly counts at the next lookup.
    accounts.store.write(|c| users::delete_user(c, "bob")).unwrap();
    assert!(accounts.session(&bob, now).is_none());
    told.mark_unchanged();
}

#[test]
fn a_maintenance_code_is_4_to_12_digits_and_its_hash_verifies() {
    for bad in ["123", "1234567890123", "12a4", "", "12 34"] {
        assert!(super::hash_maintenance_code(bad).is_err(), "{bad:?}");
    }
    let hash = super::hash_maintenance_code("482916").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(super::verify_password(&hash, "482916"));
    assert!(!super::verify_password(&hash, "482917"));
}
