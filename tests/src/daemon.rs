//! vigild as a child process with its own config, socket and pin root, and vigilctl against it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A vigild with a private directory; killed (by PID) and its pins removed on drop.
#[derive(Debug)]
pub struct Vigild {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pin_root: PathBuf,
    pub iface: String,
    child: Option<Child>,
}

impl Vigild {
    /// Writes a config whose [xdp] section is `xdp_extra` after the interface line.
    pub fn new(tag: &str, iface: &str, xdp_extra: &str) -> anyhow::Result<Vigild> {
        Self::with_sections(tag, iface, xdp_extra, "")
    }

    /// Like `new`, with more top-level sections (`[listener]`, `[tls]`, ...) appended.
    pub fn with_sections(
        tag: &str,
        iface: &str,
        xdp_extra: &str,
        sections: &str,
    ) -> anyhow::Result<Vigild> {
        let dir = std::env::temp_dir().join(format!("vigil-e2e-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let pin_root = PathBuf::from(format!("/sys/fs/bpf/vigil-e2e-{tag}"));
        let socket = dir.join("vigild.sock");
        let config = dir.join("vigild.toml");
        fs::write(
            &config,
            format!(
                "[xdp]\ninterface = \"{iface}\"\npin_root = \"{}\"\nsweep_interval_ms = 200\n{xdp_extra}\n\
                 [control]\nsocket = \"{}\"\n{sections}\n",
                pin_root.display(),
                socket.display()
            ),
        )?;
        Ok(Vigild {
            dir,
            config,
            socket,
            pin_root,
            iface: iface.to_owned(),
            child: None,
        })
    }

    /// A vigild without XDP: `body` holds every section but `[control]`.
    pub fn without_xdp(tag: &str, body: &str) -> anyhow::Result<Vigild> {
        let dir = std::env::temp_dir().join(format!("vigil-e2e-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let socket = dir.join("vigild.sock");
        let config = dir.join("vigild.toml");
        let body = body.replace("@DIR@", &dir.display().to_string());
        fs::write(
            &config,
            format!("{body}\n[control]\nsocket = \"{}\"\n", socket.display()),
        )?;
        let pin_root = PathBuf::from(format!("/sys/fs/bpf/vigil-e2e-{tag}"));
        Ok(Vigild {
            dir,
            config,
            socket,
            pin_root,
            iface: "lo".into(),
            child: None,
        })
    }

    /// Starts vigild and waits until its control socket answers.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("vigild.log"))?;
        let child = Command::new(crate::bin_dir().join("vigild"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    anyhow::bail!("vigild exited with {status}: {}", self.log());
                }
            }
            // The offline fallback also answers status, so wait for the daemon itself.
            let up = self
                .ctl_json(&["status"])
                .map(|v| v["daemon"]["running"] == true);
            if up.unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("vigild did not answer within 10 s: {}", self.log())
    }

    /// SIGTERM, as an operator stopping the service would; waits for the exit.
    pub fn term(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on the PID of a child this struct started and still owns.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` (e.g. `libc::SIGHUP`) to the running vigild; false if none is running.
    pub fn signal(&self, sig: i32) -> bool {
        let Some(c) = self.child.as_ref() else {
            return false;
        };
        // SAFETY: plain kill(2) on the PID of a child this struct started and still owns.
        unsafe { libc::kill(c.id() as i32, sig) == 0 }
    }

    /// True while the vigild this struct started has not exited.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("vigild.log")).unwrap_or_default()
    }

    /// Runs vigilctl against this daemon (or its pins when it is down).
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(crate::bin_dir().join("vigilctl"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-root")
            .arg(&self.pin_root)
            .arg("--iface")
            .arg(&self.iface)
            .args(args)
            .output()?;
        if !out.status.success() {
            anyhow::bail!(
                "vigilctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn ctl_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        Ok(serde_json::from_str(&self.ctl(&a)?)?)
    }

    /// Packets counted for an XDP verdict reason.
    pub fn counter(&self, reason: &str) -> u64 {
        self.ctl_json(&["stats"])
            .map(|v| v["xdp"][reason]["packets"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn pin_dir(&self) -> PathBuf {
        self.pin_root.join(&self.iface)
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on the PID of a child this struct started and still owns.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_pins(&self.pin_root);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn remove_pins(root: &Path) {
    // Unpinning the link detaches the program; then the maps and directories go.
    let _ = fs::remove_dir_all(root);
}
