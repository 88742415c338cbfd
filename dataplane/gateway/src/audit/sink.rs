//! Audit sinks: where a batch of lines goes. Every line reaches a file or stdout whole or not
//! at all, and the lines that did not are counted, so a full disk never leaves half a record
//! glued to the next one.

use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::AuditLine;
use crate::config::{AuditConfig, AuditSink, SyslogTransport};
use crate::error::GatewayError;

/// RFC 5424 PRI: facility local0 (16), severity informational (6).
const PRI: u32 = 16 * 8 + 6;
/// How much of a file's end is read at open to find a line a crash left unfinished.
const TAIL_SCAN: u64 = 1 << 20;

/// A destination for audit lines, written from the audit thread only (blocking I/O).
#[derive(Debug)]
pub enum Sink {
    /// `torn`: the last write stopped inside a line, so the next write starts with a newline.
    Stdout {
        torn: bool,
    },
    /// `torn`: as for stdout, set only when cutting the partial line off failed too.
    File {
        file: File,
        torn: bool,
    },
    Udp(UdpSocket, Syslog),
    Tcp {
        conn: Option<TcpStream>,
        addr: SocketAddr,
        last_try: Option<Instant>,
        sys: Syslog,
    },
}

/// Fixed parts of an RFC 5424 header.
#[derive(Debug)]
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

/// Lines of a batch that did not reach the sink, and the last error that stopped them.
#[derive(Debug, Default)]
pub struct Loss {
    pub lines: u64,
    pub error: Option<io::Error>,
}

impl Loss {
    fn add(&mut self, lines: u64, error: io::Error) {
        self.lines += lines;
        self.error = Some(error);
    }
}

impl Sink {
    pub fn open(cfg: &AuditConfig) -> Result<Self, GatewayError> {
        match cfg.sink {
            AuditSink::Stdout => Ok(Self::Stdout { torn: false }),
            AuditSink::File => {
                let err = |source| GatewayError::AuditSink {
                    what: format!("file {}", cfg.path.display()),
                    source,
                };
                // Read access only to look at the file's last line below.
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(&cfg.path)
                    .map_err(err)?;
                let torn = match cut_partial_line(&file) {
                    Ok(Tail::Whole) => false,
                    Ok(Tail::Cut(bytes)) => {
                        tracing::warn!(
                            path = %cfg.path.display(),
                            bytes,
                            "the audit log ended in a partial line (vigild stopped mid-write); \
                             cut it off so that every line is one whole record"
                        );
                        false
                    }
                    Ok(Tail::Kept) => true,
                    Err(e) => {
                        tracing::warn!(
                            path = %cfg.path.display(),
                            error = %e,
                            "cannot check the end of the audit log; the next line starts on a \
                             new line"
                        );
                        true
                    }
                };
                Ok(Self::File { file, torn })
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
                    let sock = UdpSocket::bind(bind).map_err(err)?;
                    sock.connect(cfg.syslog_address).map_err(err)?;
                    Ok(Self::Udp(sock, Syslog::new()))
                }
                // A TCP collector that is down at start must not stop the gateway: connect on
                // first use and count what is lost meanwhile.
                SyslogTransport::Tcp => Ok(Self::Tcp {
                    conn: None,
                    addr: cfg.syslog_address,
                    last_try: None,
                    sys: Syslog::new(),
                }),
            },
        }
    }

    /// Writes a batch: streams (file, stdout, TCP) get it in one write, UDP one datagram per
    /// line. Returns what was lost.
    pub fn write_batch(&mut self, events: &[AuditLine]) -> Loss {
        let mut loss = Loss::default();
        let mut buf = Vec::with_capacity(events.len() * 512);
        // Where each line ends in `buf`: what a short write kept is counted from these.
        let mut ends = Vec::with_capacity(events.len());
        let torn = matches!(
            self,
            Self::Stdout { torn: true } | Self::File { torn: true, .. }
        );
        if torn {
            buf.push(b'\n');
        }
        for ev in events {
            let start = buf.len();
            if let Err(e) = self.encode(ev, &mut buf) {
                buf.truncate(start);
                loss.add(1, e.into());
                continue;
            }
            if let Self::Udp(sock, _) = self {
                if let Err(e) = sock.send(&buf[start..]) {
                    loss.add(1, e);
                }
                buf.truncate(start);
                continue;
            }
            ends.push(buf.len());
        }
        if ends.is_empty() {
            return loss;
        }
        let sent = self.send(&buf);
        let Some(error) = sent.error else {
            self.set_torn(false);
            return loss;
        };
        let written = sent.written;
        let kept = ends.iter().take_while(|&&e| e <= written).count();
        loss.add((ends.len() - kept) as u64, error);
        // The leading newline counts as whole once written: it ends the earlier partial line.
        let prefix = usize::from(torn);
        if written < prefix {
            // Nothing reached the sink; the earlier partial line is still open.
            return loss;
        }
        let whole = if kept == 0 { prefix } else { ends[kept - 1] };
        let mut now_torn = written > whole;
        // A file is cut back to its last whole line; a stream can only be ended with a newline
        // on the next write.
        if now_torn
            && let Self::File { file, .. } = self
            && let Some(before) = sent.file_len
            && file.set_len(before + whole as u64).is_ok()
        {
            now_torn = false;
        }
        self.set_torn(now_torn);
        loss
    }

    fn set_torn(&mut self, value: bool) {
        if let Self::Stdout { torn } | Self::File { torn, .. } = self {
            *torn = value;
        }
    }

    /// Appends one line (without the newline for syslog) to `buf`.
    fn encode(&self, ev: &AuditLine, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Self::Stdout { .. } | Self::File { .. } => {
                serde_json::to_writer(&mut *buf, ev)?;
                buf.push(b'\n');
            }
            Self::Udp(_, sys) | Self::Tcp { sys, .. } => {
                let json = serde_json::to_string(ev)?;
                let msg = sys.format(ev.time(), &json);
                if matches!(self, Self::Tcp { .. }) {
                    buf.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                }
                buf.extend_from_slice(msg.as_bytes());
            }
        }
        Ok(())
    }

    fn send(&mut self, buf: &[u8]) -> Sent {
        match self {
            Self::Stdout { .. } => {
                let mut out = io::stdout().lock();
                let (written, mut error) = write_prefix(&mut out, buf);
                if error.is_none() {
                    error = out.flush().err();
                }
                Sent {
                    written,
                    error,
                    file_len: None,
                }
            }
            Self::File { file, .. } => {
                // With O_APPEND every write lands at the end: this is where the batch starts.
                let file_len = file.metadata().map(|m| m.len()).ok();
                let (written, error) = write_prefix(file, buf);
                Sent {
                    written,
                    error,
                    file_len,
                }
            }
            Self::Udp(..) => Sent {
                written: buf.len(),
                error: None,
                file_len: None,
            },
            Self::Tcp {
                conn,
                addr,
                last_try,
                ..
            } => {
                let failed = |error| Sent {
                    written: 0,
                    error: Some(error),
                    file_len: None,
                };
                if conn.is_none() {
                    // At most one connection attempt per second while the collector is down.
                    if last_try.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                        return failed(io::Error::other("syslog collector unreachable"));
                    }
                    *last_try = Some(Instant::now());
                    match TcpStream::connect_timeout(addr, Duration::from_secs(2)) {
                        Ok(c) => *conn = Some(c),
                        Err(e) => return failed(e),
                    }
                }
                let Some(c) = conn.as_mut() else {
                    return failed(io::Error::other("syslog not connected"));
                };
                let (written, error) = write_prefix(c, buf);
                if error.is_some() {
                    // A frame may be cut: the collector must see the connection end there.
                    *conn = None;
                }
                Sent {
                    written,
                    error,
                    file_len: None,
                }
            }
        }
    }
}

