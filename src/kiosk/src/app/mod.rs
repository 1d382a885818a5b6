//! The controller: feeds every input (touches, fleet messages, media reports, time) to the
//! visit state machine, carries out the effects it returns, and shows the result on the screen.
//! It owns the media pipeline of the visit in progress; it holds no visit logic of its own.
//! `fleet_ops` applies fleet config and runs fleet commands; `telemetry` makes the PHI-free
//! device state and diagnostics.
//!
//! For tests and supervisors it prints one JSON line on stdout per screen change
//! (`{"event":"screen","screen":"in_call"}`), the call's notice when it changes
//! (`{"event":"call_notice","text":"…"}`), during a call once a second the call's counters
//! (`{"event":"stats",...}`), and one line per config decision and command. No patient data is
//! in any of them.

mod events;
mod fleet_ops;
mod liveness;

use liveness::Liveness;
pub mod telemetry;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use telekiosk_protocol::command::CommandPayload;
use telekiosk_protocol::device::{ConfigRefusal, Health, LastVisit, NetworkQuality, PartStatus};
use telekiosk_protocol::visit::IceSettings;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::command::RecentIds;
use crate::command::seen::SeenStore;
use crate::config::store::ConfigStore;
use crate::config::{Accepted, Settings};
use crate::fleet::{FleetEvent, FleetLink};
use crate::logs::{RecentErrors, SetLevel};
use crate::media::{Call, CallStats, FrameSink, MediaEvent};
use crate::profile::Profile;
use crate::signed::PinnedKey;
use crate::ui::Press;
use crate::ui::view::{CallCondition, ViewModel, view};
use crate::visit::{Effect, Event, State, Visit};
use events::{FirstFrame, media_event, press_event};

/// Everything the controller listens to.
#[derive(Debug)]
pub enum Input {
    Press(Press),
    Fleet(FleetEvent),
    /// A media report, tagged with the number of the call it came from.
    Media(u64, MediaEvent),
    /// Stop: end any visit cleanly and return.
    Shutdown,
}

/// How the controller shows things; the Slint adapter in the binary, a recorder in tests.
pub trait Display: Send + Sync + 'static {
    /// Shows the view model (and whether the fleet link is up).
    fn show(&self, vm: &ViewModel, online: bool);
    /// The clinic and room names on every screen.
    fn names(&self, clinic: &str, room: &str);
    /// "This is <room>" over every screen, flashing; `None` hides it.
    fn identify(&self, room: Option<&str>);
}

/// How the controller ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (signal, `quit`).
    Stopped,
    /// A fleet admin's RestartApp: the process exits with [`RESTART_EXIT_CODE`].
    Restart,
}

/// Exit code after RestartApp; the systemd unit restarts the kiosk on it (EX_TEMPFAIL).
pub const RESTART_EXIT_CODE: u8 = 75;

/// Set once the controller's loop runs and pings systemd's watchdog itself.
static CONTROLLER_PINGS: AtomicBool = AtomicBool::new(false);

/// Whether the controller's loop pings the watchdog (until then the UI thread does).
pub fn controller_pings_watchdog() -> bool {
    CONTROLLER_PINGS.load(std::sync::atomic::Ordering::Acquire)
}

/// The fleet side of the kiosk: who it is, whose signatures it trusts, where config and command
/// ids are kept, and the process-wide knobs a config turns.
pub struct Agent {
    pub device_id: String,
    /// fleetd's signing key, pinned at enrolment.
    pub pinned: PinnedKey,
    pub store: ConfigStore,
    pub seen: SeenStore,
    /// The config in force at start (the stored one, verified again), if any.
    pub in_force: Option<Accepted>,
    /// Why the stored config was refused at start, if it was.
    pub startup_refusal: Option<ConfigRefusal>,
    /// Clinic and room from the command line: the built-in defaults' names.
    pub default_names: (String, String),
    /// The TPM as bring-up found it.
    pub tpm: PartStatus,
    pub set_log_level: SetLevel,
    pub recent_errors: RecentErrors,
    /// Program and arguments that reboot the appliance.
    pub reboot_command: Vec<String>,
}

/// The controller's parts.
pub struct Controller {
    pub visit: Visit,
    pub profile: Profile,
    pub fleet: FleetLink,
    pub frames: Arc<dyn FrameSink>,
    pub display: Box<dyn Display>,
    /// Set when the media system could not start: the kiosk goes out of service.
    pub media_unavailable: Option<String>,
    pub agent: Agent,
}

