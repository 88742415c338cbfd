//! Test helpers: a private swtpm per test, and rustls client/server over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod tls;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A swtpm process with its own ports and state directory. Dropping it stops the process (by
/// PID) and removes the directory, also when the test panics.
pub struct Swtpm {
    pub port: u16,
    state: tempfile::TempDir,
    pid: Option<i32>,
}

/// Two consecutive free loopback ports (server, control), probed by binding them.
/// Two free consecutive loopback ports (swtpm's server and control sockets). Candidates come
/// from below the kernel's ephemeral range, not from `bind(0)`: Linux hands odd ports to
/// `bind(0)` and even ones to `connect()`, so after a load test has left thousands of
/// connections in TIME_WAIT, `port + 1` of a `bind(0)` port is almost always taken.
fn free_port_pair() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u64 = 10_000;
    const SPAN: u64 = 22_000;
    // RandomState is seeded per process and per instance: parallel runs start apart.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for i in 0..SPAN {
        let Ok(port) = u16::try_from(LOW + seed.wrapping_add(i * 7919) % SPAN) else {
            continue;
        };
        let Ok(_a) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports")
}

impl Swtpm {
    pub fn start() -> Self {
        let state = tempfile::tempdir().unwrap();
        let mut tpm = Self {
            port: 0,
            state,
            pid: None,
        };
        // A port taken between the probe and swtpm's bind fails the start; try a few.
        for _ in 0..5 {
            tpm.port = free_port_pair();
            if tpm.spawn() {
                return tpm;
            }
        }
        panic!("swtpm did not start (is the swtpm package installed?)");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn pid_file(&self) -> PathBuf {
        self.state.path().join("swtpm.pid")
    }

    fn spawn(&mut self) -> bool {
        let _ = std::fs::remove_file(self.pid_file());
        let p = self.port;
        let status = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={p},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", p + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", self.state.path().display()))
            .args([
                "--flags",
                "not-need-init,startup-clear",
                "--daemon",
                "--pid",
            ])
            .arg(format!("file={}", self.pid_file().display()))
            .status()
            .unwrap();
        if !status.success() {
            return false;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
                if let Ok(pid) = pid.trim().parse() {
                    self.pid = Some(pid);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", p)).is_ok() {
                return self.pid.is_some();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Stops swtpm (keeping its state) and waits until the process is gone.
    pub fn stop(&mut self) {
        let _ = Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", self.port + 1), "-s"])
            .output();
        if let Some(pid) = self.pid.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            // SAFETY: kill with signal 0 only probes whether `pid` (our swtpm) still exists.
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: sends SIGKILL to the swtpm process this guard started, if still alive.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Restarts swtpm on the same state directory and port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "swtpm did not restart");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Extends PCR `index` (SHA-256 bank) with tpm2-tools.
    pub fn pcr_extend(&self, index: u8) {
        let out = Command::new("tpm2_pcrextend")
            .env("TSS2_LOG", "all+NONE")
            .args(["-T", &self.tcti()])
            .arg(format!("{index}:sha256={}", "ab".repeat(32)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tpm2_pcrextend: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Swtpm {
    /// Runs a tpm2-tools command against this TPM and asserts that it succeeds.
    pub fn tool(&self, tool: &str, args: &[&str]) {
        let out = Command::new(tool)
            .env("TSS2_LOG", "all+NONE")
            .args(["-T", &self.tcti()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
