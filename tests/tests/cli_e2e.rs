//! vigilctl's contract with scripts against a real vigild with XDP on a veth pair (needs root):
//! exit statuses, `--json` errors, the guards (`--force`, `--yes`), `xdp attach` undoing a
//! detach, what replacing and deleting rules say, and a start that fails leaving no pins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use serde_json::Value;
use vigil_e2e::{netns::Netns, unique};
use vigil_testkit::config::Config;
use vigil_testkit::vigild::Vigild;

fn started(tag: &str, ns: &Netns, cfg: Config) -> Vigild {
    let mut d = Vigild::with_xdp(tag, &ns.host_if).unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    d
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// vigilctl's exit status, with its output for the failure message.
fn status_of(d: &Vigild, args: &[&str]) -> (i32, Output) {
    let o = d.ctl_output(args).unwrap();
    let code = o.status.code().expect("vigilctl was killed by a signal");
    (code, o)
}

/// Runs vigilctl, asserts the exit status and that stderr holds every needle; returns output.
fn expect(d: &Vigild, args: &[&str], code: i32, needles: &[&str]) -> Output {
    let (got, o) = status_of(d, args);
    assert_eq!(got, code, "vigilctl {args:?}:\n{}{}", out(&o), err(&o));
    for n in needles {
        assert!(err(&o).contains(n), "{n:?} not in:\n{}", err(&o));
    }
    o
}

#[test]
fn exit_statuses_guards_and_attach_after_detach() {
    let tag = unique(40);
    let ns = Netns::new(&tag, 140, 1).unwrap();
    let cfg = Config::new()
        .set("xdp.mode", "native")
        .set("xdp.block", vec!["198.18.140.250/32"]);
    let d = started(&tag, &ns, cfg);
    let client = ns.client_addrs[0].clone();

    // Healthy: 0.
    expect(&d, &["status"], 0, &[]);

    // Replacing a rule says what it replaced.
    d.ctl(&["block", "add", &client, "--ttl", "10m", "--reason", "first"])
        .unwrap();
    let text = d
        .ctl(&["block", "add", &client, "--reason", "second"])
        .unwrap();
    assert!(
        text.contains(&format!("added {client}/32, replacing the existing rule")),
        "{text}"
    );
    assert!(text.contains("reason \"first\""), "{text}");
    let v = d.ctl_json(&["block", "add", &client]).unwrap();
    assert_eq!(v["replaced"]["reason"], "second", "{v:#}");
    let v = d.ctl_json(&["block", "add", "198.18.140.99"]).unwrap();
    assert!(v["replaced"].is_null(), "{v:#}");

    // Deleting an absent rule says so: exit 1, code no_such_rule.
    d.ctl(&["block", "del", &client]).unwrap();
    expect(
        &d,
        &["block", "del", &client],
        1,
        &[&format!(
            "{client}/32 was not in the block list: nothing removed"
        )],
    );
    let o = expect(&d, &["block", "del", &client, "--json"], 1, &[]);
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], "no_such_rule", "{e:#}");
    assert_eq!(e["exit"], 1, "{e:#}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("was not in the block list"),
        "{e:#}"
    );

    // Usage errors: 2, naming the argument, as JSON with --json; nothing reaches vigild.
    expect(
        &d,
        &["block", "add", "10.0.0.0/33"],
        2,
        &["'<CIDR>'", "prefix length /33 is out of range"],
    );
    let o = expect(&d, &["block", "add", "10.0.0.0/33", "--json"], 2, &[]);
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], "usage", "{e:#}");
    assert_eq!(e["exit"], 2, "{e:#}");
    expect(
        &d,
        &["thermal", "override", "hot", "--for", "1m"],
        2,
        &["unknown level \"hot\""],
    );
    expect(&d, &["block", "add", "0.0.0.0/0"], 2, &["--force"]);
    expect(
        &d,
        &["allow", "add", "::/0"],
        2,
        &["every IPv6 address", "--force"],
    );
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    assert!(
        !rules.to_string().contains("0.0.0.0/0"),
        "a refused rule was added: {rules}"
    );
    // With --force it is added (and removed again).
    d.ctl(&["block", "add", "0.0.0.0/0", "--force", "--ttl", "5s"])
        .unwrap();
    d.ctl(&["block", "del", "0.0.0.0/0"]).unwrap();

    // Detaching from a running vigild wants --yes, and says what it would stop.
    d.ctl(&["block", "add", &client, "--ttl", "10m", "--reason", "kept"])
        .unwrap();
    let o = expect(
        &d,
        &["xdp", "detach"],
        2,
        &["vigild is running", "--yes", &ns.host_if],
    );
    assert!(out(&o).is_empty(), "{}", out(&o));
    assert!(d.pin_dir().exists(), "detached without --yes");
    let text = d.ctl(&["xdp", "detach", "--yes"]).unwrap();
    assert!(text.contains("vigilctl xdp attach"), "{text}");
    assert!(!d.pin_dir().exists());

    // Detached: status still prints, and exits 5.
    let o = expect(&d, &["status"], 5, &[]);
    assert!(
        out(&o).contains(&format!("xdp:           detached from {}", ns.host_if)),
        "{}",
        out(&o)
    );
    let (code, o) = status_of(&d, &["status", "--json"]);
    assert_eq!(code, 5);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["xdp"]["detached"], ns.host_if.as_str(), "{v:#}");
    assert_eq!(v["daemon"]["running"], true);
    // Rule commands say XDP is not attached: 1.
    expect(&d, &["block", "list"], 1, &["not attached"]);

    // Attach undoes it: the program and the config's rules are back.
    let text = d.ctl(&["xdp", "attach"]).unwrap();
    assert!(
        text.contains(&format!("attached XDP to {} (native)", ns.host_if)),
        "{text}"
    );
    assert!(text.contains("and 2 rules the detach removed"), "{text}");
    assert!(d.pin_dir().exists());
    expect(&d, &["status"], 0, &[]);
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    let mut cidrs: Vec<&str> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cidr"].as_str().unwrap())
        .collect();
    cidrs.sort_unstable();
    let kept_cidr = format!("{client}/32");
    let mut want = vec!["198.18.140.99/32", &kept_cidr, "198.18.140.250/32"];
    want.sort_unstable();
    assert_eq!(cidrs, want, "{rules:#}");
    let kept = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cidr"] == format!("{client}/32"))
        .unwrap();
    assert_eq!(kept["reason"], "kept", "{rules:#}");
    let left = kept["expires_in_secs"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "ttl not carried over: {left}");
    assert!(!ns.ping_from(&client, 2), "restored block not enforced");
    let v = d.ctl_json(&["xdp", "attach"]).unwrap();
    assert_eq!(v["already"], true, "{v:#}");
}