struct Running {
    call: Option<Call>,
    /// Number of the current call; media reports of older calls are ignored.
    generation: u64,
    online: bool,
    shown: Option<(ViewModel, bool)>,
    tx: UnboundedSender<Input>,
    started: Instant,
    /// What the config in force means (or the built-in defaults).
    settings: Settings,
    in_force: Option<Accepted>,
    refusal: Option<ConfigRefusal>,
    /// Keeps accepted configs on disk, in order, off the controller's task.
    store_tx: UnboundedSender<telekiosk_protocol::config::SignedConfig>,
    seen: RecentIds,
    health: Health,
    network: Option<NetworkQuality>,
    /// How the call in progress is going (quality, video paused), for the screen.
    condition: CallCondition,
    last_visit: Option<LastVisit>,
    visit_started: Option<Instant>,
    media_started: Option<Instant>,
    connected_at: Option<Instant>,
    /// Whether the clinician's media still arrives in the call.
    liveness: Liveness,
    /// How the visit's call may reach the clinician (from fleetd), for every pipeline it builds.
    visit_ice: IceSettings,
    last_stats: Option<CallStats>,
    start_failed: bool,
    identify_until: Option<Instant>,
    /// Reboot/restart commands waiting for the visit in progress to end.
    deferred: Vec<CommandPayload>,
    next_report: Instant,
    exit: Option<Exit>,
}

