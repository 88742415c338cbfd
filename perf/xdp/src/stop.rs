//! Ctrl-C and SIGTERM stop the run between steps instead of killing the process, so the Drop
//! guards still remove the namespace, the XDP attachment and the nftables table.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the cast is
        // how libc expects a handler function to be passed.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// An error to return once a stop was asked for.
pub fn check() -> anyhow::Result<()> {
    if requested() {
        anyhow::bail!("interrupted; cleaning up");
    }
    Ok(())
}
