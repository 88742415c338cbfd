//! A small HTTPS server on 127.0.0.1 serving one JWKS document, counting the requests it
//! answers, and able to fail in the ways the client must survive.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::TempDir;

/// What the server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with this body and extra header lines (each "Name: value").
    Serve { body: Vec<u8>, headers: Vec<String> },
    /// This status with a short body.
    Status(u16),
    /// A 200 body of this many bytes with Content-Length (or without it, when false: the
    /// body then ends when the connection closes).
    Oversize { len: usize, content_length: bool },
    /// Read the request and never answer.
    Hang,
}

pub struct JwksServer {
    pub port: u16,
    pub ca_file: PathBuf,
    requests: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    accept: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl JwksServer {
    /// Starts serving `body` (a JWKS) on 127.0.0.1 with a self-signed certificate for
    /// "localhost" and 127.0.0.1, whose PEM is written to `ca_file`.
    pub async fn start(body: String) -> JwksServer {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap_or_else(|e| panic!("rcgen: {e}"));
        let dir = TempDir::new();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, certified.cert.pem()).unwrap_or_else(|e| panic!("ca: {e}"));
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("tls versions: {e}"))
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap_or_else(|e| panic!("server cert: {e}"));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let requests = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(Mutex::new(Mode::Serve {
            body: body.into_bytes(),
            headers: vec![],
        }));
        let accept = {
            let (requests, mode) = (Arc::clone(&requests), Arc::clone(&mode));
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, requests, mode) =
                        (acceptor.clone(), Arc::clone(&requests), Arc::clone(&mode));
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut req = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        let mode = mode
                            .lock()
                            .map(|m| m.clone())
                            .unwrap_or_else(|e| e.into_inner().clone());
                        let out = match mode {
                            Mode::Serve { body, headers } => response(200, &headers, &body, true),
                            Mode::Status(code) => response(code, &[], b"no", true),
                            Mode::Oversize {
                                len,
                                content_length,
                            } => {
                                let body =
                                    format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(len));
                                response(200, &[], body.as_bytes(), content_length)
                            }
                            Mode::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                        };
                        let _ = tls.write_all(&out).await;
                        let _ = tls.shutdown().await;
                    });
                }
            })
        };
        JwksServer {
            port,
            ca_file,
            requests,
            mode,
            accept: Some(accept),
            _dir: dir,
        }
    }

    /// https://127.0.0.1:port/.well-known/jwks.json
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/.well-known/jwks.json", self.port)
    }

    /// Requests answered (or hung on) so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Serves another JWKS from now on.
    pub fn serve(&self, body: String) {
        self.set_mode(Mode::Serve {
            body: body.into_bytes(),
            headers: vec![],
        });
    }

    /// Stops accepting connections: the port is closed afterwards.
    pub async fn stop(&mut self) {
        if let Some(h) = self.accept.take() {
            h.abort();
            let _ = h.await;
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(h) = self.accept.take() {
            h.abort();
        }
    }
}

fn response(code: u16, headers: &[String], body: &[u8], content_length: bool) -> Vec<u8> {
    let mut head =
        format!("HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nConnection: close\r\n");
    if content_length {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A port on 127.0.0.1 nothing listens on.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}
