//! Listeners: client connections (`conn`), the per-request layers (`service`), connection
//! bookkeeping (`io`, `quiet`) and the metrics endpoint (`metrics_http`).

pub mod conn;
pub mod framing;
pub mod io;
pub mod metrics_http;
mod quiet;
pub mod refusal;
pub mod service;
