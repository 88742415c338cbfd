//! Bad input gets a one-line error naming the problem and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use vigil_e2e::{bin_dir, unique};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin_dir().join(bin))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

#[test]
fn vigilctl_rejects_malformed_arguments() {
    let dir = std::env::temp_dir().join(format!("vigil-bad-{}", unique(6)));
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
    assert_clean_failure(&o, "invalid --ttl");
    let o = run("vigilctl", &["--socket", sock, "allow", "del", "not-an-ip"]);
    assert_clean_failure(&o, "invalid CIDR");
    // No daemon and nothing pinned: the fallback says what to do.
    let o = run(
        "vigilctl",
        &[
            "--socket",
            sock,
            "--pin-root",
            dir.to_str().unwrap(),
            "stats",
        ],
    );
    assert_clean_failure(&o, "start vigild");
    let o = run("vigilctl", &["--socket", sock, "reload"]);
    assert_clean_failure(&o, "vigild is not running");
}

#[test]
fn vigild_refuses_bad_configs_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("vigil-badcfg-{}", unique(7)));
    std::fs::create_dir_all(&dir).unwrap();
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
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));

    write("[listener]\nhttps = \"127.0.0.1:0\"\n[[upstream]]\nname = \"api\"\nurl = \"ftp://x\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap(), "--check"]);
    assert_clean_failure(&o, "upstream[0].url");

    let o = run(
        "vigild",
        &["--config", dir.join("missing.toml").to_str().unwrap()],
    );
    assert_clean_failure(&o, "cannot read config");

    write("[xdp]\ninterface = \"lo\"\n");
    let o = run("vigild", &["--config", cfg.to_str().unwrap(), "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unprivileged_users_are_told_they_need_root() {
    // setpriv drops to uid/gid 65534 (nobody) without needing a login shell.
    let ctl = bin_dir().join("vigilctl");
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
fn policy_check_reports_routes_and_refuses_unsupported_keywords() {
    let dir = std::env::temp_dir().join(format!("vigil-policy-{}", unique(11)));
    std::fs::create_dir_all(&dir).unwrap();
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

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      \
         requestBody:\n        content:\n          application/json:\n            schema: \
         {type: object, unevaluatedProperties: false}\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let o = run(
        "vigilctl",
        &["policy", "check", bad.to_str().unwrap(), "--json"],
    );
    assert_clean_failure(&o, "would not load");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["unsupported"][0]["keyword"], "unevaluatedProperties");
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
    let _ = std::fs::remove_dir_all(&dir);
}
