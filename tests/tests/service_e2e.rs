//! vigild as a systemd service: the shipped unit verifies and keeps its exposure low; vigild
//! speaks the notify protocol (READY=1 once serving, WATCHDOG=1 from its runtime, RELOADING=1
//! around a reload, STOPPING=1); the audit log is reopened on SIGUSR1, by hand or through the
//! shipped logrotate config, and no line is lost or written to the rotated file. No root
//! needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use vigil_e2e::{unique, upstream::Upstream};
use vigil_testkit::config::Config;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::{Vigild, bin_dir};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped unit with ExecStart pointing at the binary under test.
fn unit_under_test(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("images/rootfs/etc/systemd/system/vigild.service"))
            .unwrap();
    let vigild = bin_dir().unwrap().join("vigild");
    let path = dir.join("vigild.service");
    std::fs::write(
        &path,
        text.replace("/usr/bin/vigild", vigild.to_str().unwrap()),
    )
    .unwrap();
    path
}

#[test]
fn the_shipped_unit_verifies_and_its_exposure_is_low() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for vigild.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score:\n{text}"));
    eprintln!("systemd-analyze security: exposure {score}");
    assert!(score <= 3.0, "exposure {score} (0 best, 10 worst):\n{text}");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit_text.contains(line), "{line}");
    }
}

/// Waits for the next notification, at most `limit`.
fn next(sock: &UnixDatagram, limit: Duration) -> Option<String> {
    sock.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Reads notifications until one contains `want` (at most `limit`); all read so far.
fn until(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        if let Some(m) = next(sock, Duration::from_millis(200)) {
            let done = m.contains(want);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want:?} within {limit:?}; got {seen:?}");
}

#[test]
fn vigild_notifies_ready_feeds_the_watchdog_and_says_when_it_reloads_and_stops() {
    let mut d = Vigild::new(&unique(18)).unwrap();
    d.configure(Config::new()).unwrap();
    let sock_path = d.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    d.set_env("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    d.set_env("WATCHDOG_USEC", "200000");
    d.start().unwrap();
    let pid = d.pid().unwrap();
    let first = until(&sock, "READY=1", Duration::from_secs(5));
    assert!(
        first.last().unwrap().contains(&format!("MAINPID={pid}")),
        "{first:?}"
    );
    // 200 ms watchdog: fed every 100 ms.
    let start = Instant::now();
    let fed = until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    assert!(start.elapsed() < Duration::from_millis(600), "{fed:?}");
    assert!(d.signal(libc::SIGHUP));
    until(&sock, "RELOADING=1", Duration::from_secs(5));
    until(&sock, "READY=1", Duration::from_secs(5));
    d.term();
    until(&sock, "STOPPING=1", Duration::from_secs(5));
}

/// vigild with the gateway on plain HTTP writing its audit log to `audit`.
fn gateway(tag: &str, audit: &Path, up: &Upstream) -> (Vigild, u16) {
    let mut d = Vigild::new(tag).unwrap();
    let http = free_port().unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", free_port().unwrap(), up.url())
        .unwrap()
        .http(format!("127.0.0.1:{http}"))
        .audit_file(audit);
    d.configure(cfg).unwrap();
    d.start().unwrap();
    (d, http)
}

fn requests(http: u16, n: usize, tag: &str) {
    for i in 0..n {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /{tag}/{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}

/// Audit lines of `path` whose path starts with `/<tag>/`.
fn lines(path: &Path, tag: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("/{tag}/")))
        .count()
}

fn wait_lines(path: &Path, tag: &str, n: usize) {
    let start = Instant::now();
    while lines(path, tag) < n && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines(path, tag), n, "{}", path.display());
}

#[test]
fn sigusr1_reopens_the_audit_log_after_a_move_and_nothing_is_lost() {
    let up = Upstream::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let (d, http) = gateway(&unique(19), &audit, &up);
    requests(http, 20, "before");
    wait_lines(&audit, "before", 20);
    let moved = dir.path().join("audit.log.1");
    std::fs::rename(&audit, &moved).unwrap();
    // Lines written after the move but before the signal still reach the moved file.
    requests(http, 5, "between");
    assert!(d.signal(libc::SIGUSR1));
    let start = Instant::now();
    while !audit.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    requests(http, 30, "after");
    wait_lines(&audit, "after", 30);
    wait_lines(&moved, "between", 5);
    assert_eq!(lines(&moved, "before"), 20);
    assert_eq!(lines(&moved, "after"), 0, "the rotated file was written to");
    assert_eq!(lines(&audit, "before") + lines(&audit, "between"), 0);
    assert!(d.log().contains("audit log reopened"), "{}", d.log());
}

#[test]
fn the_shipped_logrotate_config_rotates_without_losing_a_line() {
    let up = Upstream::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let (d, http) = gateway(&unique(20), &audit, &up);
    requests(http, 10, "one");
    wait_lines(&audit, "one", 10);
    // The shipped config, pointed at this test's file and PID instead of the service's.
    let shipped =
        std::fs::read_to_string(root().join("images/rootfs/etc/logrotate.d/vigild")).unwrap();
    let conf = shipped
        .replace("/var/log/vigil/audit.log", audit.to_str().unwrap())
        .replace(
            "systemctl kill --kill-whom=main --signal=SIGUSR1 vigild.service",
            &format!("kill -USR1 {}", d.pid().unwrap()),
        );
    assert_ne!(conf, shipped);
    let conf_path = dir.path().join("logrotate.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.path().join("logrotate.state"))
        .arg(&conf_path)
        .output()
        .expect("logrotate is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = dir.path().join("audit.log.1");
    assert!(rotated.exists(), "logrotate did not rotate");
    requests(http, 10, "two");
    wait_lines(&audit, "two", 10);
    assert_eq!(lines(&rotated, "one"), 10);
    assert_eq!(lines(&rotated, "two"), 0);
}
