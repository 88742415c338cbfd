//! `--serve-gateway CONFIG`: runs the gateway in this (child) process with the config written
//! by the harness, prints `READY <port>` and serves until killed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use vigil_gateway::{Gateway, GatewayConfig};
use vigil_hw::keys::FileKeyProvider;

/// Worker threads of the gateway's runtime: one, like nginx's single worker.
pub const WORKERS: usize = 1;

pub fn serve(config: &Path) -> Result<()> {
    let cfg: GatewayConfig = serde_json::from_slice(&std::fs::read(config)?)
        .context("gateway config written by the harness")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let keys = Arc::new(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
        let gw = Gateway::start(cfg, keys).await?;
        let mut out = std::io::stdout();
        writeln!(out, "READY {}", gw.https_addr().port())?;
        out.flush()?;
        // Serve until the harness kills this process.
        std::future::pending::<()>().await;
        Ok(())
    })
}
