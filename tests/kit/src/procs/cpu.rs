//! CPUs for benchmarks: pinning a process tree to one CPU (so the load generator and the servers
//! never share one), what a process is allowed to run on, and the CPU time a child used, so a
//! run can prove its load generator was not the limit.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Pins every thread of `pid` and of all its descendants to `cpu`. Threads and processes they
/// start later inherit the affinity of the one that starts them.
pub fn pin_tree(pid: u32, cpu: usize) -> Result<()> {
    pin_tree_to(pid, &[cpu])
}

/// Lets every thread of `pid` and of all its descendants run on `cpus` (and only there).
pub fn pin_tree_to(pid: u32, cpus: &[usize]) -> Result<()> {
    for task in tasks(pid)? {
        pin_task(task, cpus)?;
    }
    for child in children(pid) {
        pin_tree_to(child, cpus)?;
    }
    Ok(())
}

/// Pins the calling thread (and what it starts from now on) to `cpu`.
pub fn pin_self(cpu: usize) -> Result<()> {
    pin_task(0, &[cpu])
}

fn pin_task(tid: u32, cpus: &[usize]) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpus.is_empty() {
        bail!("pinning task {tid}: no CPU given");
    }
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            bail!("CPU {cpu} is out of range");
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let tid = libc::pid_t::try_from(tid)?;
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes from a valid set.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "pinning task {tid} to CPUs {cpus:?}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn tasks(pid: u32) -> Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        if let Some(tid) = e?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = tasks(pid) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/children"));
        out.extend(
            text.unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

/// The CPUs `pid` may run on, as the kernel lists them (`1`, `0-1`).
pub fn allowed(pid: u32) -> Result<String> {
    super::status_field(pid, "Cpus_allowed_list")
}

/// User plus system CPU time of a live process (all its threads), in seconds, from
/// `/proc/PID/stat` (utime + stime, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    let tick = |i: usize| -> Result<f64> {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64)
            .with_context(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    Ok((tick(14)? + tick(15)?) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User plus system CPU time, in seconds, of every child of this process that has been waited
/// for (`getrusage(RUSAGE_CHILDREN)`): the difference over a span in which only load
/// generators ended is what they used.
pub fn reaped_children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data; all-zero is valid and getrusage overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage through a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return f64::NAN;
    }
    timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime)
}

fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// A command run to the end with its CPU use measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub stdout: String,
    /// User + system CPU time of the process and its threads, seconds.
    pub cpu_s: f64,
    /// Wall time from start to exit, seconds.
    pub wall_s: f64,
}

impl Measured {
    /// CPU time over wall time, in percent of one CPU.
    pub fn cpu_percent(&self) -> f64 {
        if self.wall_s > 0.0 {
            100.0 * self.cpu_s / self.wall_s
        } else {
            f64::NAN
        }
    }
}

/// Runs `cmd` to the end with stdout captured (stderr dropped), pinned to `cpu` from its first
/// instruction, and measures its CPU time from the kernel's own accounting of the reaped child
/// (`wait4`'s rusage), so nothing of the run is missed. Fails if the command fails.
pub fn run_measured(cmd: &mut Command, cpu: Option<usize>) -> Result<Measured> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let pid = child.id();
    if let Some(cpu) = cpu {
        // The child may have started threads already: pin them all. A child that exits
        // before this is not an error of the pinning.
        if let Err(e) = pin_tree(pid, cpu)
            && std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is valid and wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let raw = libc::pid_t::try_from(pid)?;
    // SAFETY: wait4 on our own unreaped child, writing through valid pointers. `child` is not
    // waited on afterwards (std does not wait on drop), so the PID is reaped exactly once.
    let rc = unsafe { libc::wait4(raw, &mut status, 0, &mut ru) };
    let wall_s = start.elapsed().as_secs_f64();
    if rc != raw {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{program} failed (status {status:#x}): {stdout}");
    }
    Ok(Measured {
        stdout,
        cpu_s: timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime),
        wall_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_is_measured_and_pinned() -> Result<()> {
        let m = run_measured(
            Command::new("sh").args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done",
            ]),
            Some(0),
        )?;
        assert_eq!(m.stdout, "done\n");
        assert!(m.cpu_s > 0.0 && m.wall_s >= m.cpu_s * 0.5, "{m:?}");
        assert!(m.cpu_percent() > 10.0, "{m:?}");
        let idle = run_measured(Command::new("sleep").arg("0.2"), None)?;
        assert!(idle.cpu_percent() < 50.0, "{idle:?}");
        let before = reaped_children_cpu_seconds();
        Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .status()?;
        assert!(reaped_children_cpu_seconds() > before);
        assert!(run_measured(&mut Command::new("false"), None).is_err());
        Ok(())
    }

    #[test]
    fn a_tree_is_pinned_and_its_cpu_time_read() -> Result<()> {
        let mut c = Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .stdin(Stdio::null())
            .spawn()?;
        let pid = c.id();
        std::thread::sleep(std::time::Duration::from_millis(100));
        pin_tree(pid, 0)?;
        assert_eq!(allowed(pid)?, "0");
        let kids = children(pid);
        assert!(!kids.is_empty());
        for &child in &kids {
            assert_eq!(allowed(child)?, "0");
        }
        assert!(cpu_seconds(pid)? >= 0.0);
        for child in kids {
            // SAFETY: kill(2) on the sleep this test's shell started.
            unsafe { libc::kill(libc::pid_t::try_from(child)?, libc::SIGKILL) };
        }
        let _ = c.kill();
        let _ = c.wait();
        Ok(())
    }
}
