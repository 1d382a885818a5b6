//! Roles and scope over real HTTPS and WebSocket: every HTTP route × every role (401 without a
//! session, 403 for a role the permission table refuses, through for the right one), a
//! technician held to their clinic, and the console WebSocket scoped by clinic (a clinician of
//! one clinic never sees another's waiting kiosk; an auditor cannot join). The route list is read
//! from the router's source, so a route added without a row here fails the test.

mod common;

use std::collections::BTreeSet;

use common::console::{console, lists, send, until};
use common::{
    Fleetd, WAIT, add_user_in, cli, device_tls, enrolled_device_of, http, sign_in, start, stop,
};
use rumqttc::QoS;
use telekiosk_protocol::api::Me;
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::visit::KioskToServer;
use telekiosk_protocol::{encode, topics};

const ROLES: [&str; 4] = ["admin", "clinician", "auditor", "technician"];
const PASSWORD: &str = "role-test-password";

/// Who gets through a route's check.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// Anyone, signed in or not.
    Public,
    /// Anyone: the request carries its own credentials, so a wrong one is 401 for everyone.
    Credentials,
    /// Any signed-in user.
    SignedIn,
    /// Only these roles; the others get 403.
    Roles(&'static [&'static str]),
}

const ADMIN: Who = Who::Roles(&["admin"]);
const TECHNICIAN: Who = Who::Roles(&["admin", "technician"]);
const AUDITOR: Who = Who::Roles(&["auditor"]);
const CLINICIAN: Who = Who::Roles(&["clinician"]);