/// What one write of a batch did.
struct Sent {
    /// Bytes of the batch that reached the sink.
    written: usize,
    /// Why the rest did not.
    error: Option<io::Error>,
    /// A file's length before the write, to cut a partial line back to.
    file_len: Option<u64>,
}

/// Writes as much of `buf` as the sink takes: the bytes written and the error that stopped it.
fn write_prefix(w: &mut impl Write, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match w.write(&buf[n..]) {
            Ok(0) => return (n, Some(io::ErrorKind::WriteZero.into())),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The end of an audit file found at open.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// Empty, or ends with a newline.
    Whole,
    /// Ended in a partial line (a crash mid-write): these bytes were cut off.
    Cut(u64),
    /// Ends in a partial line longer than `TAIL_SCAN`: left in place, to be ended by a newline.
    Kept,
}

/// Cuts a partial last line off `file`, as a kill in the middle of a write leaves it.
fn cut_partial_line(file: &File) -> io::Result<Tail> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail::Whole);
    }
    let scan = len.min(TAIL_SCAN);
    let mut tail = vec![0; scan as usize];
    file.read_exact_at(&mut tail, len - scan)?;
    if tail.last() == Some(&b'\n') {
        return Ok(Tail::Whole);
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - scan + i as u64 + 1,
        None if scan == len => 0,
        None => return Ok(Tail::Kept),
    };
    file.set_len(keep)?;
    Ok(Tail::Cut(len - keep))
}

