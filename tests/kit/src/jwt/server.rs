//! An identity provider's JWKS endpoint: HTTPS on 127.0.0.1 with a certificate from a private
//! CA (whose PEM is `ca_file`), one document for every path, a count of the requests answered,
//! and the failures a client must survive (error statuses, oversized bodies, no answer at all).
//! Plain threads, so sync and async tests alike can use it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustls::pki_types::{PrivateKeyDer, pem::PemObject};

use crate::pki::Ca;

/// What the server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with this body and extra header lines (each `Name: value`).
    Serve { body: Vec<u8>, headers: Vec<String> },
    /// This status with a short body.
    Status(u16),
    /// A 200 JSON body of about `len` bytes, with Content-Length or (false) ended by closing
    /// the connection.
    Oversize { len: usize, content_length: bool },
    /// Reads the request and never answers.
    Hang,
}

#[derive(Debug)]
struct Shared {
    requests: AtomicUsize,
    mode: Mutex<Mode>,
    stop: AtomicBool,
}

impl Shared {
    fn mode(&self) -> Mode {
        self.mode.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The server; dropping it stops it.
#[derive(Debug)]
pub struct JwksServer {
    pub port: u16,
    /// The CA certificate that issued the server's certificate (for "localhost" and 127.0.0.1).
    pub ca_file: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl JwksServer {
    /// Serves `body` (a JWKS) with 200.
    pub fn start(body: impl Into<String>) -> Result<Self> {
        Self::start_with(Mode::Serve {
            body: body.into().into_bytes(),
            headers: vec![],
        })
    }

    pub fn start_with(mode: Mode) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("vigil-jwks-").tempdir()?;
        let ca = Ca::new("Vigil test identity provider CA")?;
        let ca_file = ca.write(&dir.path().join("ca.pem"))?;
        let leaf = ca.server(&["localhost", "127.0.0.1"])?;
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the JWKS server")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            requests: AtomicUsize::new(0),
            mode: Mutex::new(mode),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, shared) = (Arc::clone(&config), Arc::clone(&shared));
                    std::thread::spawn(move || answer(tcp, config, &shared));
                }
            })
        };
        Ok(Self {
            port,
            ca_file,
            shared,
            accept: Some(accept),
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:<port>/.well-known/jwks.json`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/.well-known/jwks.json", self.port)
    }

    /// Requests read so far (answered or hung on): one per fetch.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Serves another JWKS from now on.
    pub fn serve(&self, body: impl Into<String>) {
        self.set_mode(Mode::Serve {
            body: body.into().into_bytes(),
            headers: vec![],
        });
    }

    /// Stops accepting: the port is closed when this returns; hung requests are let go.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wakes the blocking accept so it sees the flag and drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = accept.join();
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: TLS, one request head, the current mode's answer, close.
fn answer(tcp: TcpStream, config: Arc<rustls::ServerConfig>, shared: &Shared) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let out = match shared.mode() {
        Mode::Serve { body, headers } => response(200, &headers, &body, true),
        Mode::Status(code) => response(code, &[], b"no", true),
        Mode::Oversize {
            len,
            content_length,
        } => {
            let body = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(len));
            response(200, &[], body.as_bytes(), content_length)
        }
        Mode::Hang => {
            let until = Instant::now() + Duration::from_secs(3600);
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
    };
    let _ = tls.write_all(&out);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn response(code: u16, headers: &[String], body: &[u8], content_length: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    );
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
