//! One client connection to hyper, configured as the gateway configures it, with the gateway's
//! raw framing tracker on the read path (`vigil_gateway::fuzzing`).
//!
//! Byte 0 steers the harness: bits 0-1 pick the server builder (1: ALPN http/1.1, 2: ALPN h2,
//! otherwise the preface decides), bits 2-7 the size of the client's writes (0: all at once).
//! The rest is what the client sends. Besides panics, the target fails when the framing
//! tracker's answer depends on read boundaries or when a connection does not end after the
//! client half-closes.

use std::panic::AssertUnwindSafe;

use vigil_gateway::GatewayConfig;
use vigil_gateway::fuzzing::{HttpHarness, Protocol, framing_is_split_invariant};

fn main() {
    // Paused time advances by itself whenever every task waits on a timer, so hyper's header
    // and keep-alive timeouts cost no wall-clock time. No worker threads: nothing to lose when
    // the fork server forks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let harness = HttpHarness::new(&GatewayConfig::default());
    // A panic aborts the process (afl's hook), so nothing observes a half-updated value.
    let (rt, harness) = (AssertUnwindSafe(rt), AssertUnwindSafe(harness));
    afl::fuzz!(|data: &[u8]| {
        let Some((&ctl, input)) = data.split_first() else {
            return;
        };
        let protocol = match ctl & 3 {
            1 => Protocol::Http1,
            2 => Protocol::Http2,
            _ => Protocol::Auto,
        };
        let chunk = usize::from(ctl >> 2);
        if protocol != Protocol::Http2 {
            framing_is_split_invariant(input, chunk);
        }
        let report = rt.block_on(harness.serve(protocol, chunk, input));
        assert!(
            report.finished,
            "connection still open after the client half-closed"
        );
    });
}
