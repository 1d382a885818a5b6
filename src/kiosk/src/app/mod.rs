//! The controller: feeds every input (touches, fleet messages, media reports, time) to the
//! visit state machine, carries out the effects it returns, and shows the result on the screen.
//! It owns the media pipeline of the visit in progress; it holds no visit logic of its own.
//! `ports` are what it asks of media, the uplink to fleetd and the screen (traits, so `tests`
//! runs its rules against recorders); `fleet_ops` applies fleet config and runs fleet commands;
//! `telemetry` makes the PHI-free device state and diagnostics.
//!
//! For tests and supervisors it prints one JSON line on stdout per screen change
//! (`{"event":"screen","screen":"in_call"}`, with `"reason"` on the ended screen), the call's notice when it changes
//! (`{"event":"call_notice","text":"…"}`), End's confirmation when it shows or goes
//! (`{"event":"confirm_end","shown":true}`), the language the screens are in when it changes
//! (`{"event":"language","language":"es"}`), how many digits of a visit code are typed
//! (`{"event":"code_digits","typed":6}`, never the digits), the call's end-to-end verification
//! code when it shows (`{"event":"e2ee","code":"12345 …"}`), during a call once a second the call's counters
//! (`{"event":"stats",...}`), and one line per config decision and command. No patient data is
//! in any of them.

pub mod e2ee;
mod events;
mod fleet_ops;
mod liveness;
mod ports;
pub mod telemetry;

use liveness::Liveness;
pub use ports::{BoardProbe, CallHandle, GstMedia, Hardware, Media, PortFuture, Screen, Uplink};

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use telekiosk_protocol::command::CommandPayload;
use telekiosk_protocol::device::{ConfigRefusal, Health, LastVisit, NetworkQuality, PartStatus};
use telekiosk_protocol::probe::ProbeReport;
use telekiosk_protocol::update::OsState;
use telekiosk_protocol::visit::IceSettings;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::command::RecentIds;
use crate::command::seen::SeenStore;
use crate::config::store::ConfigStore;
use crate::config::{Accepted, Settings};
use crate::identity::DeviceKey;
use crate::logs::{RecentErrors, SetLevel};
use crate::media::{CallStats, FrameSink, MediaEvent};
use crate::profile::Profile;
use crate::signed::PinnedKey;
use crate::ui::Press;
use crate::ui::view::{CallCondition, Extras, ViewModel, screen};
use crate::uplink::UplinkEvent;
use crate::visit::{Effect, Event, State, Visit};
use events::{FirstFrame, media_event, press_event};

/// Everything the controller listens to.
#[derive(Debug)]
pub enum Input {
    Press(Press),
    Uplink(UplinkEvent),
    /// A media report, tagged with the number of the call it came from.
    Media(u64, MediaEvent),
    /// A `probe_hardware` command's report (or why there is none), for its result.
    Probed {
        command_id: String,
        report: Result<Box<ProbeReport>, String>,
    },
    /// The operating system's state changed (an update's progress, or its end).
    Os(Box<OsState>),
    /// Stop: end any visit cleanly and return.
    Shutdown,
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
    /// The device key (in the TPM), which signs each call's end-to-end key.
    pub device_key: DeviceKey,
    /// OS updates and reboots through the appliance's units; `None` off an appliance.
    pub updates: Option<crate::update::agent::Updates>,
}

/// The controller's parts.
pub struct Controller {
    pub visit: Visit,
    pub profile: Profile,
    /// Starts each call's media (GStreamer in the binary).
    pub media: Box<dyn Media>,
    /// The link to fleetd (MQTT in the binary).
    pub uplink: Box<dyn Uplink>,
    pub frames: Arc<dyn FrameSink>,
    pub screen: Box<dyn Screen>,
    /// Probes the board for `probe_hardware` commands.
    pub hardware: Box<dyn Hardware>,
    /// Set when the media system could not start: the kiosk goes out of service.
    pub media_unavailable: Option<String>,
    pub agent: Agent,
}

/// The controller's state while it runs, by concern.
struct Running {
    tx: UnboundedSender<Input>,
    started: Instant,
    /// What the screen shows (and whether it shows the fleet link up).
    shown: Option<(ViewModel, bool)>,
    identify_until: Option<Instant>,
    call: CallRun,
    fleet: FleetRun,
    reporting: Reporting,
    exit: Option<Exit>,
}

