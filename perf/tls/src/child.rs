//! `--serve-gateway CONFIG`: runs the gateway in this (child) process with the config written
//! by the harness, announces `READY <https port>` and serves until killed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use vigil_gateway::{Gateway, GatewayConfig};
use vigil_hw::keys::FileKeyProvider;

/// Worker threads of the gateway's multi-thread runtime: one, like nginx's single worker.
pub const WORKERS: usize = 1;

/// How the child serves, as vigild would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `vigild --runtime current-thread`: everything on one thread.
    CurrentThread,
    /// vigild's default runtime with `workers` worker threads (`TOKIO_WORKER_THREADS`).
    MultiThread(usize),
    /// `listener.workers = N`: N worker threads, each with its own listener and
    /// single-threaded runtime; the rest on a one-thread multi-thread runtime.
    Workers(usize),
}

pub fn serve(config: &Path, mode: Mode) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let mut cfg: GatewayConfig =
        toml::from_str(&text).context("gateway config from the harness")?;
    let runtime_workers = match mode {
        Mode::CurrentThread => 0,
        Mode::MultiThread(n) => n.max(1),
        Mode::Workers(n) => {
            cfg.listener.workers = n.max(1);
            1
        }
    };
    vigil_testkit::procs::serve_ready(runtime_workers, async move {
        let keys = Arc::new(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
        let gw = Gateway::start(cfg, keys).await?;
        let https = gw.https_addr().port();
        Ok((gw, vec![https]))
    })
}
