//! `vigild --check` refuses what a start would refuse, naming the key and the line it is
//! written on; a running vigild shows the configuration it applies (`vigilctl config show`) and
//! logs a reload refused through vigilctl as it logs a refused SIGHUP. No root needed: nothing
//! attaches XDP, and the gateway listens on loopback.
//!
//! The files are written out as text rather than built with the kit's `Config`, because the
//! tests assert line numbers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vigil_testkit::config::{Config, Upstream};
use vigil_testkit::pki::{TlsFiles, self_signed};
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::{Vigild, bin_dir};

const POLICY: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
                      responses: {'200': {description: ok}}\n";

/// A directory with a certificate and key, a policy that compiles and one that does not.
struct Files {
    dir: tempfile::TempDir,
    tls: TlsFiles,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let tls = self_signed(&["localhost"])
            .unwrap()
            .write_in(dir.path())
            .unwrap();
        std::fs::write(dir.path().join("api.yaml"), POLICY).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "openapi: 3.0.3\npaths: 7\n").unwrap();
        Files { dir, tls }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A gateway config that passes; `[policy]` is on lines 8 to 10.
    fn gateway(&self) -> String {
        format!(
            "[listener]\n\
             https = \"127.0.0.1:18443\"\n\
             [tls]\n\
             cert = \"{}\"\n\
             key = \"{}\"\n\
             [metrics]\n\
             listen = \"127.0.0.1:19100\"\n\
             [policy]\n\
             file = \"{}\"\n\
             mode = \"enforce\"\n",
            self.tls.cert.display(),
            self.tls.key.display(),
            self.path("api.yaml").display()
        )
    }

    /// Writes `text` as `vigild.toml` and runs `vigild --check` on it.
    fn check(&self, text: &str) -> (PathBuf, Output) {
        let cfg = self.path("vigild.toml");
        std::fs::write(&cfg, text).unwrap();
        (cfg.clone(), vigild_check(&cfg))
    }
}

fn vigild_check(cfg: &Path) -> Output {
    Command::new(bin_dir().unwrap().join("vigild"))
        .arg("--config")
        .arg(cfg)
        .arg("--check")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `--check` exited 1 with `vigild: FILE:LINE: KEY: ` and `words` on stderr.
fn assert_refused(files: &Files, text: &str, line: usize, key: &str, words: &str) {
    let (cfg, o) = files.check(text);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{key}: {err}");
    let want = format!("vigild: {}:{line}: {key}: ", cfg.display());
    assert!(err.contains(&want), "want {want:?} in:\n{err}");
    assert!(err.contains(words), "want {words:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        stdout(&o).is_empty(),
        "nothing on stdout when refused: {}",
        stdout(&o)
    );
}

#[test]
fn check_refuses_what_a_start_refuses_naming_key_and_line() {
    let f = Files::new();
    let good = f.gateway();

    let (cfg, o) = f.check(&good);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("vigild: config {} ok\n", cfg.display()));

    let missing = good.replace("api.yaml", "missing.yaml");
    assert_refused(&f, &missing, 9, "policy.file", "missing.yaml");
    let uncompilable = good.replace("api.yaml", "bad.yaml");
    assert_refused(&f, &uncompilable, 9, "policy.file", "bad.yaml");

    let clash = good.replace("127.0.0.1:19100", "127.0.0.1:18443");
    assert_refused(&f, &clash, 7, "metrics.listen", "listener.https");

    let keys = format!("{good}[keys]\ndir = \"{}\"\n", f.path("no-keys").display());
    assert_refused(&f, &keys, 12, "keys.dir", "vigilctl keys init");

    let unreadable_key = good.replace(&f.tls.key.display().to_string(), "/nonexistent/key.pem");
    assert_refused(&f, &unreadable_key, 5, "tls.key", "/nonexistent/key.pem");
}

#[test]
fn every_error_names_the_line_of_its_full_key_path() {
    let f = Files::new();
    // A bad policy.mode on line 37 while xdp.mode sits on line 3.
    let mut text = "[xdp]\ninterface = \"eth0\"\nmode = \"native\"\n".to_owned();
    text.push_str(&"# padding\n".repeat(24));
    text.push_str(
        &f.gateway()
            .replace("mode = \"enforce\"", "mode = \"enforcing\""),
    );
    assert_eq!(text.lines().position(|l| l.contains("enforcing")), Some(36));
    assert_refused(&f, &text, 37, "policy.mode", "unknown variant `enforcing`");

    // Errors found after parsing.
    let cidr =
        "[xdp]\ninterface = \"eth0\"\nblock = [\n  \"198.18.0.0/24\",\n  \"10.0.0.1/8\",\n]\n";
    assert_refused(&f, cidr, 5, "xdp.block[1]", "host bits are set");
    let upstream =
        |name: &str| format!("[[upstream]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:9\"\n");
    let dup = format!("{}{}{}", f.gateway(), upstream("api"), upstream("api"));
    assert_refused(
        &f,
        &dup,
        15,
        "upstream[1].name",
        "used by an earlier upstream",
    );
    let thermal =
        "[hw]\nsysfs_root = \"/sys\"\n\n[thermal]\nreduced_c = 70.0\nhysteresis_c = 99.0\n";
    assert_refused(&f, thermal, 6, "thermal.hysteresis_c", "hysteresis");

    // A syntax error: toml's own position.
    assert_refused(&f, "[xdp]\ninterface = \"eth0\n", 2, "(top level)", "");
}

