//! The technician screen's checks with real parts: the microphone meter hears the test tone
//! through the dev profile's in-process room (GStreamer), the network test measures a local
//! HTTPS server with the kiosk's own TLS client, and the maintenance code is checked against an
//! Argon2 hash made here.

#[path = "support/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use telekiosk::profile::Profile;
use telekiosk::tech::checks::{self, MicMeter};
use telekiosk::tech::code::{self, Verdict};
use telekiosk::tech::network;

/// The quietest level the test counts (digital silence is -inf).
const FLOOR_DB: f64 = -120.0;

fn dev_profile() -> Profile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hw/profiles/dev.toml");
    Profile::load(std::path::Path::new(path)).expect("dev profile")
}

/// Waits (generously) until `done` holds for the levels heard so far.
fn wait_for(levels: &Mutex<Vec<f64>>, limit: Duration, done: impl Fn(&[f64]) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done(&levels.lock().unwrap()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_microphone_meter_rises_with_the_test_tone_and_falls_after_it() {
    let profile = dev_profile();
    assert!(profile.audio.virtual_room, "the dev profile joins speaker and microphone");
    let levels = Arc::new(Mutex::new(Vec::<f64>::new()));
    let heard = levels.clone();
    let _meter = MicMeter::start(&profile.audio, move |db| {
        heard.lock().unwrap().push(db.max(FLOOR_DB));
    })
    .expect("meter starts");

    assert!(wait_for(&levels, Duration::from_secs(10), |l| l.len() >= 10), "no level readings");
    let silence = levels.lock().unwrap().iter().copied().fold(FLOOR_DB, f64::max);
    println!("silence: {silence:.1} dBFS");

    let before = levels.lock().unwrap().len();
    checks::play_tone(&profile.audio).expect("tone plays");
    let rose = wait_for(&levels, Duration::from_secs(10), |l| {
        l[before..].iter().any(|db| *db > silence + 30.0)
    });
    let loudest = levels.lock().unwrap()[before..].iter().copied().fold(FLOOR_DB, f64::max);
    println!("during the tone: {loudest:.1} dBFS");
    assert!(rose, "the meter stayed near silence ({silence:.1} dB) while the tone played");

    // After the tone the room is quiet again: the latest readings are back near silence.
    let fell = wait_for(&levels, Duration::from_secs(15), |l| {
        l.len() >= 5 && l[l.len() - 5..].iter().all(|db| *db < silence + 10.0)
    });
    let last = *levels.lock().unwrap().last().expect("readings");
    println!("after the tone: {last:.1} dBFS");
    assert!(fell, "the meter did not fall back after the tone (last {last:.1} dB)");
}

#[test]
fn the_camera_preview_delivers_small_rgb_pictures_and_stops_when_dropped() {
    let profile = dev_profile();
    let frames = Arc::new(Mutex::new(Vec::<(u32, u32, usize)>::new()));
    let seen = frames.clone();
    let preview = checks::Preview::start(&profile.video.source, move |frame| {
        seen.lock().unwrap().push((frame.width, frame.height, frame.rgb.len()));
    })
    .expect("preview starts");
    let start = Instant::now();
    while frames.lock().unwrap().len() < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(preview);
    // Dropping stops the pipeline (state NULL) before it returns: no picture arrives after.
    let at_drop = frames.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(frames.lock().unwrap().len(), at_drop, "pictures after the preview closed");
    let frames = frames.lock().unwrap().clone();
    assert!(frames.len() >= 3, "only {} pictures", frames.len());
    let (w, h) = (checks::PREVIEW_WIDTH, checks::PREVIEW_HEIGHT);
    assert!(frames.iter().all(|f| *f == (w, h, (w * h * 3) as usize)), "{frames:?}");
}

/// A tiny HTTPS server on loopback: `/api/health` answers "ok", `/app.js` 256 KiB.
fn https_server() -> (u16, Vec<u8>) {
    let ca = tls::TestCa::new("test fleet CA");
    let (cert, key) = ca.issue_server();
    let config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = sock.set_nodelay(true);
                let conn = rustls::ServerConnection::new(config).expect("server connection");
                let mut stream = BufReader::new(rustls::StreamOwned::new(conn, sock));
                loop {
                    let mut request = String::new();
                    if stream.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut header = String::new();
                    while stream.read_line(&mut header).unwrap_or(0) > 2 {
                        header.clear();
                    }
                    let body = match request.split_whitespace().nth(1) {
                        Some("/api/health") => b"ok".to_vec(),
                        Some("/app.js") => vec![b'x'; 256 * 1024],
                        _ => b"not found".to_vec(),
                    };
                    let out = stream.get_mut();
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    if out.write_all(head.as_bytes()).and_then(|_| out.write_all(&body)).is_err() {
                        return;
                    }
                    let _ = out.flush();
                }
            });
        }
    });
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ca.cert)
    );
    (port, pem.into_bytes())
}

