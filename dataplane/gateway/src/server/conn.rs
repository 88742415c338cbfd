//! Accepting connections: the accept loop, the connection budget with load shedding, the TLS
//! handshake, and serving HTTP on a connection until it ends, idles out or is drained.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::io::{Activity, Tracked};
use super::quiet::Quiet;
use super::refusal;
use super::service::Handler;
use crate::budget::ConnGuard;
use crate::pipeline::{ConnInfo, TlsInfo};
use crate::shared::{RunLevel, Shared};
use crate::tls;

/// Connections over budget that are still answered 503 (the rest are closed at once): enough
/// for clients to see why, bounded so shedding itself cannot exhaust the box.
const MAX_SHED_IN_PROGRESS: usize = 128;

/// Accepts until the run level leaves `Running`. Each connection (TLS handshake included)
/// runs in its own task so a slow handshake or signer never delays accepting others.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: bool,
    mut level: watch::Receiver<RunLevel>,
) {
    let shedding = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = level.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the error is transient.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        shared.metrics.worker_accepted(super::workers::current());
        let (guard, open) = shared.conns.enter(&shared.metrics);
        let max = shared.state.load().cfg.listener.max_connections;
        let shed = open > max;
        if shed {
            shared
                .metrics
                .shed_connections
                .fetch_add(1, Ordering::Relaxed);
            if shedding.fetch_add(1, Ordering::AcqRel) >= MAX_SHED_IN_PROGRESS {
                shedding.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
        }
        // A worker thread signs inline (it has no other thread to hand its tasks to while it
        // waits), so a handshake the TPM signs would stall the worker's other connections: such
        // a connection is served on the daemon's runtime, which signs under block_in_place.
        let handoff = tls && super::workers::current() != 0 && shared.resolver.signs_in_tpm();
        let runtime = handoff.then(|| shared.runtime.clone());
        let shared = shared.clone();
        let shedding = shedding.clone();
        let level = level.clone();
        let shed_slot = shed.then(|| shedding.clone());
        let served = move |tcp: TcpStream| async move {
            serve(shared, tcp, peer, tls, shed, level, guard).await;
            if shed {
                shedding.fetch_sub(1, Ordering::AcqRel);
            }
        };
        let Some(runtime) = runtime else {
            tokio::spawn(served(tcp));
            continue;
        };
        // The socket moves from this worker's reactor to the daemon runtime's with the task.
        let moved = tcp.into_std();
        runtime.spawn(async move {
            match moved.and_then(TcpStream::from_std) {
                Ok(tcp) => served(tcp).await,
                Err(e) => {
                    // Dropping `served` closes the connection and gives its budget back.
                    tracing::warn!(error = %e, "a connection could not move to the daemon's runtime");
                    if let Some(s) = shed_slot {
                        s.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        });
    }
}

async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: bool,
    shed: bool,
    level: watch::Receiver<RunLevel>,
    _guard: ConnGuard,
) {
    let state = shared.state.load_full();
    if !tls {
        let conn = Arc::new(ConnInfo::new(peer, None));
        return serve_http(shared, tcp, conn, None, shed, level).await;
    }
    // The ClientHello's bytes are kept as they pass, for the client's JA4 fingerprint; the
    // session tickets wait for the connection's first response (`tls::tickets`).
    let io = tls::ja4::Recording::new(tls::tickets::Deferred::new(tcp));
    let handshake = state.tls.accept(io).into_fallible();
    // Handshake timeout wraps only the handshake: a stalled client must not hold a connection
    // slot before HTTP (and its own timeouts) even start.
    match tokio::time::timeout(state.cfg.listener.handshake_timeout, handshake).await {
        Err(_) => shared.metrics.handshake_failed("timeout"),
        Ok(Err((e, mut io))) => {
            shared.metrics.handshake_failed(tls::failure_reason(&e));
            // An alert written after the client's first encrypted record (certificate_required
            // or a refused certificate under mTLS, a bad Finished) was held as the tickets
            // would have been: it goes out now, so the client learns why. A few dozen bytes
            // into a socket nothing else was written to since the hello flight.
            let release = io.get_mut().release();
            let _ = tokio::time::timeout(Duration::from_secs(1), release).await;
        }
        Ok(Ok(mut stream)) => {
            shared.metrics.handshakes.fetch_add(1, Ordering::Relaxed);
            let recording = stream.get_mut().0;
            recording.get_mut().handshake_done();
            let ja4 = recording.take_ja4();
            let info = TlsInfo {
                ja4,
                ..tls::info(stream.get_ref().1)
            };
            let alpn = info.alpn.clone();
            let conn = Arc::new(ConnInfo::new(peer, Some(info)));
            serve_http(shared, stream, conn, alpn, shed, level).await;
        }
    }
}

async fn serve_http<I>(
    shared: Arc<Shared>,
    io: I,
    conn: Arc<ConnInfo>,
    alpn: Option<String>,
    shed: bool,
    mut level: watch::Receiver<RunLevel>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = shared.state.load_full();
    let idle = state.cfg.listener.idle_timeout;
    let activity = Activity::new();
    activity.touch();
    let conn_info = conn.clone();
    let handler = Handler {
        shared: shared.clone(),
        conn,
        activity: activity.clone(),
        shed,
    };
    let svc = service_fn(move |req| handler.clone().handle(req));
    let builder = match alpn.as_deref() {
        Some("h2") => &state.servers.h2,
        Some(_) => &state.servers.h1,
        None => &state.servers.auto,
    };
    let http1 = alpn.as_deref() != Some("h2");
    let io = TokioIo::new(Tracked::new(io, activity.clone(), http1));
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let l = &state.cfg.listener;
    let mut draining = false;
    let period = idle.min(l.header_timeout).min(l.send_timeout) / 4;
    let mut tick =
        tokio::time::interval(period.clamp(Duration::from_millis(50), Duration::from_secs(1)));
    let ended = loop {
        let side = {
            // The run level and the tick are polled only when one of them woke the task, not
            // on every wake-up of the connection (see `quiet`).
            let side = std::pin::pin!(async {
                tokio::select! {
                    biased;
                    changed = level.changed() => Side::Level(changed.is_ok()),
                    _ = tick.tick() => Side::Tick,
                }
            });
            tokio::select! {
                biased;
                r = conn.as_mut() => Err(r),
                side = Quiet::new(side) => Ok(side),
            }
        };
        let side = match side {
            Err(r) => break r.err().map(Ended::Error),
            Ok(side) => side,
        };
        match side {
            Side::Level(ok) => {
                let now = *level.borrow_and_update();
                if !ok || now == RunLevel::Abort {
                    break None;
                }
                if !draining {
                    // Finish in-flight requests, refuse new ones, then close.
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
            Side::Tick => {
                // The first request's head is due header_timeout after the handshake, whatever
                // the protocol: an idle connection must not hold a slot for idle_timeout.
                if activity.requests.load(Ordering::Acquire) == 0
                    && activity.age() >= l.header_timeout
                {
                    break Some(Ended::Timeout("header_timeout"));
                }
                // On HTTP/1.1 every later head is due header_timeout after the response before
                // it: a keep-alive connection that goes quiet, or a head trickled in byte by
                // byte (slowloris), is closed at the same deadline.
                if activity
                    .head_wait(http1)
                    .is_some_and(|w| w >= l.header_timeout)
                {
                    break Some(Ended::Timeout("header_timeout"));
                }
                // A client that takes nothing of what is sent to it (a full socket, or an
                // HTTP/2 window of zero) loses the connection and the budget it held.
                if activity.send_stalled_for() >= l.send_timeout {
                    break Some(Ended::Timeout("send_timeout"));
                }
                let busy = activity.inflight.load(Ordering::Acquire) > 0;
                if !draining && !busy && activity.idle_for() >= idle {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
    };
    if let Some(ended) = ended {
        record_end(&shared, &conn_info, &activity, &ended);
    }
}

/// What woke a connection's task besides its traffic.
enum Side {
    /// The run level changed (`false`: its sender is gone).
    Level(bool),
    /// The timeout check's tick.
    Tick,
}

/// Why the gateway's side of a connection ended early.
enum Ended {
    /// hyper returned an error (a parse error it answered itself, a protocol error...).
    Error(Box<dyn std::error::Error + Send + Sync>),
    /// The gateway closed it on one of its timeouts.
    Timeout(&'static str),
}

/// Counts how a connection ended; a refused request head also gets an audit line, like any
/// other refusal. A connection that sent nothing at all (a port probe, a preconnect) is only
/// counted.
fn record_end(shared: &Shared, conn: &ConnInfo, activity: &Activity, ended: &Ended) {
    let refusal = match ended {
        Ended::Error(e) => {
            let r = refusal::classify(e.as_ref(), activity.framing_fault());
            if r.is_none() {
                shared.metrics.connection_error(refusal::label(e.as_ref()));
            }
            r
        }
        Ended::Timeout(reason) => Some(refusal::Refusal {
            status: if *reason == "header_timeout" { 408 } else { 0 },
            reason,
        }),
    };
    let Some(r) = refusal else { return };
    if r.reason == "header_timeout" && !activity.head_partial() {
        // Nothing of a request had arrived: a keep-alive connection or a port probe going
        // quiet is no refusal of a request.
        shared.metrics.connection_error("idle_before_request");
        return;
    }
    shared.metrics.connection_error(r.reason);
    if r.status == 0 {
        // The send timeout ends a connection whose requests were already answered and audited.
        return;
    }
    shared.metrics.record_request("-", r.status, r.reason, 0);
    shared.audit.record(crate::audit::AuditEvent {
        time: crate::clock::rfc3339_now(),
        request_id: shared.ids.next_id(),
        client: conn.client_text.clone(),
        tls: conn.tls.as_ref().map(|t| t.version.as_str()),
        ja4: conn.tls.as_ref().and_then(|t| t.ja4.clone()),
        identity: None,
        subject: None,
        auth: None,
        method: "-".to_owned(),
        path: "-".to_owned(),
        route: None,
        upstream: None,
        status: r.status,
        reason: r.reason,
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        headers: Default::default(),
        patches: Vec::new(),
        detections: Vec::new(),
        bot: None,
        response_data: Vec::new(),
        response_violation: None,
    });
}
