//! Two-step sign-in, enrolment, throttling, lock-out, floods and the password policy.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::*;

#[tokio::test]
async fn a_wrong_or_replayed_code_is_refused_and_a_recovery_code_works_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (secret, recovery) = add_user(&dir, "ada", "admin-password", "admin").await;
    let f = start(&dir).await;

    let pending = password_step(&f, "ada", "admin-password").await;
    let (status, body) = code_step(&f, &pending, "000000").await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"],
        "That code is not right. Codes change every 30 seconds — type the one shown now."
    );
    let code = totp_code(&secret, totp_step_now());
    let (status, body) = code_step(&f, &pending, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step"], "signed_in");

    // The same code again, in a new sign-in: refused as used.
    let pending = password_step(&f, "ada", "admin-password").await;
    let (status, body) = code_step(&f, &pending, &code).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("used already"), "{body}");

    // A recovery code signs in once.
    let pending = password_step(&f, "ada", "admin-password").await;
    let res = http(&f)
        .post(f.url("/api/login/code"))
        .json(&serde_json::json!({ "pending": pending, "code": recovery[0] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res);
    assert_eq!(get_status(&f, "/api/me", &cookie).await, 200);
    let pending = password_step(&f, "ada", "admin-password").await;
    let (status, _) = code_step(&f, &pending, &recovery[0]).await;
    assert_eq!(status, 401, "a recovery code is used up");

    // The password alone opens nothing.
    let res = http(&f)
        .post(f.url("/api/login"))
        .json(&serde_json::json!({ "username": "ada", "password": "admin-password" }))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("set-cookie").is_none());
    assert!(!f.logged().contains(&secret), "the TOTP secret is logged");
    assert!(!f.logged().contains(&code), "a code is logged");
    stop(f).await;
}

