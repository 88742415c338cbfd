//! A private swtpm: its own pair of ports and state directory, so tests never share a TPM (it
//! serves one client at a time and has no resource manager). It can be stopped and started again
//! on the same state, and its PCRs extended; dropping it stops the process (by PID) and removes
//! the state, also when a test panics.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ports::free_port_pair;

/// A swtpm daemon on 127.0.0.1:`port` (control on `port + 1`).
#[derive(Debug)]
pub struct Swtpm {
    port: u16,
    state: tempfile::TempDir,
    pid: Option<libc::pid_t>,
}

impl Swtpm {
    /// Starts swtpm on a fresh state directory and waits until it accepts connections.
    pub fn start() -> Result<Self> {
        let mut tpm = Self {
            port: 0,
            state: tempfile::Builder::new()
                .prefix("vigil-swtpm-")
                .tempdir()
                .context("temp dir for the swtpm state")?,
            pid: None,
        };
        // A port taken between the probe and swtpm's bind fails the start; try a few.
        for _ in 0..5 {
            tpm.port = free_port_pair()?;
            if tpm.spawn()? {
                return Ok(tpm);
            }
        }
        bail!("swtpm did not start (apt-get install swtpm swtpm-tools)")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCTI string for tss-esapi, tpm2-tools and vigilctl.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn pid_file(&self) -> PathBuf {
        self.state.path().join("swtpm.pid")
    }

    /// Runs `swtpm socket --daemon`; true once its PID is known and its server port accepts.
    fn spawn(&mut self) -> Result<bool> {
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
            .context("running swtpm (apt-get install swtpm swtpm-tools)")?;
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

    /// Stops swtpm, keeping its state, and waits until the process is gone.
    pub fn stop(&mut self) {
        let _ = Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", self.port + 1), "-s"])
            .output();
        if let Some(pid) = self.pid.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            // SAFETY: signal 0 only probes whether `pid` (the swtpm this guard started) exists.
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: SIGKILL to the swtpm this guard started, in case it ignored the shutdown.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Starts swtpm again on the same state directory and ports: keys and persistent handles
    /// survive, as across a reboot.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn()? {
            if Instant::now() >= deadline {
                bail!("swtpm did not restart on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Extends PCR `index` of the SHA-256 bank (with tpm2-tools), as a changed boot would.
    pub fn pcr_extend(&self, index: u8) -> Result<()> {
        self.tool(
            "tpm2_pcrextend",
            &[&format!("{index}:sha256={}", "ab".repeat(32))],
        )
    }

    /// Runs a tpm2-tools command against this TPM; its stderr is the error when it fails.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Result<()> {
        let out = Command::new(tool)
            .env("TSS2_LOG", "all+NONE")
            .args(["-T", &self.tcti()])
            .args(args)
            .output()
            .with_context(|| format!("running {tool} (apt-get install tpm2-tools)"))?;
        if !out.status.success() {
            bail!(
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