#[test]
fn without_vigild_and_pins_the_status_is_3_and_permission_is_4() {
    let tag = unique(41);
    let ns = Netns::new(&tag, 141, 1).unwrap();
    let d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    d.configure(Config::new()).unwrap();
    // Never started: nothing listens, nothing is pinned.
    expect(&d, &["status"], 3, &["no Vigil XDP state is pinned"]);
    let o = expect(&d, &["stats", "--json"], 3, &[]);
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], "unreachable", "{e:#}");
    expect(&d, &["reload"], 3, &["vigild is not running"]);
    expect(&d, &["xdp", "attach"], 3, &["`xdp attach` needs it"]);

    // An unprivileged user: 4.
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(vigil_testkit::vigild::bin_dir().unwrap().join("vigilctl"))
        .arg("--socket")
        .arg(d.socket())
        .arg("--pin-root")
        .arg(d.pin_root())
        .args([
            "--iface",
            &ns.host_if,
            "--json",
            "block",
            "add",
            "198.18.141.9",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}{}", out(&o), err(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], "permission_denied", "{e:#}");
}

#[test]
fn a_start_refused_by_another_program_says_so_and_leaves_no_pins() {
    let tag = unique(42);
    let ns = Netns::new(&tag, 142, 1).unwrap();
    let first = started(&tag, &ns, Config::new().set("xdp.mode", "native"));
    assert!(first.pin_dir().exists());

    // A second vigild (its own pin root) on the same interface.
    let mut second = Vigild::with_xdp(&format!("{tag}b"), &ns.host_if).unwrap();
    second
        .configure(Config::new().set("xdp.mode", "auto"))
        .unwrap();
    let e = second.start().unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "another XDP program is already attached to {}",
            ns.host_if
        )),
        "{e}"
    );
    assert!(!e.contains("set xdp.mode"), "suggests generic mode: {e}");
    assert!(
        !second.pin_dir().exists(),
        "a failed start left {} behind",
        second.pin_dir().display()
    );
    // The pins of the first are untouched and it still answers.
    assert!(first.pin_dir().exists());
    expect(&first, &["status"], 0, &[]);

    // Loopback has no native XDP: the start fails after the maps were pinned, and removes
    // them, so later commands do not find a stray interface under the pin root.
    let mut lo = Vigild::with_xdp(&format!("{tag}lo"), "lo").unwrap();
    lo.configure(Config::new().set("xdp.mode", "native"))
        .unwrap();
    let e = lo.start().unwrap_err().to_string();
    assert!(
        e.contains("native (driver) XDP is not available on lo"),
        "{e}"
    );
    assert!(
        !lo.pin_dir().exists(),
        "{} left behind",
        lo.pin_dir().display()
    );
    let (code, o) = status_of(&lo, &["status"]);
    assert_eq!(code, 3, "{}{}", out(&o), err(&o));
}

