//! Child processes a test or a benchmark run needs (peers, load generators, the gateway in a
//! process of its own), each behind a guard that stops it by PID when dropped, so an aborted
//! run leaves nothing behind.

pub mod cpu;
pub mod envoy;
pub mod nginx;

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process stopped on drop: SIGTERM, then SIGKILL after 3 s.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// Spawns `cmd` with stdin closed. Spawned on the process's main thread (a benchmark's
    /// `main`), the child is also stopped (SIGTERM) when this process ends without running
    /// the guard's drop: a harness killed by PID leaves no server behind.
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        stop_with_main_thread(cmd);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Self::new(child))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// CPU time the whole process (every thread, live or exited) has used, in ns.
    pub fn cpu_ns(&self) -> Result<u64> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: clock_getcpuclockid writes one clockid_t through a valid pointer.
        let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
        if rc != 0 {
            bail!("clock_getcpuclockid({pid}): error {rc}");
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            bail!(
                "clock_gettime(cpu clock of {pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(u64::try_from(ts.tv_sec)? * 1_000_000_000 + u64::try_from(ts.tv_nsec)?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on a PID this process spawned and has not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `cmd`'s child receive SIGTERM when this process ends, if called on its main thread.
///
/// Linux sends `PR_SET_PDEATHSIG`'s signal when the *thread* that started the child ends, so
/// only the main thread, which ends with the process, ties a child this way. Elsewhere (a
/// test's thread, a runtime's worker) nothing changes, and the child is stopped by its guard.
fn stop_with_main_thread(cmd: &mut Command) {
    // SAFETY: getpid and gettid only return the caller's ids.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    if pid == tid {
        stop_with_this_thread(cmd);
    }
}

/// Makes `cmd`'s child receive SIGTERM when the calling thread ends, the process included
/// (even by SIGKILL), for a child that must not outlive the thread that waits for it or holds
/// its guard: a VM a test boots and waits on, which a killed test binary would otherwise leave
/// running. Not for a child another thread goes on using after this one ends. `timeout`, which
/// puts itself in a process group of its own, passes the signal on to the command it runs.
pub fn stop_with_this_thread(cmd: &mut Command) {
    // SAFETY: getpid only returns the caller's id.
    let pid = unsafe { libc::getpid() };
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls may be made: prctl and getppid are, and nothing allocates (both errors are raw OS
    // errors).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // This process ended before the prctl: no signal will come.
            if libc::getppid() != pid {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Runs `cmd` to the end with `stdin` as its input; its stdout, or the command line and its
/// stderr as the error.
pub fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .with_context(|| format!("writing to {program}"))?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Asserts that a command failed the way a user should see it fail: a non-zero exit, no
/// panic, and a message holding every one of `needles`; returns that message (stderr).
///
/// Panics otherwise, for tests.
pub fn assert_failed(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure, got success:\n{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "panic:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in:\n{err}");
    }
    err
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_field(pid, "VmRSS")?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("bad VmRSS for {pid}"))
}

/// The value of `key` in `/proc/PID/status`, trimmed.
pub fn status_field(pid: u32, key: &str) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("no {key} for {pid}"))
}

/// Spawns `cmd`, which announces itself with one line `READY <port>...` on stdout (see
/// [`serve_ready`]), and returns it with those ports.
pub fn spawn_ready(cmd: &mut Command) -> Result<(Proc, Vec<u16>)> {
    let mut p = Proc::spawn(cmd.stdout(Stdio::piped()))?;
    let out = p.child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let Some(ports) = line.strip_prefix("READY ") else {
        bail!("the child did not start: {line:?}");
    };
    let ports = ports
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<u16>, _>>()
        .with_context(|| format!("bad READY line {line:?}"))?;
    Ok((p, ports))
}

/// The child side of [`spawn_ready`]: runs `start` on a runtime with `workers` threads (0: a
/// current-thread runtime, everything on the calling thread), prints `READY` and the ports it
/// returns, then keeps what it started (`G`) serving until the parent kills this process.
pub fn serve_ready<G>(
    workers: usize,
    start: impl Future<Output = Result<(G, Vec<u16>)>>,
) -> Result<()> {
    let rt = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let (_serving, ports) = start.await?;
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut out = std::io::stdout();
        writeln!(out, "READY {}", ports.join(" "))?;
        out.flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_tied_to_its_thread_stops_when_the_thread_ends() -> Result<()> {
        use std::os::unix::process::ExitStatusExt;
        let spawned = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            stop_with_this_thread(&mut cmd);
            cmd.spawn()
        });
        let Ok(child) = spawned.join() else {
            bail!("the spawning thread panicked")
        };
        let mut child = child?;
        let t = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the child outlived the thread that started it by 5 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        Ok(())
    }

    #[test]
    fn ready_lines_carry_ports_and_guards_stop_children() -> Result<()> {
        let (p, ports) =
            spawn_ready(Command::new("sh").args(["-c", "echo READY 1 2; exec sleep 30"]))?;
        assert_eq!(ports, vec![1, 2]);
        assert!(rss_kib(p.pid())? > 0);
        let pid = p.pid();
        let t = Instant::now();
        drop(p);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "SIGTERM was not enough"
        );
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(spawn_ready(&mut Command::new("true")).is_err());
        Ok(())
    }

    #[test]
    fn outputs_and_failures_say_what_ran() -> Result<()> {
        assert_eq!(output(&mut Command::new("cat"), Some(b"in"))?, b"in");
        let sh = |script: &str| Command::new("sh").args(["-c", script]).output();
        let err = output(Command::new("sh").args(["-c", "echo no >&2; exit 3"]), None);
        assert!(err.is_err_and(|e| e.to_string() == "sh -c echo no >&2; exit 3: no"));
        let msg = assert_failed(&sh("echo 'bad --flag' >&2; exit 2")?, &["bad", "--flag"]);
        assert_eq!(msg, "bad --flag\n");
        let ok = std::panic::catch_unwind(|| {
            assert_failed(&sh("true").unwrap_or_else(|e| panic!("{e}")), &[])
        });
        assert!(ok.is_err(), "a success passed as a failure");
        Ok(())
    }
}
