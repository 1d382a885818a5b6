//! `telekiosk`: the kiosk appliance's one process. Wires the adapters (Slint, GStreamer, MQTT)
//! to the controller and runs the UI on the main thread.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use slint::ComponentHandle;
use telekiosk::app::{
    Agent, BoardProbe, Controller, Exit, GstMedia, Input, RESTART_EXIT_CODE, Screen, status,
};
use telekiosk::command::seen::SeenStore;
use telekiosk::config::store::{ConfigStore, TpmGuard};
use telekiosk::logs::{RecentErrors, SetLevel};
use telekiosk::profile::Profile;
use telekiosk::provisioning::{self, Provisioning};
use telekiosk::signed::PinnedKey;
use telekiosk::startup;
use telekiosk::tech::{self, SharedFacts};
use telekiosk::ui::view::ViewModel;
use telekiosk::ui::{self, KioskWindow, Press, UiFrames, headless};
use telekiosk::uplink::{MqttUplink, UplinkOptions};
use telekiosk::visit::{Timeouts, Visit};
use telekiosk_protocol::device::{ConfigRefusal, PartStatus};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// The telehealth kiosk.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The fleet server, e.g. https://fleet.example.org:8443 (default: the provisioning file's).
    #[arg(long, env = "TELEKIOSK_SERVER")]
    server: Option<url::Url>,
    /// The fleet's MQTT broker; default: the server's host on port 8883.
    #[arg(long, env = "TELEKIOSK_MQTT")]
    mqtt: Option<url::Url>,
    /// CA certificate of the fleet (fleetd prints where it is), trusted for enrolment
    /// (default: the provisioning file's).
    #[arg(long, env = "TELEKIOSK_CA")]
    ca: Option<PathBuf>,
    /// Hardware profile (hw/profiles/*.toml).
    #[arg(long, env = "TELEKIOSK_PROFILE")]
    profile: Option<PathBuf>,
    /// The provisioning file (fleet address, CA, enrolment code, profile name) that the
    /// appliance moves here from its boot partition; the options above override it.
    #[arg(long, env = "TELEKIOSK_PROVISIONING")]
    provisioning: Option<PathBuf>,
    /// Where the provisioning file's profile name is looked up.
    #[arg(long, default_value = "/usr/share/telekiosk/profiles")]
    profile_dir: PathBuf,
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
    /// The image's os-release: its IMAGE_VERSION (and update/boot.json) turn OS updates on.
    #[arg(long, env = "TELEKIOSK_OS_RELEASE", default_value = "/etc/os-release", hide = true)]
    os_release: PathBuf,
    /// Program and arguments that reboot a kiosk not on an appliance (which has its own unit).
    #[arg(long, env = "TELEKIOSK_REBOOT_COMMAND", default_value = "systemctl reboot")]
    reboot_command: String,
    /// Clinic name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Maple Valley Clinic")]
    clinic: String,
    /// Room name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Exam Room 1")]
    room: String,
    /// Render with Slint's software renderer into memory instead of the panel (DRM/KMS,
    /// touch through libinput). Reads
    /// `tap X Y`, `tap join|cancel|end|mute|camera|…`, `tap "<label>"` (the control that says
    /// it), `screenshot PATH` (refused while visit video is on screen) and `quit` lines on stdin.
    #[arg(long)]
    headless: bool,
    /// With --headless: serve the screen on this loopback address (e.g. 127.0.0.1:8090) as a
    /// virtual touchscreen for demos. Pictures stay in memory; a visit is never shown.
    #[arg(long, requires = "headless")]
    virtual_screen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Sub>,
}