#[tokio::test]
async fn the_network_test_reports_a_round_trip_and_a_throughput() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (port, ca_pem) = https_server();
    let tls = telekiosk::uplink::tls_config(&ca_pem, None).expect("kiosk TLS client");
    let server = url::Url::parse(&format!("https://localhost:{port}/")).expect("url");
    let report = network::run(&server, tls).await.expect("network test");
    println!("loopback: RTT {:?}, {:.1} Mbit/s, {:?}", report.rtt, report.mbit_per_s, report.grade);
    assert!(report.rtt > Duration::ZERO, "a round trip takes some time");
    assert!(report.mbit_per_s > 0.0, "bytes were fetched");
}

#[tokio::test]
async fn the_network_test_says_when_fleetd_cannot_be_reached() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_, ca_pem) = https_server();
    let tls = telekiosk::uplink::tls_config(&ca_pem, None).expect("kiosk TLS client");
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().unwrap();
    let server = url::Url::parse(&format!("https://localhost:{}/", closed.port())).expect("url");
    let err = network::run(&server, tls).await.expect_err("nothing listens there");
    assert!(err.to_string().starts_with("cannot reach the clinic's server"), "{err}");
}

#[test]
fn the_maintenance_code_check_accepts_the_right_code_and_refuses_a_wrong_one() {
    let salt = SaltString::encode_b64(b"technician-salt!").expect("salt");
    let hash = argon2::Argon2::default().hash_password(b"246810", &salt).expect("hash").to_string();
    assert!(hash.starts_with("$argon2"), "{hash}");
    assert_eq!(code::verify(&hash, "246810"), Verdict::Right);
    assert_eq!(code::verify(&hash, "246811"), Verdict::Wrong);
    assert_eq!(code::verify(&hash, ""), Verdict::Wrong);

    // The check the screen uses, off the calling thread.
    let (tx, rx) = std::sync::mpsc::channel();
    code::check(hash, "246810".into(), move |v| tx.send(v).expect("send"));
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).expect("verdict"), Verdict::Right);
}

/// Runs `f` with the window on the UI thread and returns its answer.
fn on_ui<R: Send + 'static>(
    weak: &slint::Weak<telekiosk::ui::KioskWindow>,
    f: impl FnOnce(&telekiosk::ui::KioskWindow) -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let weak = weak.clone();
    slint::invoke_from_event_loop(move || {
        let _ = tx.send(f(&weak.upgrade().expect("window")));
    })
    .expect("UI thread");
    rx.recv_timeout(Duration::from_secs(30)).expect("the UI thread answers")
}

