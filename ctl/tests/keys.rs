//! `vigilctl keys` against a private swtpm (init, show, seal, and the messages of bad requests),
//! and the daemon commands' message when vigild is down. Runs the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{NAME, fails, ok, ok_json, run, stderr, stdout, vigilctl};
use vigil_testkit::pki::{ec_key_pem, openssl, spki_sha256};
use vigil_testkit::ports::free_port;
use vigil_testkit::swtpm::Swtpm;

/// `keys init --mode MODE` then `keys show`: same key, files on disk, cert matches the key.
fn init_and_show(mode: &str, expect_mode: &str, key_file: &str) {
    let tpm = Swtpm::start().unwrap();
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
    let cert = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert_eq!(spki_sha256(&cert).unwrap(), fp);

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
    let tpm = Swtpm::start().unwrap();
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
    let tpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pem = tmp.path().join("key.pem");
    std::fs::write(&pem, ec_key_pem().unwrap()).unwrap();
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
    let port = free_port().unwrap();
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
fn signed_pcr_policies_sign_show_and_seal_with_a_policy_key() {
    let tpm = Swtpm::start().unwrap();
    let tcti = tpm.tcti();
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    // The policy key as openssl makes it (SEC1), and its public half.
    let key = openssl(
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        None,
    )
    .unwrap();
    std::fs::write(path("policy.key"), &key).unwrap();
    let public = openssl(&["pkey", "-pubout"], Some(&key)).unwrap();
    std::fs::write(path("policy.pub"), &public).unwrap();

    let (v9, v16) = ("09".repeat(32), "16".repeat(32));
    let (pcr9, pcr16) = (format!("9={v9}"), format!("16={v16}"));
    let (k, out) = (path("policy.key"), path("pcr-policy.json"));
    let signed = ok_json(&[
        "keys", "policy", "sign", "--key", &k, "--pcr", &pcr16, "--pcr", &pcr9, "--out", &out,
        "--json",
    ]);
    assert_eq!(signed["pcrs"]["9"], v9.as_str(), "{signed}");
    assert_eq!(signed["pcrs"]["16"], v16.as_str(), "{signed}");
    assert_eq!(signed["bank"], "sha256");
    let fp = signed["key_sha256"].as_str().unwrap().to_owned();
    assert_eq!(ok_json(&["keys", "policy", "show", &out, "--json"]), signed);
    let text = ok(&["keys", "policy", "show", &out]);
    assert!(
        text.contains(&format!("policy key:    SHA-256 {fp}")),
        "{text}"
    );
    assert!(text.contains(&format!(" 9  {v9}")), "{text}");
    assert!(text.find(&v9) < text.find(&v16), "{text}");

    // Sealing to the public half records the key; no PCR values are bound.
    let d = path("keys");
    let p = path("policy.pub");
    let info = ok_json(&[
        "keys",
        "init",
        "--dir",
        &d,
        "--tcti",
        &tcti,
        "--subject",
        NAME,
        "--policy-key",
        &p,
        "--json",
    ]);
    assert_eq!(info["policy_key_sha256"], fp.as_str(), "{info}");
    assert_eq!(info["pcrs"], serde_json::json!([]));
    let text = ok(&["keys", "show", "--dir", &d]);
    assert!(text.contains(&format!("policy key SHA-256 {fp}")), "{text}");

    // What is refused, and how.
    let rsa = openssl(&["genpkey", "-algorithm", "RSA"], None).unwrap();
    std::fs::write(path("rsa.key"), rsa).unwrap();
    fails(
        &[
            "keys",
            "policy",
            "sign",
            "--key",
            &path("rsa.key"),
            "--pcr",
            &pcr9,
            "--out",
            &out,
        ],
        &[
            "rsa.key",
            "not usable as the private half of an ECC P-256 policy key",
        ],
    );
    fails(
        &[
            "keys", "policy", "sign", "--key", &k, "--pcr", "9=00", "--out", &out,
        ],
        &["64 hex digits"],
    );
    let r = path("r");
    let args = [
        "keys",
        "init",
        "--mode",
        "resident",
        "--dir",
        &r,
        "--policy-key",
        &p,
    ];
    fails(&args, &["--policy-key", "sealed"]);
    assert_eq!(run(&args).status.code(), Some(2));
    let args = [
        "keys",
        "seal",
        &k,
        "--dir",
        &r,
        "--pcrs",
        "7",
        "--policy-key",
        &p,
    ];
    fails(&args, &["--pcrs", "--policy-key"]);
    assert_eq!(run(&args).status.code(), Some(2));
    let edited = std::fs::read_to_string(&out)
        .unwrap()
        .replace(&v9, &"00".repeat(32));
    std::fs::write(&out, edited).unwrap();
    fails(
        &["keys", "policy", "show", &out],
        &["not a valid signed PCR policy", "edited"],
    );
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