/// Every route: method, path (`{id}` and friends filled in by [`fill`]), body, who.
const TABLE: &[(&str, &str, &str, Who)] = &[
    ("POST", "/api/login", "", Who::Public),
    ("POST", "/api/login/code", r#"{"pending":"x","code":"000000"}"#, Who::Credentials),
    ("POST", "/api/mfa/enrol", "", Who::SignedIn),
    ("POST", "/api/mfa/confirm", r#"{"code":"000000"}"#, Who::SignedIn),
    ("POST", "/api/logout", "", Who::Public),
    ("GET", "/api/me", "", Who::SignedIn),
    // Sign-in through an identity provider (off here: start and callback lead back to the page).
    ("GET", "/api/oidc", "", Who::Public),
    ("GET", "/api/oidc/start?console=admin", "", Who::Public),
    ("GET", "/api/oidc/callback?code=x&state=y", "", Who::Public),
    ("POST", "/api/enrol", "", Who::Public),
    (
        "POST",
        "/api/device/renew",
        r#"{"csr_pem":"-----BEGIN CERTIFICATE REQUEST-----"}"#,
        Who::Credentials,
    ),
    ("GET", "/api/health", "", Who::Public),
    ("GET", "/ws", "", Who::SignedIn),
    ("GET", "/api/admin/devices", "", ADMIN),
    ("POST", "/api/admin/devices/{id}/approve", "", ADMIN),
    ("POST", "/api/admin/devices/{id}/revoke", "", ADMIN),
    ("GET", "/api/admin/fleet", "", ADMIN),
    ("GET", "/api/admin/groups", "", ADMIN),
    ("GET", "/api/admin/devices/{id}", "", ADMIN),
    (
        "POST",
        "/api/admin/devices/tokens",
        r#"{"clinic":"North Clinic","room":"9","ttl_secs":600}"#,
        TECHNICIAN,
    ),
    (
        "POST",
        "/api/admin/devices/{id}/commands",
        r#"{"command":{"type":"identify","seconds":5}}"#,
        TECHNICIAN,
    ),
    ("GET", "/api/admin/commands/{id}", "", TECHNICIAN),
    ("GET", "/api/admin/config/groups/{group}", "", ADMIN),
    ("PUT", "/api/admin/config/groups/{group}", r#"{"body":{}}"#, ADMIN),
    ("GET", "/api/admin/config/devices/{id}", "", ADMIN),
    ("PUT", "/api/admin/config/devices/{id}", r#"{"body":{}}"#, ADMIN),
    ("GET", "/api/admin/rollouts", "", ADMIN),
    ("POST", "/api/admin/rollouts", r#"{"group":"North Clinic"}"#, ADMIN),
    ("GET", "/api/admin/rollouts/{id}", "", ADMIN),
    ("POST", "/api/admin/rollouts/{id}/{action}", "", ADMIN),
    ("POST", "/api/admin/rollback", r#"{"group":"North Clinic"}"#, ADMIN),
    ("GET", "/api/admin/bundles", "", ADMIN),
    ("GET", "/api/admin/updates", "", ADMIN),
    ("POST", "/api/admin/updates", r#"{"group":"North Clinic","version":"9.9"}"#, ADMIN),
    ("GET", "/api/admin/updates/{id}", "", ADMIN),
    ("POST", "/api/admin/updates/{id}/{action}", "", ADMIN),
    // OS bundles for kiosks: the client certificate is the credential.
    ("GET", "/api/device/bundles/{sha256}", "", Who::Credentials),
    ("GET", "/api/admin/users", "", ADMIN),
    ("DELETE", "/api/admin/users/{name}", "", ADMIN),
    ("POST", "/api/admin/users/{name}/{action}", "", ADMIN),
    ("PUT", "/api/admin/users/{name}/password", r#"{"password":"a new long password 1"}"#, ADMIN),
    ("GET", "/api/audit/export?from=2000-01-01&to=2100-01-01", "", AUDITOR),
    ("GET", "/api/visit-codes", "", CLINICIAN),
    ("POST", "/api/visit-codes", r#"{"clinic":"North Clinic","valid_mins":60}"#, CLINICIAN),
    ("DELETE", "/api/visit-codes/{id}", "", CLINICIAN),
];

/// Every `(method, path)` the router serves, read from `src/http`: each `.route("…", …)` with
/// its methods (under `/api/admin` for the files in `admin/`), and the console files of
/// `ASSETS`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut files = vec![];
    for dir in [root.to_string(), format!("{root}/admin")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let prefix = if file.parent().unwrap().ends_with("admin") { "/api/admin" } else { "" };
        let text = std::fs::read_to_string(&file).unwrap();
        for call in text.split(".route(\"").skip(1) {
            let path = &call[..call.find('"').unwrap()];
            let args = &call[..call.find('\n').unwrap_or(call.len())];
            for method in ["get", "post", "put", "delete", "patch"] {
                if args.contains(&format!("{method}(")) {
                    routes.insert((method.to_uppercase(), format!("{prefix}{path}")));
                }
            }
        }
        if file.ends_with("http/mod.rs") {
            let table = &text[text.find("const ASSETS").unwrap()..];
            let table = &table[..table.find("];").unwrap()];
            for line in table.lines().filter(|l| l.trim_start().starts_with("(\"/")) {
                let path = line.trim_start()[2..].split('"').next().unwrap();
                routes.insert(("GET".to_string(), path.to_string()));
            }
        }
    }
    routes
}

#[test]
fn the_table_has_a_row_for_every_route_and_no_other() {
    let served = routes_in_source();
    assert!(served.len() > 20, "the route scan found too little: {served:?}");
    let assets = served.iter().filter(|(_, p)| !p.starts_with("/api") && p != "/ws").cloned();
    let rows: BTreeSet<_> = TABLE
        .iter()
        .map(|(m, p, ..)| (m.to_string(), p.split('?').next().unwrap().to_string()))
        .chain(assets)
        .collect();
    let missing: Vec<_> = served.difference(&rows).collect();
    assert!(missing.is_empty(), "routes without a row in TABLE: {missing:?}");
    let stale: Vec<_> = rows.difference(&served).collect();
    assert!(stale.is_empty(), "rows for routes that do not exist: {stale:?}");
}

fn fill(path: &str, device: &str, command: &str) -> String {
    path.replace("/devices/{id}", &format!("/devices/{device}"))
        .replace("/commands/{id}", &format!("/commands/{command}"))
        .replace("{group}", "North%20Clinic")
        .replace("/users/{name}/{action}", "/users/ghost/unlock")
        .replace("{name}", "ghost")
        .replace("/rollouts/{id}/{action}", "/rollouts/1/pause")
        .replace("/rollouts/{id}", "/rollouts/1")
        .replace("/updates/{id}/{action}", "/updates/1/pause")
        .replace("/updates/{id}", "/updates/1")
        .replace("{sha256}", &"0".repeat(64))
        .replace("/visit-codes/{id}", "/visit-codes/vc-00000000")
}

async fn call(f: &Fleetd, method: &str, path: &str, body: &str, cookie: Option<&str>) -> u16 {
    let mut req = http(f).request(method.parse().unwrap(), f.url(path));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_anonymous_and_wrong_roles_and_lets_the_right_role_through() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for role in ROLES {
        add_user_in(&dir, role, PASSWORD, role, &["North Clinic"]).await;
    }
    let f = start(&dir).await;
    let north = enrolled_device_of(&f, "North Clinic", "1").await;
    let south = enrolled_device_of(&f, "South Clinic", "1").await;
    let mut cookies = vec![];
    for role in ROLES {
        cookies.push((role, sign_in(&f, role, PASSWORD).await));
    }
    // A command to read back, made by the admin.
    let made = http(&f)
        .post(f.url(&format!("/api/admin/devices/{}/commands", north.id)))
        .header("cookie", &cookies[0].1)
        .json(&serde_json::json!({"command": {"type": "collect_diagnostics"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let command_id =
        made.json::<serde_json::Value>().await.unwrap()["command_id"].as_str().unwrap().to_string();

    // A technician of North Clinic: not South's kiosks, not South's enrolment codes, not reboot.
    let technician = &cookies[3].1;
    let identify = r#"{"command":{"type":"identify","seconds":5}}"#;
    let south_cmd = format!("/api/admin/devices/{}/commands", south.id);
    assert_eq!(call(&f, "POST", &south_cmd, identify, Some(technician)).await, 403);
    let north_cmd = format!("/api/admin/devices/{}/commands", north.id);
    assert_eq!(call(&f, "POST", &north_cmd, identify, Some(technician)).await, 201);
    let reboot = r#"{"command":{"type":"reboot"}}"#;
    assert_eq!(call(&f, "POST", &north_cmd, reboot, Some(technician)).await, 403);
    let south_code = r#"{"clinic":"South Clinic","room":"1","ttl_secs":600}"#;
    let tokens = "/api/admin/devices/tokens";
    assert_eq!(call(&f, "POST", tokens, south_code, Some(technician)).await, 403);
    assert_eq!(call(&f, "POST", tokens, south_code, Some(&cookies[0].1)).await, 201);

    // A bundle, so that the admin's POST /api/admin/updates starts update 1 for the rows after it.
    let bundle = tmp.path().join("9.9.raucb");
    std::fs::write(&bundle, b"hsqs and the rest of a bundle").unwrap();
    let (ok, _, err) =
        cli(&dir, &["update", "add", bundle.to_str().unwrap(), "--version", "9.9"]).await;
    assert!(ok, "{err}");

    let mut report = vec![];
    // Revoke last: the other rows need the device active.
    let mut rows: Vec<_> = TABLE.iter().filter(|(_, p, ..)| !p.ends_with("/revoke")).collect();
    rows.extend(TABLE.iter().filter(|(_, p, ..)| p.ends_with("/revoke")));
    for &&(method, path, body, who) in &rows {
        if path == "/ws" {
            continue; // The WebSocket has its own test below.
        }
        let path = fill(path, &north.id, &command_id);
        let anonymous = call(&f, method, &path, body, None).await;
        let expect_anonymous = matches!(who, Who::Public | Who::Credentials);
        if !expect_anonymous && anonymous != 401 {
            report.push(format!("{method} {path} anonymous: {anonymous}, not 401"));
        }
        for (role, cookie) in &cookies {
            if path.ends_with("/logout") {
                continue; // Signing out would end the session the next rows use.
            }
            let status = call(&f, method, &path, body, Some(cookie)).await;
            if matches!(who, Who::Credentials) {
                if status == 403 {
                    report
                        .push(format!("{method} {path} as {role}: 403, not for a role to refuse"));
                }
                continue;
            }
            let allowed = match who {
                Who::Public | Who::SignedIn | Who::Credentials => true,
                Who::Roles(roles) => roles.contains(role),
            };
            if allowed && (status == 401 || status == 403) {
                report.push(format!("{method} {path} as {role}: {status}, should pass"));
            }
            if allowed && method == "GET" && !(200..300).contains(&status) {
                report.push(format!("{method} {path} as {role}: {status}, not 2xx"));
            }
            if !allowed && status != 403 {
                report.push(format!("{method} {path} as {role}: {status}, not 403"));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));

    // `/api/me` names the role and the clinics.
    let me: Me = http(&f)
        .get(f.url("/api/me"))
        .header("cookie", technician)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((me.role.as_str(), me.clinics), ("technician", vec!["North Clinic".to_string()]));
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_sees_only_their_clinics_kiosks_by_registry_name_and_an_auditor_cannot_join() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user_in(&dir, "north", PASSWORD, "clinician", &["North Clinic"]).await;
    add_user_in(&dir, "south", PASSWORD, "clinician", &["South Clinic"]).await;
    add_user_in(&dir, "audrey", PASSWORD, "auditor", &[]).await;
    let f = start(&dir).await;
    let south_kiosk = enrolled_device_of(&f, "South Clinic", "3").await;
    let north_kiosk = enrolled_device_of(&f, "North Clinic", "1").await;

    let mut north = console(&f, &sign_in(&f, "north", PASSWORD).await).await;
    let mut south = console(&f, &sign_in(&f, "south", PASSWORD).await).await;
    let mut auditor = console(&f, &sign_in(&f, "audrey", PASSWORD).await).await;
    until(&mut north, |m| matches!(m, ServerToConsole::Queue { .. })).await;
    until(&mut south, |m| matches!(m, ServerToConsole::Queue { .. })).await;
    until(&mut auditor, |m| matches!(m, ServerToConsole::Error { .. })).await;

    // South's kiosk claims to be North's room 1 (M14): the registry says South Clinic, room 3.
    let mqtt = common::mqtt(&f, device_tls(&f, &south_kiosk), &south_kiosk.id).await.unwrap();
    let lie = KioskToServer::Waiting {
        visit_id: "v-south".into(),
        clinic: "North Clinic".into(),
        room: "1".into(),
        language: None,
        visit_code: None,
    };
    let topic = topics::visit_out(&south_kiosk.id);
    mqtt.client.publish(topic, QoS::AtLeastOnce, false, encode(&lie)).await.unwrap();
    let seen = until(&mut south, |m| lists(m, "v-south")).await;
    let Some(ServerToConsole::Queue { waiting }) = seen.last() else { unreachable!() };
    let w = waiting.iter().find(|w| w.visit_id == "v-south").unwrap();
    assert_eq!((w.clinic.as_str(), w.room.as_str()), ("South Clinic", "3"));

    // Then North's own kiosk waits: the North clinician's next queue has it and not South's.
    let north_mqtt = common::mqtt(&f, device_tls(&f, &north_kiosk), &north_kiosk.id).await.unwrap();
    let waiting = KioskToServer::Waiting {
        visit_id: "v-north".into(),
        clinic: "x".into(),
        room: "y".into(),
        language: None,
        visit_code: None,
    };
    let topic = topics::visit_out(&north_kiosk.id);
    north_mqtt.client.publish(topic, QoS::AtLeastOnce, false, encode(&waiting)).await.unwrap();
    let seen = until(&mut north, |m| lists(m, "v-north")).await;
    assert!(!seen.iter().any(|m| lists(m, "v-south")), "North saw South's kiosk: {seen:?}");

    // The North clinician cannot join South's visit without emergency access.
    send(&mut north, &ConsoleToServer::Join { visit_id: "v-south".into() }).await;
    let seen = until(&mut north, |m| matches!(m, ServerToConsole::Error { .. })).await;
    let Some(ServerToConsole::Error { message }) = seen.last() else { unreachable!() };
    assert!(message.contains("not in one of your clinics"), "{message}");

    // The auditor can neither join nor break the glass.
    for msg in [
        ConsoleToServer::Join { visit_id: "v-north".into() },
        ConsoleToServer::EmergencyJoin { visit_id: "v-north".into(), reason: "audit".into() },
    ] {
        send(&mut auditor, &msg).await;
        let seen = until(&mut auditor, |m| matches!(m, ServerToConsole::Error { .. })).await;
        assert!(!seen.iter().any(|m| matches!(m, ServerToConsole::Joined { .. })), "{seen:?}");
        assert!(!seen.iter().any(|m| matches!(m, ServerToConsole::Queue { .. })), "{seen:?}");
    }

    // Emergency access with a reason lets the North clinician in, and is logged loudly.
    let reason = "South's clinician is ill";
    send(
        &mut north,
        &ConsoleToServer::EmergencyJoin { visit_id: "v-south".into(), reason: reason.into() },
    )
    .await;
    until(
        &mut north,
        |m| matches!(m, ServerToConsole::Joined { visit_id, .. } if visit_id == "v-south"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f.logged().contains("EMERGENCY ACCESS") {
        assert!(tokio::time::Instant::now() < deadline, "no emergency access line in the log");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let line = f.logged().lines().find(|l| l.contains("EMERGENCY ACCESS")).unwrap().to_string();
    assert!(
        line.contains("WARN") && line.contains("fleetd::audit") && line.contains("north"),
        "{line}"
    );
    stop(f).await;
}
