//! Accounts and sign-in against a real fleetd: two-step sign-in (wrong, replayed and recovery
//! codes; enrolment in the console's API), throttling and lock-out, sign-in floods, account
//! lifecycle from the CLI and the admin API (sessions and console WebSockets end at once),
//! automatic logoff that background polls cannot defeat, cross-site requests, the `__Host-`
//! cookie and HSTS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Fleetd, WAIT, add_user, cli, free_port, http, next_code, session_cookie, sign_in, start, stop,
    tls, totp_code, totp_step_now, try_sign_in, wait_ready,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// fleetd started with extra `serve` arguments.
async fn start_with(dir: &std::path::Path, args: &[&str]) -> Fleetd {
    let (web, mqtt) = (free_port(), free_port());
    let mqtt_listen = format!("127.0.0.1:{mqtt}");
    let child =
        common::spawn_fleetd(dir, web, &[&["--mqtt-listen", &mqtt_listen][..], args].concat());
    wait_ready(child, dir, web, mqtt).await
}

async fn post(f: &Fleetd, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = http(f).post(f.url(path)).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// The password step; returns the pending sign-in's token.
async fn password_step(f: &Fleetd, user: &str, password: &str) -> String {
    let (status, reply) =
        post(f, "/api/login", serde_json::json!({ "username": user, "password": password })).await;
    assert_eq!((status, reply["step"].as_str()), (200, Some("code")), "{reply}");
    reply["pending"].as_str().unwrap().to_string()
}

async fn code_step(f: &Fleetd, pending: &str, code: &str) -> (u16, serde_json::Value) {
    post(f, "/api/login/code", serde_json::json!({ "pending": pending, "code": code })).await
}

async fn get_status(f: &Fleetd, path: &str, cookie: &str) -> u16 {
    let res = http(f).get(f.url(path)).header("cookie", cookie).send().await.unwrap();
    res.status().as_u16()
}

async fn add_user_without_totp(f_dir: &std::path::Path, name: &str, password: &str, role: &str) {
    let mut child = tokio::process::Command::new(common::FLEETD)
        .args(["user", "add", name, "--role", role, "--password-stdin", "--data-dir"])
        .arg(f_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    assert!(child.wait().await.unwrap().success());
}

async fn cli_stdin(dir: &std::path::Path, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(common::FLEETD)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("console connects");
    ws
}

/// Reads until the socket closes; returns the close code.
async fn closed_with(ws: &mut Ws) -> Option<u16> {
    timeout(WAIT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the console socket closes in time")
}

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
async fn disabling_or_removing_a_user_ends_their_sessions_and_console_sockets_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "ada", "admin-password", "admin").await;
    add_user(&dir, "alice", "alice-password", "clinician").await;
    add_user(&dir, "bob", "bob-password-1", "clinician").await;
    let f = start(&dir).await;
    let admin = sign_in(&f, "ada", "admin-password").await;
    let alice = sign_in(&f, "alice", "alice-password").await;
    let bob = sign_in(&f, "bob", "bob-password-1").await;
    let mut alice_ws = console(&f, &alice).await;
    let mut bob_ws = console(&f, &bob).await;

    // Over the admin API.
    let res = http(&f)
        .post(f.url("/api/admin/users/alice/disable"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(closed_with(&mut alice_ws).await, Some(4401));
    assert_eq!(get_status(&f, "/api/me", &alice).await, 401);
    let refused = try_sign_in(&f, "alice", "alice-password").await.unwrap_err();
    assert_eq!(refused.0, 403, "{refused:?}");
    assert!(refused.1.contains("disabled"), "{refused:?}");

    // With the CLI, beside the running server.
    let (ok, out, err) = cli(&dir, &["user", "remove", "bob", "--json"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("removed"), "{out}");
    assert_eq!(get_status(&f, "/api/me", &bob).await, 401);
    assert_eq!(closed_with(&mut bob_ws).await, Some(4401));

    // A clinician cannot administer users.
    let alice_again = {
        http(&f)
            .post(f.url("/api/admin/users/alice/enable"))
            .header("cookie", &admin)
            .send()
            .await
            .unwrap();
        sign_in(&f, "alice", "alice-password").await
    };
    assert_eq!(get_status(&f, "/api/admin/users", &alice_again).await, 403);
    let users: serde_json::Value = http(&f)
        .get(f.url("/api/admin/users"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<_> = users.as_array().unwrap().iter().map(|u| u["username"].clone()).collect();
    assert_eq!(names, ["ada", "alice"]);
    stop(f).await;
}

#[tokio::test]
async fn background_polls_and_an_open_console_do_not_keep_a_session_alive_but_use_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "ada", "admin-password", "admin").await;
    let f = start_with(&dir, &["--session-idle", "3s"]).await;
    let polled = sign_in(&f, "ada", "admin-password").await;
    let used = sign_in(&f, "ada", "admin-password").await;
    let mut idle_ws = console(&f, &polled).await;
    let poll = |cookie: &str| {
        http(&f)
            .get(f.url("/api/admin/fleet"))
            .header("cookie", cookie.to_string())
            .header("x-telekiosk-background", "1")
            .send()
    };
    // Poll in the background until the session ends; use the other one meanwhile.
    let ended = timeout(WAIT, async {
        loop {
            if poll(&polled).await.unwrap().status() == 401 {
                return;
            }
            assert_eq!(get_status(&f, "/api/admin/fleet", &used).await, 200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "background polling kept the session alive");
    assert_eq!(closed_with(&mut idle_ws).await, Some(4401), "the idle console is told");
    assert_eq!(get_status(&f, "/api/me", &used).await, 200, "a session in use ended");
    // Signing out ends the session on the server, not just in the browser.
    let res = http(&f).post(f.url("/api/logout")).header("cookie", &used).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(get_status(&f, "/api/me", &used).await, 401);
    stop(f).await;
}

#[tokio::test]
async fn a_state_changing_request_from_another_site_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "ada", "admin-password", "admin").await;
    let f = start(&dir).await;
    let admin = sign_in(&f, "ada", "admin-password").await;
    let bare = reqwest::Client::builder().use_preconfigured_tls(tls(&f.ca, None)).build().unwrap();
    let cases: [(&str, &str); 3] = [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ];
    for (name, value) in cases {
        let res = bare
            .post(f.url("/api/logout"))
            .header("cookie", &admin)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("another site"), "{body}");
    }
    // With the cookie but saying nothing of where it comes from: refused too.
    let res = bare.post(f.url("/api/logout")).header("cookie", &admin).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(get_status(&f, "/api/me", &admin).await, 200, "the refused sign-out did nothing");
    let res = bare
        .post(f.url("/api/logout"))
        .header("cookie", &admin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    stop(f).await;
}

#[tokio::test]
async fn every_response_carries_hsts_and_the_cookie_is_host_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "ada", "admin-password", "admin").await;
    let f = start(&dir).await;
    let cookie = sign_in(&f, "ada", "admin-password").await;
    assert!(cookie.starts_with("__Host-tk_session="), "{cookie}");
    for path in ["/", "/admin", "/app.js", "/api/me", "/nowhere"] {
        let res = http(&f).get(f.url(path)).send().await.unwrap();
        let hsts =
            res.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_string());
        assert!(hsts.is_some_and(|h| h.starts_with("max-age=")), "{path}");
    }
    stop(f).await;
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
