//! Memory per idle TLS connection: open N connections (full handshake, ALPN http/1.1, no
//! request) from this process and compare the server's RSS before and after.
//!
//! One source address has only the kernel's ephemeral ports (`net.ipv4.ip_local_port_range`,
//! 28,232 by default) to one server port, fewer than the 50,000 connections the memory goal
//! names, so the connections come from [`SOURCES`] loopback addresses (127.0.1.1 and up).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use vigil_testkit::procs::rss_kib;

/// Loopback source addresses the connections are spread over.
const SOURCES: usize = 8;

/// Result of one idle-connection run.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    /// Connections asked for.
    pub asked: usize,
    /// Connections established and held while the RSS was read.
    pub connections: usize,
    /// Why the first connection that failed did (none failed: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
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
        for k in 0..n {
            let (gate, connector) = (gate.clone(), connector.clone());
            // k % SOURCES < 8, so the last octet is 1..=8.
            let src = Ipv4Addr::new(127, 0, 1, 1 + (k % SOURCES) as u8);
            tasks.push(tokio::spawn(async move {
                let _permit = gate
                    .acquire_owned()
                    .await
                    .map_err(|e| format!("gate: {e}"))?;
                let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
                sock.bind(SocketAddr::from((src, 0)))
                    .map_err(|e| format!("bind {src}: {e}"))?;
                let tcp = sock
                    .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                    .await
                    .map_err(|e| format!("connect from {src}: {e}"))?;
                let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                    .await
                    .map_err(|_| "TLS handshake: no answer in 10 s".to_owned())?
                    .map_err(|e| format!("TLS handshake: {e}"))
            }));
        }
        let mut conns = Vec::with_capacity(n);
        let mut first_error = None;
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(format!("task: {e}"));
                }
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
            asked: n,
            connections: established,
            first_error,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_connection: per,
        })
    })
}
