//! telekiosk: the kiosk appliance. A pure core (`visit`, `ui::view`) with thin adapters around
//! it: `media` (GStreamer), `ui` (Slint), `fleet` (MQTT), `profile` (hardware as data), and the
//! `app` controller that wires them together.

pub mod app;
pub mod durable;
pub mod enrol;
pub mod fleet;
pub mod hardening;
pub mod identity;
pub mod media;
pub mod profile;
pub mod startup;
pub mod ui;
pub mod visit;
