//! vigild, Vigil's daemon: owns the XDP attachment, the control socket, the embedded
//! inspecting TLS gateway, auto-ban and the fleet. `main.rs` only parses arguments and calls
//! `daemon::run`.

pub mod alloc;
pub mod autoban;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fleet;
pub mod logging;

pub use config::Config;
