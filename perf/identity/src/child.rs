//! `--serve-gateway CONFIG [--redis ADDR]`: runs the gateway in this (child) process with the
//! config written by the harness, announces `READY <https port> <metrics port>` and serves
//! until killed. With `--redis`, the `shared = true` rate-limit rules keep their buckets there.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_dataplane::fleet::{buckets::RedisBuckets, link::Link};
use vigil_gateway::{Gateway, GatewayConfig};
use vigil_hw::keys::FileKeyProvider;

/// Worker threads of the gateway's runtime: one, as in perf/tls, so the load generator and the
/// upstream have the other core.
pub const WORKERS: usize = 1;

/// Per-decision deadline of the Redis store: vigild's default `fleet.rate_limit_timeout`.
const STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// Keeps the gateway's `shared = true` buckets in the Redis at `addr`, with vigild's store,
/// wired as vigild wires it (its metrics included). Returns once the store is connected, so no
/// measured decision is left to the local fallback while it connects.
async fn attach_redis(gw: &Gateway, addr: &str) -> Result<()> {
    let link = Link::open(addr).map_err(|e| anyhow::anyhow!("--redis {addr}: {e}"))?;
    let store = RedisBuckets::start(link, "vigil-perf", STORE_TIMEOUT);
    gw.set_shared_buckets(Arc::new(store.clone()));
    let metrics = store.clone();
    gw.add_metrics_source(Arc::new(
        move |out: &mut vigil_gateway::Exposition<'_, '_>| metrics.write_metrics(out),
    ));
    let t = Instant::now();
    while !store.is_up() {
        if t.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the Redis bucket store did not connect to {addr} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub fn serve(config: &Path, redis: Option<String>) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let cfg: GatewayConfig = toml::from_str(&text).context("gateway config from the harness")?;
    vigil_testkit::procs::serve_ready(WORKERS, async move {
        let keys = Arc::new(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
        let gw = Gateway::start(cfg, keys).await?;
        if let Some(addr) = redis {
            attach_redis(&gw, &addr).await?;
        }
        let ports = vec![gw.https_addr().port(), gw.metrics_addr().port()];
        Ok((gw, ports))
    })
}
