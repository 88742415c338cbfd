//! What scripts and packagers rely on without a daemon: exit statuses, `--json` errors on
//! stdout, "did you mean", and the completions and man pages the binary writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // helpers shared by every test crate; this one uses some
mod common;

use common::{ok, run, stderr, stdout};
use serde_json::Value;

/// vigilctl pointed at a socket and a pin root where nothing is.
fn nowhere(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let sock = dir.join("none.sock");
    let pins = dir.join("pins");
    let mut all = vec![
        "--socket",
        sock.to_str().unwrap(),
        "--pin-root",
        pins.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run(&all)
}

fn json_error(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON error ({e}):\n{}", stdout(o)))
}

#[test]
fn usage_errors_exit_2_naming_the_argument() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            &["block", "add", "10.0.0.0/33"][..],
            "prefix length /33 is out of range: an IPv4 prefix is /0 to /32",
        ),
        (&["block", "del", "not-an-ip"], "for '<CIDR>'"),
        (
            &["block", "add", "198.18.0.1", "--ttl", "90"],
            "'--ttl <TTL>'",
        ),
        (
            &["thermal", "override", "hot", "--for", "1m"],
            "unknown level \"hot\"",
        ),
        (&["block", "add", "0.0.0.0/0"], "add --force"),
        (&["blcok", "list"], "a similar subcommand exists: 'block'"),
        (
            &["completion", "tcsh"],
            "[possible values: bash, zsh, fish]",
        ),
        (
            &[
                "fleet",
                "keygen",
                "--box",
                "bad name",
                "--out",
                "/nonexistent/k.pem",
            ],
            "--box: ",
        ),
    ] {
        let o = nowhere(tmp.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn json_errors_are_one_document_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let o = nowhere(tmp.path(), &["--json", "block", "add", "10.0.0.0/33"]);
    assert_eq!(o.status.code(), Some(2));
    let e = json_error(&o);
    assert_eq!(e["code"], "usage", "{e:#}");
    assert_eq!(e["exit"], 2, "{e:#}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid value '10.0.0.0/33' for '<CIDR>'"),
        "{e:#}"
    );
    // The human line is still on stderr.
    assert!(stderr(&o).contains("prefix length /33"), "{}", stderr(&o));

    let o = nowhere(tmp.path(), &["reload", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = json_error(&o);
    assert_eq!(e["code"], "unreachable", "{e:#}");
    assert!(
        e["error"].as_str().unwrap().contains("`reload` needs it"),
        "{e:#}"
    );
}

#[test]
fn nothing_to_reach_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["reload"],
        &["shadow", "list"],
        &["xdp", "attach"],
        &["config", "show"],
    ] {
        let o = nowhere(tmp.path(), args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = ok(&["--help"]);
    assert!(
        out.contains("Exit status: 0 ok, 1 the operation failed"),
        "{out}"
    );
    assert!(ok(&["--version"]).starts_with("vigilctl "));
}

#[test]
fn completions_and_man_pages_come_from_the_binary() {
    let bash = ok(&["completion", "bash"]);
    assert!(bash.contains("complete -F _vigilctl"), "{bash}");
    assert!(ok(&["completion", "zsh"]).starts_with("#compdef vigilctl"));
    assert!(ok(&["completion", "fish"]).contains("complete -c vigilctl"));

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let out = ok(&["man", "--out", dir.to_str().unwrap()]);
    assert!(out.contains("vigilctl.1"), "{out}");
    for page in [
        "vigilctl.1",
        "vigilctl-status.1",
        "vigilctl-block-add.1",
        "vigilctl-xdp-detach.1",
        "vigilctl-completion.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{page}: {text}");
    }
    let detach = std::fs::read_to_string(dir.join("vigilctl-xdp-detach.1")).unwrap();
    assert!(detach.contains("\\-\\-yes"), "{detach}");
}