/// The visit's media: the call in progress and what is measured of it.
#[derive(Default)]
struct CallRun {
    handle: Option<Box<dyn CallHandle>>,
    /// Number of the current call; media reports of older calls are ignored.
    generation: u64,
    /// How the call in progress is going (quality, video paused), for the screen.
    condition: CallCondition,
    /// Whether the clinician's media still arrives in the call.
    liveness: Liveness,
    /// How the visit's call may reach the clinician (from fleetd), for every pipeline it builds.
    visit_ice: IceSettings,
    visit_started: Option<Instant>,
    media_started: Option<Instant>,
    connected_at: Option<Instant>,
    last_stats: Option<CallStats>,
    start_failed: bool,
    /// The visit the media runs for, and the ephemeral key of its offer in flight.
    visit_id: String,
    offer_key: Option<e2ee::OfferKey>,
}

/// The fleet side: the link, the config in force and the commands.
struct FleetRun {
    online: bool,
    /// What the config in force means (or the built-in defaults).
    settings: Settings,
    in_force: Option<Accepted>,
    refusal: Option<ConfigRefusal>,
    /// Keeps accepted configs on disk, in order, off the controller's task.
    store_tx: UnboundedSender<telekiosk_protocol::config::SignedConfig>,
    seen: RecentIds,
    /// Reboot/restart commands waiting for the visit in progress to end.
    deferred: Vec<CommandPayload>,
    /// A hardware probe is running (one at a time: two would skew each other's figures).
    probing: bool,
}

/// What the device state reports besides the config: health, network, the last visit.
struct Reporting {
    /// The operating system (version, slot, update in progress), on an appliance.
    os: Option<OsState>,
    /// Whether the update check was told this boot is healthy.
    told_healthy: bool,
    /// The last (visit or patient on screen, clinic closed) the update task was told.
    moment: Option<(bool, bool)>,
    health: Health,
    network: Option<NetworkQuality>,
    last_visit: Option<LastVisit>,
    next_report: Instant,
}

