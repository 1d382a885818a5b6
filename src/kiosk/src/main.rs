//! `telekiosk`: the kiosk appliance's one process. Wires the adapters (Slint, GStreamer, MQTT)
//! to the controller and runs the UI on the main thread.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use slint::ComponentHandle;
use telekiosk::app::{Agent, Controller, Display, Exit, Input, RESTART_EXIT_CODE, status};
use telekiosk::command::seen::SeenStore;
use telekiosk::config::store::{ConfigStore, TpmGuard};
use telekiosk::fleet::{FleetLink, FleetOptions};
use telekiosk::logs::{RecentErrors, SetLevel};
use telekiosk::profile::Profile;
use telekiosk::signed::PinnedKey;
use telekiosk::startup;
use telekiosk::ui::view::ViewModel;
use telekiosk::ui::{self, KioskWindow, UiFrames, headless};
use telekiosk::visit::{Timeouts, Visit};
use telekiosk_protocol::device::{ConfigRefusal, PartStatus};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// The telehealth kiosk.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The fleet server, e.g. https://fleet.example.org:8443.
    #[arg(long, env = "TELEKIOSK_SERVER")]
    server: url::Url,
    /// The fleet's MQTT broker; default: the server's host on port 8883.
    #[arg(long, env = "TELEKIOSK_MQTT")]
    mqtt: Option<url::Url>,
    /// CA certificate of the fleet (fleetd prints where it is), trusted for enrolment.
    #[arg(long, env = "TELEKIOSK_CA")]
    ca: PathBuf,
    /// Hardware profile (hw/profiles/*.toml).
    #[arg(long, env = "TELEKIOSK_PROFILE")]
    profile: PathBuf,
    /// Where the kiosk keeps its state: the device key's public record, its enrolment.
    #[arg(long, env = "TELEKIOSK_STATE_DIR", default_value = "/var/lib/telekiosk")]
    state_dir: PathBuf,
    /// TPM to use (TCTI), instead of the hardware profile's, e.g. swtpm:host=127.0.0.1,port=2321.
    #[arg(long, env = "TELEKIOSK_TPM")]
    tpm: Option<String>,
    /// One-time enrolment code from the fleet admin, for the first start.
    #[arg(long, env = "TELEKIOSK_ENROL_TOKEN")]
    enrol_token: Option<String>,
    /// DEVELOPMENT ONLY, INSECURE: keep the device key in a file instead of the TPM.
    #[arg(long)]
    insecure_software_key_for_development: bool,
    /// Program and arguments that reboot the appliance (fleet admins' Reboot command).
    #[arg(long, env = "TELEKIOSK_REBOOT_COMMAND", default_value = "systemctl reboot")]
    reboot_command: String,
    /// Clinic name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Maple Valley Clinic")]
    clinic: String,
    /// Room name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Exam Room 1")]
    room: String,
    /// Render with Slint's software renderer into memory instead of a display. Reads
    /// `tap X Y`, `screenshot PATH` (refused while visit video is on screen) and `quit` lines
    /// on stdin.
    #[arg(long)]
    headless: bool,
    /// With --headless: serve the screen on this loopback address (e.g. 127.0.0.1:8090) as a
    /// virtual touchscreen for demos. Pictures stay in memory; a visit is never shown.
    #[arg(long, requires = "headless")]
    virtual_screen: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let orc = telekiosk::hardening::orc_code(std::env::var_os("ORC_CODE").as_deref());
    if let Some(code) = orc {
        // SAFETY: the first statement of main, before any thread exists (nothing else reads
        // or writes the environment concurrently); GStreamer reads it later, at its init.
        unsafe { std::env::set_var("ORC_CODE", code) };
    }
    let logs = telekiosk::logs::init();
    match std::env::var("ORC_CODE") {
        Ok(code) if orc.is_some() => {
            tracing::info!(%code, "GStreamer's ORC runs its C backups: no JIT code file is written")
        }
        Ok(code) => tracing::warn!(%code, "ORC_CODE set by the environment, not by the kiosk"),
        Err(_) => {}
    }
    match run(Args::parse(), logs) {
        Ok(Exit::Stopped) => ExitCode::SUCCESS,
        Ok(Exit::Restart) => {
            tracing::info!("exiting with code {RESTART_EXIT_CODE} so that the kiosk restarts");
            ExitCode::from(RESTART_EXIT_CODE)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("telekiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    args: Args,
    (recent_errors, set_log_level): (RecentErrors, SetLevel),
) -> anyhow::Result<Exit> {
    let hardened =
        telekiosk::hardening::harden().context("cannot keep visit media out of dumps")?;
    if let Err(e) = hardened.memory_locked {
        tracing::warn!(
            "memory is not locked and may be swapped ({e}): give the kiosk CAP_IPC_LOCK or LimitMEMLOCK=infinity"
        );
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = Profile::load(&args.profile)?;
    if !args.headless {
        bail!("this build has no display backend yet: run with --headless");
    }
    headless::install(profile.display.width, profile.display.height)
        .context("cannot start the headless screen")?;
    let window = KioskWindow::new().context("cannot create the kiosk window")?;
    ui::set_names(&window, &args.clinic, &args.room);

    let media_unavailable = telekiosk::media::init().err().map(|e| {
        tracing::error!("media system unavailable: {e}");
        format!("The camera and video system could not start. ({e})")
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let settings = startup::Settings {
        server: args.server.clone(),
        ca_pem: std::fs::read(&args.ca)
            .with_context(|| format!("cannot read the fleet CA {}", args.ca.display()))?,
        state_dir: args.state_dir.clone(),
        tcti: args.tpm.clone().unwrap_or_else(|| profile.tpm.tcti.clone()),
        enrol_token: args.enrol_token.clone(),
        insecure_software_key: args.insecure_software_key_for_development,
    };
    let (tx, rx) = unbounded_channel();
    let presses = tx.clone();
    ui::wire_buttons(&window, move |p| {
        let _ = presses.send(Input::Press(p));
    });
    let weak = window.as_weak();
    let ctl_tx = tx.clone();
    let (mqtt_host, mqtt_port) = mqtt_address(&args)?;
    let reboot_command: Vec<String> =
        args.reboot_command.split_whitespace().map(str::to_string).collect();
    let exit = Arc::new(std::sync::Mutex::new(Exit::Stopped));
    let exit_set = exit.clone();
    runtime.spawn(async move {
        let progress = |message: &str| {
            status(&serde_json::json!({"event": "screen", "screen": "setup", "message": message}));
            on_ui(&weak, message.to_string(), ui::show_setup);
        };
        let identity = match startup::identity(&settings, progress).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::error!("this kiosk needs service: {e}");
                out_of_service(&weak, e.to_string());
                return;
            }
        };
        let device_id = identity.credentials.device_id.clone();
        let pinned = match PinnedKey::from_spki_pem(&identity.credentials.signing_key_pem) {
            Ok(pinned) => pinned,
            Err(e) => {
                tracing::error!("this kiosk needs service: {e}");
                out_of_service(&weak, e.to_string());
                return;
            }
        };
        let guard = identity.tpm().map(|tpm| TpmGuard::new(tpm.clone(), identity.key.clone()));
        let store = ConfigStore::new(&args.state_dir, guard);
        let (in_force, startup_refusal) = load_config(&store, &pinned, &device_id).await;
        let options = FleetOptions {
            host: mqtt_host,
            port: mqtt_port,
            tls: identity.tls.clone(),
            device_id: device_id.clone(),
        };
        let fleet = match FleetLink::start(&options, forward(ctl_tx.clone(), Input::Fleet)) {
            Ok(fleet) => fleet,
            Err(e) => {
                out_of_service(&weak, e.to_string());
                return;
            }
        };
        let agent = Agent {
            device_id,
            pinned,
            store,
            seen: SeenStore::new(&args.state_dir),
            in_force,
            startup_refusal,
            default_names: (args.clinic.clone(), args.room.clone()),
            tpm: if identity.tpm().is_some() { PartStatus::Ok } else { PartStatus::Missing },
            set_log_level,
            recent_errors,
            reboot_command,
        };
        let controller = Controller {
            visit: Visit::new(&args.clinic, &args.room, Timeouts::default()),
            profile,
            fleet,
            frames: Arc::new(UiFrames::new(weak.clone())),
            display: Box::new(SlintDisplay(weak)),
            media_unavailable,
            agent,
        };
        let how = controller.run(ctl_tx, rx).await;
        *exit_set.lock().unwrap_or_else(|e| e.into_inner()) = how;
        drop(identity);
        let _ = slint::quit_event_loop();
    });
    runtime.spawn(shutdown_on_signal(tx.clone()));
    if let Some(addr) = args.virtual_screen {
        runtime.spawn(async move {
            if let Err(e) = ui::virtual_screen::serve(addr).await {
                tracing::error!("{e}");
            }
        });
    }
    std::thread::spawn(move || read_control(tx));

    window.show()?;
    slint::run_event_loop()?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let how = *exit.lock().unwrap_or_else(|e| e.into_inner());
    Ok(how)
}

/// The stored config, verified again; a bad or rolled-back file is reported (log, audit, and
/// the state's refusal) and the kiosk runs on the built-in defaults until fleetd's arrives.
async fn load_config(
    store: &ConfigStore,
    pinned: &PinnedKey,
    device_id: &str,
) -> (Option<telekiosk::config::Accepted>, Option<ConfigRefusal>) {
    let (store, pinned, id) = (store.clone(), pinned.clone(), device_id.to_string());
    let loaded = tokio::task::spawn_blocking(move || store.load(&pinned, &id)).await;
    match loaded {
        Ok(Ok(Some(accepted))) => {
            tracing::info!(version = accepted.payload.version, "stored config in force");
            (Some(accepted), None)
        }
        Ok(Ok(None)) => (None, None),
        Ok(Err(e)) => {
            let reason = e.to_string();
            tracing::warn!(target: "audit", event = "stored_config_refused", %reason, "stored config refused");
            (None, Some(ConfigRefusal { version: 0, reason }))
        }
        Err(e) => {
            tracing::error!("loading the stored config panicked: {e}");
            (None, None)
        }
    }
}

/// The broker: `--mqtt`, or the server's host on port 8883.
fn mqtt_address(args: &Args) -> anyhow::Result<(String, u16)> {
    let mqtt = args.mqtt.as_ref().unwrap_or(&args.server);
    let host = mqtt.host_str().context("the server URL has no host")?.to_string();
    let port = if args.mqtt.is_some() { mqtt.port().unwrap_or(8883) } else { 8883 };
    Ok((host, port))
}

/// Shows "This kiosk needs service" with the reason, and says so on stdout.
fn out_of_service(weak: &slint::Weak<KioskWindow>, reason: String) {
    let mut chars = reason.chars();
    let reason = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or(reason);
    status(&serde_json::json!({"event": "screen", "screen": "out_of_service", "message": reason}));
    on_ui(weak, reason, ui::show_out_of_service);
}

/// Runs `f(window, message)` on the UI thread.
fn on_ui(weak: &slint::Weak<KioskWindow>, message: String, f: fn(&KioskWindow, &str)) {
    let weak = weak.clone();
    let _ = slint::invoke_from_event_loop(move || {
        if let Some(window) = weak.upgrade() {
            f(&window, &message);
        }
    });
}

/// A sender of `T` that wraps each value into an `Input` for the controller.
fn forward<T: Send + 'static>(
    tx: UnboundedSender<Input>,
    wrap: fn(T) -> Input,
) -> UnboundedSender<T> {
    let (inner_tx, mut inner_rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(v) = inner_rx.recv().await {
            if tx.send(wrap(v)).is_err() {
                break;
            }
        }
    });
    inner_tx
}

async fn shutdown_on_signal(tx: UnboundedSender<Input>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
    stop(&tx);
}

/// Asks the controller to end any visit and stop; quits the UI anyway if it does not (it may
/// never have started, e.g. on the service screen).
fn stop(tx: &UnboundedSender<Input>) {
    let _ = tx.send(Input::Shutdown);
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let _ = slint::quit_event_loop();
    });
}

