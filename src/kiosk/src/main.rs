//! `telekiosk`: the kiosk appliance's one process. Wires the adapters (Slint, GStreamer, MQTT)
//! to the controller and runs the UI on the main thread.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use slint::ComponentHandle;
use telekiosk::app::{Controller, Display, Input};
use telekiosk::fleet::{FleetLink, FleetOptions};
use telekiosk::profile::Profile;
use telekiosk::ui::view::ViewModel;
use telekiosk::ui::{self, KioskWindow, UiFrames, headless};
use telekiosk::visit::{Timeouts, Visit};
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
    /// CA certificate of the fleet (fleetd prints where it is).
    #[arg(long, env = "TELEKIOSK_CA")]
    ca: PathBuf,
    /// Hardware profile (hw/profiles/*.toml).
    #[arg(long, env = "TELEKIOSK_PROFILE")]
    profile: PathBuf,
    /// This kiosk's id (until enrolment gives it one from the TPM identity).
    #[arg(long, env = "TELEKIOSK_DEVICE_ID", default_value = "kiosk-1")]
    device_id: String,
    /// Clinic name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Maple Valley Clinic")]
    clinic: String,
    /// Room name shown on the screen (until fleet config sets it).
    #[arg(long, default_value = "Exam Room 1")]
    room: String,
    /// Render with Slint's software renderer into memory instead of a display. Reads
    /// `tap X Y`, `screenshot PATH` and `quit` lines on stdin.
    #[arg(long)]
    headless: bool,
    /// With --headless: serve the screen on this loopback address (e.g. 127.0.0.1:8090) as a
    /// virtual touchscreen for demos. Pictures stay in memory.
    #[arg(long, requires = "headless")]
    virtual_screen: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,telekiosk=info".into()),
        )
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("telekiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
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
    let (tx, rx) = unbounded_channel();
    let fleet = {
        let _guard = runtime.enter();
        FleetLink::start(&fleet_options(&args)?, forward(tx.clone(), Input::Fleet))?
    };
    let controller = Controller {
        visit: Visit::new(&args.clinic, &args.room, Timeouts::default()),
        profile,
        fleet,
        frames: Arc::new(UiFrames::new(window.as_weak())),
        display: Box::new(SlintDisplay(window.as_weak())),
        media_unavailable,
    };
    let presses = tx.clone();
    ui::wire_buttons(&window, move |p| {
        let _ = presses.send(Input::Press(p));
    });
    let ctl_tx = tx.clone();
    runtime.spawn(async move {
        controller.run(ctl_tx, rx).await;
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
    Ok(())
}

fn fleet_options(args: &Args) -> anyhow::Result<FleetOptions> {
    let mqtt = args.mqtt.as_ref().unwrap_or(&args.server);
    let host = mqtt.host_str().context("the server URL has no host")?.to_string();
    let port = if args.mqtt.is_some() { mqtt.port().unwrap_or(8883) } else { 8883 };
    Ok(FleetOptions {
        host,
        port,
        ca_file: args.ca.clone(),
        device_id: args.device_id.clone(),
        clinic: args.clinic.clone(),
        room: args.room.clone(),
    })
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
    let _ = tx.send(Input::Shutdown);
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
                    Err(e) => tracing::warn!("screenshot failed: {e}"),
                })
            }
            ["quit"] => {
                let _ = tx.send(Input::Shutdown);
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
}
