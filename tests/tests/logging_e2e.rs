//! vigild's log lines: under systemd (stderr is the journal) each line starts with its syslog
//! priority, so `journalctl -p warning` finds warnings; `--log-format json` (or
//! `VIGIL_LOG_FORMAT=json`) writes one JSON object per line. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt as _;

use vigil_e2e::unique;
use vigil_testkit::config::Config;
use vigil_testkit::vigild::Vigild;

/// A vigild without XDP or gateway.
fn daemon(tag: &str) -> Vigild {
    let d = Vigild::new(tag).unwrap();
    d.configure(Config::new()).unwrap();
    d
}

#[test]
fn under_the_journal_each_line_carries_its_priority() {
    let mut d = daemon(&unique(16));
    let log = d.path("vigild.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    d.set_env("JOURNAL_STREAM", &format!("{}:{}", meta.dev(), meta.ino()));
    d.start().unwrap();
    d.term();
    let text = d.log();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.starts_with("<6>")
                || l.starts_with("<4>")
                || l.starts_with("<3>")
                || l.starts_with("<7>"),
            "no priority prefix: {l:?}\n{text}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("control socket ready")),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in the journal:\n{text}"
    );
}

#[test]
fn json_lines_parse_and_name_their_level() {
    let mut d = daemon(&unique(17));
    d.set_env("VIGIL_LOG_FORMAT", "json");
    d.start().unwrap();
    d.term();
    let text = d.log();
    let mut seen = 0;
    for l in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
        assert!(v["level"].is_string(), "{l}");
        assert!(v["timestamp"].is_string(), "{l}");
        if v["fields"]["message"] == "control socket ready" {
            assert_eq!(v["level"], "INFO");
            seen += 1;
        }
    }
    assert_eq!(seen, 1, "{text}");
    // Without the journal there is no prefix.
    assert!(!text.starts_with('<'), "{text}");
}

#[test]
fn a_refused_start_is_an_error_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigild.toml");
    std::fs::write(&cfg, "[xdp]\nmdoe = \"native\"\n").unwrap();
    let err = dir.path().join("stderr");
    std::fs::write(&err, "").unwrap();
    let meta = std::fs::metadata(&err).unwrap();
    let bin = vigil_testkit::vigild::bin_dir().unwrap().join("vigild");
    for args in [vec!["--check"], vec![]] {
        let status = std::process::Command::new(&bin)
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stderr(std::fs::OpenOptions::new().append(true).open(&err).unwrap())
            .status()
            .unwrap();
        assert!(!status.success());
    }
    let text = std::fs::read_to_string(&err).unwrap();
    let refusals: Vec<&str> = text.lines().filter(|l| l.contains("mdoe")).collect();
    assert_eq!(refusals.len(), 2, "{text}");
    for l in refusals {
        assert!(
            l.starts_with("<3>vigild: "),
            "not an error for journald: {l:?}"
        );
    }
}
