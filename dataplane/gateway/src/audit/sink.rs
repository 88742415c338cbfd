//! Audit sinks and the task that drains the queue into them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::fs::File;
use tokio::io::{AsyncWriteExt, Stdout};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};

use super::AuditLine;
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

    /// Writes a batch; returns how many lines were lost. Files and stdout get the whole batch
    /// in one write (one trip to the blocking pool instead of one per line).
    async fn write_all(&mut self, events: &[AuditLine]) -> u64 {
        let mut lost = 0;
        let mut buf = Vec::with_capacity(events.len() * 512);
        let mut lines = 0;
        for ev in events {
            let start = buf.len();
            let ok = match self {
                Self::Stdout(_) | Self::File(_) => serde_json::to_writer(&mut buf, ev).is_ok(),
                Self::Udp(_, sys) | Self::Tcp(.., sys) => match serde_json::to_string(ev) {
                    Ok(json) => {
                        let msg = sys.format(ev.time(), &json);
                        if matches!(self, Self::Tcp(..)) {
                            buf.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                        }
                        buf.extend_from_slice(msg.as_bytes());
                        true
                    }
                    Err(_) => false,
                },
            };
            if !ok {
                buf.truncate(start);
                lost += 1;
                continue;
            }
            if let Self::Udp(sock, _) = self {
                // One datagram per message.
                if sock.send(&buf[start..]).await.is_err() {
                    lost += 1;
                }
                buf.truncate(start);
                continue;
            }
            if matches!(self, Self::Stdout(_) | Self::File(_)) {
                buf.push(b'\n');
            }
            lines += 1;
        }
        if lines > 0 && self.send(&buf).await.is_err() {
            lost += lines;
        }
        lost
    }

    async fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => {
                out.write_all(buf).await?;
                out.flush().await
            }
            Self::File(f) => {
                f.write_all(buf).await?;
                f.flush().await
            }
            Self::Udp(..) => Ok(()),
            Self::Tcp(conn, addr, last_try, _) => {
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
                let Some(c) = conn.as_mut() else {
                    return Err(std::io::Error::other("syslog not connected"));
                };
                let res = c.write_all(buf).await;
                if res.is_err() {
                    *conn = None;
                }
                res
            }
        }
    }
}

/// Writes queued lines until stopped, then writes what is left.
pub async fn drain(
    mut rx: mpsc::Receiver<AuditLine>,
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
}

async fn write_batch(sink: &mut Sink, batch: &mut Vec<AuditLine>, metrics: &Metrics) {
    let lost = sink.write_all(batch).await;
    batch.clear();
    if lost > 0 {
        metrics
            .audit_write_errors
            .fetch_add(lost, Ordering::Relaxed);
    }
}
