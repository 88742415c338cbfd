//! Bad input gets a one-line error naming the problem and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use vigil_e2e::upstream::Upstream;
use vigil_testkit::config::{self, Config};
use vigil_testkit::pki::self_signed;
use vigil_testkit::ports::free_port;
use vigil_testkit::procs::assert_failed;
use vigil_testkit::vigild::{Vigild, bin_dir};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin_dir().unwrap().join(bin))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    assert_failed(o, &[needle]);
}

#[test]
fn vigilctl_rejects_malformed_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sock = dir.join("none.sock");
    let sock = sock.to_str().unwrap();
    let o = run(
        "vigilctl",
        &["--socket", sock, "block", "add", "198.18.0.0/33"],
    );
    assert_clean_failure(&o, "invalid CIDR \"198.18.0.0/33\"");
    let o = run(
        "vigilctl",
        &["--socket", sock, "block", "add", "198.18.0.9/24"],
    );
    assert_clean_failure(&o, "did you mean 198.18.0.0/24");
    let o = run(
        "vigilctl",
        &[
            "--socket",
            sock,
            "block",
            "add",
            "198.18.0.9",
            "--ttl",
            "10y",
        ],
    );
    assert_clean_failure(&o, "invalid value '10y' for '--ttl <TTL>'");
    assert_eq!(o.status.code(), Some(2), "a bad argument is a usage error");
    let o = run("vigilctl", &["--socket", sock, "allow", "del", "not-an-ip"]);
    assert_clean_failure(&o, "invalid CIDR");
    // No daemon and no pin root: the fallback says what to do.
    let o = run(
        "vigilctl",
        &[
            "--socket",
            sock,
            "--pin-root",
            dir.join("pins").to_str().unwrap(),
            "stats",
        ],
    );
    assert_clean_failure(&o, "start vigild");
    let o = run("vigilctl", &["--socket", sock, "reload"]);
    assert_clean_failure(&o, "vigild is not running");
}