#[tokio::test]
async fn a_user_who_must_enrol_can_only_enrol_and_then_signs_in_with_a_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user_without_totp(&dir, "cleo", "clinician-password", "clinician").await;
    let f = start(&dir).await;

    let res = http(&f)
        .post(f.url("/api/login"))
        .json(&serde_json::json!({ "username": "cleo", "password": "clinician-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res);
    let reply: serde_json::Value = res.json().await.unwrap();
    assert_eq!(reply["step"], "enrol", "{reply}");
    assert_eq!(
        get_status(&f, "/api/me", &cookie).await,
        403,
        "an enrol-only session reaches nothing"
    );

    let enrol = |path: &'static str, body: Option<serde_json::Value>| {
        let req = http(&f).post(f.url(path)).header("cookie", &cookie);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, enrolment) = enrol("/api/mfa/enrol", None).await;
    assert_eq!(status, 200, "{enrolment}");
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    assert!(enrolment["uri"].as_str().unwrap().contains(&secret));
    let (status, _) =
        enrol("/api/mfa/confirm", Some(serde_json::json!({ "code": "000000" }))).await;
    assert_eq!(status, 401);
    let step = totp_step_now();
    let code = totp_code(&secret, step);
    let (status, codes) =
        enrol("/api/mfa/confirm", Some(serde_json::json!({ "code": code }))).await;
    assert_eq!(status, 200, "{codes}");
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(get_status(&f, "/api/me", &cookie).await, 200, "the session became a full one");

    // From now on the password is not enough; the next step's code signs in.
    let pending = password_step(&f, "cleo", "clinician-password").await;
    let (status, body) = code_step(&f, &pending, &totp_code(&secret, step + 1)).await;
    assert_eq!(status, 200, "{body}");
    stop(f).await;
}

#[tokio::test]
async fn ten_failures_lock_an_account_until_an_admin_unlocks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    let f = start_with(&dir, &["--sign-in-backoff-ms", "0"]).await;
    for _ in 0..10 {
        let refused = try_sign_in(&f, "alice", "wrong-password").await.unwrap_err();
        assert_eq!(refused.0, 401, "{refused:?}");
    }
    let res = http(&f)
        .post(f.url("/api/login"))
        .json(&serde_json::json!({ "username": "alice", "password": "alice-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 60, "{retry}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("locked"), "{body}");
    assert!(f.logged().contains("account locked"), "the lock-out is audited");
    assert!(!f.logged().contains("alice-password") && !f.logged().contains("wrong-password"));

    let (ok, out, err) = cli(&dir, &["user", "list", "--json"]).await;
    assert!(ok, "{err}");
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(users[0]["locked_until"].is_i64(), "{users}");
    let (ok, _, err) = cli(&dir, &["user", "unlock", "alice"]).await;
    assert!(ok, "{err}");
    sign_in(&f, "alice", "alice-password").await;
    stop(f).await;
}

#[tokio::test]
async fn a_flood_of_bad_sign_ins_is_answered_429_while_a_real_user_still_signs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    let f = Arc::new(start(&dir).await);

    let flood: Vec<_> = (0..200)
        .map(|n| {
            let f = f.clone();
            tokio::spawn(async move {
                let body = serde_json::json!({ "username": format!("guess{n}"), "password": "guess-password" });
                let res = http(&f).post(f.url("/api/login")).json(&body).send().await.unwrap();
                let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                (res.status().as_u16(), retry)
            })
        })
        .collect();

    // The real user signs in from another address while the flood runs, waiting as told.
    let real = reqwest::Client::builder()
        .use_preconfigured_tls(tls(&f.ca, None))
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut signed_in = false;
    for _ in 0..20 {
        let body = serde_json::json!({ "username": "alice", "password": "alice-password" });
        let res = real.post(f.url("/api/login")).json(&body).send().await.unwrap();
        if res.status() == 429 {
            let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait.min(2))).await;
            continue;
        }
        assert_eq!(res.status(), 200);
        let reply: serde_json::Value = res.json().await.unwrap();
        let code = next_code(&f, "alice").await.unwrap();
        let body = serde_json::json!({ "pending": reply["pending"], "code": code });
        let res = real.post(f.url("/api/login/code")).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        signed_in = true;
        break;
    }
    let mut too_many = 0;
    for task in flood {
        let (status, retry) = task.await.unwrap();
        assert!(matches!(status, 401 | 429), "{status}");
        if status == 429 {
            too_many += 1;
            assert!(
                retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1),
                "429 without Retry-After"
            );
        }
    }
    assert!(signed_in, "the real user could not sign in during the flood");
    assert!(too_many > 100, "only {too_many} of 200 bad sign-ins were refused with 429");
    stop(Arc::into_inner(f).unwrap()).await;
}

#[tokio::test]
async fn the_cli_enforces_the_password_policy_and_manages_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let add = ["user", "add", "eve", "--role", "admin", "--password-stdin"];
    for (bad, why) in
        [("short-one", "at least 12"), ("password1234", "common"), ("eve.admin.01", "")]
    {
        let (ok, _, err) = cli_stdin(&dir, &add, &format!("{bad}\n")).await;
        if why.is_empty() {
            assert!(ok, "{err}");
        } else {
            assert!(!ok && err.contains(why), "{bad}: {err}");
        }
    }
    let (ok, _, err) =
        cli_stdin(&dir, &["user", "passwd", "eve", "--password-stdin"], "eve\n").await;
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, out, err) = cli_stdin(
        &dir,
        &["user", "passwd", "eve", "--password-stdin", "--json"],
        "plum kettle orbit\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("new password"), "{out}");
    for cmd in ["disable", "enable", "signout", "unlock", "reset-mfa"] {
        let (ok, out, err) = cli(&dir, &["user", cmd, "eve", "--json"]).await;
        assert!(ok, "{cmd}: {err}");
        let done: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(done["user"], "eve", "{cmd}");
    }
    let (ok, _, err) = cli(&dir, &["user", "disable", "nobody"]).await;
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, out, _) = cli(&dir, &["user", "list", "--json"]).await;
    assert!(ok);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["username"], "eve");
    assert_eq!(users[0]["mfa"], false);
}
