//! The standard `process_*` metrics, read from `/proc/self` at scrape time (Linux).

use std::fmt;

use super::exposition::Exposition;

/// Clock ticks per second and page size, as the kernel reports them.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf(3) only reads a constant of the running system.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

/// `(utime + stime ticks, start time ticks since boot, vsize bytes, rss pages)` from
/// `/proc/self/stat`.
fn stat() -> Option<(u64, u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, so man field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((num(14)? + num(15)?, num(22)?, num(23)?, num(24)?))
}

fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct passed by pointer, which lives on this stack.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    ok.then_some(lim.rlim_cur)
}

/// Writes the process families; a value that cannot be read is left out.
pub fn write(e: &mut Exposition<'_, '_>) -> fmt::Result {
    let ticks = sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64;
    let page = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
    if let Some((cpu, start, vsize, rss)) = stat() {
        e.counter_f64(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            cpu as f64 / ticks,
        )?;
        e.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            i64::try_from(rss.saturating_mul(page)).unwrap_or(i64::MAX),
        )?;
        e.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            i64::try_from(vsize).unwrap_or(i64::MAX),
        )?;
        if let Some(bt) = boot_time() {
            e.gauge_f64(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                bt as f64 + start as f64 / ticks,
            )?;
        }
    }
    if let Some(n) = open_fds() {
        e.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            i64::try_from(n).unwrap_or(i64::MAX),
        )?;
    }
    if let Some(n) = max_fds() {
        e.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            i64::try_from(n).unwrap_or(i64::MAX),
        )?;
    }
    Ok(())
}
