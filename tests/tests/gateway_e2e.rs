//! vigild with XDP and the TLS gateway together: HTTPS from an allowed client reaches the API
//! upstream through the gateway; a blocked client never completes a TCP handshake; metrics
//! carry the XDP counters (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

use vigil_e2e::{audit_line, netns::Netns, scrape, unique, upstream::Upstream};
use vigil_testkit::config::{Config, table};
use vigil_testkit::vigild::Vigild;

/// curl from `src` inside the namespace; returns (exit code, http code, body).
fn curl(ns: &Netns, src: &str, cacert: &Path, url: &str, http2: bool) -> (i32, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "curl",
            "-sS",
            "--max-time",
            "3",
            "--interface",
            src,
        ])
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .arg("--cacert")
        .arg(cacert)
        .args(["-w", "\n%{http_code} %{http_version}", url])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// vigild on `ns`'s host end with the gateway on port 8443 in front of `up`, a fresh
/// self-signed certificate, a file audit log, and `extra` applied.
fn gateway_daemon(tag: &str, ns: &Netns, up: &Upstream, extra: fn(Config) -> Config) -> Vigild {
    let d = Vigild::with_xdp(tag, &ns.host_if).unwrap();
    let cfg = d.gateway_config(&ns.host_addr, 8443, up.url()).unwrap();
    d.configure(extra(cfg.audit_file(&d.path("audit.log"))))
        .unwrap();
    d
}

#[test]
fn https_through_the_gateway_and_xdp_drops_blocked_clients() {
    let tag = unique(5);
    let ns = Netns::new(&tag, 105, 2).unwrap();
    let up = Upstream::start().unwrap();
    let host = ns.host_addr.clone();
    let mut d = gateway_daemon(&tag, &ns, &up, |c| c);
    d.start().unwrap();

    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(
        status["gateway"]["https"],
        format!("{host}:8443"),
        "{status}"
    );
    let metrics_addr = status["gateway"]["metrics"].as_str().unwrap().to_owned();
    let cacert = d.ca();
    let url = format!("https://{host}:8443/users/7?token=secret");
    let (good, bad) = (ns.client_addrs[0].clone(), ns.client_addrs[1].clone());

    for http2 in [false, true] {
        let (code, out) = curl(&ns, &good, &cacert, &url, http2);
        assert_eq!(code, 0, "curl failed: {out}\n{}", d.log());
        assert!(out.contains("\"path\":\"/users/7?token=secret\""), "{out}");
        let want = if http2 { "200 2" } else { "200 1.1" };
        assert!(out.trim_end().ends_with(want), "{out}");
    }
    let heads = up.seen.lock().unwrap().join("\n").to_lowercase();
    assert!(
        heads.contains(&format!("x-forwarded-for: {good}")),
        "{heads}"
    );
    assert!(heads.contains("x-request-id:"), "{heads}");

    d.ctl(&["block", "add", &bad, "--reason", "e2e"]).unwrap();
    let (code, out) = curl(&ns, &bad, &cacert, &url, false);
    // 28: timed out waiting for the handshake; the SYN never got an answer.
    assert_eq!(code, 28, "blocked client got through: {out}");
    let (code, _) = curl(&ns, &good, &cacert, &url, false);
    assert_eq!(code, 0);

    let metrics = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "3",
            &format!("http://{metrics_addr}/metrics"),
        ])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let blocked: u64 = metrics
        .lines()
        .find(|l| l.starts_with("vigil_xdp_packets_total{reason=\"blocked\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no XDP counter in /metrics:\n{metrics}"));
    assert!(blocked >= 1, "{metrics}");
    assert!(
        metrics.contains("vigil_inspection_level{level=\"full\"} 1"),
        "{metrics}"
    );

    // The audit log records the decisions, never the query's values.
    let audit = std::fs::read_to_string(d.path("audit.log")).unwrap_or_default();
    assert!(audit.lines().count() >= 3, "audit: {audit}");
    assert!(
        !audit.contains("secret"),
        "query value leaked into the audit log: {audit}"
    );
}

