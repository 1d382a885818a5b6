//! The controller: feeds every input (touches, fleet messages, media reports, time) to the
//! visit state machine, carries out the effects it returns, and shows the result on the screen.
//! It owns the media pipeline of the visit in progress; it holds no visit logic of its own.
//!
//! For tests and supervisors it prints one JSON line on stdout per screen change
//! (`{"event":"screen","screen":"in_call"}`) and, during a call, once a second the call's
//! counters (`{"event":"stats",...}`). No patient data is in either.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::fleet::{FleetEvent, FleetLink};
use crate::media::{Call, Frame, FrameSink, MediaEvent};
use crate::profile::Profile;
use crate::ui::Press;
use crate::ui::view::{ViewModel, view};
use crate::visit::{Effect, Event, Visit};

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
pub trait Display: Send + 'static {
    fn show(&self, vm: &ViewModel, online: bool);
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
}

struct Running {
    call: Option<Call>,
    /// Number of the current call; media reports of older calls are ignored.
    generation: u64,
    online: bool,
    shown: Option<(ViewModel, bool)>,
    tx: UnboundedSender<Input>,
    started: Instant,
}

impl Controller {
    /// Runs until `Input::Shutdown`.
    pub async fn run(mut self, tx: UnboundedSender<Input>, mut rx: UnboundedReceiver<Input>) {
        let mut run = Running {
            call: None,
            generation: 0,
            online: false,
            shown: None,
            tx,
            started: Instant::now(),
        };
        let mut pending = VecDeque::new();
        if let Some(reason) = self.media_unavailable.take() {
            pending.push_back(Event::MediaUnavailable { reason });
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            while let Some(event) = pending.pop_front() {
                let now = run.started.elapsed().as_millis() as u64;
                for effect in self.visit.handle(event, now) {
                    self.carry_out(effect, &mut run, &mut pending).await;
                }
            }
            self.refresh(&mut run);
            let input = tokio::select! {
                input = rx.recv() => input.unwrap_or(Input::Shutdown),
                _ = tick.tick() => {
                    self.print_stats(&run);
                    pending.push_back(Event::Tick);
                    continue;
                }
            };
            match input {
                Input::Press(press) => pending.push_back(press_event(press)),
                Input::Fleet(FleetEvent::Connected) => {
                    run.online = true;
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
                Input::Media(generation, event) if generation == run.generation => {
                    pending.push_back(media_event(event))
                }
                Input::Media(..) => {}
                Input::Shutdown => {
                    let now = run.started.elapsed().as_millis() as u64;
                    for press in [Event::CancelPressed, Event::EndPressed] {
                        for effect in self.visit.handle(press, now) {
                            self.carry_out(effect, &mut run, &mut pending).await;
                        }
                    }
                    if let Some(call) = run.call.take() {
                        call.stop();
                    }
                    return;
                }
            }
        }
    }

    async fn carry_out(
        &mut self,
        effect: Effect,
        run: &mut Running,
        pending: &mut VecDeque<Event>,
    ) {
        match effect {
            Effect::StartMedia { visit_id } => {
                run.generation += 1;
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
                });
                match Call::start(&self.profile, media_tx, frames) {
                    Ok(call) => {
                        tracing::info!(visit = %visit_id, "media started");
                        run.call = Some(call);
                    }
                    Err(e) => pending.push_back(Event::MediaFailed { reason: e.to_string() }),
                }
            }
            Effect::StopMedia => {
                if let Some(call) = run.call.take() {
                    tokio::task::spawn_blocking(move || call.stop());
                }
            }
            Effect::Send(msg) => {
                if let Err(e) = self.fleet.send(&msg).await {
                    tracing::warn!("{e}");
                }
            }
            Effect::SetRemoteAnswer { sdp } => {
                if let Some(Err(e)) = run.call.as_ref().map(|c| c.set_remote_answer(&sdp)) {
                    pending.push_back(Event::MediaFailed { reason: e.to_string() });
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

    /// Shows the current state if it changed; prints a status line on a new screen.
    fn refresh(&self, run: &mut Running) {
        let vm = view(self.visit.state(), run.started.elapsed().as_millis() as u64);
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
        self.display.show(&next.0, next.1);
        run.shown = Some(next);
    }

    fn print_stats(&self, run: &Running) {
        if let Some(call) = &run.call {
            let s = call.stats();
            status(&serde_json::json!({
                "event": "stats",
                "remote_video_frames": s.remote_video_frames,
                "remote_audio_buffers": s.remote_audio_buffers,
                "local_video_frames": s.local_video_frames,
            }));
        }
    }
}

fn press_event(press: Press) -> Event {
    match press {
        Press::Join => Event::JoinPressed { visit_id: uuid::Uuid::new_v4().to_string() },
        Press::Cancel => Event::CancelPressed,
        Press::End => Event::EndPressed,
        Press::Mute => Event::MuteToggled,
        Press::Camera => Event::CameraToggled,
    }
}

fn media_event(event: MediaEvent) -> Event {
    match event {
        MediaEvent::LocalOffer { sdp } => Event::LocalOffer { sdp },
        MediaEvent::LocalIce(ice) => Event::LocalIce(ice),
        MediaEvent::Connected => Event::MediaConnected,
        MediaEvent::Failed { reason } => Event::MediaFailed { reason },
    }
}

/// Passes frames on and reports the call's first decoded clinician frame (`first_remote_frame`),
/// the moment the patient first sees the clinician.
struct FirstFrame {
    inner: Arc<dyn FrameSink>,
    seen: AtomicBool,
}

impl FrameSink for FirstFrame {
    fn remote_frame(&self, frame: Frame) {
        if !self.seen.swap(true, Ordering::Relaxed) {
            status(&serde_json::json!({"event": "first_remote_frame"}));
        }
        self.inner.remote_frame(frame);
    }

    fn local_frame(&self, frame: Frame) {
        self.inner.local_frame(frame);
    }
}

/// One status line on stdout.
pub fn status(value: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
