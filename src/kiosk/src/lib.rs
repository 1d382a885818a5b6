//! telekiosk: the kiosk appliance. A pure core (`visit`, `ui::view`, `config::verify`,
//! `config::hours`, `command`, `signed`) with thin adapters around it: `media` (GStreamer),
//! `ui` (Slint), `uplink` (MQTT), `identity` (TPM), `config::store` (disk + TPM counter),
//! `profile` (hardware as data), `logs` (tracing), and the `app` controller that wires them;
//! `tech` is the technician's screen behind a hidden gesture and the maintenance code.

pub mod app;
pub mod command;
pub mod config;
pub mod durable;
pub mod enrol;
pub mod hardening;
pub mod identity;
pub mod logs;
pub mod media;
pub mod probe;
pub mod profile;
pub mod provisioning;
pub mod renewal;
pub mod signed;
pub mod startup;
pub mod tech;
pub mod ui;
pub mod update;
pub mod uplink;
pub mod visit;
