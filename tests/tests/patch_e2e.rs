//! Virtual patches through vigild: a `[[patch]]` from the config and patches added at run time
//! (`vigilctl patch add`), each action (block, log, ban into XDP), the audit line naming the
//! patch, `patch list`/`show`/`del`/`test`, expiry, and the run-time patches surviving a
//! restart. Clients are curl processes in a network namespace, so a ban is a real XDP drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, thread::sleep, time::Duration};

use vigil_e2e::{curl, netns::Netns, unique, upstream::Upstream};
use vigil_patch::rule::{format_time, unix_now};
use vigil_testkit::{config::table, ports::free_port, vigild::Vigild};

/// Status and body of `curl` from the namespace (the body's `reason` and `location` tell a
/// patch refusal from others); status 0 when the connection failed.
fn get(ns: &Netns, d: &Vigild, url: &str, extra: &[&str]) -> (u16, String) {
    let mut a: Vec<std::ffi::OsString> = vec!["--cacert".into(), d.ca().into()];
    a.extend(extra.iter().map(Into::into));
    a.push(url.into());
    curl(Some(&ns.name), &a)
}

fn write(d: &Vigild, name: &str, text: &str) -> std::path::PathBuf {
    let p = d.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn audit_lines(d: &Vigild) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.path("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The audit line of the last request to `path`, waiting a little for the writer.
fn audit_of(d: &Vigild, path: &str) -> serde_json::Value {
    for _ in 0..50 {
        if let Some(l) = audit_lines(d)
            .into_iter()
            .rev()
            .find(|l| l["path"].as_str().is_some_and(|p| p.starts_with(path)))
        {
            return l;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("no audit line for {path}");
}

#[test]
fn virtual_patches_block_log_ban_expire_and_survive_a_restart() {
    let tag = unique(31);
    let ns = Netns::new(&tag, 131, 2).unwrap();
    let upstream = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    let cfg = d
        .gateway_config(&ns.host_addr, port, format!("http://{}", upstream.addr))
        .unwrap()
        .audit_file(&d.path("audit.log"))
        .set("xdp.mode", "native")
        .set(
            "patches.store",
            d.path("state/patches.json").display().to_string(),
        )
        .push(
            "patch",
            table([
                ("id", "cfg-sqli".into()),
                (
                    "note",
                    "SEC-101: SQL injection in search, fixed in 2.4".into(),
                ),
                ("expires", format_time(unix_now() + 7 * 86400).into()),
                ("action", "block".into()),
                (
                    "when",
                    toml::Value::Array(vec![toml::Value::Table(table([
                        ("field", "query:q".into()),
                        ("regex", "(?i)union\\s+select".into()),
                    ]))]),
                ),
            ]),
        );
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let base = format!("https://{}:{port}", ns.host_addr);

    // The config's patch: refused, naming the patch, never the value.
    let (code, body) = get(
        &ns,
        &d,
        &format!("{base}/items?q=1%20UNION%20select%20pw"),
        &[],
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("virtual_patch") && body.contains("patch:cfg-sqli"),
        "{body}"
    );
    assert!(
        !body.to_lowercase().contains("union"),
        "the matched value leaked: {body}"
    );
    let line = audit_of(&d, "/items");
    assert_eq!(line["reason"], "virtual_patch", "{line}");
    assert_eq!(line["patches"], serde_json::json!(["cfg-sqli"]), "{line}");
    assert_eq!(get(&ns, &d, &format!("{base}/items?q=shoes"), &[]).0, 200);

    // A log patch added at run time: the request goes through, the audit line names it.
    let expires = format_time(unix_now() + 86400);
    let ua = write(
        &d,
        "ua.toml",
        &format!(
            "id = \"ua-sqlmap\"\nnote = \"scanner watch, SEC-102\"\nexpires = \"{expires}\"\n\
             action = \"log\"\n[[when]]\nfield = \"header:user-agent\"\ncontains = \"sqlmap\"\n"
        ),
    );
    let added = d.ctl(&["patch", "add", ua.to_str().unwrap()]).unwrap();
    assert!(added.contains("ua-sqlmap"), "{added}");
    let (code, _) = get(&ns, &d, &format!("{base}/scan"), &["-A", "sqlmap/1.7"]);
    assert_eq!(code, 200);
    let line = audit_of(&d, "/scan");
    assert_eq!(line["reason"], "ok", "{line}");
    assert_eq!(line["patches"], serde_json::json!(["ua-sqlmap"]), "{line}");

    // Offline test, by file and by the id vigild knows; exit 1 for no match.
    let req = write(
        &d,
        "req.http",
        "GET /x HTTP/1.1\nUser-Agent: sqlmap/1.7\n\n",
    );
    let other = write(&d, "other.http", "GET /x HTTP/1.1\nUser-Agent: curl/8\n\n");
    let hit = d
        .ctl(&["patch", "test", "ua-sqlmap", req.to_str().unwrap()])
        .unwrap();
    assert!(hit.starts_with("MATCH"), "{hit}");
    let out = d
        .ctl_output(&[
            "patch",
            "test",
            ua.to_str().unwrap(),
            other.to_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A ban patch: the request is refused and its source dropped in XDP from then on.
    let ban = write(
        &d,
        "ban.json",
        &serde_json::json!({
            "id": "ban-admin", "note": "no one uses /admin from outside", "expires": expires,
            "action": "ban", "ban_ttl": "10m",
            "when": [{"field": "path", "glob": "/admin/**"}]
        })
        .to_string(),
    );
    d.ctl(&["patch", "add", ban.to_str().unwrap()]).unwrap();
    let banned = &ns.client_addrs[1];
    let (code, body) = get(
        &ns,
        &d,
        &format!("{base}/admin/users"),
        &["--interface", banned],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("patch:ban-admin"), "{body}");
    let blocks = d.ctl(&["block", "list"]).unwrap();
    assert!(
        blocks.contains(banned) && blocks.contains("virtual patch ban-admin"),
        "{blocks}"
    );
    assert_eq!(
        get(&ns, &d, &format!("{base}/items"), &["--interface", banned]).0,
        0,
        "a banned source is dropped in XDP"
    );
    assert_eq!(
        get(
            &ns,
            &d,
            &format!("{base}/items"),
            &["--interface", &ns.client_addrs[0]]
        )
        .0,
        200
    );

    // Refusals say what is wrong; nothing is added.
    let past = write(
        &d,
        "past.toml",
        "id = \"old\"\nnote = \"n\"\nexpires = \"2020-01-01T00:00:00Z\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"\n",
    );
    let out = d
        .ctl_output(&["patch", "add", past.to_str().unwrap()])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already past"),
        "{out:?}"
    );
    let dup = d
        .ctl_output(&["patch", "add", ua.to_str().unwrap()])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already exists"),
        "{dup:?}"
    );

    // An expiring patch stops matching on time and is reported.
    let soon = write(
        &d,
        "soon.toml",
        &format!(
            "id = \"soon\"\nnote = \"hotfix window\"\nexpires = \"{}\"\n[[when]]\nfield = \"path\"\nequals = \"/expiring\"\n",
            format_time(unix_now() + 3)
        ),
    );
    d.ctl(&["patch", "add", soon.to_str().unwrap()]).unwrap();
    assert_eq!(get(&ns, &d, &format!("{base}/expiring"), &[]).0, 403);
    sleep(Duration::from_secs(4));
    assert_eq!(get(&ns, &d, &format!("{base}/expiring"), &[]).0, 200);
    let list = d.ctl(&["patch", "list"]).unwrap();
    assert!(
        list.contains("EXPIRED") && list.contains("1 expired patch"),
        "{list}"
    );
    let hits = list.lines().find(|l| l.starts_with("cfg-sqli")).unwrap();
    assert!(hits.contains(" 1 ") && hits.contains("config"), "{hits}");
    let status = d.ctl(&["status"]).unwrap();
    assert!(
        status.contains("patches:       4 virtual patches, 1 EXPIRED"),
        "{status}"
    );
    let metrics_at = d.ctl_json(&["status"]).unwrap()["gateway"]["metrics"]
        .as_str()
        .unwrap()
        .to_owned();
    let metrics = Command::new("curl")
        .args(["-sS", &format!("http://{metrics_at}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("vigil_patch_hits_total{patch=\"cfg-sqli\",action=\"block\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_patch_expired{patch=\"soon\"} 1"),
        "{metrics}"
    );
    let log = d.log();
    assert!(
        log.contains("virtual patch expired") && log.contains("soon"),
        "the expiry was not logged: {log}"
    );

    // Run-time patches survive a restart; the config's come from the config.
    d.term();
    d.start().unwrap();
    let list = d.ctl(&["patch", "list"]).unwrap();
    for id in ["cfg-sqli", "ua-sqlmap", "ban-admin", "soon"] {
        assert!(list.contains(id), "{id} lost across the restart: {list}");
    }
    let (code, _) = get(&ns, &d, &format!("{base}/scan"), &["-A", "sqlmap/1.7"]);
    assert_eq!(code, 200);
    assert_eq!(
        audit_of(&d, "/scan")["patches"],
        serde_json::json!(["ua-sqlmap"])
    );

    // Removal: gone from the gateway and from the store; a config patch is removed there.
    d.ctl(&["patch", "del", "ua-sqlmap"]).unwrap();
    let stored = std::fs::read_to_string(d.path("state/patches.json")).unwrap();
    assert!(
        !stored.contains("ua-sqlmap") && stored.contains("ban-admin"),
        "{stored}"
    );
    let out = d.ctl_output(&["patch", "del", "cfg-sqli"]).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config file"),
        "{out:?}"
    );
    let show = d.ctl(&["patch", "show", "ban-admin"]).unwrap();
    assert!(
        show.contains("ban for 10m") && show.contains("path glob \"/admin/**\""),
        "{show}"
    );
}

/// Statuses in an h2load `--log-file` (start µs, status, µs), counted.
fn statuses(log: &std::path::Path) -> std::collections::BTreeMap<u16, u64> {
    let mut out = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let status = line
            .split('\t')
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        *out.entry(status).or_insert(0) += 1;
    }
    out
}

#[test]
fn adding_and_removing_patches_under_load_loses_no_request() {
    let upstream = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("patch-load").unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, format!("http://{}", upstream.addr))
        .unwrap()
        .set(
            "patches.store",
            d.path("patches.json").display().to_string(),
        );
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let patch = write(
        &d,
        "p.toml",
        &format!(
            "id = \"toggle\"\nnote = \"load test\"\nexpires = \"{}\"\n[[when]]\nfield = \"path\"\nprefix = \"/items\"\n",
            format_time(unix_now() + 3600)
        ),
    );
    let log = d.path("h2load.log");
    // Bounded: 6,000 requests on 4 connections, each request at most 5 s.
    let load = vigil_testkit::load::h2load::spawn(&[
        "-n".into(),
        "6000".into(),
        "-c".into(),
        "4".into(),
        "--h1".into(),
        "-T".into(),
        "5".into(),
        "--log-file".into(),
        log.display().to_string(),
        format!("https://127.0.0.1:{port}/items"),
    ])
    .unwrap();
    let mut toggles = 0;
    for _ in 0..40 {
        d.ctl(&["patch", "add", patch.to_str().unwrap()]).unwrap();
        sleep(Duration::from_millis(25));
        d.ctl(&["patch", "del", "toggle"]).unwrap();
        sleep(Duration::from_millis(25));
        toggles += 1;
    }
    let summary =
        vigil_testkit::load::h2load::parse(&vigil_testkit::load::h2load::finish(load).unwrap())
            .unwrap();
    let seen = statuses(&log);
    println!("{toggles} add/del pairs during the load: {summary:?}, statuses {seen:?}");
    // h2load counts a 403 as failed; the log has every request with its status: all 6,000
    // were answered, none errored, reset or timed out.
    assert_eq!(summary.succeeded + summary.failed, 6000, "{summary:?}");
    assert_eq!(seen.values().sum::<u64>(), 6000, "{seen:?}");
    let other: u64 = seen
        .iter()
        .filter(|(s, _)| !matches!(s, 200 | 403))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        other, 0,
        "only 200 (no patch) or 403 (patch) expected: {seen:?}"
    );
    // Both states were served while they changed under the load.
    assert!(seen.get(&200).is_some_and(|n| *n > 0), "{seen:?}");
    assert!(seen.get(&403).is_some_and(|n| *n > 0), "{seen:?}");
}
