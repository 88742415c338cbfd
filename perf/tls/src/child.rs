//! `--serve-gateway CONFIG`: runs the gateway in this (child) process with the config written
//! by the harness, announces `READY <https port>` and serves until killed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use vigil_gateway::{Gateway, GatewayConfig};
use vigil_hw::keys::FileKeyProvider;

/// Worker threads of the gateway's multi-thread runtime: one, like nginx's single worker.
pub const WORKERS: usize = 1;

/// Serves on a current-thread runtime (`vigild --runtime current-thread`) or on a
/// multi-thread one with `workers` workers (`TOKIO_WORKER_THREADS`; [`WORKERS`] but for the
/// scaling cases).
pub fn serve(config: &Path, current_thread: bool, workers: usize) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let cfg: GatewayConfig = toml::from_str(&text).context("gateway config from the harness")?;
    let workers = if current_thread { 0 } else { workers.max(1) };
    vigil_testkit::procs::serve_ready(workers, async move {
        let keys = Arc::new(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
        let gw = Gateway::start(cfg, keys).await?;
        let https = gw.https_addr().port();
        Ok((gw, vec![https]))
    })
}
