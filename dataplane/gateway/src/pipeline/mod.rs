//! The request pipeline: a chain of stages, one file each, run in the order written once in
//! [`chain`]. A stage sees the request head (and the buffered body if it asks for it) and a
//! per-request [`RequestCtx`], and either lets the request continue or answers it; what a stage
//! is lives in [`stage`], and no stage imports the chain that builds it.
//!
//! Layers that are not about one request's content (load shedding, timeouts, body size while
//! streaming) wrap the chain in `server::service`.

mod bots;
pub(crate) mod chain;
mod depth;
mod detect;
pub mod fingerprint;
mod forwarding;
mod hardening;
mod identity;
mod openapi;
mod ownership;
pub mod patch;
mod policy;
mod ratelimit;
mod respdata;
mod route;
pub mod stage;

pub use stage::{
    AuthMethod, ClientIdentity, ConnInfo, DetectionHit, Outcome, Principal, Rejection, RequestCtx,
    RequestId, Stage, StageFuture, SyncStage, TlsInfo, TlsVersion, ready,
};

/// A request context for stage tests.
#[cfg(test)]
pub(crate) fn test_ctx(client: std::net::SocketAddr) -> RequestCtx {
    let conn = std::sync::Arc::new(ConnInfo::new(client, None));
    RequestCtx::new("id".to_owned(), conn, vigil_hw::thermal::Level::Full)
}
