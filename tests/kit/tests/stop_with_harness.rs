//! A server a benchmark's `main` starts through `Proc::spawn` stops when the benchmark is killed
//! by PID (SIGKILL: no guard's drop runs). Its own `main`, not libtest's, so that the spawning
//! thread is the process's main thread, as in a benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil_testkit::procs::Proc;

const HARNESS: &str = "VIGIL_TEST_HARNESS_CHILD";

/// A handle on `pid` that stays with that process even once it is gone and its PID reused.
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a descriptor just opened, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap()) }
}

/// Whether the process behind `fd` has ended within `wait` (a pidfd is readable once it has).
fn ends_within(fd: &OwnedFd, wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap();
    // SAFETY: poll reads and writes one pollfd through a valid pointer.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
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
    // A guard: should this test fail before it kills the harness, the harness is stopped (and
    // its server with it).
    let mut harness = Proc::spawn(
        Command::new(std::env::current_exe().unwrap())
            .env(HARNESS, "1")
            .stdout(Stdio::piped()),
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(harness.child_mut().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line
        .trim()
        .parse()
        .expect("the harness says its server's PID");
    let server = pidfd(pid);
    assert!(!ends_within(&server, Duration::ZERO), "the server ended");
    harness.child_mut().kill().unwrap();
    let stopped = ends_within(&server, Duration::from_secs(5));
    if !stopped {
        // SAFETY: pidfd_send_signal signals the process behind the descriptor, the server
        // this test started, and no other even if its PID was reused.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                server.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    assert!(stopped, "the server outlived its killed harness by 5 s");
    println!("a killed harness's server stopped");
}
