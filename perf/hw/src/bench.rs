//! The measurements: full TLS 1.3 handshakes over loopback, and signature latencies.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use vigil_testkit::load::quantile;
use vigil_testkit::ports::{free_port, wait_port};
use vigil_testkit::procs::Proc;

pub const NAME: &str = "bench.vigil.test";

/// Handshakes completed in a bounded run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HandshakeRun {
    pub server: String,
    pub key_mode: String,
    pub handshakes: u64,
    pub seconds: f64,
    pub per_second: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub what: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_config(trust: CertificateDer<'static>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake must be a full one that makes the server sign.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Runs an in-process rustls server on loopback serving `key`, and drives sequential full
/// handshakes against it until `count` are done or `limit` passes.
pub fn rustls_handshakes(
    mode: &str,
    key: Arc<CertifiedKey>,
    client: &Arc<ClientConfig>,
    count: u64,
    limit: Duration,
) -> anyhow::Result<HandshakeRun> {
    let mut server_config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    // No tickets: the client would not use them, and issuing them costs server time.
    server_config.send_tls13_tickets = 0;
    let server_config = Arc::new(server_config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let deadline = Instant::now() + limit;
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::clone(&stop);
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        // Bounded twice: the client's stop flag, and a hard deadline if the client died.
        let hard_deadline = deadline + Duration::from_secs(10);
        while !server_stop.load(Ordering::Relaxed) && Instant::now() < hard_deadline {
            let (sock, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            sock.set_nonblocking(false)?;
            sock.set_nodelay(true)?;
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            let conn = rustls::ServerConnection::new(Arc::clone(&server_config))?;
            let mut tls = rustls::StreamOwned::new(conn, sock);
            // An empty read marks the client's goodbye; errors end just this connection.
            let _ = tls.write_all(b"k").and_then(|()| tls.flush());
            let mut buf = [0u8; 1];
            let _ = tls.read(&mut buf);
        }
        Ok(())
    });
    let result = drive(mode, "vigil-rustls", client, port, count, deadline);
    stop.store(true, Ordering::Relaxed);
    let joined = server.join();
    let run = result?;
    match joined {
        Ok(r) => r?,
        Err(_) => bail!("server thread panicked"),
    }
    Ok(run)
}

/// `openssl s_server` serving the file key, as the reference peer.
pub fn openssl_handshakes(
    cert: &std::path::Path,
    key: &std::path::Path,
    client: &Arc<ClientConfig>,
    count: u64,
    limit: Duration,
) -> anyhow::Result<HandshakeRun> {
    let port = free_port()?;
    let server = Proc::spawn(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-tls1_3", "-no_ticket", "-naccept"])
            .arg((count + 1).to_string())
            .args(["-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    wait_port(port, Duration::from_secs(5), "openssl s_server")?;
    let run = drive(
        "file",
        "openssl-s_server",
        client,
        port,
        count,
        Instant::now() + limit,
    );
    drop(server);
    run
}

fn drive(
    mode: &str,
    server: &str,
    client: &Arc<ClientConfig>,
    port: u16,
    count: u64,
    deadline: Instant,
) -> anyhow::Result<HandshakeRun> {
    let start = Instant::now();
    let mut done = 0;
    while done < count && Instant::now() < deadline {
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let name = ServerName::try_from(NAME)?;
        let mut conn = rustls::ClientConnection::new(Arc::clone(client), name)?;
        let mut sock = sock;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .with_context(|| format!("handshake {done} with {server} ({mode} key)"))?;
        }
        if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            bail!("{server} did not negotiate TLS 1.3");
        }
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        done += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let per_second = done as f64 / seconds.max(1e-9);
    Ok(HandshakeRun {
        server: server.to_owned(),
        key_mode: mode.to_owned(),
        handshakes: done,
        seconds,
        per_second,
    })
}

/// Times `samples` calls of `f`, bounded by `limit`.
pub fn latency(
    what: &str,
    samples: usize,
    limit: Duration,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Latency> {
    let deadline = Instant::now() + limit;
    let mut ms = Vec::with_capacity(samples);
    while ms.len() < samples && Instant::now() < deadline {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    if ms.is_empty() {
        bail!("no {what} sample within {limit:?}");
    }
    ms.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    Ok(Latency {
        what: what.to_owned(),
        samples: ms.len(),
        p50_ms: quantile(&ms, 0.50),
        p99_ms: quantile(&ms, 0.99),
        mean_ms: mean,
    })
}

/// One ECDSA P-256 signature through the key's rustls signer.
pub fn sign_once(key: &CertifiedKey, msg: &[u8]) -> anyhow::Result<()> {
    let signer = key
        .key
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .context("key cannot sign ECDSA P-256")?;
    signer.sign(msg)?;
    Ok(())
}