/// Waits (generously: Argon2 is slow in a debug build) until the technician screen is in `want`.
fn wait_tech(
    weak: &slint::Weak<telekiosk::ui::KioskWindow>,
    what: &str,
    want: impl Fn(&telekiosk::ui::Tech<'_>) -> bool + Send + Clone + 'static,
) {
    use slint::ComponentHandle;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let want = want.clone();
        if on_ui(weak, move |w| want(&w.global::<telekiosk::ui::Tech>())) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the technician screen never reached: {what}");
}

/// The whole way in, through the real window (headless, Slint's software renderer as on the
/// panel): five taps on the corner, a wrong code, the right one, the screen, the lock after
/// three wrong codes, a config without a code, a visit screen closing it. Each page's picture is
/// kept in the test's target directory for review.
#[test]
fn the_corner_and_the_maintenance_code_open_the_technician_screen() {
    use slint::ComponentHandle;
    use telekiosk::tech::{self, Enrolment, SharedFacts};
    use telekiosk::ui::{CodeState, KioskWindow, Tech, TechPage, headless};

    headless::install(1280, 800).expect("headless screen");
    let window = KioskWindow::new().expect("window");
    window.show().expect("show");
    let salt = SaltString::encode_b64(b"technician-salt!").expect("salt");
    let hash = argon2::Argon2::default().hash_password(b"135790", &salt).expect("hash").to_string();
    let code_hash = Arc::new(Mutex::new(hash));
    let facts = SharedFacts::default();
    let read = code_hash.clone();
    facts.update(|f| {
        f.enrolment = Enrolment::Enrolled;
        f.device_id = "dev-techtestxx".into();
        f.config = Some(Arc::new(move || (7, read.lock().unwrap().clone())));
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    tech::install(&window, facts, runtime.handle().clone(), Arc::new(|| {}));
    tech::allow(&window, true);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("technician");
    std::fs::create_dir_all(&dir).expect("screenshot dir");

    let weak = window.as_weak();
    let driver = std::thread::spawn(move || {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let shot = |name: &'static str| {
                let path = dir.join(format!("{name}.png"));
                on_ui(&weak, move |_| headless::screenshot(&path)).expect("screenshot");
            };
            let taps = |n: usize| {
                on_ui(&weak, move |_| (0..n).for_each(|_| headless::tap(20.0, 20.0)));
            };
            let typed = |code: &'static str| {
                on_ui(&weak, move |w| {
                    let tech = w.global::<Tech>();
                    code.chars().for_each(|c| tech.invoke_code_key(c.to_string().into()));
                    tech.invoke_code_submit();
                })
            };
            shot("0-idle");
            taps(4);
            assert!(!on_ui(&weak, |w| w.global::<Tech>().get_open()), "four taps opened it");
            taps(1);
            wait_tech(&weak, "the keypad", |t| {
                t.get_open()
                    && t.get_page() == TechPage::Code
                    && t.get_code_state() == CodeState::Typing
            });
            typed("135791");
            wait_tech(&weak, "a wrong code refused", |t| t.get_code_state() == CodeState::Wrong);
            shot("1-keypad-wrong");
            typed("135790");
            wait_tech(&weak, "the screen", |t| t.get_page() == TechPage::Main);
            let (device, version) = on_ui(&weak, |w| {
                let t = w.global::<Tech>();
                (t.get_device_id().to_string(), t.get_config_version())
            });
            assert_eq!((device.as_str(), version), ("dev-techtestxx", 7));
            shot("2-main");
            on_ui(&weak, |w| w.global::<Tech>().invoke_close());
            assert!(!on_ui(&weak, |w| w.global::<Tech>().get_open()), "Close closes");

            // Three wrong codes in a row lock the keypad for 30 s.
            taps(5);
            wait_tech(&weak, "the keypad again", |t| t.get_code_state() == CodeState::Typing);
            typed("111111");
            wait_tech(&weak, "wrong 1", |t| t.get_code_state() == CodeState::Wrong);
            typed("222222");
            wait_tech(&weak, "wrong 2", |t| t.get_code_state() == CodeState::Wrong);
            typed("333333");
            wait_tech(&weak, "locked", |t| t.get_code_state() == CodeState::Locked);
            let secs = on_ui(&weak, |w| w.global::<Tech>().get_locked_secs());
            assert!((25..=30).contains(&secs), "locked for {secs} s");
            shot("3-keypad-locked");
            on_ui(&weak, |w| w.global::<Tech>().invoke_close());

            // A config without a maintenance code: the screen stays shut, and says so.
            code_hash.lock().unwrap().clear();
            taps(5);
            wait_tech(&weak, "turned off", |t| t.get_code_state() == CodeState::Disabled);
            shot("4-keypad-disabled");
            on_ui(&weak, |w| w.global::<Tech>().invoke_close());

            // A visit screen turns the corner off and closes the screen.
            code_hash.lock().unwrap().push_str("$argon2id$unused");
            taps(5);
            wait_tech(&weak, "open before the visit", |t| t.get_open());
            on_ui(&weak, |w| tech::allow(w, false));
            assert!(!on_ui(&weak, |w| w.global::<Tech>().get_open()), "a visit closes it");
            taps(5);
            std::thread::sleep(Duration::from_millis(300));
            assert!(!on_ui(&weak, |w| w.global::<Tech>().get_open()), "the corner is off");

            // The enrolment keypad, as a kiosk not enrolled shows it.
            on_ui(&weak, |w| {
                let t = w.global::<Tech>();
                t.set_open(true);
                t.set_enrolment(telekiosk::ui::Enrolment::NotEnrolled);
                t.set_page(TechPage::Enrol);
                t.set_enrol_entry("K7Q2-XY".into());
            });
            shot("5-enrol");
        }));
        let _ = slint::quit_event_loop();
        run
    });
    slint::run_event_loop().expect("event loop");
    if let Err(panic) = driver.join().expect("driver thread") {
        std::panic::resume_unwind(panic);
    }
}
