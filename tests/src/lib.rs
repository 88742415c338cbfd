//! Helpers for the end-to-end tests that only they use: a network namespace joined to the host
//! by a veth pair, and a small HTTP upstream. vigild and vigilctl as processes, swtpm, Redis,
//! certificates, tokens and ports come from `vigil-testkit`. Everything uses 198.18.0.0/15
//! addresses and names unique to the test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod netns;
pub mod upstream;
pub mod vmbox;

/// A unique small number for this test in this process, for names and subnets.
pub fn unique(slot: u8) -> String {
    format!("{}{}", std::process::id() % 10_000, slot)
}

/// Runs `cmd` to completion and returns its stdout; panics with its output when it fails.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The workspace root (the e2e crate lives in `tests/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