#[test]
fn a_burst_of_rejections_ends_in_an_xdp_ban_that_expires() {
    let tag = unique(12);
    let ns = Netns::new(&tag, 112, 2).unwrap();
    let up = Upstream::start().unwrap();
    let mut d = gateway_daemon(&tag, &ns, &up, |c| {
        c.push(
            "autoban",
            table([
                ("name", "probe".into()),
                ("statuses", vec![405].into()),
                ("threshold", 5.into()),
                ("window", "30s".into()),
                ("ban", "3s".into()),
            ]),
        )
    });
    d.start().unwrap();
    let cacert = d.ca();
    let host = ns.host_addr.clone();
    let url = format!("https://{host}:8443/anything");
    let (good, prober) = (ns.client_addrs[0].clone(), ns.client_addrs[1].clone());
    let trace = |src: &str| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "2",
            ])
            .args(["--interface", src, "--http1.1", "-X", "TRACE", "--cacert"])
            .arg(&cacert)
            .args(["-w", "%{http_code}", &url])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap()
    };
    // Five rejections are tolerated; the sixth crosses the threshold and bans the source.
    for i in 0..6 {
        assert_eq!(trace(&prober), "405", "request {i}");
    }
    assert_eq!(
        trace(&prober),
        "000",
        "banned source still completed a handshake"
    );
    let (code, _) = curl(&ns, &good, &cacert, &url, false);
    assert_eq!(code, 0, "an innocent client was caught by the ban");
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    let ban = &rules["rules"][0];
    assert_eq!(ban["cidr"], format!("{prober}/32"), "{rules}");
    assert_eq!(ban["reason"], "auto-ban: probe");
    assert_eq!(ban["auto"], true);
    assert!(d.ctl(&["block", "list"]).unwrap().contains("auto-ban"));
    // After the ban's TTL the source gets back in.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let (code, out) = curl(&ns, &prober, &cacert, &url, false);
    assert_eq!(code, 0, "source still banned after the TTL: {out}");
}

