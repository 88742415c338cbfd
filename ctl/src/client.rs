//! Talking to vigild, or to the pinned maps directly when it is down.

use std::{
    io::{ErrorKind, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};

use crate::exit::{permission, unreachable, usage};
use vigil_control::{
    Detached, Reply, Request, Status, ops,
    reply::{DaemonStatus, XdpReport},
    wire,
};
use vigil_xdp::VigilMaps;

/// Largest reply read from the control socket. The biggest real replies (rule lists of a full
/// blocklist, the shadow inventory) stay well below it; anything larger is not vigild talking.
pub const MAX_REPLY: usize = 16 << 20;

/// Longest `--timeout` accepted (one day): longer means "forever", which is what it prevents.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Sends one request and waits at most `timeout` for the whole reply; `Ok(None)` when no
/// daemon listens on `socket`, an error with vigild's message when it refuses.
pub fn ask_daemon(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> anyhow::Result<Option<Reply>> {
    let timeout = timeout.min(MAX_TIMEOUT);
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(permission(format!(
                "permission denied on {}: vigilctl needs root",
                socket.display()
            )));
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", socket.display())),
    };
    let deadline = Instant::now() + timeout;
    let line = wire::encode_request(req);
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(&line)
        .map_err(|e| io_failure(socket, timeout, e, "sending the request"))?;
    let reply = read_reply(&mut stream, socket, deadline, timeout)?;
    Ok(Some(wire::decode_reply(req, &reply)??))
}

/// Reads one reply line, at most [`MAX_REPLY`] bytes, by `deadline`: a hung daemon (or whatever
/// else listens on the socket) can neither stall vigilctl nor fill its memory.
fn read_reply(
    stream: &mut UnixStream,
    socket: &Path,
    deadline: Instant,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let mut reply = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(not_answering(socket, timeout));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => bail!(
                "vigild closed {} before a complete reply; see its log (journalctl -u vigild)",
                socket.display()
            ),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(socket, timeout, e, "reading the reply")),
        };
        // read() never returns more than the buffer holds.
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n');
        reply.extend_from_slice(&got[..end.unwrap_or(n)]);
        if reply.len() > MAX_REPLY {
            bail!(
                "the reply on {} is over the {} MiB limit; refusing to read more: check that \
                 the socket is vigild's (--socket)",
                socket.display(),
                MAX_REPLY >> 20
            );
        }
        if end.is_some() {
            return Ok(reply);
        }
    }
}

fn not_answering(socket: &Path, timeout: Duration) -> anyhow::Error {
    anyhow!(
        "vigild is not answering on {}: no reply within {}; check that it is running and not \
         stuck (journalctl -u vigild), or allow longer with --timeout",
        socket.display(),
        humanize(timeout)
    )
}

/// A timed-out socket call reads as "not answering"; anything else keeps the OS error.
fn io_failure(socket: &Path, timeout: Duration, e: std::io::Error, what: &str) -> anyhow::Error {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => not_answering(socket, timeout),
        _ => anyhow::Error::new(e).context(format!("{what} on {}", socket.display())),
    }
}

/// `10s`, `1500ms`: how the operator wrote `--timeout`, near enough.
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// vigild answers `thermal clear` before its governor thread has applied the clear, so its
/// reply may still show the override. Re-read the status briefly until it is gone, so the
/// operator does not see "cleared" above a table that says otherwise.
pub fn settle_thermal_clear(
    socket: &Path,
    timeout: Duration,
    mut reply: Reply,
) -> anyhow::Result<Reply> {
    let deadline = Instant::now() + Duration::from_millis(500);
    while matches!(&reply, Reply::Thermal(t) if t.status.override_level.is_some())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(r) = ask_daemon(socket, &Request::Thermal, timeout)? {
            reply = r;
        }
    }
    Ok(reply)
}

