//! Helpers for the end-to-end tests: a network namespace joined to the host by a veth pair,
//! vigild and vigilctl run as real processes, and cleanup that happens even when a test fails.
//! Everything uses 198.18.0.0/15 addresses and names unique to the test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod daemon;
pub mod netns;
pub mod redis;
pub mod upstream;

use std::path::PathBuf;

/// The directory holding the workspace's built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    for bin in ["vigild", "vigilctl"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the binaries first (`cargo build --bins`; scripts/test.sh does)",
            dir.join(bin).display()
        );
    }
    dir
}

/// A unique small number for this test in this process, for names and subnets.
pub fn unique(slot: u8) -> String {
    format!("{}{}", std::process::id() % 10_000, slot)
}

/// A self-signed P-256 certificate for `ip` (`cert.pem`, `key.pem` in `dir`), made with the
/// openssl CLI, for gateways under test.
pub fn self_signed_cert(dir: &std::path::Path, ip: &str) {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=vigil-e2e", "-days", "1"])
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{ip}"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback port free right now (for a listener the test's vigild binds next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}