/// Headless control on stdin: `tap X Y`, `screenshot PATH`, `quit`. Taps go through the real
/// UI (pointer events on the window), exactly as a finger on the panel would.
fn read_control(tx: UnboundedSender<Input>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let posted = match words.as_slice() {
            ["tap", x, y] => match (x.parse::<f32>(), y.parse::<f32>()) {
                (Ok(x), Ok(y)) => slint::invoke_from_event_loop(move || headless::tap(x, y)),
                _ => {
                    tracing::warn!("control: tap needs two numbers: {line}");
                    continue;
                }
            },
            ["screenshot", path] => {
                let path = PathBuf::from(path);
                slint::invoke_from_event_loop(move || match headless::screenshot(&path) {
                    Ok(()) => {
                        println!("{}", serde_json::json!({"event": "screenshot", "path": path}))
                    }
                    Err(headless::CaptureError::Visit { .. }) => {
                        tracing::info!("screenshot refused: {}", headless::REFUSED);
                        println!(
                            "{}",
                            serde_json::json!({"event": "screenshot_refused", "path": path,
                                "reason": headless::REFUSED})
                        )
                    }
                    Err(e) => tracing::warn!("screenshot failed: {e}"),
                })
            }
            ["quit"] => {
                stop(&tx);
                break;
            }
            [] => continue,
            _ => {
                tracing::warn!(
                    "control: unknown command {line:?} (tap X Y | screenshot PATH | quit)"
                );
                continue;
            }
        };
        if posted.is_err() {
            break;
        }
    }
}

/// Shows view models on the Slint window from any thread.
struct SlintDisplay(slint::Weak<KioskWindow>);

impl Display for SlintDisplay {
    fn show(&self, vm: &ViewModel, online: bool) {
        let (vm, window) = (vm.clone(), self.0.clone());
        let _ = slint::invoke_from_event_loop(move || {
            if let Some(window) = window.upgrade() {
                ui::show(&window, &vm, online);
            }
        });
    }

    fn names(&self, clinic: &str, room: &str) {
        let (clinic, room, window) = (clinic.to_string(), room.to_string(), self.0.clone());
        let _ = slint::invoke_from_event_loop(move || {
            if let Some(window) = window.upgrade() {
                ui::set_names(&window, &clinic, &room);
            }
        });
    }

    fn identify(&self, room: Option<&str>) {
        let (room, window) = (room.map(str::to_string), self.0.clone());
        let _ = slint::invoke_from_event_loop(move || {
            if let Some(window) = window.upgrade() {
                ui::set_identify(&window, room.as_deref());
            }
        });
    }
}
