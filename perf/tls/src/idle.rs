//! Memory per idle TLS connection: open N connections (full handshake, ALPN http/1.1, no
//! request) from this process and compare the server's RSS before and after.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use vigil_testkit::procs::rss_kib;

/// Result of one idle-connection run.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_connection: f64,
}

/// Opens up to `n` idle connections to `port`, measures `pid`'s RSS, then closes them.
pub fn measure(port: u16, pid: u32, ca: &CertificateDer<'static>, n: usize) -> Result<Idle> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(cfg));
    rt.block_on(async move {
        let before = rss_kib(pid)?;
        let gate = Arc::new(Semaphore::new(200));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (gate, connector) = (gate.clone(), connector.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                let name = ServerName::try_from("localhost").ok()?;
                let fut = connector.connect(name, tcp);
                tokio::time::timeout(Duration::from_secs(10), fut)
                    .await
                    .ok()?
                    .ok()
            }));
        }
        let mut conns = Vec::with_capacity(n);
        for t in tasks {
            if let Ok(Some(c)) = t.await {
                conns.push(c);
            }
        }
        // Let the server settle (buffers released after the handshake) before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid)?;
        let established = conns.len();
        drop(conns);
        let per = if established > 0 {
            after.saturating_sub(before) as f64 / established as f64
        } else {
            f64::NAN
        };
        Ok(Idle {
            connections: established,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_connection: per,
        })
    })
}
