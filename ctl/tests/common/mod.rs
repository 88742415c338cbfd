//! Helpers for the CLI tests: run vigilctl, a private swtpm, a real vigild over a fake sysfs
//! tree. Children are killed by PID when their guard drops, also when a test panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Running vigilctl

pub fn vigilctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigilctl"));
    // libtss2 logs its own failures to stderr; the CLI's message carries what matters.
    c.env("TSS2_LOG", "all+NONE").env_remove("VIGIL_TCTI");
    c
}

pub fn run(args: &[&str]) -> Output {
    vigilctl().args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs vigilctl, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "vigilctl {args:?} failed ({}):\n{}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

pub fn ok_json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("vigilctl {args:?}: {e}:\n{out}"))
}

/// Runs vigilctl, asserts a failure with a readable message (no panic, no usage dump only) that
/// contains every one of `needles`, and returns stderr.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "vigilctl {args:?} succeeded:\n{}",
        stdout(&o)
    );
    assert!(
        !err.contains("panicked"),
        "vigilctl {args:?} panicked:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "vigilctl {args:?}: {n:?} not in:\n{err}");
    }
    err
}

// ---------------------------------------------------------------------------------------------
// A private swtpm

/// Two consecutive free loopback ports (server, control), probed by binding them.
///
/// Candidates come from below the kernel's ephemeral range (32768 and up by default), and not
/// from `bind(0)`: Linux hands out odd ports to `bind(0)` and even ones to `connect()`, so after
/// a load test has left thousands of connections in TIME_WAIT, `port + 1` of a `bind(0)` port
/// is almost always taken.
pub fn free_port_pair() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u64 = 10_000;
    const SPAN: u64 = 22_000;
    // RandomState is seeded per process and per instance: parallel tests start apart.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for i in 0..SPAN {
        let port = u16::try_from(LOW + (seed.wrapping_add(i * 7919)) % SPAN).unwrap();
        let Ok(_a) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free pair of loopback ports between {LOW} and {}",
        LOW + SPAN
    );
}

/// A swtpm child with its own ports and state directory; dropping it kills it by PID.
pub struct Swtpm {
    pub port: u16,
    child: Child,
    _state: tempfile::TempDir,
}

impl Swtpm {
    pub fn start() -> Self {
        // A port taken between the probe and swtpm's bind fails the start; try a few.
        for _ in 0..5 {
            if let Some(tpm) = Self::try_start() {
                return tpm;
            }
        }
        panic!("swtpm did not start (is the swtpm package installed?)");
    }

