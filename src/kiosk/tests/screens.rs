//! Every screen of the kiosk, rendered headless with the real `ui/` in English and Spanish,
//! and walked through Slint's element tree: each button is at least 15 mm at the dev profile's
//! 5.9 px/mm and has a label and the button role; no English is left on a Spanish screen
//! (names and messages from config excepted); each screen without visit video matches its
//! golden screenshot in `ui/golden/` within a tolerance (`UPDATE_GOLDENS=1` rewrites them; the
//! rendered ones go to `artifacts/golden/` too). The Slint platform is set once per process, so
//! one test walks everything.

use std::path::PathBuf;

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::ComponentHandle;
use telekiosk::ui::view::{CallNotice, PatientView, ScreenId, ViewModel};
use telekiosk::ui::{self, KioskWindow, Press, headless};
use telekiosk::visit::Help;
use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, EndReason};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// The dev profile's panel (hw/profiles/dev.toml).
const PX_PER_MM: f32 = 5.9;
const MIN_TARGET_MM: f32 = 15.0;
/// Golden tolerance: at most this share of pixels may differ by more than `CHANNEL` in a channel.
const MAX_DIFFERING: f64 = 0.005;
const CHANNEL: i16 = 40;

const CLINIC: &str = "Maple Valley Clinic";
const ROOM: &str = "Exam Room 2";
const CLOSED: &str = "Closed for lunch. Back at 13:00.";
/// Technical detail for staff, shown as given.
const DETAIL: &str = "v4l2src: no such device /dev/video0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vm(screen: ScreenId, language: Language) -> ViewModel {
    ViewModel {
        screen,
        message: String::new(),
        end_reason: None,
        elapsed: "2:05".into(),
        mic_muted: false,
        camera_off: false,
        signal: 0,
        call_notice: String::new(),
        notice: CallNotice::None,
        patient: PatientView {
            language: Some(language),
            language_choice: true,
            volume_pct: 80,
            ..Default::default()
        },
    }
}

/// Every screen and overlay the patient can see, by name.
fn screens(l: Language) -> Vec<(&'static str, ViewModel)> {
    let with = |screen, f: &dyn Fn(&mut ViewModel)| {
        let mut v = vm(screen, l);
        f(&mut v);
        v
    };
    vec![
        ("idle", vm(ScreenId::Idle, l)),
        ("idle-larger-text", with(ScreenId::Idle, &|v| v.patient.larger_text = true)),
        ("idle-help-told", with(ScreenId::Idle, &|v| v.patient.help = Help::Told)),
        (
            "closed",
            with(ScreenId::Closed, &|v| {
                v.message = CLOSED.into();
                v.patient.hours = "8:00–12:00, 13:00–17:00".into();
            }),
        ),
        ("consent", vm(ScreenId::Consent, l)),
        (
            "code-locked-larger-text",
            with(ScreenId::CodeEntry, &|v| {
                v.patient.larger_text = true;
                v.patient.locked_secs = 42;
            }),
        ),
        ("consent-larger-text", with(ScreenId::Consent, &|v| v.patient.larger_text = true)),
        (
            "waiting-larger-text-hidden",
            with(ScreenId::Waiting, &|v| {
                v.patient.larger_text = true;
                v.patient.self_view_hidden = true;
                v.patient.position = Some(3);
            }),
        ),
        ("consent-still-there", with(ScreenId::Consent, &|v| v.patient.still_there_secs = Some(7))),
        ("code-entry", with(ScreenId::CodeEntry, &|v| v.patient.digits = "1234".into())),
        (
            "code-refused",
            with(ScreenId::CodeEntry, &|v| {
                v.patient.refusal = Some(CodeRefusal::Expired);
            }),
        ),
        (
            "code-locked",
            with(ScreenId::CodeEntry, &|v| {
                v.patient.refusal = Some(CodeRefusal::Unknown);
                v.patient.locked_secs = 42;
            }),
        ),
        (
            "waiting-hidden",
            with(ScreenId::Waiting, &|v| {
                v.patient.self_view_hidden = true;
                v.patient.position = Some(2);
            }),
        ),
        (
            "waiting-next-hidden",
            with(ScreenId::Waiting, &|v| {
                v.patient.self_view_hidden = true;
                v.patient.position = Some(0);
                v.patient.help = Help::Coming;
            }),
        ),
        ("waiting", with(ScreenId::Waiting, &|v| v.patient.position = Some(1))),
        ("connecting", vm(ScreenId::Connecting, l)),
        (
            "in-call",
            with(ScreenId::InCall, &|v| {
                v.signal = 2;
                v.notice = CallNotice::VideoPaused;
                v.patient.security_code = Some("12345 67890 13579 24680 11223".into());
            }),
        ),
        (
            "in-call-muted-confirm-end",
            with(ScreenId::InCall, &|v| {
                v.mic_muted = true;
                v.camera_off = true;
                v.notice = CallNotice::Reconnecting;
                v.patient.confirm_end = true;
            }),
        ),
        ("ended", with(ScreenId::Ended, &|v| v.end_reason = Some(EndReason::NoClinician))),
        (
            "ended-by-patient",
            with(ScreenId::Ended, &|v| v.end_reason = Some(EndReason::PatientEnded)),
        ),
        ("cleaning", vm(ScreenId::Cleaning, l)),
        (
            "out-of-service",
            with(ScreenId::OutOfService, &|v| {
                v.message = DETAIL.into();
                v.patient.hours = "8:00–17:00".into();
            }),
        ),
    ]
}

