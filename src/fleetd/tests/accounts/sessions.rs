//! Sessions: account changes end them (and their console sockets) at once; background polls
//! do not keep them alive; cross-site requests; the `__Host-` cookie and HSTS.

use std::time::Duration;

use crate::common::*;
use crate::*;
use tokio::time::timeout;

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
    for path in ["/", "/admin", "/app.js", "/api/me", "/api/health", "/nowhere"] {
        let res = http(&f).get(f.url(path)).send().await.unwrap();
        let hsts =
            res.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_string());
        assert!(hsts.is_some_and(|h| h.starts_with("max-age=")), "{path}");
    }
    stop(f).await;
}