impl Controller {
    /// Runs until `Input::Shutdown` or a restart command; says which.
    pub async fn run(
        mut self,
        tx: UnboundedSender<Input>,
        mut rx: UnboundedReceiver<Input>,
    ) -> Exit {
        let (mut run, mut pending) = self.begin(tx);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // Under systemd (Type=notify): ready once the first screen is up, then a watchdog ping
        // from this loop every half second, so a hung controller is restarted.
        let watchdog = sd_notify::watchdog_enabled();
        let mut ready = false;
        loop {
            self.settle(&mut run, &mut pending).await;
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
            tokio::select! {
                input = rx.recv() => {
                    let input = input.unwrap_or(Input::Shutdown);
                    self.take(input, &mut run, &mut pending).await;
                }
                _ = tick.tick() => {
                    if watchdog.is_some() {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    self.on_timer(&mut run, &mut pending);
                }
            }
        }
    }

    /// The state to run with: the config in force (or the defaults) applied and reported.
    fn begin(&mut self, tx: UnboundedSender<Input>) -> (Running, VecDeque<Event>) {
        let in_force = self.agent.in_force.take();
        let (clinic, room) = &self.agent.default_names;
        let settings =
            in_force.as_ref().map(Settings::of).unwrap_or_else(|| Settings::defaults(clinic, room));
        let media_ok = self.media_unavailable.is_none();
        let mut run = Running {
            tx,
            started: Instant::now(),
            shown: None,
            identify_until: None,
            call: CallRun::default(),
            fleet: FleetRun {
                online: false,
                settings: settings.clone(),
                in_force,
                refusal: self.agent.startup_refusal.take(),
                store_tx: fleet_ops::spawn_store(self.agent.store.clone()),
                seen: self.agent.seen.load(),
                deferred: vec![],
                probing: false,
            },
            reporting: Reporting {
                os: self.agent.updates.as_ref().map(|u| u.first.clone()),
                told_healthy: false,
                moment: None,
                health: telemetry::initial_health(media_ok, self.agent.tpm),
                network: None,
                last_visit: None,
                next_report: Instant::now() + settings.telemetry_interval,
            },
            exit: None,
        };
        self.apply(settings, &mut run);
        self.report(&run);
        let mut pending = VecDeque::new();
        if let Some(reason) = self.media_unavailable.take() {
            pending.push_back(Event::MediaUnavailable { reason });
        }
        (run, pending)
    }

    /// Feeds the visit events waiting, and those they lead to, through the state machine.
    async fn settle(&mut self, run: &mut Running, pending: &mut VecDeque<Event>) {
        while let Some(event) = pending.pop_front() {
            self.step(event, run, pending).await;
        }
    }

    /// One input: what it changes at once, and the visit events it makes.
    async fn take(&mut self, input: Input, run: &mut Running, pending: &mut VecDeque<Event>) {
        match input {
            Input::Press(press) => pending.push_back(press_event(press)),
            Input::Uplink(UplinkEvent::Connected) => {
                run.fleet.online = true;
                self.report(run);
                pending.push_back(Event::FleetConnected);
            }
            Input::Uplink(UplinkEvent::Disconnected(why)) => {
                if run.fleet.online {
                    tracing::warn!("lost the fleet connection: {why}");
                }
                run.fleet.online = false;
            }
            Input::Uplink(UplinkEvent::Visit(Ok(msg))) => pending.push_back(Event::Server(msg)),
            Input::Uplink(UplinkEvent::Visit(Err(e))) => {
                pending.push_back(Event::ServerMalformed { reason: e.to_string() })
            }
            Input::Uplink(UplinkEvent::Config(bytes)) => self.on_config(&bytes, run),
            Input::Uplink(UplinkEvent::Command(bytes)) => self.on_command(&bytes, run).await,
            Input::Media(generation, MediaEvent::VideoPaused(paused))
                if generation == run.call.generation =>
            {
                run.call.condition.video_paused = paused;
            }
            Input::Media(generation, MediaEvent::LocalOffer { sdp })
                if generation == run.call.generation =>
            {
                pending.push_back(self.sign_offer(run, sdp).await)
            }
            Input::Media(generation, event) if generation == run.call.generation => {
                pending.extend(media_event(event))
            }
            Input::Media(..) => {}
            Input::Os(os) => {
                run.reporting.os = Some(*os);
                self.report(run);
            }
            Input::Probed { command_id, report } => {
                run.fleet.probing = false;
                self.probed(&command_id, report)
            }
            Input::Shutdown => run.exit = Some(Exit::Stopped),
        }
    }

    /// The pipeline's offer with a fresh end-to-end key signed by the device key (on the
    /// blocking pool: a TPM round trip), or the failure that ends the call.
    async fn sign_offer(&mut self, run: &mut Running, sdp: String) -> Event {
        let (device, visit_id) = (self.agent.device_key.clone(), run.call.visit_id.clone());
        let signed = tokio::task::spawn_blocking(move || {
            e2ee::sign_offer(&device, &visit_id, &sdp).map(|(ours, key)| (ours, key, sdp))
        })
        .await
        .unwrap_or_else(|e| Err(format!("signing the call's key stopped: {e}")));
        match signed {
            Ok((ours, key, sdp)) => {
                run.call.offer_key = Some(ours);
                Event::LocalOffer { sdp, key }
            }
            Err(reason) => Event::MediaFailed { reason },
        }
    }

    /// Every half second: the call's counters, whether its media still flows, opening hours,
    /// the identify banner, reports, and the visit's clock.
    fn on_timer(&mut self, run: &mut Running, pending: &mut VecDeque<Event>) {
        self.print_stats(run);
        pending.extend(self.watch_media(run));
        self.on_tick(run);
        pending.push_back(Event::Tick);
    }

    /// One event through the state machine; notices when a visit has just ended.
    async fn step(&mut self, event: Event, run: &mut Running, pending: &mut VecDeque<Event>) {
        let was_in_progress = self.visit.in_progress().is_some();
        let now = run.started.elapsed().as_millis() as u64;
        for effect in self.visit.handle(event, now) {
            self.carry_out(effect, run, pending).await;
        }
        if matches!(self.visit.state(), State::InCall { .. }) && run.call.connected_at.is_none() {
            run.call.connected_at = Some(Instant::now());
        }
        if was_in_progress && self.visit.in_progress().is_none() {
            self.visit_ended(run).await;
        }
    }

    /// Ends any visit cleanly, stops media, and lets the fleet link flush.
    async fn stop(&mut self, run: &mut Running, pending: &mut VecDeque<Event>) {
        for press in [Event::CancelPressed, Event::EndConfirmed] {
            let now = run.started.elapsed().as_millis() as u64;
            for effect in self.visit.handle(press, now) {
                self.carry_out(effect, run, pending).await;
            }
        }
        if let Some(call) = run.call.handle.take() {
            call.stop();
        }
        if run.exit == Some(Exit::Restart) {
            self.uplink.disconnect().await;
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
                run.reporting.network = None;
                run.call.visit_started = Some(Instant::now());
                run.call.visit_ice = ice;
                self.start_media(&visit_id, run, pending);
            }
            Effect::RebuildMedia { visit_id } => {
                tracing::warn!(visit = %visit_id, "rebuilding the call's media to reconnect");
                // Stopped to the end first: the camera and microphone are free for the new one.
                if let Some(call) = run.call.handle.take() {
                    let _ = tokio::task::spawn_blocking(move || call.stop()).await;
                }
                self.start_media(&visit_id, run, pending);
            }
            Effect::StopMedia => {
                if let Some(call) = run.call.handle.take() {
                    run.call.last_stats = Some(call.stats());
                    tokio::task::spawn_blocking(move || call.stop());
                }
            }
            Effect::Send(msg) => {
                if let Err(e) = self.uplink.send(&msg).await {
                    tracing::warn!("{e}");
                }
            }
            Effect::SetRemoteAnswer { sdp, key } => {
                let Some(ours) = run.call.offer_key.as_ref() else { return };
                let agreed = match e2ee::agree(ours, &sdp, &key) {
                    Ok(agreed) => agreed,
                    Err(check) => {
                        pending.push_back(Event::SecurityCheckFailed { check });
                        return;
                    }
                };
                if let Some(Err(e)) =
                    run.call.handle.as_ref().map(|c| c.set_frame_keys(&agreed.keys))
                {
                    pending.push_back(Event::MediaFailed { reason: e.to_string() });
                    return;
                }
                tracing::info!("end-to-end keys agreed with the clinician's browser");
                pending.push_back(Event::KeysAgreed { confirm: agreed.confirm, code: agreed.code });
                // Waits up to seconds for the pipeline (review L9): on the blocking pool, not on
                // one of the runtime's two workers. The handle comes back with the answer.
                let Some(call) = run.call.handle.take() else { return };
                let applied = tokio::task::spawn_blocking(move || {
                    let answered = call.set_remote_answer(&sdp);
                    (call, answered)
                });
                match applied.await {
                    Ok((call, answered)) => {
                        run.call.handle = Some(call);
                        match answered {
                            Err(e) => {
                                pending.push_back(Event::MediaFailed { reason: e.to_string() })
                            }
                            Ok(a) => run.call.condition.audio_only = a.video.is_none(),
                        }
                    }
                    Err(e) => pending.push_back(Event::MediaFailed {
                        reason: format!("applying the answer failed: {e}"),
                    }),
                }
            }
            Effect::AddRemoteIce(ice) => {
                if let Some(Err(e)) = run.call.handle.as_ref().map(|c| c.add_remote_ice(&ice)) {
                    tracing::warn!("remote ICE candidate refused: {e}");
                }
            }
            Effect::SetMicMuted(muted) => {
                run.call.handle.iter().for_each(|c| c.set_mic_muted(muted))
            }
            Effect::SetCameraEnabled(on) => {
                run.call.handle.iter().for_each(|c| c.set_camera_enabled(on))
            }
            Effect::SetVolume(pct) => run.call.handle.iter().for_each(|c| c.set_volume(pct)),
            Effect::Warn(what) => tracing::warn!("{what}"),
        }
    }

