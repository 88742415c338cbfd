//! Helpers for the CLI tests: run the built vigilctl and check what it says. (A private swtpm and
//! vigild as a process are the test kit's.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Running vigilctl

pub fn vigilctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigilctl"));
    // libtss2 logs its own failures to stderr; the CLI's message carries what matters.
    c.env("TSS2_LOG", "all+NONE").env_remove("VIGIL_TCTI");
    c
}

pub fn run(args: &[&str]) -> Output {
    vigilctl().args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs vigilctl, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "vigilctl {args:?} failed ({}):\n{}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

pub fn ok_json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("vigilctl {args:?}: {e}:\n{out}"))
}

/// Runs vigilctl, asserts a failure with a readable message (no panic, no usage dump only) that
/// contains every one of `needles`, and returns stderr.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    vigil_testkit::procs::assert_failed(&run(args), needles)
}

/// The subject of the keys the tests make.
#[allow(dead_code)] // used by keys.rs, not by every test crate that shares this module
pub const NAME: &str = "gw.vigil.test";
