//! `vigilctl keys` against a private swtpm, and `vigilctl thermal`/`status`/`keys rotate`
//! against a real vigild reading a fake sysfs tree. Both run the built binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    NAME, Swtpm, Vigild, cert_spki_sha256, fails, ok, ok_json, run, served_spki_sha256, stderr,
    stdout, vigilctl,
};
use serde_json::Value;

/// `keys init --mode MODE` then `keys show`: same key, files on disk, cert matches the key.
fn init_and_show(mode: &str, expect_mode: &str, key_file: &str) {
    let tpm = Swtpm::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let d = dir.to_str().unwrap();
    let tcti = tpm.tcti();
    let args = [
        "keys",
        "init",
        "--mode",
        mode,
        "--dir",
        d,
        "--tcti",
        &tcti,
        "--subject",
        NAME,
        "--json",
    ];
    let init = ok_json(&args);
    assert_eq!(init["mode"], expect_mode, "{init}");
    let fp = init["spki_sha256"].as_str().unwrap().to_owned();
    assert_eq!(fp.len(), 64, "{init}");
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()), "{init}");
    assert_eq!(init["subject"], NAME);
    let files: Vec<&str> = init["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["key.json", key_file, "csr.pem", "cert.pem"] {
        let path = dir.join(f);
        assert!(path.exists(), "{f} missing");
        assert!(
            files.contains(&path.to_str().unwrap()),
            "{f} not reported: {files:?}"
        );
    }
    assert!(!dir.join("key.pem").exists(), "a TPM key left a PEM file");
    assert_eq!(cert_spki_sha256(&dir.join("cert.pem")), fp);

    let show = ok_json(&["keys", "show", "--dir", d, "--json"]);
    assert_eq!(show["spki_sha256"], fp.as_str());
    assert_eq!(show["mode"], expect_mode);
    assert_eq!(show["created"], init["created"]);

    let text = ok(&["keys", "show", "--dir", d]);
    assert!(text.contains(expect_mode), "{text}");
    assert!(text.contains(&fp), "{text}");
    assert!(text.contains(NAME), "{text}");

    // A second init must not destroy the key.
    fails(
        &["keys", "init", "--mode", mode, "--dir", d, "--tcti", &tcti],
        &["already holds a key"],
    );
    assert_eq!(
        ok_json(&["keys", "show", "--dir", d, "--json"])["spki_sha256"],
        fp.as_str()
    );
}

#[test]
fn sealed_key_init_then_show_agree() {
    init_and_show("sealed", "tpm-sealed", "sealed.blob");
}

#[test]
fn resident_key_init_then_show_agree() {
    init_and_show("resident", "tpm-resident", "resident.blob");
}

