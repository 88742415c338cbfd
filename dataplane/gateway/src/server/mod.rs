//! Listeners: client connections (`conn`), the per-request layers (`service`), connection
//! bookkeeping (`io`, `quiet`), the metrics endpoint (`metrics_http`) and the worker threads of
//! `listener.workers` (`workers`).

pub mod conn;
pub mod framing;
pub mod io;
pub mod metrics_http;
mod quiet;
pub mod refusal;
pub mod service;
pub mod workers;
