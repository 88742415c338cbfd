//! rustls server and client over loopback TCP, and an openssl s_client peer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

pub fn server_config(key: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    Arc::new(config)
}

pub fn client_config(trust: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A server that accepts up to `count` connections (or until 30 s pass), completes each
/// handshake, writes `hello\n` and closes. Returns the port and the thread, which yields the
/// number of completed handshakes.
pub fn serve(config: Arc<ServerConfig>, count: usize) -> (u16, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut done = 0;
        let mut seen = 0;
        while seen < count && Instant::now() < deadline {
            let sock = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
            };
            seen += 1;
            sock.set_nonblocking(false).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            if tls.write_all(b"hello\n").and_then(|()| tls.flush()).is_ok() {
                done += 1;
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        done
    });
    (port, handle)
}

/// One rustls client handshake to 127.0.0.1:`port`; returns what the server sent.
pub fn client_fetch(config: &Arc<ClientConfig>, port: u16, name: &str) -> Result<String, String> {
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(config), server_name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut out = String::new();
    match tls.read_to_string(&mut out) {
        Ok(_) => {}
        // Some peers close without close_notify; what was read still counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    let version = tls.conn.protocol_version();
    if version != Some(rustls::ProtocolVersion::TLSv1_3) {
        return Err(format!("negotiated {version:?}"));
    }
    Ok(out)
}

/// `openssl s_client -tls1_3` against 127.0.0.1:`port`, verifying against `ca`; returns its
/// stdout and stderr.
pub fn openssl_fetch(port: u16, ca: &Path, name: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-tls1_3", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            name,
            "-verify_hostname",
            name,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