#[test]
fn human_init_output_names_mode_fingerprint_and_files() {
    let tpm = Swtpm::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("k");
    let d = dir.to_str().unwrap();
    // The TCTI comes from the environment here.
    let o = vigilctl()
        .env("VIGIL_TCTI", tpm.tcti())
        .args([
            "keys",
            "init",
            "--mode",
            "sealed",
            "--dir",
            d,
            "--subject",
            NAME,
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let fp = ok_json(&["keys", "show", "--dir", d, "--json"])["spki_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.contains("mode:          tpm-sealed"), "{out}");
    assert!(
        out.contains(&format!("fingerprint:   SHA-256 {fp}")),
        "{out}"
    );
    assert!(out.contains("PCRs:          7 (SHA-256 bank)"), "{out}");
    assert!(out.contains(&format!("{d}/csr.pem")), "{out}");
    assert!(
        out.contains(&format!("{d}/cert.pem  (self-signed")),
        "{out}"
    );
    assert!(out.contains(&format!("{d}/sealed.blob")), "{out}");
}

#[test]
fn seal_an_existing_pem_key_to_chosen_pcrs() {
    let tpm = Swtpm::start();
    let tmp = tempfile::tempdir().unwrap();
    let pem = tmp.path().join("key.pem");
    let genkey = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("cannot run openssl");
    assert!(genkey.status.success(), "{}", stderr(&genkey));
    let dir = tmp.path().join("sealed");
    let d = dir.to_str().unwrap();
    let tcti = tpm.tcti();
    let p = pem.to_str().unwrap();
    let info = ok_json(&[
        "keys", "seal", p, "--dir", d, "--tcti", &tcti, "--pcrs", "7,16", "--json",
    ]);
    assert_eq!(info["mode"], "tpm-sealed");
    assert_eq!(info["pcrs"], serde_json::json!([7, 16]));
    assert!(dir.join("sealed.blob").exists());
    assert!(pem.exists(), "seal must leave the PEM file alone");
    let show = ok_json(&["keys", "show", "--dir", d, "--json"]);
    assert_eq!(show["spki_sha256"], info["spki_sha256"]);

    fails(
        &[
            "keys", "seal", p, "--dir", d, "--tcti", &tcti, "--pcrs", "7,99",
        ],
        &["99", "--pcrs"],
    );
}

#[test]
fn bad_key_requests_fail_with_readable_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("k");
    let d = d.to_str().unwrap();

    let err = fails(
        &["keys", "init", "--mode", "bogus", "--dir", d],
        &["bogus", "--mode", "sealed", "resident"],
    );
    assert_eq!(
        run(&["keys", "init", "--mode", "bogus", "--dir", d])
            .status
            .code(),
        Some(2)
    );
    assert!(!err.contains("TPM"), "{err}");

    fails(&["keys", "init", "--mode", "sealed"], &["--dir"]);
    fails(&["keys", "show"], &["--dir"]);

    let missing = tmp.path().join("nothing-here");
    fails(
        &["keys", "show", "--dir", missing.to_str().unwrap()],
        &["no key in", "nothing-here", "keys init"],
    );

    // Nothing listens on a port we just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    for mode in ["sealed", "resident"] {
        let err = fails(
            &["keys", "init", "--mode", mode, "--dir", d, "--tcti", &tcti],
            &["TPM unreachable", &tcti],
        );
        assert!(err.starts_with("vigilctl: creating a tpm-"), "{err}");
    }
    fails(
        &[
            "keys",
            "init",
            "--dir",
            d,
            "--tcti",
            "device:/dev/no-such-tpm",
        ],
        &["TPM unreachable", "device:/dev/no-such-tpm"],
    );
    assert!(!Path::new(d).join("key.json").exists());

    fails(
        &[
            "keys",
            "seal",
            "/no/such/key.pem",
            "--dir",
            d,
            "--tcti",
            &tcti,
        ],
        &["/no/such/key.pem"],
    );
}

#[test]
fn thermal_levels_follow_the_sensors_with_hysteresis_and_overrides() {
    let d = Vigild::start(Some("45000"));
    let v = d.wait_thermal(Duration::from_secs(2), "first reading", |v| {
        v["status"]["temperature_c"].as_f64() == Some(45.0)
    });
    assert_eq!(v["status"]["level"], "full", "{v:#}");
    assert_eq!(v["sensors"]["readings"][0]["name"], "x86_pkg_temp");
    assert_eq!(v["thresholds"]["reduced_c"].as_f64(), Some(80.0));
    assert_eq!(v["thresholds"]["hysteresis_c"].as_f64(), Some(5.0));

    let text = d.ok(&["thermal"]);
    assert!(
        text.contains("level:         full  (from temperature)"),
        "{text}"
    );
    assert!(text.contains("45.0 °C"), "{text}");
    assert!(text.contains("thermal_zone0"), "{text}");
    assert!(text.contains("x86_pkg_temp"), "{text}");
    assert!(text.contains("override:      none"), "{text}");
    assert!(
        text.contains("reduced 80.0 °C, minimal 90.0 °C, shed 95.0 °C"),
        "{text}"
    );

    // Rising: the hottest threshold reached wins at once.
    d.step(85_000, "reduced");
    d.step(92_000, "minimal");
    d.step(97_000, "shed");
    // Falling: a level is left only 5 °C below its threshold.
    d.step(92_000, "shed");
    d.step(91_000, "shed");
    d.step(89_000, "minimal");
    d.step(86_000, "minimal");
    d.step(84_000, "reduced");
    d.step(77_000, "reduced");
    d.step(76_000, "reduced");
    d.step(70_000, "full");

    // An override pins the level and then expires by itself.
    let pinned_at = Instant::now();
    let text = d.ok(&["thermal", "override", "minimal", "--for", "2s"]);
    assert!(
        text.contains("pinned the inspection level at minimal for 2s"),
        "{text}"
    );
    assert!(
        text.contains("level:         minimal  (forced by operator; temperature alone gives full)"),
        "{text}"
    );
    assert!(text.contains("override:      minimal for "), "{text}");
    let v = d.thermal();
    assert_eq!(v["status"]["level"], "minimal", "{v:#}");
    assert_eq!(v["status"]["override_level"], "minimal", "{v:#}");
    // The governor counts the remaining time from its last poll, which may precede the
    // override by up to one poll interval (100 ms here).
    assert!(
        v["status"]["override_remaining_ms"].as_u64().unwrap() <= 2100,
        "{v:#}"
    );
    let v = d.wait_thermal(Duration::from_secs(5), "override expiry", |v| {
        v["status"]["override_level"].is_null()
    });
    assert!(
        pinned_at.elapsed() >= Duration::from_millis(1500),
        "expired too early: {v:#}"
    );
    assert_eq!(v["status"]["level"], "full", "{v:#}");

    // Clear ends an override at once.
    let v: Value =
        serde_json::from_str(&d.ok(&["thermal", "override", "shed", "--for", "10m", "--json"]))
            .unwrap();
    assert_eq!(v["status"]["level"], "shed", "{v:#}");
    let text = d.ok(&["thermal", "clear"]);
    assert!(text.starts_with("override cleared"), "{text}");
    assert!(text.contains("level:         full"), "{text}");
    assert!(d.thermal()["status"]["override_level"].is_null());

    // Client-side validation: nothing reaches vigild.
    let socket = d.socket();
    let s = socket.to_str().unwrap();
    fails(
        &["--socket", s, "thermal", "override", "hot", "--for", "1m"],
        &["unknown level \"hot\"", "full, reduced, minimal or shed"],
    );
    fails(
        &[
            "--socket", s, "thermal", "override", "shed", "--for", "banana",
        ],
        &["banana", "--for"],
    );
    fails(
        &["--socket", s, "thermal", "override", "shed", "--for", "0s"],
        &["between 1s and 7d"],
    );
    fails(&["--socket", s, "thermal", "override", "shed"], &["--for"]);
    assert_eq!(d.thermal()["status"]["level"], "full");
}

#[test]
fn without_sensors_or_gateway_vigild_says_so() {
    let d = Vigild::start(None);
    let text = d.ok(&["thermal"]);
    assert!(text.contains("level:         full"), "{text}");
    assert!(text.contains("no sensors: staying at full depth"), "{text}");

    let o = d.ctl(&["keys", "rotate"]);
    assert!(
        !o.status.success(),
        "keys rotate succeeded without a gateway"
    );
    let err = stderr(&o);
    assert!(err.contains("gateway is not running"), "{err}");
    assert!(err.contains("no key to rotate"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // status keeps its lines and adds the gateway and host blocks.
    let text = d.ok(&["status"]);
    assert!(text.contains("vigild:        running (pid"), "{text}");
    assert!(text.contains("xdp:           not attached"), "{text}");
    assert!(
        text.contains("gateway:       not running (no [listener] section)"),
        "{text}"
    );
    assert!(text.contains("cpu:           AES-NI "), "{text}");
    assert!(text.contains("AVX-512"), "{text}");
    let v: Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert!(v["gateway"].is_null(), "{v:#}");
    assert!(v["host"]["cpu"]["aes_ni"].is_boolean(), "{v:#}");
    for nic in v["host"]["nics"].as_array().unwrap() {
        let name = nic["name"].as_str().unwrap();
        assert!(text.contains(name), "NIC {name} missing:\n{text}");
    }
}

#[test]
fn daemon_commands_say_when_vigild_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("absent.sock");
    let s = socket.to_str().unwrap();
    for args in [
        vec!["--socket", s, "keys", "rotate"],
        vec!["--socket", s, "thermal"],
        vec!["--socket", s, "thermal", "clear"],
        vec!["--socket", s, "thermal", "override", "shed", "--for", "1m"],
    ] {
        fails(&args, &["vigild is not running", "absent.sock"]);
    }
}

#[test]
fn gateway_in_status_and_keys_rotate_serves_the_new_key() {
    let tpm = Swtpm::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let k = keys.to_str().unwrap();
    let tcti = tpm.tcti();
    let first = ok_json(&[
        "keys",
        "init",
        "--dir",
        k,
        "--tcti",
        &tcti,
        "--subject",
        NAME,
        "--json",
    ]);
    let sections = format!(
        "\n[keys]\ndir = \"{k}\"\ntcti = \"{tcti}\"\n\n\
         [listener]\nhttps = \"127.0.0.1:0\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [[upstream]]\nname = \"api\"\nurl = \"http://127.0.0.1:9\"\n"
    );
    let d = Vigild::start_with(Some("45000"), tmp, &sections);

    let v: Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    let https = v["gateway"]["https"].as_str().unwrap().to_owned();
    let metrics = v["gateway"]["metrics"].as_str().unwrap().to_owned();
    assert!(https.starts_with("127.0.0.1:"), "{v:#}");
    let text = d.ok(&["status"]);
    assert!(
        text.contains(&format!(
            "gateway:       https {https}, http off, metrics {metrics}\n"
        )),
        "{text}"
    );
    assert!(text.contains("upstreams:     api\n"), "{text}");
    assert!(text.contains("vigild:        running"), "{text}");

    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        served_spki_sha256(&https, scratch.path()),
        first["spki_sha256"]
    );

    // A new key in a fresh directory, swapped in by rename, then rotate.
    let fresh = keys.with_file_name("keys.new");
    let second = ok_json(&[
        "keys",
        "init",
        "--dir",
        fresh.to_str().unwrap(),
        "--tcti",
        &tcti,
        "--subject",
        NAME,
        "--json",
    ]);
    assert_ne!(first["spki_sha256"], second["spki_sha256"]);
    std::fs::rename(&keys, keys.with_file_name("keys.old")).unwrap();
    std::fs::rename(&fresh, &keys).unwrap();
    let text = d.ok(&["keys", "rotate"]);
    assert!(
        text.contains("rotated: vigild serves the tpm-sealed key"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&d.ok(&["keys", "rotate", "--json"])).unwrap();
    assert_eq!(v["rotated"], true, "{v:#}");
    assert_eq!(v["mode"], "tpm-sealed", "{v:#}");
    assert_eq!(
        served_spki_sha256(&https, scratch.path()),
        second["spki_sha256"]
    );

    // A key directory that became unusable: rotation is refused and the old key stays.
    std::fs::remove_file(keys.join("sealed.blob")).unwrap();
    let o = d.ctl(&["keys", "rotate"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("keys rotate refused"), "{err}");
    assert!(err.contains("sealed.blob"), "{err}");
    assert_eq!(
        served_spki_sha256(&https, scratch.path()),
        second["spki_sha256"]
    );
}
