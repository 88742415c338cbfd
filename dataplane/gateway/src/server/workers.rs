//! Thread per core (`listener.workers`). Each worker is a thread running a single-threaded
//! tokio runtime with listening sockets of its own on the gateway's addresses, bound with
//! `SO_REUSEPORT` so the kernel spreads new connections over the workers. A connection is
//! accepted, handshaken and served to its end by the worker that accepted it, and its upstream
//! connections come from that worker's share of the pool (its stack of HTTP/1.1 connections in
//! `upstream::h1`, its own h2c client in `upstream`): no task moves and
//! no wake-up crosses threads on the request path, as with nginx's workers or pingora's
//! per-thread runtimes. The daemon's own runtime keeps the rest (control socket, metrics,
//! audit writer, reloads, health checks).
//!
//! A worker could only sign a TLS handshake inline, holding up its other connections for the
//! signature: with a TPM-resident key (0.4 ms on swtpm, 40-70 ms on a discrete TPM) a worker
//! therefore hands each TLS connection it accepts to the daemon's runtime, which signs under
//! `block_in_place` (`conn::accept_loop`); plain-HTTP connections stay on the worker.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::conn;
use crate::error::GatewayError;
use crate::shared::{RunLevel, Shared};

/// Pending connections each listening socket queues (what `TcpListener::bind` asks for).
const BACKLOG: u32 = 1024;

/// How long a worker lets its last connections end after the gateway aborts them.
const ABORT_GRACE: Duration = Duration::from_secs(1);

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread is: 1 to `listener.workers`, 0 for any other thread.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Per-worker state (the upstream pools' idle connections and clients) is kept in one slot per
/// worker and one for the threads that are no worker, up to this many slots.
const MAX_SLOTS: usize = 64;

/// How many slots to keep for `workers` workers (see [`slot`]).
pub fn slots(workers: usize) -> usize {
    workers.saturating_add(1).min(MAX_SLOTS)
}

/// The calling thread's slot among `len` (workers beyond the last slot share them round).
pub fn slot(len: usize) -> usize {
    current() % len.max(1)
}

/// A worker before its thread starts: its runtime, and its listeners (registered with that
/// runtime) with whether each speaks TLS.
#[derive(Debug)]
pub struct Worker {
    rt: Runtime,
    listeners: Vec<(TcpListener, bool)>,
}

/// The bound workers and the addresses they listen on (port 0 resolved).
#[derive(Debug)]
pub struct Bound {
    pub workers: Vec<Worker>,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
}

/// A listening socket on `addr` that shares the address with the other workers' sockets,
/// registered with the runtime entered.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.set_reuseport(true)?;
    s.bind(addr)?;
    s.listen(BACKLOG)
}

/// Makes `n` workers' runtimes and listeners. The first worker binds the configured address;
/// with port 0 the others then bind the port it was given.
///
/// `SO_REUSEPORT` would also let these sockets join a listener that another process of the
/// same user already has on the address (a second vigild started by mistake), which would
/// then get part of the connections. A plain socket is bound to the address first, so that
/// an address in use is refused as it is without workers.
pub fn bind(n: usize, https: SocketAddr, http: Option<SocketAddr>) -> Result<Bound, GatewayError> {
    let mut at = [Some(https), http];
    let what = ["listener.https", "listener.http"];
    for (j, addr) in at.iter().enumerate() {
        if let Some(addr) = *addr
            && addr.port() != 0
        {
            std::net::TcpListener::bind(addr).map_err(|source| GatewayError::Bind {
                what: what[j],
                addr,
                source,
            })?;
        }
    }
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| GatewayError::Worker {
                worker: i + 1,
                source,
            })?;
        let mut listeners = Vec::with_capacity(2);
        {
            let _entered = rt.enter();
            for (j, slot) in at.iter_mut().enumerate() {
                let Some(addr) = *slot else { continue };
                let bind_err = |source| GatewayError::Bind {
                    what: what[j],
                    addr,
                    source,
                };
                let l = listen(addr).map_err(bind_err)?;
                *slot = Some(l.local_addr().map_err(bind_err)?);
                listeners.push((l, j == 0));
            }
        }
        workers.push(Worker { rt, listeners });
    }
    Ok(Bound {
        workers,
        https: at[0].unwrap_or(https),
        http: at[1],
    })
}

/// The running workers' threads.
#[derive(Debug, Default)]
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts a thread per worker. Each accepts until the run level leaves `Running`, serves
    /// the connections it holds until the level is `Abort` (or the gateway is dropped), gives
    /// them [`ABORT_GRACE`] to end, and stops.
    pub fn spawn(
        workers: Vec<Worker>,
        shared: &Arc<Shared>,
        level: &watch::Receiver<RunLevel>,
    ) -> Result<Workers, GatewayError> {
        let mut threads = Vec::with_capacity(workers.len());
        for (i, w) in workers.into_iter().enumerate() {
            let (shared, mut level) = (shared.clone(), level.clone());
            let thread = std::thread::Builder::new()
                .name(format!("vigil-worker-{}", i + 1))
                .spawn(move || {
                    WORKER.set(i + 1);
                    let Worker { rt, listeners } = w;
                    rt.block_on(async move {
                        for (l, tls) in listeners {
                            tokio::spawn(conn::accept_loop(shared.clone(), l, tls, level.clone()));
                        }
                        let _ = level.wait_for(|l| *l == RunLevel::Abort).await;
                        let _ = tokio::time::timeout(ABORT_GRACE, shared.conns.wait_zero()).await;
                    });
                })
                .map_err(|source| GatewayError::Worker {
                    worker: i + 1,
                    source,
                })?;
            threads.push(thread);
        }
        Ok(Workers { threads })
    }

    /// Waits for every worker thread to end (after the run level went to `Abort`).
    pub async fn join(self) {
        if self.threads.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in self.threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