/// The visible texts on screen (Text elements report their text as their accessible label).
fn visible_texts(window: &KioskWindow) -> Vec<String> {
    window
        .root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::Text)
        .find_all()
        .into_iter()
        .filter(|e| e.computed_opacity() > 0.0 && e.size().width > 0.0)
        .filter_map(|e| e.accessible_label().map(|l| l.to_string()))
        .filter(|t| !t.trim().is_empty())
        .collect()
}

fn buttons(window: &KioskWindow) -> Vec<ElementHandle> {
    window
        .root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::Button)
        .find_all()
        .into_iter()
        .filter(|e| e.computed_opacity() > 0.0)
        .collect()
}

/// The English source strings of `ui/` (msgid and msgid_plural of the Spanish catalogue).
fn english_strings() -> Vec<String> {
    let po = std::fs::read_to_string(root().join("ui/translations/es/LC_MESSAGES/telekiosk.po"))
        .expect("the Spanish catalogue");
    po.lines()
        .filter_map(|l| l.strip_prefix("msgid ").or_else(|| l.strip_prefix("msgid_plural ")))
        .map(|s| s.trim().trim_matches('"').replace("\\\"", "\""))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `text` is `template` with its `{}` / `{n}` filled in.
fn fills(template: &str, text: &str) -> bool {
    let parts: Vec<&str> = template.split("{n}").flat_map(|p| p.split("{}")).collect();
    if parts.len() == 1 {
        return template == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        match rest.find(part) {
            Some(at) if i > 0 || at == 0 => rest = &rest[at + part.len()..],
            _ => return false,
        }
    }
    parts.last().is_none_or(|last| last.is_empty() || text.ends_with(last))
}

/// Every `@tr("…")` in ui/ has a Spanish translation in the catalogue.
fn untranslated() -> Vec<String> {
    let english = english_strings();
    let mut missing = vec![];
    let mut stack = vec![root().join("ui")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("ui dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "slint") {
                let text = std::fs::read_to_string(&path).expect("slint file");
                for piece in text.split("@tr(\"").skip(1) {
                    let msgid = piece.split('"').next().unwrap_or_default();
                    if !english.iter().any(|e| e == msgid) {
                        missing.push(format!("{}: {msgid}", path.display()));
                    }
                }
            }
        }
    }
    missing
}

fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgb = buf.chunks(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, rgb)
}

/// Share of pixels differing by more than [`CHANNEL`] in any channel.
fn differing(a: &[u8], b: &[u8]) -> f64 {
    let pixels = a.len() / 3;
    let off = a
        .chunks(3)
        .zip(b.chunks(3))
        .filter(|(p, q)| {
            p.iter().zip(q.iter()).any(|(x, y)| (*x as i16 - *y as i16).abs() > CHANNEL)
        })
        .count();
    off as f64 / pixels.max(1) as f64
}