/// What else the program does besides being the kiosk.
#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print what this board has (encoders tried on 5 s of 720p each, cameras and their modes,
    /// microphones, speakers, TPM, displays, watchdogs) and the hardware profile that fits it.
    Probe {
        /// Print the report as JSON (what fleetd's device diagnostics show).
        #[arg(long)]
        json: bool,
        /// Seconds of 720p30 each encoder encodes.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
        seconds: u32,
    },
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
        Ok(code) if orc.is_some() || code == telekiosk::hardening::ORC_CODE => {
            tracing::info!(%code, "GStreamer's ORC runs its C backups: no JIT code file is written")
        }
        Ok(code) => tracing::warn!(%code, "ORC_CODE set by the environment, not by the kiosk"),
        Err(_) => {}
    }
    let args = Args::parse();
    if let Some(Sub::Probe { json, seconds }) = &args.command {
        return probe(&args, *json, *seconds);
    }
    match run(args, logs) {
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

/// `telekiosk probe`: the report on stdout; exit code 0 when a profile fits, 1 when none does.
fn probe(args: &Args, json: bool, seconds: u32) -> ExitCode {
    let options = telekiosk::probe::Options {
        profile_dir: args.profile_dir.clone(),
        seconds,
        tcti: args.tpm.clone().unwrap_or_else(|| "device:/dev/tpmrm0".into()),
    };
    eprintln!("Probing: each encoder encodes {seconds} s of 720p; this takes a minute or less.");
    let report = telekiosk::probe::run(&options, None);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", telekiosk::probe::render(&report));
    }
    if report.suggestion.profile.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
    let setup = setup(&args);
    let display = match &setup {
        Ok(setup) => setup.profile.display.clone(),
        Err(_) => telekiosk::profile::Display::fallback(),
    };
    open_display(args.headless, &display)?;
    let window = KioskWindow::new().map_err(|e| no_display(args.headless, e))?;
    ui::select_language(telekiosk_protocol::config::Language::En);
    ui::set_names(&window, &args.clinic, &args.room);
    // Until the controller runs, the UI thread says the kiosk is up and pings the watchdog.
    let _standby = standby_watchdog();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (tx, rx) = unbounded_channel();
    // The technician screen: what it shows is learnt below; its "Restart app" stops the kiosk
    // cleanly and exits with the code systemd restarts it on.
    let facts = SharedFacts::default();
    let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (restart_set, restart_tx) = (restart.clone(), tx.clone());
    tech::install(
        &window,
        facts.clone(),
        runtime.handle().clone(),
        Arc::new(move || {
            restart_set.store(true, std::sync::atomic::Ordering::Release);
            stop(&restart_tx);
        }),
    );
    let restarting = move |how: Exit| {
        if restart.load(std::sync::atomic::Ordering::Acquire) { Exit::Restart } else { how }
    };
    let setup = match setup {
        Ok(setup) => setup,
        Err(unready) => {
            let (screen, message) = match &unready {
                Unready::NotSetUp => ("not_set_up", provisioning::NOT_SET_UP.to_string()),
                Unready::Problem(problem) => ("out_of_service", problem.clone()),
            };
            tracing::error!("this kiosk cannot start: {message}");
            status(&serde_json::json!({"event": "screen", "screen": screen, "message": message}));
            match unready {
                Unready::NotSetUp => ui::show_not_set_up(&window, &message),
                Unready::Problem(_) => ui::show_out_of_service(&window, &message),
            }
            tech::allow(&window, true);
            runtime.spawn(shutdown_on_signal(tx.clone()));
            let weak = window.as_weak();
            std::thread::spawn(move || read_control(tx, weak));
            window.show()?;
            slint::run_event_loop()?;
            drop(rx);
            return Ok(restarting(Exit::Stopped));
        }
    };
    let profile = setup.profile;
    let media_unavailable = telekiosk::media::init().err().map(|e| {
        tracing::error!("media system unavailable: {e}");
        // The screen says it in the patient's language; this is the detail for staff.
        e.to_string()
    });
    let mut settings = startup::Settings {
        server: setup.server.clone(),
        ca_pem: setup.ca_pem,
        state_dir: args.state_dir.clone(),
        tcti: args.tpm.clone().unwrap_or_else(|| profile.tpm.tcti.clone()),
        enrol_token: setup.enrol_token,
        insecure_software_key: args.insecure_software_key_for_development,
    };
    let spent_code = setup.spent_code;
    let presses = tx.clone();
    ui::wire_buttons(&window, move |p| {
        let _ = presses.send(Input::Press(p));
    });
    let weak = window.as_weak();
    let ctl_tx = tx.clone();
    let (mqtt_host, mqtt_port) = mqtt_address(setup.mqtt.as_ref(), &setup.server)?;
    facts.update(|f| {
        f.enrolment = tech::Enrolment::Enrolling;
        f.broker = format!("{mqtt_host}:{mqtt_port}");
        f.profile = Some(profile.clone());
    });
    let reboot_command: Vec<String> =
        args.reboot_command.split_whitespace().map(str::to_string).collect();
    let exit = Arc::new(std::sync::Mutex::new(Exit::Stopped));
    let exit_set = exit.clone();
    runtime.spawn(async move {
        let progress = |message: &str| {
            status(&serde_json::json!({"event": "screen", "screen": "setup", "message": message}));
            on_ui(&weak, message.to_string(), show_setup);
        };
        let identity = loop {
            match startup::identity(&settings, &progress).await {
                Ok(identity) => break identity,
                Err(e) => {
                    tracing::error!("this kiosk needs service: {e}");
                    out_of_service(&weak, e.to_string());
                    // Without a code, or with one fleetd refused: the technician screen's
                    // keypad may give another, and bring-up starts again with it.
                    let Some(code) = tech::enrolment_code(&e, &facts).await else { return };
                    settings.enrol_token = Some(code);
                }
            }
        };
        tech::learn_identity(&facts, &identity, settings.server.clone()).await;
        if let Some((path, file)) = spent_code {
            match file.forget_code(&path) {
                Ok(()) => tracing::info!(
                    "enrolled: the spent enrolment code is removed from {}",
                    path.display()
                ),
                Err(e) => tracing::warn!("{e}"),
            }
        }
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
        facts.update(|f| {
            let source = tech::ConfigSource {
                store: store.clone(),
                pinned: pinned.clone(),
                device_id: device_id.clone(),
            };
            f.config = Some(source.reader());
        });
        let (in_force, startup_refusal) = load_config(&store, &pinned, &device_id).await;
        let options = UplinkOptions {
            host: mqtt_host,
            port: mqtt_port,
            tls: identity.tls.clone(),
            device_id: device_id.clone(),
        };
        let fleet = match MqttUplink::start(&options, forward(ctl_tx.clone(), Input::Uplink)) {
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
            device_key: identity.key.clone(),
            updates: telekiosk::update::agent::on_appliance(
                &args.state_dir,
                &args.os_release,
                &settings.server,
                &identity.tls,
                {
                    let tx = ctl_tx.clone();
                    move |os| drop(tx.send(Input::Os(Box::new(os))))
                },
            ),
        };
        let controller = Controller {
            visit: Visit::new(&args.clinic, &args.room, Timeouts::default()),
            media: Box::new(GstMedia::new(profile.clone())),
            profile,
            uplink: Box::new(fleet),
            frames: Arc::new(UiFrames::new(weak.clone())),
            screen: Box::new(SlintScreen(weak)),
            hardware: Box::new(BoardProbe {
                options: telekiosk::probe::Options {
                    profile_dir: args.profile_dir.clone(),
                    seconds: 5,
                    tcti: settings.tcti.clone(),
                },
                tpm: identity.tpm().cloned(),
            }),
            media_unavailable,
            agent,
        };
        let how = controller.run(ctl_tx, rx).await;
        *exit_set.lock().unwrap_or_else(|e| e.into_inner()) = restarting(how);
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
    let control_window = window.as_weak();
    std::thread::spawn(move || read_control(tx, control_window));

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
fn mqtt_address(mqtt: Option<&url::Url>, server: &url::Url) -> anyhow::Result<(String, u16)> {
    let url = mqtt.unwrap_or(server);
    let host = url.host_str().context("the server URL has no host")?.to_string();
    let port = if mqtt.is_some() { url.port().unwrap_or(8883) } else { 8883 };
    Ok((host, port))
}

/// What the kiosk runs with: the command line's options, else the provisioning file's.
struct Setup {
    server: url::Url,
    mqtt: Option<url::Url>,
    ca_pem: Vec<u8>,
    enrol_token: Option<String>,
    profile: Profile,
    /// The provisioning file while it holds an enrolment code, to forget once enrolled.
    spent_code: Option<(PathBuf, Provisioning)>,
}

/// Why the kiosk cannot start: never set up, or something named is wrong.
enum Unready {
    NotSetUp,
    Problem(String),
}

fn setup(args: &Args) -> Result<Setup, Unready> {
    let file = match &args.provisioning {
        Some(path) => Provisioning::load(path).map_err(|e| Unready::Problem(e.to_string()))?,
        None => None,
    };
    let file = file.map(|f| (args.provisioning.clone().unwrap_or_default(), f));
    let from_file = file.as_ref().map(|(_, f)| f);
    let server = match (&args.server, from_file) {
        (Some(server), _) => server.clone(),
        (None, Some(f)) => f.server.clone(),
        (None, None) if args.provisioning.is_some() => return Err(Unready::NotSetUp),
        (None, None) => {
            return Err(Unready::Problem(
                "no fleet server: pass --server, or --provisioning with a provisioning file".into(),
            ));
        }
    };
    let ca_pem = match (&args.ca, from_file) {
        (Some(path), _) => std::fs::read(path).map_err(|e| {
            Unready::Problem(format!("cannot read the fleet CA {}: {e}", path.display()))
        })?,
        (None, Some(f)) => f.fleet_ca.clone().into_bytes(),
        (None, None) => return Err(Unready::Problem("no fleet CA: pass --ca".into())),
    };
    let profile_path = match (&args.profile, from_file) {
        (Some(path), _) => path.clone(),
        (None, Some(f)) => f.profile_path(&args.profile_dir),
        (None, None) => return Err(Unready::Problem("no hardware profile: pass --profile".into())),
    };
    let profile = Profile::load(&profile_path).map_err(|e| Unready::Problem(e.to_string()))?;
    let enrol_token =
        args.enrol_token.clone().or_else(|| from_file.and_then(|f| f.enrol_code.clone()));
    let mqtt = args.mqtt.clone().or_else(|| from_file.and_then(|f| f.mqtt.clone()));
    let spent_code = file.filter(|(_, f)| f.enrol_code.is_some());
    Ok(Setup { server, mqtt, ca_pem, enrol_token, profile, spent_code })
}

/// Installs the screen: the panel through DRM/KMS and libinput, or memory with `--headless`.
/// The panel's rotation comes from the hardware profile.
fn open_display(headless: bool, display: &telekiosk::profile::Display) -> anyhow::Result<()> {
    if headless {
        return headless::install(display.width, display.height)
            .context("cannot start the headless screen");
    }
    if display.rotation != 0 {
        // SAFETY: no other thread exists yet (the async runtime, GStreamer and the control
        // reader start after this), so nothing reads or writes the environment concurrently;
        // Slint's KMS backend reads it when it creates the window.
        unsafe { std::env::set_var("SLINT_KMS_ROTATION", display.rotation.to_string()) };
    }
    slint::BackendSelector::new()
        .backend_name("linuxkms".into())
        .renderer_name("software".into())
        .select()
        .map_err(|e| anyhow::anyhow!("the display system cannot start: {e}"))
}

/// The plain error when no screen can be opened (systemd restarts the kiosk).
fn no_display(headless: bool, e: slint::PlatformError) -> anyhow::Error {
    if headless {
        anyhow::anyhow!("cannot create the kiosk window: {e}")
    } else {
        anyhow::anyhow!(
            "no display could be opened ({e}): check that the panel is connected and that \
             /dev/dri/card0 exists and is usable by this user (group video/render)"
        )
    }
}

/// Before the controller runs (setting up, not set up, out of service) the UI thread tells
/// systemd the kiosk is up and pings its watchdog; the controller's loop takes over once it
/// runs, so a hung controller is still restarted.
fn standby_watchdog() -> Option<slint::Timer> {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    sd_notify::watchdog_enabled()?;
    let timer = slint::Timer::default();
    timer.start(slint::TimerMode::Repeated, std::time::Duration::from_millis(500), || {
        if !telekiosk::app::controller_pings_watchdog() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        }
    });
    Some(timer)
}

/// Shows "This kiosk needs service" with the reason, and says so on stdout.
fn out_of_service(weak: &slint::Weak<KioskWindow>, reason: String) {
    let mut chars = reason.chars();
    let reason = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or(reason);
    status(&serde_json::json!({"event": "screen", "screen": "out_of_service", "message": reason}));
    on_ui(weak, reason, |window, reason| {
        ui::show_out_of_service(window, reason);
        tech::allow(window, true);
    });
}

/// The set-up screen (the technician's corner is off there).
fn show_setup(window: &KioskWindow, message: &str) {
    ui::show_setup(window, message);
    tech::allow(window, false);
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

/// Headless control on stdin: `tap X Y`, `tap join|cancel|end|mute|camera|…`, `tap "<label>"`,
/// `screenshot PATH`, `quit`. `tap X Y` and `tap "<label>"` go through the real UI (pointer
/// events on the window, at the labelled control's centre), exactly as a finger on the panel
/// would. `tap <label>` matches labels whatever their case (`tap join` taps "Join"); a
/// button's name with no such label on screen runs that button's action wherever it is drawn.
fn read_control(tx: UnboundedSender<Input>, window: slint::Weak<KioskWindow>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(label) = tap_label(&line) {
            let window = window.clone();
            let posted = slint::invoke_from_event_loop(move || {
                let Some(window) = window.upgrade() else { return };
                let found = ui::tap_label(&window, &label);
                if !found {
                    match Press::named(&label.to_lowercase()) {
                        Some(press) => ui::press(&window, press),
                        None => tracing::warn!("control: no control labelled {label:?} on screen"),
                    }
                }
                status(&serde_json::json!({"event": "tap", "label": label, "found": found}));
            });
            if posted.is_err() {
                break;
            }
            continue;
        }
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
                    "control: unknown command {line:?} (tap X Y | tap NAME | screenshot PATH | quit)"
                );
                continue;
            }
        };
        if posted.is_err() {
            break;
        }
    }
}

/// The label of `tap "<label>"` or `tap <label>` (anything but `tap X Y`).
fn tap_label(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("tap ")?.trim();
    if let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Some(quoted.to_string());
    }
    let mut words = rest.split_whitespace();
    let numbers = (words.next()?.parse::<f32>().is_ok(), words.next().map(|w| w.parse::<f32>()));
    match numbers {
        (true, Some(Ok(_))) => None,
        _ => Some(rest.to_string()),
    }
}

/// Shows view models on the Slint window from any thread.
struct SlintScreen(slint::Weak<KioskWindow>);

impl Screen for SlintScreen {
    fn show(&self, vm: &ViewModel, online: bool) {
        let (vm, window) = (vm.clone(), self.0.clone());
        let _ = slint::invoke_from_event_loop(move || {
            if let Some(window) = window.upgrade() {
                ui::show(&window, &vm, online);
                tech::screen_changed(&window, vm.screen, online);
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
