//! Controller rules, each written as a table of steps: an input → what the controller asked of
//! media, the uplink and the screen because of it. The three are recorders; config documents
//! and commands are signed with a key made in the test, as fleetd signs them.
//!
//! Within a step the order is not compared: a call's media stops on a blocking thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::signature::Ed25519KeyPair;
use telekiosk_protocol::command::{
    Command, CommandOutcome, CommandPayload, CommandResult, SignedCommand,
};
use telekiosk_protocol::device::{DeviceState, PartStatus};
use telekiosk_protocol::encode;
use telekiosk_protocol::visit::{
    EndReason, IceSettings, KioskToServer as K2S, ServerToKiosk as S2K,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::*;
use crate::command::seen::SeenStore;
use crate::config::store::ConfigStore;
use crate::config::test_support::{document, payload};
use crate::media::{Answered, CallQuality, CallSettings, Frame, Ice, MediaError, VideoCodec};
use crate::signed::test_keys::{fleet_key, sign};
use crate::ui::view::{RECONNECTING_TEXT, ScreenId, VIDEO_PAUSED_TEXT};
use crate::uplink::UplinkError;
use crate::visit::Timeouts;

/// The device id the test documents are signed for.
const ME: &str = "kiosk-7f3a";
/// The video bitrate cap of the built-in defaults.
const DEFAULT_KBPS: u32 = 2500;

/// What the controller asked of a port (or, for `Exited`, how it ended).
#[derive(Debug, Clone, PartialEq)]
enum Did {
    /// Media started call number `call` with this video bitrate cap.
    Start {
        call: u64,
        max_kbps: u32,
    },
    /// Media could not start call number `n`.
    Refused(u64),
    Stop(u64),
    Answer(u64),
    Mute(u64, bool),
    Camera(u64, bool),
    /// A visit message of this kind went to fleetd.
    Sent(&'static str),
    /// A command's result (its id and outcome) went to fleetd.
    Outcome(String, CommandOutcome),
    /// The device state (with its config version) was kept for the next connection.
    StateKept(u64),
    Disconnect,
    /// A new screen.
    Screen(ScreenId),
    /// A new notice over the call.
    Notice(String),
    /// New names on every screen (the room's is recorded).
    Names(String),
    /// The "This is <room>" banner shown (true) or hidden.
    Identify(bool),
    /// The board was probed.
    Probed,
    Exited(Exit),
}

/// One row: feed the input; expect exactly these requests, in any order.
type Step = (In, Vec<Did>);

/// What a step feeds the controller.
enum In {
    Press(Press),
    /// fleetd's message for the visit in progress (its id filled in).
    Server(fn(String) -> S2K),
    /// A report of media call number `n`.
    Media(u64, MediaEvent),
    /// A config document of this version, with this video bitrate cap.
    Config(u64, u32),
    /// A command with this id.
    Command(&'static str, Command),
    /// Time passes: this many ms, then the half-second tick.
    Later(u64),
    /// The camera goes away: no call starts from now on.
    BreakMedia,
    /// The next input the controller's own tasks sent it (a finished probe), within a second.
    Posted,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Did>>>);

impl Log {
    fn push(&self, did: Did) {
        self.0.lock().unwrap().push(did);
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn take(&self) -> Vec<Did> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct FakeMedia {
    log: Log,
    calls: AtomicU64,
    /// Set: the camera is gone and no call starts.
    broken: Arc<AtomicBool>,
}

impl Media for FakeMedia {
    fn start(
        &self,
        settings: &CallSettings,
        _events: UnboundedSender<MediaEvent>,
        _frames: Arc<dyn FrameSink>,
    ) -> Result<Box<dyn CallHandle>, MediaError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.broken.load(Ordering::SeqCst) {
            self.log.push(Did::Refused(n));
            let (element, message) = ("v4l2src0".into(), "no such device".into());
            return Err(MediaError::Start { element, message });
        }
        self.log.push(Did::Start { call: n, max_kbps: settings.max_bitrate_kbps });
        Ok(Box::new(FakeCall { n, log: self.log.clone() }))
    }
}

struct FakeCall {
    n: u64,
    log: Log,
}

impl CallHandle for FakeCall {
    fn set_remote_answer(&self, _sdp: &str) -> Result<Answered, MediaError> {
        self.log.push(Did::Answer(self.n));
        Ok(Answered { video: Some(VideoCodec::H264), rejected: vec![] })
    }
    fn add_remote_ice(&self, _ice: &Ice) -> Result<(), MediaError> {
        Ok(())
    }
    fn set_frame_keys(&self, _keys: &crate::media::FrameKeys) -> Result<(), MediaError> {
        Ok(())
    }
    fn set_mic_muted(&self, muted: bool) {
        self.log.push(Did::Mute(self.n, muted));
    }
    fn set_camera_enabled(&self, enabled: bool) {
        self.log.push(Did::Camera(self.n, enabled));
    }
    fn set_volume(&self, _pct: u8) {}
    fn stats(&self) -> CallStats {
        CallStats::default()
    }
    fn quality(&self) -> Option<CallQuality> {
        None
    }
    fn stop(self: Box<Self>) {
        self.log.push(Did::Stop(self.n));
    }
}

struct FakeUplink(Log);

impl Uplink for FakeUplink {
    fn send<'a>(&'a self, msg: &'a K2S) -> PortFuture<'a, Result<(), UplinkError>> {
        self.0.push(Did::Sent(kind(msg)));
        Box::pin(async { Ok(()) })
    }
    fn send_result(&self, result: &CommandResult) -> Result<(), UplinkError> {
        self.0.push(Did::Outcome(result.command_id.clone(), result.outcome));
        Ok(())
    }
    fn set_state(&self, state: DeviceState) {
        self.0.push(Did::StateKept(state.config_version));
    }
    fn publish_state(&self, state: DeviceState) -> Result<(), UplinkError> {
        panic!("the tests keep the kiosk offline: {state:?}")
    }
    fn disconnect(&self) -> PortFuture<'_, ()> {
        self.0.push(Did::Disconnect);
        Box::pin(async {})
    }
}

fn kind(msg: &K2S) -> &'static str {
    match msg {
        K2S::Waiting { .. } => "waiting",
        K2S::Offer { .. } => "offer",
        K2S::Ice { .. } => "ice",
        K2S::End { .. } => "end",
        K2S::InVisit { .. } => "in_visit",
        K2S::Help { .. } => "help",
        K2S::KeyConfirm { .. } => "key_confirm",
    }
}

/// Records screen and notice changes, not every repaint.
struct FakeScreen {
    log: Log,
    shown: Mutex<(Option<ScreenId>, String)>,
}

impl Screen for FakeScreen {
    fn show(&self, vm: &ViewModel, _online: bool) {
        let mut shown = self.shown.lock().unwrap();
        if shown.0 != Some(vm.screen) {
            shown.0 = Some(vm.screen);
            self.log.push(Did::Screen(vm.screen));
        }
        if shown.1 != vm.call_notice {
            shown.1 = vm.call_notice.clone();
            self.log.push(Did::Notice(vm.call_notice.clone()));
        }
    }
    fn names(&self, _clinic: &str, room: &str) {
        self.log.push(Did::Names(room.into()));
    }
    fn identify(&self, room: Option<&str>) {
        self.log.push(Did::Identify(room.is_some()));
    }
}

/// A board probe that answers at once with an empty report.
struct FakeHardware(Log);

impl Hardware for FakeHardware {
    fn probe(&self) -> PortFuture<'static, Result<ProbeReport, String>> {
        self.0.push(Did::Probed);
        let report: ProbeReport = serde_json::from_value(serde_json::json!({
            "software": "0.1.0", "machine": {"model": "", "arch": "x86_64", "cpus": 2},
            "encoders": [], "cameras": [], "microphones": [], "speakers": [],
            "tpm": {"tcti": "", "ok": false, "detail": ""}, "displays": [],
            "suggestion": {"profile": null, "why": "", "warnings": []},
        }))
        .unwrap();
        Box::pin(async move { Ok(report) })
    }
}

struct NoFrames;

impl FrameSink for NoFrames {
    fn remote_frame(&self, _frame: Frame) {}
    fn local_frame(&self, _frame: Frame) {}
}

/// A controller wired to recorders, driven the way its loop drives it.
struct Kiosk {
    ctl: Controller,
    run: Running,
    pending: VecDeque<Event>,
    log: Log,
    media_broken: Arc<AtomicBool>,
    fleet: Ed25519KeyPair,
    visit_id: String,
    inputs: UnboundedReceiver<Input>,
    _dir: tempfile::TempDir,
}

impl Kiosk {
    /// A kiosk at Idle on the built-in defaults; returns what starting asked for.
    fn start() -> (Kiosk, Vec<Did>) {
        let dir = tempfile::tempdir().unwrap();
        let (fleet, pinned) = fleet_key();
        let log = Log::default();
        let broken = Arc::new(AtomicBool::new(false));
        let profile: Profile = toml::from_str(
            r#"name = "test"
            [video]
            source = "videotestsrc"
            encoders = ["x264enc"]
            width = 1280
            height = 720
            fps = 30
            bitrate_kbps = 2500
            [audio]
            source = "audiotestsrc"
            sink = "fakesink"
            [display]
            width = 1280
            height = 800
            px_per_mm = 5.9"#,
        )
        .unwrap();
        let agent = Agent {
            device_id: ME.into(),
            pinned,
            store: ConfigStore::new(dir.path(), None),
            seen: SeenStore::new(dir.path()),
            in_force: None,
            startup_refusal: None,
            default_names: ("Maple Valley Clinic".into(), "Exam Room 1".into()),
            tpm: PartStatus::Ok,
            set_log_level: Box::new(|_| {}),
            recent_errors: RecentErrors::default(),
            reboot_command: vec!["true".into()],
            device_key: crate::identity::SoftwareKey::generate_for_development()
                .unwrap()
                .0
                .into_device_key(),
            updates: None,
        };
        let mut ctl = Controller {
            visit: Visit::new("Maple Valley Clinic", "Exam Room 1", Timeouts::default()),
            profile,
            media: Box::new(FakeMedia {
                log: log.clone(),
                calls: AtomicU64::new(0),
                broken: broken.clone(),
            }),
            uplink: Box::new(FakeUplink(log.clone())),
            frames: Arc::new(NoFrames),
            screen: Box::new(FakeScreen { log: log.clone(), shown: Mutex::default() }),
            hardware: Box::new(FakeHardware(log.clone())),
            media_unavailable: None,
            agent,
        };
        let (tx, inputs) = unbounded_channel();
        let (run, pending) = ctl.begin(tx);
        let mut kiosk = Kiosk {
            ctl,
            run,
            pending,
            log,
            media_broken: broken,
            fleet,
            visit_id: String::new(),
            inputs,
            _dir: dir,
        };
        kiosk.ctl.refresh(&mut kiosk.run);
        let started = kiosk.log.take();
        (kiosk, started)
    }

    /// One turn of the controller's loop with `input`.
    async fn feed(&mut self, input: In) {
        let input = match input {
            In::Later(ms) => {
                self.run.started -= Duration::from_millis(ms);
                self.ctl.on_timer(&mut self.run, &mut self.pending);
                None
            }
            In::BreakMedia => {
                self.media_broken.store(true, Ordering::SeqCst);
                None
            }
            In::Posted => {
                let next = tokio::time::timeout(Duration::from_secs(1), self.inputs.recv()).await;
                Some(next.expect("nothing was posted within a second").expect("channel open"))
            }
            In::Press(press) => Some(Input::Press(press)),
            In::Server(msg) => {
                let mut msg = msg(self.visit_id.clone());
                // The clinician's browser answers the key this kiosk signed.
                if let S2K::Answer { sdp, e2ee, .. } = &mut msg
                    && let Some(ours) = self.run.call.offer_key.as_ref()
                {
                    *e2ee = super::e2ee::console_half_for_tests(ours, sdp);
                }
                Some(Input::Uplink(UplinkEvent::Visit(Ok(msg))))
            }
            In::Media(n, event) => Some(Input::Media(n, event)),
            In::Config(version, max_kbps) => {
                let mut p = payload(version);
                p.body.media.max_bitrate_kbps = max_kbps;
                let bytes = document(&self.fleet, &serde_json::to_string(&p).unwrap());
                Some(Input::Uplink(UplinkEvent::Config(bytes)))
            }
            In::Command(id, command) => {
                Some(Input::Uplink(UplinkEvent::Command(self.command(id, command))))
            }
        };
        if let Some(input) = input {
            self.ctl.take(input, &mut self.run, &mut self.pending).await;
        }
        self.ctl.settle(&mut self.run, &mut self.pending).await;
        if let Some(exit) = self.run.exit {
            self.log.push(Did::Exited(exit));
            self.ctl.stop(&mut self.run, &mut self.pending).await;
        } else {
            self.ctl.refresh(&mut self.run);
        }
        if let Some(visit_id) = self.ctl.visit.in_progress() {
            self.visit_id = visit_id.to_string();
        }
    }

    /// A command signed by the fleet's key, valid for ten minutes from now.
    fn command(&self, id: &str, command: Command) -> Vec<u8> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let p = CommandPayload {
            device_id: ME.into(),
            command_id: id.into(),
            issued_at: now - 10,
            expires_at: now + 600,
            command,
        };
        let text = serde_json::to_string(&p).unwrap();
        encode(&SignedCommand { signature: sign(&self.fleet, text.as_bytes()), payload: text })
    }

    /// What was asked since the last call, once at least `expected` requests arrived (stops
    /// run on a blocking thread) or after a second.
    async fn asked(&self, expected: usize) -> Vec<Did> {
        for _ in 0..500 {
            if self.log.len() >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.log.take()
    }
}

/// Runs the steps on a fresh kiosk; nothing else may be asked after the last one.
async fn run(steps: Vec<Step>) -> Kiosk {
    let (mut kiosk, started) = Kiosk::start();
    let at_start =
        vec![Did::Names("Exam Room 1".into()), Did::StateKept(0), Did::Screen(ScreenId::Idle)];
    assert_eq!(started, at_start, "at start");
    for (n, (input, expected)) in steps.into_iter().enumerate() {
        let label = format!("step {n} ({})", input.name());
        kiosk.feed(input).await;
        let got = kiosk.asked(expected.len()).await;
        assert_eq!(sorted(got), sorted(expected), "{label}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(kiosk.log.take(), vec![], "after the last step");
    kiosk
}

fn sorted(mut dids: Vec<Did>) -> Vec<Did> {
    dids.sort_by_key(|d| format!("{d:?}"));
    dids
}

impl In {
    fn name(&self) -> String {
        match self {
            In::Press(p) => format!("{p:?} pressed"),
            In::Server(msg) => format!("fleetd's {}", msg(String::new()).kind()),
            In::Media(n, e) => format!("call {n}: {e:?}"),
            In::Config(v, kbps) => format!("config v{v} at {kbps} kbit/s"),
            In::Command(id, c) => format!("command {id}: {c:?}"),
            In::Later(ms) => format!("{ms} ms later"),
            In::BreakMedia => "the camera goes away".into(),
            In::Posted => "an input the controller posted itself".into(),
        }
    }
}

fn queued() -> In {
    In::Server(|visit_id| S2K::Queued { visit_id, ice: IceSettings::default() })
}
fn accepted() -> In {
    In::Server(|visit_id| S2K::Accepted { visit_id, clinician: "Dr Rivera".into() })
}
fn answer() -> In {
    In::Server(|visit_id| S2K::Answer {
        visit_id,
        sdp: "v=0\r\na=fingerprint:sha-256 BB\r\n".into(),
        e2ee: telekiosk_protocol::e2ee::ConsoleKey {
            public_key: String::new(),
            confirm: String::new(),
        },
    })
}
fn ended_by_clinician() -> In {
    In::Server(|visit_id| S2K::End { visit_id, reason: EndReason::ClinicianEnded })
}
fn offer(n: u64) -> In {
    In::Media(n, MediaEvent::LocalOffer { sdp: "v=0\r\na=fingerprint:sha-256 AA\r\n".into() })
}
fn result(id: &str, outcome: CommandOutcome) -> Did {
    Did::Outcome(id.into(), outcome)
}

/// Join, queued, accepted, answered, connected: the patient is in call 1 with the clinician.
fn in_call() -> Vec<Step> {
    use Did::*;
    vec![
        (In::Press(Press::Join), vec![Screen(ScreenId::Consent)]),
        (In::Press(Press::Accept), vec![Sent("waiting"), Screen(ScreenId::Waiting)]),
        (queued(), vec![Start { call: 1, max_kbps: DEFAULT_KBPS }]),
        // The offer is prepared while the patient waits, and held until a clinician accepts.
        (offer(1), vec![]),
        (accepted(), vec![Sent("offer"), Screen(ScreenId::Connecting)]),
        (answer(), vec![Answer(1), Sent("key_confirm")]),
        (In::Media(1, MediaEvent::Connected), vec![Screen(ScreenId::InCall)]),
    ]
}

fn then(mut steps: Vec<Step>, more: Vec<Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

#[tokio::test]
async fn a_reboot_runs_at_once_when_idle_and_waits_for_the_end_of_a_visit() {
    use CommandOutcome::{Deferred, Done};
    use Did::*;
    run(then(
        then(vec![(In::Command("cmd-0", Command::Reboot), vec![result("cmd-0", Done)])], in_call()),
        vec![
            (In::Command("cmd-1", Command::Reboot), vec![result("cmd-1", Deferred)]),
            // The visit goes on as before.
            (In::Press(Press::Mute), vec![Mute(1, true)]),
            (
                In::Press(Press::EndYes),
                vec![
                    Stop(1),
                    Sent("end"),
                    StateKept(0),
                    result("cmd-1", Done),
                    Screen(ScreenId::Ended),
                ],
            ),
        ],
    ))
    .await;
}

#[tokio::test]
async fn during_a_visit_a_restart_is_deferred_while_identify_and_diagnostics_run_at_once() {
    use CommandOutcome::{Deferred, Done};
    use Did::*;
    let kiosk = run(then(
        in_call(),
        vec![
            (
                In::Command("cmd-id", Command::Identify { seconds: 30 }),
                vec![result("cmd-id", Done), Identify(true)],
            ),
            (In::Command("cmd-diag", Command::CollectDiagnostics), vec![result("cmd-diag", Done)]),
            (
                In::Command("cmd-restart", Command::RestartApp),
                vec![result("cmd-restart", Deferred)],
            ),
            // The same command again is a replay, refused, not deferred twice.
            (
                In::Command("cmd-restart", Command::RestartApp),
                vec![result("cmd-restart", CommandOutcome::Refused)],
            ),
            (
                ended_by_clinician(),
                vec![
                    Stop(1),
                    StateKept(0),
                    result("cmd-restart", Done),
                    Exited(super::Exit::Restart),
                    Disconnect,
                ],
            ),
        ],
    ))
    .await;
    assert_eq!(kiosk.run.exit, Some(super::Exit::Restart));
}

#[tokio::test]
async fn a_hardware_probe_waits_for_the_visit_to_end_runs_alone_and_answers_with_its_report() {
    use CommandOutcome::{Deferred, Done, Refused};
    use Did::*;
    let probe = |id| In::Command(id, Command::ProbeHardware);
    run(then(
        in_call(),
        vec![
            (probe("cmd-probe"), vec![result("cmd-probe", Deferred)]),
            (ended_by_clinician(), vec![Stop(1), Screen(ScreenId::Ended), StateKept(0), Probed]),
            // While it runs, a second one is refused rather than skewing its figures.
            (probe("cmd-probe-2"), vec![result("cmd-probe-2", Refused)]),
            (In::Posted, vec![result("cmd-probe", Done)]),
            (probe("cmd-probe-3"), vec![Probed]),
            (In::Posted, vec![result("cmd-probe-3", Done)]),
        ],
    ))
    .await;
}

#[tokio::test]
async fn media_reports_of_an_earlier_call_are_ignored() {
    use Did::*;
    let failed = |n| In::Media(n, MediaEvent::Failed { reason: "udpsrc0: lost".into() });
    let paused = |n| In::Media(n, MediaEvent::VideoPaused(true));
    run(then(
        in_call(),
        vec![
            // Call 1 fails: a new pipeline (call 2) with the patient's mute and camera as they were.
            (
                failed(1),
                vec![
                    Stop(1),
                    Start { call: 2, max_kbps: DEFAULT_KBPS },
                    Mute(2, false),
                    Camera(2, true),
                    Notice(RECONNECTING_TEXT.into()),
                ],
            ),
            // Call 1's late reports change nothing: no offer from it, no second rebuild.
            (offer(1), vec![]),
            (failed(1), vec![]),
            (In::Media(1, MediaEvent::Connected), vec![]),
            (offer(2), vec![Sent("offer")]),
            (answer(), vec![Answer(2), Sent("key_confirm")]),
            (In::Media(2, MediaEvent::Connected), vec![Notice(String::new())]),
            (paused(1), vec![]),
            (paused(2), vec![Notice(VIDEO_PAUSED_TEXT.into())]),
            (failed(1), vec![]),
        ],
    ))
    .await;
}

#[tokio::test]
async fn a_new_config_reaches_media_at_the_next_call_not_the_running_one() {
    use Did::*;
    let next_visit = vec![
        (
            In::Press(Press::EndYes),
            vec![Stop(1), Sent("end"), StateKept(1), Screen(ScreenId::Ended)],
        ),
        (In::Later(7_000), vec![Screen(ScreenId::Cleaning)]),
        (In::Later(6_000), vec![Screen(ScreenId::Idle)]),
        (In::Press(Press::Join), vec![Screen(ScreenId::Consent)]),
        (In::Press(Press::Accept), vec![Sent("waiting"), Screen(ScreenId::Waiting)]),
        (queued(), vec![Start { call: 2, max_kbps: 400 }]),
    ];
    run(then(
        then(
            in_call(),
            // Names at once, the state says version 1; the running call is left alone.
            vec![(In::Config(1, 400), vec![Names("Room v1".into()), StateKept(1)])],
        ),
        next_visit,
    ))
    .await;
}

#[tokio::test]
async fn media_that_cannot_start_ends_the_visit_as_a_kiosk_fault_and_a_later_join_tries_again() {
    use Did::*;
    run(vec![
        (In::BreakMedia, vec![]),
        (In::Press(Press::Join), vec![Screen(ScreenId::Consent)]),
        (In::Press(Press::Accept), vec![Sent("waiting"), Screen(ScreenId::Waiting)]),
        (queued(), vec![Refused(1), Sent("end"), StateKept(0), Screen(ScreenId::Ended)]),
        (In::Later(7_000), vec![Screen(ScreenId::Cleaning)]),
        (In::Later(6_000), vec![Screen(ScreenId::Idle)]),
        (In::Press(Press::Join), vec![Screen(ScreenId::Consent)]),
        (In::Press(Press::Accept), vec![Sent("waiting"), Screen(ScreenId::Waiting)]),
        (queued(), vec![Refused(2), Sent("end"), StateKept(0), Screen(ScreenId::Ended)]),
    ])
    .await;
}
