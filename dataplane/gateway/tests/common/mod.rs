//! Shared test fixtures: an in-process upstream, a gateway started on loopback port 0, and
//! clients (curl, openssl, rustls, raw sockets); temp dirs come from tempfile and certificates
//! from the test kit. Everything started here is stopped by a guard's Drop, so a failing test
//! cleans up too.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod clients;
pub mod upstream;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vigil_gateway::config::{AuditSink, UpstreamConfig};
use vigil_gateway::{Gateway, GatewayConfig};
use vigil_hw::keys::FileKeyProvider;
use vigil_testkit::pki::Pki;

/// A config on loopback port 0 with the audit log in `dir` and the given upstream URLs (and
/// `listener.workers` from `VIGIL_TEST_GATEWAY_WORKERS`, when set).
pub fn config(dir: &Path, pki: &Pki, upstreams: &[String]) -> GatewayConfig {
    let mut cfg = GatewayConfig::default();
    cfg.listener.https = "127.0.0.1:0".parse().unwrap();
    cfg.listener.http = Some("127.0.0.1:0".parse().unwrap());
    cfg.metrics.listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.cert = pki.server_cert.clone();
    cfg.tls.key = pki.server_key.clone();
    cfg.audit.sink = AuditSink::File;
    cfg.audit.path = dir.join("audit.log");
    // scripts/test.sh runs these tests a second time with VIGIL_TEST_GATEWAY_WORKERS=2: every
    // behaviour they check must hold with connections served by worker threads too.
    if let Some(n) = std::env::var("VIGIL_TEST_GATEWAY_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.listener.workers = n;
    }
    for (i, url) in upstreams.iter().enumerate() {
        cfg.upstream.push(UpstreamConfig {
            name: format!("up{i}"),
            url: url.clone(),
            header_timeout: Duration::from_secs(5),
            ..UpstreamConfig::default()
        });
    }
    cfg
}

/// A running gateway shut down on drop (bounded drain) if the test did not.
pub struct Gw {
    pub gw: Option<Gateway>,
    pub https: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub metrics: std::net::SocketAddr,
}

impl Gw {
    pub async fn start(cfg: GatewayConfig) -> Self {
        let keys = Arc::new(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key));
        let gw = Gateway::start(cfg, keys).await.expect("gateway starts");
        Self {
            https: gw.https_addr(),
            http: gw.http_addr().expect("plain listener configured"),
            metrics: gw.metrics_addr(),
            gw: Some(gw),
        }
    }

    pub fn get(&self) -> &Gateway {
        self.gw.as_ref().expect("running")
    }

    pub async fn stop(mut self) {
        if let Some(gw) = self.gw.take() {
            gw.shutdown(Duration::from_secs(2)).await;
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(gw) = self.gw.take() {
            // Tasks die with the test's runtime; stopping here only hurries the sockets.
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(gw.shutdown(Duration::from_millis(100)));
            }
        }
    }
}

/// Reads the audit log as JSON values, waiting (bounded) for at least `min` lines.
pub async fn audit_lines(path: &Path, min: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= min {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("audit log {} has fewer than {min} lines", path.display());
}