    pub fn try_start() -> Option<Self> {
        let state = tempfile::tempdir().unwrap();
        let port = free_port_pair();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.path().display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run swtpm (is the swtpm package installed?)");
        let mut tpm = Self {
            port,
            child,
            _state: state,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if tpm.child.try_wait().unwrap().is_some() {
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(tpm);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

pub fn kill(child: &mut Child) {
    // Child::kill signals this child's PID only; wait reaps it.
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates, read with openssl

pub const NAME: &str = "gw.vigil.test";

/// SHA-256 of the certificate's SubjectPublicKeyInfo, computed by openssl.
pub fn cert_spki_sha256(cert: &Path) -> String {
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(cert)
        .output()
        .expect("cannot run openssl");
    assert!(pubkey.status.success(), "{}", stderr(&pubkey));
    let mut der = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut der.stdin.take().unwrap(), &pubkey.stdout).unwrap();
    let der = der.wait_with_output().unwrap();
    assert!(der.status.success());
    let mut dgst = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut dgst.stdin.take().unwrap(), &der.stdout).unwrap();
    let out = dgst.wait_with_output().unwrap();
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// A real vigild over a fake sysfs tree

/// vigild as a child with its own config, socket and sysfs root; dropping it kills it by PID.
pub struct Vigild {
    child: Child,
    tmp: tempfile::TempDir,
}

pub fn vigild_bin() -> PathBuf {
    let ctl = Path::new(env!("CARGO_BIN_EXE_vigilctl"));
    let bin = ctl.with_file_name("vigild");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` (with the same CARGO_TARGET_DIR) before these \
         tests",
        bin.display()
    );
    bin
}

impl Vigild {
    /// Starts vigild with no [xdp] and no [listener]; `zone0` is the first thermal zone's
    /// reading in millidegrees (`None`: no sensors at all).
    pub fn start(zone0: Option<&str>) -> Self {
        Self::start_with(zone0, tempfile::tempdir().unwrap(), "")
    }

    /// Like `start`, in `tmp`, with `sections` appended to the config.
    pub fn start_with(zone0: Option<&str>, tmp: tempfile::TempDir, sections: &str) -> Self {
        let sys = tmp.path().join("sys");
        std::fs::create_dir_all(&sys).unwrap();
        if let Some(milli) = zone0 {
            let zone = sys.join("class/thermal/thermal_zone0");
            std::fs::create_dir_all(&zone).unwrap();
            std::fs::write(zone.join("type"), "x86_pkg_temp\n").unwrap();
            std::fs::write(zone.join("temp"), format!("{milli}\n")).unwrap();
        }
        let config = tmp.path().join("vigild.toml");
        std::fs::write(
            &config,
            format!(
                "[control]\nsocket = \"{}\"\n\n[hw]\nsysfs_root = \"{}\"\n\n[thermal]\n\
                 poll_interval_ms = 100\n{sections}",
                tmp.path().join("vigild.sock").display(),
                sys.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(tmp.path().join("vigild.log")).unwrap();
        let child = Command::new(vigild_bin())
            .arg("--config")
            .arg(&config)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Self { child, tmp };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("vigild exited ({status}) before serving:\n{}", d.log());
            }
            if UnixStream::connect(d.socket()).is_ok() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "vigild did not open its control socket within 10 s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.tmp.path().join("vigild.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("vigild.log")).unwrap_or_default()
    }

    /// Replaces the zone's reading atomically so the governor never reads half a file.
    pub fn set_temp(&self, milli: &str) {
        let zone = self.tmp.path().join("sys/class/thermal/thermal_zone0");
        let next = zone.join("temp.next");
        std::fs::write(&next, format!("{milli}\n")).unwrap();
        std::fs::rename(next, zone.join("temp")).unwrap();
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        let socket = self.socket();
        let mut all = vec!["--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vigilctl {args:?} failed:\n{}\nvigild log:\n{}",
            stderr(&o),
            self.log()
        );
        stdout(&o)
    }

    pub fn thermal(&self) -> Value {
        serde_json::from_str(&self.ok(&["thermal", "--json"])).unwrap()
    }

    /// Polls `thermal --json` until `pred` holds; panics with the last reply after `within`.
    pub fn wait_thermal(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.thermal();
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {within:?}; last reply:\n{v:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `milli`, waits until vigild has read it, and asserts the level it set then
    /// (the governor updates temperature and level in the same observation).
    pub fn step(&self, milli: u32, level: &str) {
        self.set_temp(&milli.to_string());
        let celsius = f64::from(milli) / 1000.0;
        let v = self.wait_thermal(
            Duration::from_secs(2),
            &format!("{celsius} °C read"),
            |v| v["status"]["temperature_c"].as_f64() == Some(celsius),
        );
        assert_eq!(v["status"]["level"], level, "at {celsius} °C: {v:#}");
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// SHA-256 of the SubjectPublicKeyInfo that the TLS listener at `addr` serves.
pub fn served_spki_sha256(addr: &str, dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", NAME])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run openssl");
    let text = stdout(&out);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from {addr}:\n{text}{}", stderr(&out)));
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    let pem = dir.join("served.pem");
    std::fs::write(&pem, &text[begin..end]).unwrap();
    cert_spki_sha256(&pem)
}
