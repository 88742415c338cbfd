//! The clocks the program and userspace share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads, so deadlines written
/// by userspace mean the same thing in the program.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converts a monotonic deadline into seconds since the epoch, for display.
pub fn deadline_to_unix(expires_ns: u64) -> u64 {
    let now_mono = monotonic_ns();
    let now = SystemTime::now();
    let at = if expires_ns >= now_mono {
        now + Duration::from_nanos(expires_ns - now_mono)
    } else {
        now - Duration::from_nanos(now_mono - expires_ns)
    };
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
