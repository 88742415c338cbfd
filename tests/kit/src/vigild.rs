//! vigild as a real process: its own directory (config, control socket, log, anything a test
//! puts there), its own BPF pin root, and vigilctl run against it. Dropping it stops the daemon
//! (SIGTERM, then SIGKILL, by PID), removes its pins and its directory, also when a test fails.

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::config::{Config, Upstream};
use crate::pki::self_signed;

/// The directory holding the workspace's built binaries (`target/<profile>`), found from the
/// running test binary (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary is not in target/<profile>/deps")?
        .to_path_buf();
    for bin in ["vigild", "vigilctl"] {
        if !dir.join(bin).exists() {
            bail!(
                "{} is missing: build the binaries first (`cargo build --bins`, with the same \
                 CARGO_TARGET_DIR; scripts/test.sh does)",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// A vigild and everything it owns.
#[derive(Debug)]
pub struct Vigild {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    pin_root: PathBuf,
    /// The interface XDP attaches to, when it does.
    xdp: Option<String>,
    bins: PathBuf,
    child: Option<Child>,
    /// Extra environment of the daemon (`VIGIL_LOG_FORMAT`, `JOURNAL_STREAM`...).
    env: Vec<(String, String)>,
}

impl Vigild {
    /// A vigild without XDP, in a fresh directory named after `tag`. Nothing is written or
    /// started yet: see [`Vigild::configure`] and [`Vigild::start`].
    pub fn new(tag: &str) -> Result<Self> {
        let bins = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("vigil-e2e-{tag}-"))
            .tempdir()
            .context("creating vigild's directory")?;
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let pin_root = Path::new("/sys/fs/bpf").join(name.unwrap_or_default());
        Ok(Self {
            config: dir.path().join("vigild.toml"),
            socket: dir.path().join("vigild.sock"),
            dir,
            pin_root,
            xdp: None,
            bins,
            child: None,
            env: Vec::new(),
        })
    }

    /// Like `new`, with XDP attached to `iface` (needs root).
    pub fn with_xdp(tag: &str, iface: &str) -> Result<Self> {
        let mut d = Self::new(tag)?;
        d.xdp = Some(iface.to_owned());
        Ok(d)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside the daemon's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// Where the XDP program's objects are pinned.
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_root.join(self.iface())
    }

    fn iface(&self) -> &str {
        self.xdp.as_deref().unwrap_or("lo")
    }

    /// Writes `cfg` as the config file, with the control socket (and the XDP section) added.
    /// A running daemon reads it on `vigilctl reload`.
    pub fn configure(&self, cfg: Config) -> Result<()> {
        let mut cfg = cfg.control(&self.socket);
        if let Some(iface) = &self.xdp {
            cfg = cfg.xdp(iface, &self.pin_root);
        }
        cfg.write(&self.config)
    }

    /// The gateway as the end-to-end tests run it: HTTPS on `host:port` with a fresh
    /// self-signed certificate for `host` (`cert.pem`, which clients trust, and `key.pem` in the
    /// daemon's directory), one upstream `api` at `upstream`, metrics on a free port. Returns
    /// the config for the test to add to and [`configure`](Vigild::configure).
    pub fn gateway_config(&self, host: &str, port: u16, upstream: impl Display) -> Result<Config> {
        let tls = self_signed(&[host])?.write_in(self.dir())?;
        Ok(
            Config::gateway(format!("{host}:{port}"), &tls)
                .upstream(Upstream::new("api", upstream)),
        )
    }

    /// The certificate [`Vigild::gateway_config`] made, for clients to trust.
    pub fn ca(&self) -> PathBuf {
        self.path("cert.pem")
    }

    /// Makes the first thermal zone of a fake sysfs tree under `sys/` in the daemon's
    /// directory (point `Config::sysfs` at [`Vigild::sysfs_root`]) read `milli` millidegrees.
    /// The file is replaced at once, so the governor never reads half of it.
    pub fn set_temp(&self, milli: u32) -> Result<()> {
        let zone = self.sysfs_root().join("class/thermal/thermal_zone0");
        fs::create_dir_all(&zone)?;
        fs::write(zone.join("type"), "x86_pkg_temp\n")?;
        let next = zone.join("temp.next");
        fs::write(&next, format!("{milli}\n"))?;
        fs::rename(next, zone.join("temp"))?;
        Ok(())
    }

    /// The fake sysfs tree [`Vigild::set_temp`] writes (created empty).
    pub fn sysfs_root(&self) -> PathBuf {
        let root = self.path("sys");
        let _ = fs::create_dir_all(&root);
        root
    }

    /// Sets an environment variable for the next [`Vigild::start`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts vigild and waits until the daemon itself answers `status`.
    pub fn start(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("vigild.log"))?;
        let child = Command::new(self.bins.join("vigild"))
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting vigild")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!(
                        "vigild exited with {status} before serving:\n{}",
                        self.log()
                    );
                }
            }
            // The offline fallback also answers status, so wait for the daemon itself.
            let up = self
                .ctl_json(&["status"])
                .map(|v| v["daemon"]["running"] == true);
            if up.unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("vigild did not answer within 10 s:\n{}", self.log())
    }

    /// The PID of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` (`libc::SIGHUP`, say) to the running daemon; false if none is running.
    pub fn signal(&self, sig: i32) -> bool {
        let Some(pid) = self.pid().and_then(|p| libc::pid_t::try_from(p).ok()) else {
            return false;
        };
        // SAFETY: kill(2) on the PID of a child this struct started and has not reaped.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// SIGTERM, as an operator stopping the service would; waits (bounded) for the exit.
    pub fn term(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take()?;
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
            // Child::kill signals this child's PID only; wait reaps it.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the daemon this struct started has not exited.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What vigild wrote to stderr so far (all its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("vigild.log")).unwrap_or_default()
    }

    /// vigilctl against this daemon (or its pins when it is down), whatever its exit status.
    pub fn ctl_output(&self, args: &[&str]) -> Result<Output> {
        Command::new(self.bins.join("vigilctl"))
            // libtss2 logs its own failures to stderr; vigilctl's message carries what matters.
            .env("TSS2_LOG", "all+NONE")
            .env_remove("VIGIL_TCTI")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-root")
            .arg(&self.pin_root)
            .arg("--iface")
            .arg(self.iface())
            .args(args)
            .output()
            .context("running vigilctl")
    }

    /// vigilctl's stdout; its stderr is the error when it fails.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl_output(args)?;
        if !out.status.success() {
            bail!(
                "vigilctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `vigilctl ARGS --json`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        Ok(serde_json::from_str(&self.ctl(&a)?)?)
    }

    /// Packets the XDP program counted for a verdict reason (0 when unknown).
    pub fn xdp_packets(&self, reason: &str) -> u64 {
        self.ctl_json(&["stats"])
            .map(|v| v["xdp"][reason]["packets"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        self.term();
        // Unpinning the link detaches the program; then the maps and directories go.
        let _ = fs::remove_dir_all(&self.pin_root);
    }
}
