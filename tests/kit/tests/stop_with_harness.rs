//! A server a benchmark's `main` starts through `Proc::spawn` stops when the benchmark is killed
//! by PID (SIGKILL: no guard's drop runs). Its own `main`, not libtest's, so that the spawning
//! thread is the process's main thread, as in a benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_testkit::procs::Proc;

const HARNESS: &str = "VIGIL_TEST_HARNESS_CHILD";

/// Whether `pid` is gone or a zombie (dead, waiting for its new parent to reap it).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn main() {
    if std::env::var_os(HARNESS).is_some() {
        // The benchmark: starts a server from its main thread, says the server's PID, waits.
        let server = Proc::spawn(Command::new("sleep").arg("60")).expect("starting sleep");
        println!("{}", server.pid());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let mut harness = Command::new(std::env::current_exe().unwrap())
        .env(HARNESS, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(harness.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server: i32 = line
        .trim()
        .parse()
        .expect("the harness says its server's PID");
    assert!(!ended(server), "the server did not start");
    harness.kill().unwrap();
    harness.wait().unwrap();
    let t = Instant::now();
    while !ended(server) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = !ended(server);
    if left {
        // SAFETY: kill(2) on the server this test started (through the harness it killed).
        unsafe {
            libc::kill(server, libc::SIGKILL);
        }
    }
    assert!(!left, "the server outlived its killed harness by 5 s");
    println!("a killed harness's server stopped");
}