#[test]
fn a_fingerprint_over_an_autoban_rule_is_refused_everywhere_and_its_sources_blocked() {
    let tag = unique(16);
    let ns = Netns::new(&tag, 116, 6).unwrap();
    let up = Upstream::start().unwrap();
    let mut d = gateway_daemon(&tag, &ns, &up, |c| {
        c.push(
            "autoban",
            table([
                ("name", "bots".into()),
                ("key", "ja4".into()),
                ("min_sources", 2.into()),
                ("statuses", vec![405].into()),
                ("threshold", 4.into()),
                ("window", "30s".into()),
                ("ban", "60s".into()),
            ]),
        )
    });
    d.start().unwrap();
    let cacert = d.ca();
    let url = format!("https://{}:8443/anything", ns.host_addr);
    let [first, second, bystander, other, third, fourth] =
        [0, 1, 2, 3, 4, 5].map(|i| ns.client_addrs[i].clone());
    // One TLS stack (curl offering http/1.1 only); `method` TRACE is refused with 405.
    let send = |src: &str, method: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, "curl", "-s", "-o", "/dev/null"])
            .args(["--max-time", "2", "--interface", src, "--http1.1"])
            .args(["-X", method, "--cacert"])
            .arg(&cacert)
            .args(["-w", "%{http_code}", &url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Many 405s from one address do not ban a fingerprint: it needs two addresses here.
    for i in 0..6 {
        assert_eq!(
            send(&first, "TRACE"),
            "405",
            "request {i} from the first address"
        );
    }
    assert_eq!(
        send(&bystander, "GET"),
        "200",
        "banned on one address's word"
    );
    // The second address's first 405 crosses the rule: the fingerprint is banned, and the two
    // addresses that collected its 405s are blocked in XDP.
    assert_eq!(send(&second, "TRACE"), "405");
    for src in [&first, &second] {
        assert_eq!(
            send(src, "GET"),
            "000",
            "{src} earned the ban and still got in:\n{}",
            d.log()
        );
    }
    // An address that only presents the fingerprint is refused by the gateway, never blocked.
    assert_eq!(send(&bystander, "GET"), "403");
    assert_eq!(
        send(&bystander, "TRACE"),
        "403",
        "refused on the fingerprint before anything else"
    );
    assert_eq!(
        send(&bystander, "GET"),
        "403",
        "the bystander was blocked in XDP"
    );
    // Another TLS stack (curl offering h2) is not concerned.
    let (code, out) = curl(&ns, &other, &cacert, &url, true);
    assert_eq!(code, 0, "another fingerprint was caught by the ban: {out}");
    assert!(out.ends_with("200 2"), "{out}");
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    let mut blocked: Vec<(String, String)> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cidr"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    blocked.sort();
    assert_eq!(
        blocked,
        [&first, &second].map(|a| (format!("{a}/32"), "auto-ban: bots (ja4)".to_owned())),
        "{rules}"
    );
    // The refusal names itself in the audit line, with the fingerprint (`i`: no SNI, the URL
    // names an address); vigild's log names the banned fingerprint.
    let refused = audit_line(&d.path("audit.log"), |l| {
        l["reason"] == "fingerprint_banned"
    });
    assert_eq!(
        refused["client"].as_str().unwrap().split(':').next(),
        Some(bystander.as_str())
    );
    let fp = refused["ja4"].as_str().unwrap().to_owned();
    assert!(fp.starts_with("t13i"), "{refused}");
    assert!(d.log().contains(&format!("ja4={fp}")), "{}", d.log());
    // `vigilctl clients top` lists the ban with the time left.
    let top = d.ctl_json(&["clients", "top"]).unwrap();
    assert_eq!(top["banned"][0]["ja4"], fp.as_str(), "{top}");
    let left = top["banned"][0]["expires_in_secs"].as_u64().unwrap();
    assert!((1..=60).contains(&left), "{top}");
    let table = d.ctl(&["clients", "top"]).unwrap();
    assert!(
        table.contains("banned fingerprints") && table.contains(&fp),
        "{table}"
    );
    let metrics: u16 = d.ctl_json(&["status"]).unwrap()["gateway"]["metrics"]
        .as_str()
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .unwrap();
    let banned = || {
        let text = scrape(metrics);
        text.lines()
            .find_map(|l| l.strip_prefix("vigil_gateway_banned_fingerprints "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no vigil_gateway_banned_fingerprints in:\n{text}"))
    };
    assert_eq!(banned(), "1");
    // An operator lifts the ban: the fingerprint is let in at once, the addresses that earned
    // it stay blocked, and a second lift of the same ban is refused.
    let lifted = d.ctl(&["clients", "unban", &fp]).unwrap();
    assert!(
        lifted.contains(&format!("lifted the ban of {fp}")),
        "{lifted}"
    );
    assert_eq!(
        send(&bystander, "GET"),
        "200",
        "still refused after the lift"
    );
    assert_eq!(send(&first, "GET"), "000", "the lift unblocked an address");
    assert_eq!(
        d.ctl_json(&["clients", "top"]).unwrap()["banned"],
        serde_json::json!([])
    );
    assert_eq!(banned(), "0");
    let again = d.ctl_output(&["clients", "unban", &fp]).unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not banned"),
        "{again:?}"
    );
    let typo = d.ctl_output(&["clients", "unban", "t13i0"]).unwrap();
    assert_eq!(typo.status.code(), Some(2), "{typo:?}");
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("is not a JA4 fingerprint"),
        "{typo:?}"
    );
    // Its count started over: earning the ban again takes the rule's 5 statuses from 2
    // addresses (the bystander's 405s before the lift no longer count).
    for i in 0..4 {
        assert_eq!(
            send(&bystander, "TRACE"),
            "405",
            "request {i} after the lift"
        );
    }
    assert_eq!(send(&third, "TRACE"), "405");
    assert_eq!(
        send(&fourth, "GET"),
        "403",
        "the fingerprint was not banned again"
    );
    // A reload that changes the rules lifts the fingerprint's ban.
    let cfg = d.gateway_config(&ns.host_addr, 8443, up.url()).unwrap();
    d.configure(cfg.audit_file(&d.path("audit.log"))).unwrap();
    d.ctl(&["reload"]).unwrap();
    assert_eq!(send(&fourth, "GET"), "200", "the ban outlived its rule");
    let top = d.ctl_json(&["clients", "top"]).unwrap();
    assert_eq!(top["banned"], serde_json::json!([]), "{top}");
}
