//! Clients: curl and openssl as child processes (killed on drop, bounded by --max-time and a
//! tokio timeout), a rustls client, raw bytes over TCP or TLS, and a hyper HTTP/2 client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use vigil_testkit::pki::Pki;

/// What curl reported.
#[derive(Debug)]
pub struct Curl {
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub http_version: String,
    pub stderr: String,
}

impl Curl {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Runs curl against `https://localhost:PORT{path}` with the test CA, plus `extra` args.
pub async fn curl(pki: &Pki, addr: SocketAddr, path: &str, extra: &[&str]) -> Curl {
    let url = format!("https://localhost:{}{path}", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let mut args = vec!["--resolve", &resolve, "--cacert"];
    let ca = pki.ca.display().to_string();
    args.push(&ca);
    args.extend_from_slice(extra);
    args.push(&url);
    curl_raw(&args).await
}

/// Runs curl with `args`; headers and body come on stdout (`-i`), status via `-w`.
pub async fn curl_raw(args: &[&str]) -> Curl {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl finished in time")
    .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (all, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (headers, body) = all.split_once("\r\n\r\n").unwrap_or((all, ""));
    let mut tail = tail.split(' ');
    let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Curl {
        status,
        headers: headers.to_owned(),
        body: body.to_owned(),
        http_version: tail.next().unwrap_or("").to_owned(),
        stderr: format!(
            "{} (exit {:?}, signal {:?})",
            String::from_utf8_lossy(&out.stderr),
            out.status.code(),
            std::os::unix::process::ExitStatusExt::signal(&out.status)
        ),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `openssl s_client` with `args` and returns (exit success, combined output).
pub async fn s_client(addr: SocketAddr, ca: &Path, args: &[&str]) -> (bool, String) {
    let connect = format!("127.0.0.1:{}", addr.port());
    let ca = ca.display().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(15),
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &connect,
                "-servername",
                "localhost",
                "-CAfile",
                &ca,
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("openssl finished in time")
    .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A rustls client config trusting the test CA, offering `alpn`, optionally with a client cert.
pub fn client_config(
    pki: &Pki,
    alpn: &[&str],
    cert: Option<(&Path, &Path)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match cert {
        None => b.with_no_client_auth(),
        Some((c, k)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(k).unwrap())
                .unwrap()
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// Connects with rustls and completes the handshake.
pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    // With TLS 1.3 a refused client certificate is only reported on the first read.
    s.flush().await?;
    Ok(s)
}

/// Writes `bytes`, then reads until EOF or `wait` passes. Returns what was read.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
    wait: Duration,
) -> String {
    let _ = s.write_all(bytes).await;
    let _ = s.flush().await;
    read_for(s, wait).await
}

/// Reads until EOF, an error, or `wait`.
pub async fn read_for<S: AsyncRead + Unpin>(s: &mut S, wait: Duration) -> String {
    String::from_utf8_lossy(&read_bytes(s, wait).await).into_owned()
}

/// Reads raw bytes until EOF, an error, or `wait`.
pub async fn read_bytes<S: AsyncRead + Unpin>(s: &mut S, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    out
}

/// Status code of the first response in `raw`, 0 if none.
pub fn status_of(raw: &str) -> u16 {
    raw.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends raw bytes over plain TCP and over TLS (http/1.1) and returns both responses.
pub async fn raw_both(pki: &Pki, plain: SocketAddr, tls: SocketAddr, bytes: &[u8]) -> [String; 2] {
    let wait = Duration::from_secs(3);
    let mut tcp = TcpStream::connect(plain).await.unwrap();
    let a = exchange(&mut tcp, bytes, wait).await;
    let mut s = tls_connect(tls, client_config(pki, &["http/1.1"], None))
        .await
        .unwrap();
    let b = exchange(&mut s, bytes, wait).await;
    [a, b]
}