    /// Builds and starts a media pipeline for the visit (a new generation: events of an older
    /// pipeline are ignored from now on).
    fn start_media(&mut self, visit_id: &str, run: &mut Running, pending: &mut VecDeque<Event>) {
        run.call.generation += 1;
        run.call.visit_id = visit_id.to_string();
        run.call.offer_key = None;
        run.call.condition = CallCondition::default();
        run.call.liveness = Liveness::default();
        run.call.media_started = Some(Instant::now());
        let (media_tx, mut media_rx) = unbounded_channel();
        let (tx, generation) = (run.tx.clone(), run.call.generation);
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
        let settings = crate::config::for_visit(&run.fleet.settings.call, &run.call.visit_ice);
        match self.media.start(&settings, media_tx, frames) {
            Ok(call) => {
                tracing::info!(visit = %visit_id, "media started");
                call.set_volume(self.visit.patient().volume_pct);
                run.call.handle = Some(call);
            }
            Err(e) => {
                run.call.start_failed = true;
                pending.push_back(Event::MediaFailed { reason: e.to_string() })
            }
        }
    }

    /// Every half second in a call: whether the clinician's media still arrives.
    fn watch_media(&self, run: &mut Running) -> Option<Event> {
        let call = run.call.handle.as_ref()?;
        let s = call.stats();
        let now = run.started.elapsed().as_millis() as u64;
        run.call.liveness.observe(s.remote_video_frames + s.remote_audio_buffers, now)
    }