#[test]
fn vigild_refuses_bad_configs_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = dir.join("vigild.toml");
    let sock = dir.join("vigild.sock");
    let write = |body: &str| {
        std::fs::write(
            &cfg,
            format!("{body}\n[control]\nsocket = \"{}\"\n", sock.display()),
        )
        .unwrap();
    };

    write("[xdp]\ninterface = \"vgt-no-such-if\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap()]);
    assert_clean_failure(&o, "interface \"vgt-no-such-if\" does not exist");

    write("[xdp]\ninterface = \"lo\"\nmdoe = \"native\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap(), "--check"]);
    assert_clean_failure(&o, "xdp.mdoe: unknown field `mdoe`");
    assert!(stderr(&o).contains(":3: xdp.mdoe"), "{}", stderr(&o));

    write("[listener]\nhttps = \"127.0.0.1:0\"\n[[upstream]]\nname = \"api\"\nurl = \"ftp://x\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap(), "--check"]);
    assert_clean_failure(&o, "upstream[0].url");

    // Started, not only checked: the in-flight budget is built as a semaphore, which cannot
    // hold this many permits; the daemon must refuse the value, not panic building it.
    write(
        "[listener]\nhttps = \"127.0.0.1:0\"\nmax_requests_in_flight = 9223372036854775807\n\
         [[upstream]]\nname = \"api\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let o = run("vigild", &["--config", cfg.to_str().unwrap()]);
    assert_failed(&o, &["listener.max_requests_in_flight", "must be at most"]);

    let o = run(
        "vigild",
        &["--config", dir.join("missing.toml").to_str().unwrap()],
    );
    assert_clean_failure(&o, "cannot read config");

    write("[xdp]\ninterface = \"lo\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap(), "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn unprivileged_users_are_told_they_need_root() {
    // setpriv drops to uid/gid 65534 (nobody) without needing a login shell.
    let ctl = bin_dir().unwrap().join("vigilctl");
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&ctl)
        .args([
            "--socket",
            "/nonexistent/vigild.sock",
            "--pin-root",
            "/sys/fs/bpf",
            "--iface",
            "lo",
        ])
        .args(["block", "add", "198.18.0.1"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "needs root");
}

#[test]
fn policy_check_reports_routes_and_refuses_what_does_not_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: /api}]\npaths:\n  \
         /users/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: true, \
         schema: {type: integer}}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let o = run("vigilctl", &["policy", "check", good.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("GET /users/{id}") && out.contains("base paths: /api"),
        "{out}"
    );

    // `unevaluatedProperties: false`, OpenAPI 3.1's way to close an object built with allOf,
    // loads.
    let closed = dir.join("closed.yaml");
    std::fs::write(
        &closed,
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      \
         requestBody:\n        content:\n          application/json:\n            schema: \
         {type: object, unevaluatedProperties: false}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let o = run(
        "vigilctl",
        &["policy", "check", closed.to_str().unwrap(), "--json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    // A reference to a schema the document does not have does not load, naming it.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      \
         requestBody:\n        content:\n          application/json:\n            schema: \
         {$ref: '#/components/schemas/Missing'}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let o = run("vigilctl", &["policy", "check", bad.to_str().unwrap()]);
    assert_clean_failure(&o, "would not load");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("Missing"), "{text}");
    let o = run(
        "vigilctl",
        &[
            "policy",
            "check",
            dir.join("missing.yaml").to_str().unwrap(),
        ],
    );
    assert_clean_failure(&o, "would not load");
    assert!(String::from_utf8_lossy(&o.stdout).contains("cannot read"));
}

/// Runs a binary and fails the test if it has not exited within `limit` (then kills it), so a
/// regression shows as a failure rather than a hung suite.
fn run_within(bin: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(bin_dir().unwrap().join(bin))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "{bin} {args:?} still running after {limit:?}: {}",
        stderr(&out)
    );
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn vigild_refuses_a_fifo_a_device_or_a_huge_file_as_config_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fifo = dir.join("vigild.toml");
    mkfifo(&fifo);
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let limit = Duration::from_secs(5);
    let (fifo, huge) = (fifo.to_str().unwrap(), huge.to_str().unwrap());
    for (args, needle) in [
        (
            vec!["--check", "--config", "/dev/zero"],
            "/dev/zero is a character device, not a regular file".to_owned(),
        ),
        (
            vec!["--config", "/dev/zero"],
            "a config file must be a regular file".to_owned(),
        ),
        (
            vec!["--check", "--config", fifo],
            format!("{fifo} is a FIFO, not a regular file"),
        ),
        (
            vec!["--config", fifo],
            format!("{fifo} is a FIFO, not a regular file"),
        ),
        (
            vec!["--check", "--config", huge],
            format!("{huge} is 2 GiB, over the 1 MiB limit for a config file"),
        ),
    ] {
        let o = run_within("vigild", &args, limit);
        assert_clean_failure(&o, &needle);
    }
}

/// HTTPS status of GET / through the gateway.
fn https_status(port: u16, ca: &Path) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (bounded) until the daemon's log holds `needle` more than `before` times.
fn log_shows(d: &Vigild, needle: &str, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if d.log().matches(needle).count() > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_reload_from_a_fifo_or_dev_zero_is_refused_and_vigild_keeps_serving() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("badreload").unwrap();
    let tls = self_signed(&["127.0.0.1"])
        .unwrap()
        .write_in(d.dir())
        .unwrap();
    let cfg = Config::gateway(format!("127.0.0.1:{port}"), &tls)
        .upstream(config::Upstream::new("api", format!("http://{}", up.addr)));
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let ca = tls.cert;
    assert_eq!(https_status(port, &ca), "200");
    let config = d.config_path().to_path_buf();
    let good = std::fs::read(&config).unwrap();
    let socket = d.socket().to_str().unwrap().to_owned();
    let pin_root = d.pin_root().to_str().unwrap().to_owned();
    let ctl = |args: &[&str]| {
        let mut all = vec!["--socket", &socket, "--pin-root", &pin_root];
        all.extend_from_slice(args);
        run_within("vigilctl", &all, Duration::from_secs(20))
    };

    let fifo_msg = format!("{} is a FIFO, not a regular file", config.display());
    let zero_msg = format!(
        "{} is a character device, not a regular file",
        config.display()
    );
    type Swap = fn(&Path);
    let cases: [(Swap, &str); 2] = [
        (|cfg| mkfifo(cfg), fifo_msg.as_str()),
        (
            |cfg| {
                let _ = std::fs::remove_file(cfg);
                std::os::unix::fs::symlink("/dev/zero", cfg).unwrap();
            },
            zero_msg.as_str(),
        ),
    ];
    for (swap, needle) in cases {
        swap(&config);
        let o = ctl(&["reload"]);
        assert_clean_failure(&o, "reload refused");
        assert_clean_failure(&o, needle);
        let before = d.log().matches(needle).count();
        assert!(d.signal(libc::SIGHUP), "vigild is not running");
        assert!(
            log_shows(&d, needle, before),
            "SIGHUP reload not refused: {}",
            d.log()
        );
        assert!(d.ctl_json(&["status"]).unwrap()["daemon"]["running"] == true);
        assert_eq!(https_status(port, &ca), "200", "{}", d.log());
    }

    // A good config again, but the certificate now names /dev/zero: the reload is refused and
    // the key already loaded keeps serving.
    let _ = std::fs::remove_file(&config);
    std::fs::write(&config, &good).unwrap();
    let real_cert = d.path("real-cert.pem");
    std::fs::rename(&ca, &real_cert).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &ca).unwrap();
    let o = ctl(&["reload"]);
    assert_clean_failure(&o, "reload refused");
    assert_clean_failure(&o, "a TLS certificate must be a regular file");
    std::fs::remove_file(&ca).unwrap();
    std::fs::rename(&real_cert, &ca).unwrap();
    assert_eq!(https_status(port, &ca), "200", "{}", d.log());
    let o = ctl(&["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A fake control socket whose every connection gets `serve`.
fn fake_daemon(serve: fn(std::os::unix::net::UnixStream)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vigild.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    (dir, sock)
}

#[test]
fn vigilctl_gives_up_on_a_silent_or_flooding_socket() {
    // Accepts and never answers (holds the connection until vigilctl goes away).
    let (_silent_dir, silent) = fake_daemon(|s| {
        let mut buf = [0u8; 1024];
        while std::io::Read::read(&mut &s, &mut buf).is_ok_and(|n| n > 0) {}
    });
    let started = Instant::now();
    let o = run_within(
        "vigilctl",
        &[
            "--socket",
            silent.to_str().unwrap(),
            "--timeout",
            "1s",
            "status",
        ],
        Duration::from_secs(10),
    );
    assert_clean_failure(
        &o,
        &format!("vigild is not answering on {}", silent.display()),
    );
    assert_clean_failure(&o, "no reply within 1s");
    assert!(started.elapsed() < Duration::from_secs(8));

    // Answers with an endless line.
    let (_flood_dir, flood) = fake_daemon(|mut s| {
        let block = vec![b'x'; 1 << 20];
        while s.write_all(&block).is_ok() {}
    });
    let started = Instant::now();
    let o = run_within(
        "vigilctl",
        &["--socket", flood.to_str().unwrap(), "stats"],
        Duration::from_secs(20),
    );
    assert_clean_failure(&o, "over the 16 MiB limit");
    assert_clean_failure(&o, flood.to_str().unwrap());
    assert!(started.elapsed() < Duration::from_secs(15));

    let o = run_within(
        "vigilctl",
        &[
            "--socket",
            flood.to_str().unwrap(),
            "--timeout",
            "0s",
            "stats",
        ],
        Duration::from_secs(10),
    );
    assert_clean_failure(&o, "a timeout lasts between 1ms and 1d");
}
