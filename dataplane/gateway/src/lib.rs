//! Vigil's inspecting TLS gateway: TLS 1.3 termination (keys from `vigil_hw::keys`), an
//! HTTP/1.1 and HTTP/2 reverse proxy with request hardening, a pipeline of inspection stages,
//! an audit log, Prometheus metrics and validated hot reload. The daemon `vigild` embeds it:
//!
//! ```no_run
//! # async fn run(cfg: vigil_gateway::GatewayConfig) -> Result<(), vigil_gateway::GatewayError> {
//! use std::sync::Arc;
//! let keys = Arc::new(vigil_hw::keys::FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
//! let gw = vigil_gateway::Gateway::start(cfg, keys).await?;
//! // ... on SIGHUP: gw.reload(new_cfg)?; on SIGTERM:
//! gw.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod audit;
mod body;
mod budget;
mod clock;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod headers;
mod hex;
pub mod limits;
mod metrics;
pub mod pipeline;
mod reqid;
mod response;
pub mod response_check;
pub mod response_data;
mod server;
mod services;
mod shared;
mod state;
mod tls;
mod upstream;

pub use audit::AuditEvent;
pub use config::{ConfigError, GatewayConfig};
pub use error::GatewayError;
pub use gateway::{Decision, DecisionObserver, DepthSource, Gateway};
pub use metrics::{Exposition, MetricsSource};
pub use pipeline::fingerprint::FINGERPRINT_BANNED;
pub use pipeline::patch::PatchBan;
pub use shared::ReadinessCheck;
