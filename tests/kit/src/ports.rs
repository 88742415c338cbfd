//! Loopback ports: one free now, two free side by side, and waiting for a listener.

use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// A loopback port free right now (bound, then released), for a listener started next.
///
/// From below the kernel's ephemeral range, as [`free_port_pair`] explains: a port `bind(0)`
/// handed out is one the kernel may give the next outgoing `connect()` of a load test running
/// beside, before the listener binds it.
pub fn free_port() -> Result<u16> {
    free_ports(1)
}

/// Two free consecutive loopback ports (`port`, `port + 1`), for swtpm's server and control
/// sockets.
///
/// Candidates come from below the kernel's ephemeral range (32768 and up by default), not from
/// `bind(0)`: Linux hands out odd ports to `bind(0)` and even ones to `connect()`, so after a
/// load test has left thousands of connections in TIME_WAIT, `port + 1` of a `bind(0)` port is
/// almost always taken.
pub fn free_port_pair() -> Result<u16> {
    free_ports(2)
}

/// The first of `n` consecutive loopback ports free right now, from below the ephemeral range.
fn free_ports(n: u16) -> Result<u16> {
    const LOW: u64 = 10_000;
    const SPAN: u64 = 22_000;
    // RandomState is seeded per process and per instance: parallel tests start apart.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for i in 0..SPAN {
        let Ok(port) = u16::try_from(LOW + seed.wrapping_add(i * 7919) % SPAN) else {
            continue;
        };
        let free = (0..n).all(|k| TcpListener::bind(("127.0.0.1", port + k)).is_ok());
        if free {
            return Ok(port);
        }
    }
    bail!(
        "no {n} free consecutive loopback ports between {LOW} and {}",
        LOW + SPAN
    )
}

/// Waits until something accepts on 127.0.0.1:`port`, for at most `within`; `what` names the
/// server in the error.
pub fn wait_port(port: u16, within: Duration, what: &str) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("{what} did not listen on port {port} within {within:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_free_side_by_side_and_waits_see_listeners() -> Result<()> {
        let port = free_port_pair()?;
        let first = TcpListener::bind(("127.0.0.1", port))?;
        let _second = TcpListener::bind(("127.0.0.1", port + 1))?;
        wait_port(port, Duration::from_secs(1), "the first")?;
        drop(first);
        let closed = free_port()?;
        let err = wait_port(closed, Duration::from_millis(50), "nothing");
        assert!(err.is_err_and(|e| e.to_string().contains("nothing did not listen")));
        Ok(())
    }
}