impl Controller {
    /// Runs until `Input::Shutdown` or a restart command; says which.
    pub async fn run(
        mut self,
        tx: UnboundedSender<Input>,
        mut rx: UnboundedReceiver<Input>,
    ) -> Exit {
        let in_force = self.agent.in_force.take();
        let (clinic, room) = &self.agent.default_names;
        let settings =
            in_force.as_ref().map(Settings::of).unwrap_or_else(|| Settings::defaults(clinic, room));
        let media_ok = self.media_unavailable.is_none();
        let mut run = Running {
            call: None,
            generation: 0,
            online: false,
            shown: None,
            tx,
            started: Instant::now(),
            settings: settings.clone(),
            in_force,
            refusal: self.agent.startup_refusal.take(),
            store_tx: fleet_ops::spawn_store(self.agent.store.clone()),
            seen: self.agent.seen.load(),
            health: telemetry::initial_health(media_ok, self.agent.tpm),
            network: None,
            condition: CallCondition::default(),
            last_visit: None,
            visit_started: None,
            media_started: None,
            connected_at: None,
            liveness: Liveness::default(),
            visit_ice: IceSettings::default(),
            last_stats: None,
            start_failed: false,
            identify_until: None,
            deferred: vec![],
            next_report: Instant::now() + settings.telemetry_interval,
            exit: None,
        };
        self.apply(settings, &mut run);
        self.report(&run);
        let mut pending = VecDeque::new();
        if let Some(reason) = self.media_unavailable.take() {
            pending.push_back(Event::MediaUnavailable { reason });
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // Under systemd (Type=notify): ready once the first screen is up, then a watchdog ping
        // from this loop every half second, so a hung controller is restarted.
        let watchdog = sd_notify::watchdog_enabled();
        let mut ready = false;
        loop {
            while let Some(event) = pending.pop_front() {
                self.step(event, &mut run, &mut pending).await;
            }
            if let Some(exit) = run.exit {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                self.stop(&mut run, &mut pending).await;
                return exit;
            }
            self.refresh(&mut run);
            if !ready {
                ready = true;
                CONTROLLER_PINGS.store(true, std::sync::atomic::Ordering::Release);
                if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
                    tracing::warn!("cannot tell systemd the kiosk is ready: {e}");
                }
            }
            let input = tokio::select! {
                input = rx.recv() => input.unwrap_or(Input::Shutdown),
                _ = tick.tick() => {
                    if watchdog.is_some() {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    self.print_stats(&mut run);
                    pending.extend(self.watch_media(&mut run));
                    self.on_tick(&mut run);
                    pending.push_back(Event::Tick);
                    continue;
                }
            };
            match input {
                Input::Press(press) => pending.push_back(press_event(press)),
                Input::Fleet(FleetEvent::Connected) => {
                    run.online = true;
                    self.report(&run);
                    pending.push_back(Event::FleetConnected);
                }
                Input::Fleet(FleetEvent::Disconnected(why)) => {
                    if run.online {
                        tracing::warn!("lost the fleet connection: {why}");
                    }
                    run.online = false;
                }
                Input::Fleet(FleetEvent::Visit(Ok(msg))) => pending.push_back(Event::Server(msg)),
                Input::Fleet(FleetEvent::Visit(Err(e))) => {
                    pending.push_back(Event::ServerMalformed { reason: e.to_string() })
                }
                Input::Fleet(FleetEvent::Config(bytes)) => self.on_config(&bytes, &mut run),
                Input::Fleet(FleetEvent::Command(bytes)) => self.on_command(&bytes, &mut run).await,
                Input::Media(generation, MediaEvent::VideoPaused(paused))
                    if generation == run.generation =>
                {
                    run.condition.video_paused = paused;
                }
                Input::Media(generation, event) if generation == run.generation => {
                    pending.extend(media_event(event))
                }
                Input::Media(..) => {}
                Input::Shutdown => run.exit = Some(Exit::Stopped),
            }
        }
    }

    /// One event through the state machine; notices when a visit has just ended.
    async fn step(&mut self, event: Event, run: &mut Running, pending: &mut VecDeque<Event>) {
        let was_in_progress = self.visit.in_progress().is_some();
        let now = run.started.elapsed().as_millis() as u64;
        for effect in self.visit.handle(event, now) {
            self.carry_out(effect, run, pending).await;
        }
        if matches!(self.visit.state(), State::InCall { .. }) && run.connected_at.is_none() {
            run.connected_at = Some(Instant::now());
        }
        if was_in_progress && self.visit.in_progress().is_none() {
            self.visit_ended(run).await;
        }
    }

    /// Ends any visit cleanly, stops media, and lets the fleet link flush.
    async fn stop(&mut self, run: &mut Running, pending: &mut VecDeque<Event>) {
        for press in [Event::CancelPressed, Event::EndPressed] {
            let now = run.started.elapsed().as_millis() as u64;
            for effect in self.visit.handle(press, now) {
                self.carry_out(effect, run, pending).await;
            }
        }
        if let Some(call) = run.call.take() {
            call.stop();
        }
        if run.exit == Some(Exit::Restart) {
            self.fleet.disconnect().await;
        }
    }

    async fn carry_out(
        &mut self,
        effect: Effect,
        run: &mut Running,
        pending: &mut VecDeque<Event>,
    ) {
        match effect {
            Effect::StartMedia { visit_id, ice } => {
                run.network = None;
                run.visit_started = Some(Instant::now());
                run.visit_ice = ice;
                self.start_media(&visit_id, run, pending);
            }
            Effect::RebuildMedia { visit_id } => {
                tracing::warn!(visit = %visit_id, "rebuilding the call's media to reconnect");
                // Stopped to the end first: the camera and microphone are free for the new one.
                if let Some(call) = run.call.take() {
                    let _ = tokio::task::spawn_blocking(move || call.stop()).await;
                }
                self.start_media(&visit_id, run, pending);
            }
            Effect::StopMedia => {
                if let Some(call) = run.call.take() {
                    run.last_stats = Some(call.stats());
                    tokio::task::spawn_blocking(move || call.stop());
                }
            }
            Effect::Send(msg) => {
                if let Err(e) = self.fleet.send(&msg).await {
                    tracing::warn!("{e}");
                }
            }
            Effect::SetRemoteAnswer { sdp } => {
                match run.call.as_ref().map(|c| c.set_remote_answer(&sdp)) {
                    Some(Err(e)) => pending.push_back(Event::MediaFailed { reason: e.to_string() }),
                    Some(Ok(answered)) => run.condition.audio_only = answered.video.is_none(),
                    None => {}
                }
            }
            Effect::AddRemoteIce(ice) => {
                if let Some(Err(e)) = run.call.as_ref().map(|c| c.add_remote_ice(&ice)) {
                    tracing::warn!("remote ICE candidate refused: {e}");
                }
            }
            Effect::SetMicMuted(muted) => run.call.iter().for_each(|c| c.set_mic_muted(muted)),
            Effect::SetCameraEnabled(on) => run.call.iter().for_each(|c| c.set_camera_enabled(on)),
            Effect::Warn(what) => tracing::warn!("{what}"),
        }
    }

    /// Builds and starts a media pipeline for the visit (a new generation: events of an older
    /// pipeline are ignored from now on).
    fn start_media(&mut self, visit_id: &str, run: &mut Running, pending: &mut VecDeque<Event>) {
        run.generation += 1;
        run.condition = CallCondition::default();
        run.liveness = Liveness::default();
        run.media_started = Some(Instant::now());
        let (media_tx, mut media_rx) = unbounded_channel();
        let (tx, generation) = (run.tx.clone(), run.generation);
        tokio::spawn(async move {
            while let Some(e) = media_rx.recv().await {
                if tx.send(Input::Media(generation, e)).is_err() {
                    break;
                }
            }
        });
        let frames = Arc::new(FirstFrame {
            inner: self.frames.clone(),
            seen: AtomicBool::new(false),
            stamped: self.profile.video.stamp_time,
        });
        // Caps and ICE servers of the config in force now; a later config waits for the
        // next visit.
        let settings = crate::config::for_visit(&run.settings.call, &run.visit_ice);
        match Call::start(&self.profile, &settings, media_tx, frames) {
            Ok(call) => {
                tracing::info!(visit = %visit_id, "media started");
                run.call = Some(call);
            }
            Err(e) => {
                run.start_failed = true;
                pending.push_back(Event::MediaFailed { reason: e.to_string() })
            }
        }
    }

    /// Every half second in a call: whether the clinician's media still arrives.
    fn watch_media(&self, run: &mut Running) -> Option<Event> {
        let call = run.call.as_ref()?;
        let s = call.stats();
        let now = run.started.elapsed().as_millis() as u64;
        run.liveness.observe(s.remote_video_frames + s.remote_audio_buffers, now)
    }

    /// Shows the current state if it changed; prints a status line on a new screen.
    fn refresh(&self, run: &mut Running) {
        let now = run.started.elapsed().as_millis() as u64;
        let vm = view(self.visit.state(), self.visit.closed(), run.condition, now);
        let next = (vm, run.online);
        if run.shown.as_ref() == Some(&next) {
            return;
        }
        let new_screen = run.shown.as_ref().map(|(old, _)| old.screen) != Some(next.0.screen);
        let online_changed = run.shown.as_ref().map(|(_, o)| *o) != Some(next.1);
        if new_screen {
            tracing::info!(screen = next.0.screen.name(), "screen");
            status(&serde_json::json!({"event": "screen", "screen": next.0.screen.name()}));
        }
        if online_changed {
            status(&serde_json::json!({"event": "fleet", "online": next.1}));
        }
        let notice = &next.0.call_notice;
        if run.shown.as_ref().map_or(!notice.is_empty(), |(old, _)| &old.call_notice != notice) {
            status(&serde_json::json!({"event": "call_notice", "text": notice}));
        }
        self.display.show(&next.0, next.1);
        run.shown = Some(next);
    }

    /// Once a second during a call: the call's counters and quality on stdout (PHI-free), and
    /// its network figures kept for device state.
    fn print_stats(&self, run: &mut Running) {
        let Some(call) = &run.call else { return };
        let s = call.stats();
        let mut line = serde_json::json!({
            "event": "stats",
            "remote_video_frames": s.remote_video_frames,
            "remote_audio_buffers": s.remote_audio_buffers,
            "local_video_frames": s.local_video_frames,
        });
        if let Some(kib) = telemetry::rss_kib() {
            line["rss_kib"] = kib.into();
        }
        if let Some(q) = call.quality() {
            run.condition.level = Some(q.level());
            run.network = Some(telemetry::worst_of(run.network.take(), &q));
            line["quality"] = serde_json::json!({
                "level": format!("{:?}", q.level()).to_lowercase(),
                "rtt_ms": q.rtt_ms,
                "loss_permille": (q.loss * 1000.0).round() as u32,
                "estimate_kbps": q.estimate_kbps,
                "sent_kbps": q.sent_kbps,
                "sent_fps": q.sent_fps.round() as u32,
                "received_fps": q.received_fps.round() as u32,
                "concealed_permille": (q.concealed * 1000.0).round() as u32,
                "latency_ms": q.latency_ms,
                "video_paused": q.video_paused,
            });
        }
        status(&line);
    }
}

/// One status line on stdout.
pub fn status(value: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