#[cfg(test)]
// A failed step is the test's failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::audit::{Auditor, SystemEvent};
    use crate::metrics::Metrics;

    /// A small tmpfs mounted on a fresh directory; unmounted and removed on drop, also when the
    /// test fails.
    struct Tmpfs {
        dir: PathBuf,
        mounted: bool,
    }

    impl Tmpfs {
        /// None (the test is skipped) unless running as root.
        fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
            // SAFETY: geteuid(2) takes no arguments and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                eprintln!("skipped: mounting a tmpfs needs root");
                return None;
            }
            let dir =
                std::env::temp_dir().join(format!("vigil-audit-{tag}-{}", std::process::id()));
            let _ = Command::new("umount").arg(&dir).output();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut fs = Tmpfs {
                dir,
                mounted: false,
            };
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&fs.dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mount: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs.mounted = true;
            Some(fs)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            if self.mounted {
                let ok = Command::new("umount")
                    .arg(&self.dir)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    // Something still holds a file open: detach now, freed when it closes.
                    let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
                }
            }
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    /// Fills the filesystem of `dir` with a file of its own until a write fails.
    fn fill(dir: &Path) -> PathBuf {
        let path = dir.join("filler");
        let mut f = File::create(&path).unwrap();
        let chunk = vec![b'x'; 4096];
        while f.write_all(&chunk).is_ok() {}
        for _ in 0..4096 {
            if f.write_all(b"x").is_err() {
                break;
            }
        }
        path
    }

    /// Lines of varied length (about 150 to 600 bytes), numbered.
    fn line(n: u64) -> SystemEvent {
        let mut fields = serde_json::Map::new();
        fields.insert("n".into(), n.into());
        let pad = "p".repeat(100 + (n as usize * 37) % 450);
        fields.insert("pad".into(), pad.into());
        SystemEvent {
            time: "2026-01-01T00:00:00Z".into(),
            event: "test",
            fields,
        }
    }

    fn file_cfg(path: &Path) -> AuditConfig {
        AuditConfig {
            sink: AuditSink::File,
            path: path.to_owned(),
            ..AuditConfig::default()
        }
    }

    /// The numbers of the lines in `path`; panics on a line that is not one whole record.
    fn numbers(path: &Path) -> Vec<u64> {
        let mut text = String::new();
        File::open(path).unwrap().read_to_string(&mut text).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "the log ends in a partial line"
        );
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("not one JSON record ({e}): {} bytes: {l}", l.len())
                });
                v["n"].as_u64().unwrap()
            })
            .collect()
    }

    fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        f()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_loses_whole_lines_and_counts_them() {
        let Some(fs) = Tmpfs::mount("full", "64k") else {
            return;
        };
        let path = fs.dir.join("audit.log");
        let metrics = Arc::new(Metrics::default());
        let audit = Auditor::start(&file_cfg(&path), metrics.clone())
            .await
            .unwrap();
        let lost = || metrics.audit_write_errors.load(Ordering::Relaxed);
        let settled = |sent: u64| {
            wait_for(Duration::from_secs(10), || {
                numbers(&path).len() as u64 + lost() == sent
            })
        };
        let mut n = 0;
        let mut send = |count: u64| {
            for _ in 0..count {
                audit.record_system(line(n));
                n += 1;
            }
            n
        };

        // 1. Some lines, then the disk fills up (the log's last page keeps some room).
        let sent = send(5);
        assert!(settled(sent), "{:?}", numbers(&path));
        let filler = fill(&fs.dir);
        // 2. Lines while the disk is full, a few at a time so that batches end at different
        //    places in the last page.
        for _ in 0..30 {
            let sent = send(3);
            assert!(settled(sent), "lines neither written nor counted");
        }
        let lost_full = lost();
        assert!(lost_full > 0, "the disk never filled up");
        // 3. Space comes back: every later line is written.
        std::fs::remove_file(filler).unwrap();
        let sent = send(40);
        audit.flush_and_stop().await;

        let got = numbers(&path);
        assert_eq!(got.len() as u64 + lost(), sent, "{got:?}");
        assert_eq!(
            lost(),
            lost_full,
            "lines lost after the disk had room again"
        );
        assert_eq!(metrics.audit_dropped.load(Ordering::Relaxed), 0);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert!(got.starts_with(&[0, 1, 2, 3, 4]), "{got:?}");
        assert!(
            got.ends_with(&((sent - 40)..sent).collect::<Vec<_>>()),
            "{got:?}"
        );
        eprintln!(
            "{} lines sent, {} written, {} lost to the full disk",
            sent,
            got.len(),
            lost_full
        );
    }

    #[test]
    fn a_partial_last_line_is_cut_at_open() {
        let dir = std::env::temp_dir().join(format!("vigil-audit-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let whole = "{\"n\":0}\n{\"n\":1}\n";
        std::fs::write(&path, format!("{whole}{{\"n\":2,\"pa")).unwrap();
        let mut sink = Sink::open(&file_cfg(&path)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        let loss = sink.write_batch(&[AuditLine::System(line(3))]);
        assert_eq!(loss.lines, 0);
        assert_eq!(numbers(&path), [0, 1, 3]);

        // One partial line and nothing else: the file is emptied.
        std::fs::write(&path, "{\"n\":7,").unwrap();
        drop(Sink::open(&file_cfg(&path)).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