#[test]
fn every_screen_in_both_languages_is_translated_reachable_by_label_large_enough_and_as_reviewed() {
    headless::install(WIDTH, HEIGHT).expect("headless platform");
    let window = KioskWindow::new().expect("window");
    window.show().expect("shown");
    ui::set_names(&window, CLINIC, ROOM);
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let golden_dir = root().join("ui/golden");
    let artifacts = root().join("artifacts/golden");
    std::fs::create_dir_all(&artifacts).expect("artifacts/golden");
    if update {
        std::fs::create_dir_all(&golden_dir).expect("ui/golden");
    }
    let english = english_strings();
    let min_px = MIN_TARGET_MM * PX_PER_MM;
    let mut failures = untranslated();
    let mut goldens = 0;
    for language in [Language::En, Language::Es] {
        let lang = if language == Language::Es { "es" } else { "en" };
        for (name, view) in screens(language) {
            ui::show(&window, &view, true);
            let at = format!("{name} ({lang})");
            // Every control: a label, the button role, at least 15 mm.
            let found = buttons(&window);
            if found.is_empty() {
                failures.push(format!("{at}: no buttons found"));
            }
            for b in &found {
                let label = b.accessible_label().unwrap_or_default();
                let size = b.size();
                if label.is_empty() {
                    failures.push(format!("{at}: a button without a label"));
                }
                if size.width < min_px || size.height < min_px {
                    failures.push(format!(
                        "{at}: '{label}' is {:.0}x{:.0} px, under {min_px:.0} px ({MIN_TARGET_MM} mm)",
                        size.width, size.height
                    ));
                }
            }
            // No English on a Spanish screen.
            let texts = visible_texts(&window);
            if texts.is_empty() {
                failures.push(format!("{at}: no text found"));
            }
            if language == Language::Es {
                let from_config = [CLINIC, ROOM, CLOSED, DETAIL, "English"];
                for text in texts.iter().filter(|t| !from_config.contains(&t.as_str())) {
                    if let Some(e) = english.iter().find(|e| fills(e, text) && *e != "OK") {
                        failures.push(format!("{at}: English left: '{text}' ({e})"));
                    }
                }
            }
            // Golden screenshots of the screens without visit video.
            let Ok(png_bytes) = headless::screen_png() else { continue };
            let file = format!("{name}-{lang}.png");
            std::fs::write(artifacts.join(&file), &png_bytes).expect("artifact");
            goldens += 1;
            let golden = golden_dir.join(&file);
            if update {
                std::fs::write(&golden, &png_bytes).expect("golden");
                continue;
            }
            match std::fs::read(&golden) {
                Err(_) => failures.push(format!("{at}: no golden {file} (UPDATE_GOLDENS=1)")),
                Ok(stored) => {
                    let (now, then) = (decode(&png_bytes), decode(&stored));
                    let share = if (now.0, now.1) == (then.0, then.1) {
                        differing(&now.2, &then.2)
                    } else {
                        1.0
                    };
                    println!("{file}: {:.3} % of pixels differ", share * 100.0);
                    if share > MAX_DIFFERING {
                        failures.push(format!("{at}: {:.2} % of pixels differ", share * 100.0));
                    }
                }
            }
        }
    }
    assert!(goldens >= 30, "only {goldens} screens captured");
    failures.extend(taps_by_label(&window));
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

/// `tap <label>` goes through the real pointer path to the control that says it, in the
/// language on screen, whatever the case; an absent label taps nothing.
fn taps_by_label(window: &KioskWindow) -> Vec<String> {
    use std::cell::RefCell;
    use std::rc::Rc;
    let pressed = Rc::new(RefCell::new(vec![]));
    let log = pressed.clone();
    ui::wire_buttons(window, move |p| log.borrow_mut().push(p));
    let table = [
        (vm(ScreenId::Idle, Language::En), "join", Some(Press::Join)),
        (vm(ScreenId::Idle, Language::En), "Español", Some(Press::Language)),
        (vm(ScreenId::Idle, Language::Es), "Tengo un código de consulta", Some(Press::Code)),
        (vm(ScreenId::Idle, Language::Es), "Join", None),
        (vm(ScreenId::Consent, Language::En), "Accept", Some(Press::Accept)),
        (vm(ScreenId::CodeEntry, Language::En), "7", Some(Press::Digit(7))),
        // A digit already typed reads the same as its key: the key is tapped, not the box.
        (
            ViewModel {
                patient: PatientView {
                    digits: "72".into(),
                    ..vm(ScreenId::CodeEntry, Language::En).patient
                },
                ..vm(ScreenId::CodeEntry, Language::En)
            },
            "2",
            Some(Press::Digit(2)),
        ),
        (
            ViewModel {
                patient: PatientView {
                    confirm_end: true,
                    ..vm(ScreenId::InCall, Language::En).patient
                },
                ..vm(ScreenId::InCall, Language::En)
            },
            "Yes, end",
            Some(Press::EndYes),
        ),
    ];
    let mut failures = vec![];
    for (view, label, expected) in table {
        ui::show(window, &view, true);
        pressed.borrow_mut().clear();
        let found = ui::tap_label(window, label);
        let got = pressed.borrow().clone();
        if found != expected.is_some() || got != expected.into_iter().collect::<Vec<_>>() {
            failures.push(format!("tap {label:?}: found {found}, pressed {got:?}"));
        }
    }
    failures
}

#[test]
fn a_template_matches_only_its_own_filled_in_text() {
    assert!(fills("Waiting {}", "Waiting 2:05"));
    assert!(!fills("Waiting {}", "Esperando 2:05"));
    assert!(fills("{n} people are before you.", "2 people are before you."));
    assert!(fills("End", "End") && !fills("End", "Terminar"));
}