    /// Shows the current state if it changed; prints a status line on a new screen.
    fn refresh(&self, run: &mut Running) {
        let now = run.started.elapsed().as_millis() as u64;
        let extras = Extras {
            consent_notice: run.fleet.settings.consent_notice.clone(),
            hours: run.fleet.settings.schedule.hours_on(jiff::Timestamp::now()),
        };
        let vm = screen(&self.visit, run.call.condition, &extras, now);
        let next = (vm, run.fleet.online);
        if run.shown.as_ref() == Some(&next) {
            return;
        }
        let new_screen = run.shown.as_ref().map(|(old, _)| old.screen) != Some(next.0.screen);
        let online_changed = run.shown.as_ref().map(|(_, o)| *o) != Some(next.1);
        if new_screen {
            tracing::info!(screen = next.0.screen.name(), "screen");
            let mut line = serde_json::json!({"event": "screen", "screen": next.0.screen.name()});
            if let (crate::ui::view::ScreenId::Ended, Some(reason)) =
                (next.0.screen, next.0.end_reason)
            {
                line["reason"] = serde_json::json!(reason);
            }
            status(&line);
        }
        if online_changed {
            status(&serde_json::json!({"event": "fleet", "online": next.1}));
        }
        let confirm = next.0.patient.confirm_end;
        if run.shown.as_ref().map_or(confirm, |(old, _)| old.patient.confirm_end != confirm) {
            status(&serde_json::json!({"event": "confirm_end", "shown": confirm}));
        }
        let code = &next.0.patient.security_code;
        if run.shown.as_ref().map_or(code.is_some(), |(old, _)| &old.patient.security_code != code)
        {
            // The verification code on screen (derived from public values; not a key, not PHI).
            status(&serde_json::json!({"event": "e2ee", "code": code}));
        }
        let notice = &next.0.call_notice;
        if run.shown.as_ref().map_or(!notice.is_empty(), |(old, _)| &old.call_notice != notice) {
            status(&serde_json::json!({"event": "call_notice", "text": notice}));
        }
        self.screen.show(&next.0, next.1);
        // Said once the screens are asked to change language, so a tap that follows finds them
        // in it.
        let language = next.0.patient.language;
        if run
            .shown
            .as_ref()
            .map_or(language.is_some(), |(old, _)| old.patient.language != language)
        {
            status(&serde_json::json!({"event": "language", "language": language}));
        }
        // How many digits of a visit code the keypad shows (never the digits themselves), said
        // once the screen has them, so a tap on OK that follows finds it enabled.
        let typed = next.0.patient.digits.len();
        if run.shown.as_ref().map_or(typed > 0, |(old, _)| old.patient.digits.len() != typed) {
            status(&serde_json::json!({"event": "code_digits", "typed": typed}));
        }
        run.shown = Some(next);
    }

    /// Once a second during a call: the call's counters and quality on stdout (PHI-free), and
    /// its network figures kept for device state.
    fn print_stats(&self, run: &mut Running) {
        let Some(call) = &run.call.handle else { return };
        let s = call.stats();
        let mut line = serde_json::json!({
            "event": "stats",
            "remote_video_frames": s.remote_video_frames,
            "remote_audio_buffers": s.remote_audio_buffers,
            "local_video_frames": s.local_video_frames,
            "local_audio_buffers": s.local_audio_buffers,
            "e2ee_sealed": s.sealed_frames,
            "e2ee_opened": s.opened_frames,
            "e2ee_auth_failures": s.auth_failures,
        });
        if let Some(kib) = telemetry::rss_kib() {
            line["rss_kib"] = kib.into();
        }
        if let Some(q) = call.quality() {
            run.call.condition.level = Some(q.level());
            run.reporting.network = Some(telemetry::worst_of(run.reporting.network.take(), &q));
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

#[cfg(test)]
mod tests;
