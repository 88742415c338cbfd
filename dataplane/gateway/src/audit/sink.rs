//! Audit sinks and the task that drains the queue into them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::fs::File;
use tokio::io::{AsyncWriteExt, Stdout};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};

use super::AuditEvent;
use crate::config::{AuditConfig, AuditSink, SyslogTransport};
use crate::error::GatewayError;
use crate::metrics::Metrics;

/// Lines written per wake-up before flushing.
const BATCH: usize = 256;
/// RFC 5424 PRI: facility local0 (16), severity informational (6).
const PRI: u32 = 16 * 8 + 6;

pub enum Sink {
    Stdout(Stdout),
    File(File),
    Udp(UdpSocket, Syslog),
    Tcp(Option<TcpStream>, SocketAddr, Option<Instant>, Syslog),
}

/// Fixed parts of an RFC 5424 header.
pub struct Syslog {
    hostname: String,
    pid: u32,
}

impl Syslog {
    fn new() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
            .unwrap_or_else(|| "-".to_owned());
        Self {
            hostname,
            pid: std::process::id(),
        }
    }

    fn format(&self, time: &str, json: &str) -> String {
        format!(
            "<{PRI}>1 {time} {} vigild {} audit - {json}",
            self.hostname, self.pid
        )
    }
}

impl Sink {
    pub async fn open(cfg: &AuditConfig) -> Result<Self, GatewayError> {
        match cfg.sink {
            AuditSink::Stdout => Ok(Self::Stdout(tokio::io::stdout())),
            AuditSink::File => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&cfg.path)
                    .await
                    .map_err(|source| GatewayError::AuditSink {
                        what: format!("file {}", cfg.path.display()),
                        source,
                    })?;
                Ok(Self::File(file))
            }
            AuditSink::Syslog => match cfg.syslog_transport {
                SyslogTransport::Udp => {
                    let bind: SocketAddr = if cfg.syslog_address.is_ipv4() {
                        SocketAddr::from(([0, 0, 0, 0], 0))
                    } else {
                        SocketAddr::from(([0u16; 8], 0))
                    };
                    let err = |source| GatewayError::AuditSink {
                        what: format!("syslog udp {}", cfg.syslog_address),
                        source,
                    };
                    let sock = UdpSocket::bind(bind).await.map_err(err)?;
                    sock.connect(cfg.syslog_address).await.map_err(err)?;
                    Ok(Self::Udp(sock, Syslog::new()))
                }
                // A TCP collector that is down at start must not stop the gateway: connect on
                // first use and count what is lost meanwhile.
                SyslogTransport::Tcp => {
                    Ok(Self::Tcp(None, cfg.syslog_address, None, Syslog::new()))
                }
            },
        }
    }

    async fn write(&mut self, event: &AuditEvent, json: &str) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.write_all(format!("{json}\n").as_bytes()).await,
            Self::File(f) => f.write_all(format!("{json}\n").as_bytes()).await,
            Self::Udp(sock, sys) => sock
                .send(sys.format(&event.time, json).as_bytes())
                .await
                .map(drop),
            Self::Tcp(conn, addr, last_try, sys) => {
                if conn.is_none() {
                    // At most one connection attempt per second while the collector is down.
                    if last_try.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                        return Err(std::io::Error::other("syslog collector unreachable"));
                    }
                    *last_try = Some(Instant::now());
                    let c = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(*addr))
                        .await
                        .map_err(|_| std::io::Error::other("syslog connect timed out"))??;
                    *conn = Some(c);
                }
                let msg = sys.format(&event.time, json);
                let frame = format!("{} {msg}", msg.len());
                let Some(c) = conn.as_mut() else {
                    return Err(std::io::Error::other("syslog not connected"));
                };
                let res = c.write_all(frame.as_bytes()).await;
                if res.is_err() {
                    *conn = None;
                }
                res
            }
        }
    }

    async fn flush(&mut self) {
        let _ = match self {
            Self::Stdout(out) => out.flush().await,
            Self::File(f) => f.flush().await,
            Self::Udp(..) | Self::Tcp(..) => Ok(()),
        };
    }
}

/// Writes queued lines until stopped, then writes what is left.
pub async fn drain(
    mut rx: mpsc::Receiver<AuditEvent>,
    mut sink: Sink,
    metrics: Arc<Metrics>,
    stop: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            () = stop.notified() => {
                // Closing keeps what is queued readable; take it all, then stop.
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    write_batch(&mut sink, &mut batch, &metrics).await;
                }
                break;
            }
        };
        if n == 0 {
            // Every sender is gone: nothing more can arrive.
            break;
        }
        write_batch(&mut sink, &mut batch, &metrics).await;
    }
    sink.flush().await;
}

async fn write_batch(sink: &mut Sink, batch: &mut Vec<AuditEvent>, metrics: &Metrics) {
    for ev in batch.drain(..) {
        let ok = match serde_json::to_string(&ev) {
            Ok(json) => sink.write(&ev, &json).await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            metrics.audit_write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    sink.flush().await;
}