/// Picks the interface whose pins to open: `--iface`, else the only one pinned.
pub fn pinned_iface(pin_root: &Path, iface: Option<&str>) -> anyhow::Result<String> {
    if let Some(i) = iface {
        return Ok(i.to_owned());
    }
    let entries = std::fs::read_dir(pin_root).map_err(|e| match e.kind() {
        ErrorKind::NotFound => unreachable(format!(
            "vigild is not running and nothing is pinned under {}: start vigild",
            pin_root.display()
        )),
        ErrorKind::PermissionDenied => permission(format!(
            "permission denied on {}: vigilctl needs root",
            pin_root.display()
        )),
        _ => anyhow!("reading {}: {e}", pin_root.display()),
    })?;
    let dirs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(unreachable(format!(
            "vigild is not running and nothing is pinned under {}: start vigild",
            pin_root.display()
        ))),
        many => Err(usage(format!(
            "vigild is not running and several interfaces are pinned ({}); pick one with --iface",
            many.join(", ")
        ))),
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a request against the pinned maps, the way the daemon would.
pub fn run_offline(pin_root: &Path, iface: Option<&str>, req: &Request) -> anyhow::Result<Reply> {
    if let Some(what) = req.needs_daemon() {
        return Err(unreachable(format!(
            "vigild is not running: `{what}` needs it (start it with vigild --config FILE)"
        )));
    }
    // Nothing pinned is "unreachable" for everyone; only real pins ask for root.
    let iface = pinned_iface(pin_root, iface)?;
    if !is_root() {
        return Err(permission(
            "vigild is not reachable and the pinned maps need privileges: vigilctl needs root",
        ));
    }
    let dir: PathBuf = vigil_xdp::pin_dir(pin_root, &iface);
    if matches!(req, Request::XdpDetach) {
        if !vigil_xdp::detach(pin_root, &iface)? {
            return Err(unreachable(format!(
                "nothing is pinned for {iface} under {}: no program to detach",
                pin_root.display()
            )));
        }
        return Ok(Reply::Detached(Detached { detached: iface }));
    }
    let mut maps = VigilMaps::open(&dir)?;
    Ok(match req {
        Request::RuleAdd {
            list,
            cidr,
            ttl_secs,
            reason,
        } => Reply::RuleAdded(ops::rule_add(
            &mut maps,
            *list,
            *cidr,
            *ttl_secs,
            reason.as_deref(),
            0,
        )?),
        Request::RuleDel { list, cidr } => {
            Reply::RuleRemoved(ops::rule_del(&mut maps, *list, *cidr)?)
        }
        Request::RuleList { list } => Reply::Rules(ops::rule_list(&maps, *list)?),
        Request::RuleImport { list, path, reason } => {
            Reply::RulesImported(ops::rule_import(&mut maps, *list, path, reason.as_deref())?)
        }
        Request::RuleFlush { list } => Reply::RulesFlushed(ops::rule_flush(&mut maps, *list)?),
        Request::Stats => Reply::Stats(ops::stats(&maps)?),
        Request::Status => {
            let xdp = match vigil_xdp::attached_mode(pin_root, &iface) {
                Some(m) => XdpReport::Attached(ops::xdp_status(&maps, &iface, m)?),
                None => XdpReport::Broken {
                    error: format!("maps are pinned for {iface} but no program is attached"),
                },
            };
            Reply::Status(Box::new(Status {
                fleet: None,
                gateway: None,
                host: None,
                daemon: DaemonStatus {
                    running: false,
                    pid: None,
                    version: None,
                    uptime_secs: None,
                    config: None,
                },
                xdp: Some(xdp),
            }))
        }
        other => {
            return Err(unreachable(format!(
                "vigild is not running: `{}` needs it",
                other.name()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A fake daemon on a fresh socket: `serve` gets each accepted connection.
    fn fake_daemon(
        serve: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigild.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                serve(s);
            }
        });
        (dir, path)
    }

    #[test]
    fn a_daemon_that_answers_is_heard() {
        let (_dir, path) = fake_daemon(|mut s| {
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.contains("\"xdp_detach\""), "{line}");
            s.write_all(b"{\"ok\":true,\"data\":{\"detached\":\"eth0\"}}\n")
                .unwrap();
        });
        let v = ask_daemon(&path, &Request::XdpDetach, Duration::from_secs(5)).unwrap();
        assert_eq!(
            v,
            Some(Reply::Detached(Detached {
                detached: "eth0".into()
            }))
        );
    }

    #[test]
    fn a_daemon_that_never_answers_times_out_naming_the_socket() {
        let (release, held) = mpsc::channel::<()>();
        let (_dir, path) = fake_daemon(move |s| {
            let _ = held.recv();
            drop(s);
        });
        let started = Instant::now();
        let err = ask_daemon(&path, &Request::Status, Duration::from_millis(300)).unwrap_err();
        let elapsed = started.elapsed();
        release.send(()).unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("vigild is not answering on {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains("no reply within 300ms"), "{msg}");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }

    #[test]
    fn a_trickling_reply_is_cut_off_at_the_deadline() {
        let (_dir, path) = fake_daemon(|mut s| {
            // One byte every 50 ms: each read succeeds, only the overall deadline stops it.
            while s.write_all(b"{").is_ok() {
                thread::sleep(Duration::from_millis(50));
            }
        });
        let started = Instant::now();
        let err = ask_daemon(&path, &Request::Status, Duration::from_millis(400)).unwrap_err();
        assert!(format!("{err:#}").contains("not answering"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn an_endless_reply_is_refused_at_the_limit() {
        let (_dir, path) = fake_daemon(|mut s| {
            let block = vec![b'x'; 1 << 20];
            while s.write_all(&block).is_ok() {}
        });
        let started = Instant::now();
        let err = ask_daemon(&path, &Request::Status, Duration::from_secs(30)).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("is over the 16 MiB limit"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
