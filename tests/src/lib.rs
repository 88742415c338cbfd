//! Helpers for the end-to-end tests that only they use: a network namespace joined to the host
//! by a veth pair, and a small HTTP upstream. vigild and vigilctl as processes, swtpm, Redis,
//! certificates, tokens and ports come from `vigil-testkit`. Everything uses 198.18.0.0/15
//! addresses and names unique to the test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod netns;
pub mod upstream;
pub mod vmbox;

/// A unique small number for this test in this process, for names and subnets.
pub fn unique(slot: u8) -> String {
    format!("{}{}", std::process::id() % 10_000, slot)
}

/// Runs `cmd` to completion and returns its stdout; panics with its output when it fails.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Status and body of one request by `curl -sS --max-time 3 ARGS...` (the URL among `args`),
/// run inside network namespace `netns` when given; status 0 when no response came.
pub fn curl<S: AsRef<std::ffi::OsStr>>(netns: Option<&str>, args: &[S]) -> (u16, String) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => std::process::Command::new("curl"),
    };
    let out = cmd
        .args(["-sS", "--max-time", "3", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The last line of the JSON audit log at `log` that `pred` accepts, waiting up to 5 s for
/// the writer; panics with the log when none comes.
pub fn audit_line(
    log: &std::path::Path,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..50 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .rev()
            .find(|l| pred(l))
        {
            return l;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "no matching audit line in {}:\n{}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Whether audit line `l` is for a path starting with `prefix` (query values are not logged).
pub fn audit_path(l: &serde_json::Value, prefix: &str) -> bool {
    l["path"].as_str().is_some_and(|p| p.starts_with(prefix))
}

/// The text of vigild's `/metrics` on `127.0.0.1:port` (empty when nothing answers).
pub fn scrape(port: u16) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that vigild's `/metrics` on `127.0.0.1:port` has every one of `lines` (names, labels
/// and value), printing the whole exposition when one is missing.
pub fn assert_metrics(port: u16, lines: &[&str]) {
    let text = scrape(port);
    for line in lines {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// The workspace root (the e2e crate lives in `tests/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
