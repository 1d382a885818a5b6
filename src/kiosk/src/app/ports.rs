//! The controller's ports: what it asks of media, of the uplink to fleetd and of the screen,
//! as traits, so its rules run in tests against recorders. The real adapters' side of each
//! port is here too and stays thin: GStreamer ([`GstMedia`], `media::Call`), MQTT
//! (`uplink::MqttUplink`); the Slint screen is wired in the binary.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use telekiosk_protocol::command::CommandResult;
use telekiosk_protocol::device::DeviceState;
use telekiosk_protocol::probe::ProbeReport;
use telekiosk_protocol::visit::KioskToServer;
use tokio::sync::mpsc::UnboundedSender;

use crate::media::{
    Answered, Call, CallQuality, CallSettings, CallStats, FrameKeys, FrameSink, Ice, MediaError,
    MediaEvent,
};
use crate::profile::Profile;
use crate::ui::view::ViewModel;
use crate::uplink::{MqttUplink, UplinkError};

/// A future a port returns, which may be awaited on any of the runtime's threads.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts a visit's media.
pub trait Media: Send + Sync + 'static {
    /// Builds and starts one call within `settings` (caps, ICE servers): it reports on `events`
    /// (its offer, candidates, connection, failure) and hands decoded pictures to `frames`.
    fn start(
        &self,
        settings: &CallSettings,
        events: UnboundedSender<MediaEvent>,
        frames: Arc<dyn FrameSink>,
    ) -> Result<Box<dyn CallHandle>, MediaError>;
}

/// One running call, as the controller drives it.
pub trait CallHandle: Send + 'static {
    /// The clinician's SDP answer; says what it chose (audio only when no video).
    fn set_remote_answer(&self, sdp: &str) -> Result<Answered, MediaError>;
    /// The visit's end-to-end frame keys; nothing flows either way until they are in.
    fn set_frame_keys(&self, keys: &FrameKeys) -> Result<(), MediaError>;
    /// One of the clinician's ICE candidates.
    fn add_remote_ice(&self, ice: &Ice) -> Result<(), MediaError>;
    fn set_mic_muted(&self, muted: bool);
    fn set_camera_enabled(&self, enabled: bool);
    /// The clinician's voice level on the speaker, 0–100 %.
    fn set_volume(&self, pct: u8);
    /// The call's counters so far.
    fn stats(&self) -> CallStats;
    /// The latest quality reading, `None` before the first.
    fn quality(&self) -> Option<CallQuality>;
    /// Stops the call to the end (camera and microphone released); may block briefly.
    fn stop(self: Box<Self>);
}

/// The kiosk's link to fleetd, as the controller uses it.
pub trait Uplink: Send + Sync + 'static {
    /// Sends one signalling message of the visit (waits for room in the link's queue).
    fn send<'a>(&'a self, msg: &'a KioskToServer) -> PortFuture<'a, Result<(), UplinkError>>;
    /// Sends a command's result; never waits.
    fn send_result(&self, result: &CommandResult) -> Result<(), UplinkError>;
    /// Keeps the device state for the next connection (offline).
    fn set_state(&self, state: DeviceState);
    /// Keeps the device state and publishes it now; never waits.
    fn publish_state(&self, state: DeviceState) -> Result<(), UplinkError>;
    /// Disconnects cleanly after what is queued (before a restart).
    fn disconnect(&self) -> PortFuture<'_, ()>;
}

/// What the board has (`probe_hardware` commands): GStreamer, sysfs and the TPM in the binary.
pub trait Hardware: Send + Sync + 'static {
    /// Probes encoders, devices, TPM and displays; takes seconds, off the controller's loop.
    /// `Err` says why the probe itself broke down (what it found missing is in the report).
    fn probe(&self) -> PortFuture<'static, Result<ProbeReport, String>>;
}

/// The probe of `telekiosk probe`, with the kiosk's own TPM connection when it has one.
pub struct BoardProbe {
    pub options: crate::probe::Options,
    pub tpm: Option<crate::identity::Tpm>,
}

impl Hardware for BoardProbe {
    fn probe(&self) -> PortFuture<'static, Result<ProbeReport, String>> {
        let (options, tpm) = (self.options.clone(), self.tpm.clone());
        Box::pin(async move {
            let probing = move || crate::probe::run(&options, tpm.as_ref());
            // A panic inside a GStreamer or TSS call fails this probe, not the kiosk.
            tokio::task::spawn_blocking(probing)
                .await
                .map_err(|e| format!("the hardware probe stopped unexpectedly: {e}"))
        })
    }
}

/// How the controller shows things; the Slint adapter in the binary, a recorder in tests.
pub trait Screen: Send + Sync + 'static {
    /// Shows the view model (and whether the fleet link is up).
    fn show(&self, vm: &ViewModel, online: bool);
    /// The clinic and room names on every screen.
    fn names(&self, clinic: &str, room: &str);
    /// "This is <room>" over every screen, flashing; `None` hides it.
    fn identify(&self, room: Option<&str>);
}

/// Media through GStreamer, with the pipeline the hardware profile describes.
pub struct GstMedia {
    profile: Profile,
}

impl GstMedia {
    pub fn new(profile: Profile) -> GstMedia {
        GstMedia { profile }
    }
}

impl Media for GstMedia {
    fn start(
        &self,
        settings: &CallSettings,
        events: UnboundedSender<MediaEvent>,
        frames: Arc<dyn FrameSink>,
    ) -> Result<Box<dyn CallHandle>, MediaError> {
        Ok(Box::new(Call::start(&self.profile, settings, events, frames)?))
    }
}

impl CallHandle for Call {
    fn set_remote_answer(&self, sdp: &str) -> Result<Answered, MediaError> {
        Call::set_remote_answer(self, sdp)
    }

    fn add_remote_ice(&self, ice: &Ice) -> Result<(), MediaError> {
        Call::add_remote_ice(self, ice)
    }

    fn set_frame_keys(&self, keys: &FrameKeys) -> Result<(), MediaError> {
        Call::set_frame_keys(self, keys)
    }

    fn set_mic_muted(&self, muted: bool) {
        Call::set_mic_muted(self, muted)
    }

    fn set_camera_enabled(&self, enabled: bool) {
        Call::set_camera_enabled(self, enabled)
    }

    fn set_volume(&self, pct: u8) {
        Call::set_volume(self, pct)
    }

    fn stats(&self) -> CallStats {
        Call::stats(self)
    }

    fn quality(&self) -> Option<CallQuality> {
        Call::quality(self)
    }

    fn stop(self: Box<Self>) {
        Call::stop(*self)
    }
}

impl Uplink for MqttUplink {
    fn send<'a>(&'a self, msg: &'a KioskToServer) -> PortFuture<'a, Result<(), UplinkError>> {
        Box::pin(MqttUplink::send(self, msg))
    }

    fn send_result(&self, result: &CommandResult) -> Result<(), UplinkError> {
        MqttUplink::send_result(self, result)
    }

    fn set_state(&self, state: DeviceState) {
        MqttUplink::set_state(self, state)
    }

    fn publish_state(&self, state: DeviceState) -> Result<(), UplinkError> {
        MqttUplink::publish_state(self, state)
    }

    fn disconnect(&self) -> PortFuture<'_, ()> {
        Box::pin(MqttUplink::disconnect(self))
    }
}
