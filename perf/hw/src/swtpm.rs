//! A private swtpm for the run: own ports and state directory, stopped by PID on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Swtpm {
    pub port: u16,
    state: tempfile::TempDir,
    pid: Option<i32>,
}

impl Swtpm {
    pub fn start() -> anyhow::Result<Self> {
        let state = tempfile::tempdir().context("temp dir for swtpm state")?;
        let mut tpm = Self {
            port: 0,
            state,
            pid: None,
        };
        for _ in 0..5 {
            tpm.port = free_port_pair()?;
            if tpm.spawn()? {
                return Ok(tpm);
            }
        }
        bail!("swtpm did not start; install the swtpm package")
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn pid_file(&self) -> PathBuf {
        self.state.path().join("swtpm.pid")
    }

    fn spawn(&mut self) -> anyhow::Result<bool> {
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
            .context("running swtpm")?;
        if !status.success() {
            return Ok(false);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let pid = std::fs::read_to_string(self.pid_file()).ok();
            if let Some(pid) = pid.and_then(|p| p.trim().parse().ok()) {
                self.pid = Some(pid);
                if TcpStream::connect(("127.0.0.1", p)).is_ok() {
                    return Ok(true);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(false)
    }
}

/// Two free consecutive loopback ports (swtpm's server and control sockets). Candidates come
/// from below the kernel's ephemeral range, not from `bind(0)`: Linux hands odd ports to
/// `bind(0)` and even ones to `connect()`, so after a load test has left thousands of
/// connections in TIME_WAIT, `port + 1` of a `bind(0)` port is almost always taken.
fn free_port_pair() -> anyhow::Result<u16> {
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
            return Ok(port);
        }
    }
    bail!("no free pair of loopback ports")
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", self.port + 1), "-s"])
            .output();
        if let Some(pid) = self.pid.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            // SAFETY: signal 0 only checks whether our swtpm process still exists.
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: SIGKILL to the swtpm this guard started, in case it ignored the shutdown.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
