//! Request rate limits through vigild: a burst passes, the next request gets 429 with
//! Retry-After and RateLimit headers, and API keys have buckets of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

use vigil_e2e::upstream::Upstream;
use vigil_testkit::config::RateLimit;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

/// (status, response head) of one HTTPS GET with optional extra curl args.
fn get(port: u16, ca: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--max-time",
            "3",
            "--cacert",
        ])
        .arg(ca)
        .args(extra)
        .arg(format!("https://127.0.0.1:{port}/items"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    (
        head.split_whitespace().nth(1).unwrap_or("000").to_owned(),
        head,
    )
}

#[test]
fn bursts_pass_and_excess_gets_429_with_retry_after() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("ratelimit").unwrap();
    let cfg = d.gateway_config("127.0.0.1", port, up.url()).unwrap();
    let rule = |rate| RateLimit::new("per-key", "header:x-api-key", rate, 3);
    d.configure(cfg.clone().rate_limit(rule(1))).unwrap();
    d.start().unwrap();
    let ca = d.ca();
    let k1 = ["-H", "x-api-key: k1"];
    for i in 0..3 {
        assert_eq!(get(port, &ca, &k1).0, "200", "request {i} of the burst");
    }
    let (status, head) = get(port, &ca, &k1);
    assert_eq!(status, "429", "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(
        head.contains("ratelimit-limit: 3") && head.contains("ratelimit-remaining: 0"),
        "{head}"
    );
    // Another key has its own bucket; no key falls back to the client address.
    assert_eq!(get(port, &ca, &["-H", "x-api-key: k2"]).0, "200");
    assert_eq!(get(port, &ca, &[]).0, "200");
    // A bad rule is refused at reload, naming the key, and the running limits stay.
    d.configure(cfg.rate_limit(rule(0))).unwrap();
    let err = d.ctl(&["reload"]).unwrap_err().to_string();
    assert!(err.contains("rate_limit[0]"), "{err}");
    // The limit still applies (bounded: a few requests, well inside the refill time).
    let statuses: Vec<String> = (0..4).map(|_| get(port, &ca, &k1).0).collect();
    assert!(
        statuses.iter().any(|s| s == "429"),
        "limits gone after a refused reload: {statuses:?}"
    );
}
