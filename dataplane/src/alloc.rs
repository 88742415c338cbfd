//! The allocator Vigil's daemon runs with, and how it is tuned.

/// Each request allocates and frees dozens of small blocks (heads, header maps, TLS and body
/// buffers); mimalloc's per-thread free lists serve them with less CPU than glibc's malloc.
pub type Allocator = mimalloc::MiMalloc;

/// How long memory the process freed stays committed before mimalloc gives it back to the
/// OS. Under connection churn, mimalloc's default (1 s) hands back pages that the next
/// connections fault in and the kernel zeroes again; at 10 s, perf/tls measured about 8% less
/// CPU per full TLS handshake. Memory freed after a burst still goes back, 10 s later.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v3), which the bindings
/// do not name; the test below holds it to the option it means.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies Vigil's allocator options; call it first thing in `main`. It takes effect at once
/// for memory freed from then on, on every thread.
pub fn tune() {
    // SAFETY: mi_option_set stores a value in mimalloc's option table; it takes any value for
    // an option index below `_mi_option_last`, at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_sets_the_purge_delay() {
        // SAFETY: reads mimalloc's option table; any option index below `_mi_option_last`.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc v3's default purge delay (unless the environment sets one): had the index
        // moved to another option, its default would differ.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1_000);
        }
        tune();
        assert_eq!(get(), PURGE_DELAY_MS);
    }
}