#[test]
fn status_shows_policy_key_audit_and_an_upstream_that_is_down() {
    use vigil_testkit::config::table;
    let mut d = Vigild::new("clistatus").unwrap();
    let tls = vigil_testkit::pki::self_signed(&["127.0.0.1"])
        .unwrap()
        .write_in(d.dir())
        .unwrap();
    let spec = d.path("openapi.yaml");
    let spec_text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
                     responses: {'200': {description: ok}}\n";
    std::fs::write(&spec, spec_text).unwrap();
    let audit = d.path("audit.log");
    let port = vigil_testkit::ports::free_port().unwrap();
    // Nothing listens on port 9: the probe fails and the only upstream is down.
    let cfg = Config::gateway(format!("127.0.0.1:{port}"), &tls)
        .push(
            "upstream",
            table([
                ("name", "api".into()),
                ("url", "http://127.0.0.1:9".into()),
                ("health_path", "/health".into()),
                ("health_interval", "100ms".into()),
            ]),
        )
        .policy(&spec)
        .audit_file(&audit)
        .set("audit.headers", vec!["x-request-id"]);
    d.configure(cfg).unwrap();
    d.start().unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let v = loop {
        let v = d.ctl_json(&["status"]).unwrap();
        if v["gateway"]["not_ready"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
        {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the down upstream never showed: {v:#}\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let g = &v["gateway"];
    assert_eq!(g["not_ready"][0], "no healthy upstream (api)", "{g:#}");
    assert_eq!(g["policy"]["file"], spec.to_str().unwrap(), "{g:#}");
    assert_eq!(g["policy"]["mode"], "enforce", "{g:#}");
    let digest = ring::digest::digest(&ring::digest::SHA256, spec_text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(g["policy"]["sha256"], hex.as_str(), "{g:#}");
    assert_eq!(g["key"]["mode"], "file", "{g:#}");
    assert_eq!(g["key"]["source"], tls.cert.to_str().unwrap(), "{g:#}");
    assert_eq!(g["audit"]["sink"], "file", "{g:#}");
    assert_eq!(g["audit"]["destination"], audit.to_str().unwrap(), "{g:#}");

    // The same in the text, and a down upstream does not make status fail.
    let o = expect(&d, &["status"], 0, &[]);
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "policy:        {} (enforce, sha256 {hex})",
            spec.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "audit:         file {}, headers x-request-id",
            audit.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("NOT READY:     no healthy upstream (api)"),
        "{text}"
    );

    // Shadow traffic: listed with times and ages, exported as a fragment that loads.
    for (method, path) in [("GET", "/v2/orders/17"), ("DELETE", "/v2/orders/18")] {
        let code = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["-X", method, "--cacert"])
            .arg(&tls.cert)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&code.stdout),
            "404",
            "{method} {path}"
        );
    }
    let text = d.ctl(&["shadow", "list"]).unwrap();
    assert!(text.contains("FIRST SEEN (UTC)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("GET") && l.contains("/v2/orders/{id}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("Z  "), "no UTC time: {line}");
    assert!(
        line.contains(" ago") || line.contains(" now "),
        "no age: {line}"
    );
    let fragment = d.path("shadow.yaml");
    let said = d
        .ctl(&["shadow", "export", "--out", fragment.to_str().unwrap()])
        .unwrap();
    assert!(said.contains("wrote 2 operations"), "{said}");
    let yaml = std::fs::read_to_string(&fragment).unwrap();
    assert!(yaml.contains("/v2/orders/{id}:"), "{yaml}");
    let v = d
        .ctl_json(&["policy", "check", fragment.to_str().unwrap()])
        .unwrap();
    assert_eq!(v["ok"], true, "{v:#}\n{yaml}");
    assert_eq!(v["operations"], 2, "{v:#}");
}