#[test]
fn tls_files_beside_a_key_set_are_a_warning() {
    let f = Files::new();
    let keys = f.path("keys");
    let o = Command::new(bin_dir().unwrap().join("vigilctl"))
        .args([
            "keys",
            "init",
            "--mode",
            "file",
            "--subject",
            "localhost",
            "--dir",
        ])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = format!("{}[keys]\ndir = \"{}\"\n", f.gateway(), keys.display());
    let (cfg, o) = f.check(&text);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for (line, key) in [(4, "tls.cert"), (5, "tls.key")] {
        let want = format!("vigild: warning: {}:{line}: {key}: ignored", cfg.display());
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
    }
    assert_eq!(stdout(&o), format!("vigild: config {} ok\n", cfg.display()));
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// `GET /metrics` from the gateway's metrics listener, body only.
fn metrics(d: &Vigild) -> String {
    let status = d.ctl_json(&["status"]).unwrap();
    let addr = status["gateway"]["metrics"].as_str().unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

const REJECTED: &str = "vigil_gateway_reloads_total{result=\"rejected\"}";

#[test]
fn a_running_vigild_shows_its_config_and_logs_refused_reloads() {
    let mut d = Vigild::new("check").unwrap();
    let port = free_port().unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, "http://127.0.0.1:9")
        .unwrap();
    d.configure(cfg.clone()).unwrap();
    d.start().unwrap();

    // config show: defaults filled in, a file vigild would load.
    let shown = d.ctl(&["config", "show"]).unwrap();
    assert!(
        shown.starts_with(&format!(
            "# {} as vigild applies it",
            d.config_path().display()
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("https = \"127.0.0.1:{port}\"")),
        "{shown}"
    );
    assert!(
        shown.contains("max_connections = "),
        "defaults are shown:\n{shown}"
    );
    let copy = d.path("shown.toml");
    std::fs::write(&copy, &shown).unwrap();
    let o = vigild_check(&copy);
    assert!(
        o.status.success(),
        "config show printed a file vigild refuses: {}",
        stderr(&o)
    );
    let v = d.ctl_json(&["config", "show"]).unwrap();
    assert_eq!(v["file"], d.config_path().display().to_string());
    assert_eq!(
        v["config"]["listener"]["https"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(v["config"]["upstream"][0]["name"], "api");

    // A file that does not parse: refused through vigilctl naming the line, logged like a
    // refused SIGHUP, and the running config stays.
    let good = cfg.control(d.socket()).to_toml();
    let rejected = metric(&metrics(&d), REJECTED).unwrap_or(0);
    std::fs::write(
        d.config_path(),
        format!("{good}\n[listener]\nhttps = 8443\n"),
    )
    .unwrap();
    let o = d.ctl_output(&["reload"]).unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let at = format!("reload refused: {}:", d.config_path().display());
    assert!(err.contains(&at), "want {at:?} in:\n{err}");
    assert!(
        wait_for(Duration::from_secs(5), || d.log().matches(&at).count() == 1),
        "the refusal through vigilctl is in the log:\n{}",
        d.log()
    );
    assert!(d.signal(libc::SIGHUP));
    assert!(
        wait_for(Duration::from_secs(5), || d.log().matches(&at).count() == 2),
        "a refused SIGHUP logs the same line:\n{}",
        d.log()
    );
    let after = d.ctl_json(&["config", "show"]).unwrap();
    assert_eq!(
        after["config"], v["config"],
        "a refused reload changed the config"
    );
    // Parse errors count as rejected reloads too, through vigilctl and SIGHUP alike.
    assert_eq!(metric(&metrics(&d), REJECTED), Some(rejected + 2));

    // A reload the gateway refuses (a listener address cannot change) is counted.
    let before = metric(&metrics(&d), REJECTED).unwrap_or(0);
    let moved = Config::gateway(format!("127.0.0.1:{}", free_port().unwrap()), &tls_of(&d))
        .upstream(Upstream::new("api", "http://127.0.0.1:9"));
    d.configure(moved).unwrap();
    let err = d.ctl(&["reload"]).unwrap_err().to_string();
    assert!(err.contains("listener.https"), "{err}");
    assert_eq!(metric(&metrics(&d), REJECTED), Some(before + 1));
    assert!(d.alive(), "{}", d.log());
}

/// The certificate and key `gateway_config` wrote in the daemon's directory.
fn tls_of(d: &Vigild) -> TlsFiles {
    TlsFiles {
        cert: d.path("cert.pem"),
        key: d.path("key.pem"),
    }
}
