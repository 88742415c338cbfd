//! vigild, Vigil's daemon: owns the XDP attachment, the control socket and (as the gateway
//! lands) the inspecting TLS proxy. `main.rs` only parses arguments and calls `daemon::run`.

pub mod autoban;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fleet;

pub use config::Config;
