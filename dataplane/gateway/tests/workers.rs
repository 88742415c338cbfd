//! `listener.workers`: worker threads with listeners of their own (SO_REUSEPORT) and
//! single-threaded runtimes serve both listeners, share the connections, finish a request in
//! flight at shutdown and are gone after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::clients::{client_config, curl_raw, exchange, status_of, tls_connect};
use common::upstream::Upstream;
use common::{Gw, config};
use tokio::net::TcpStream;
use vigil_testkit::pki::Pki;

/// Names of this process's threads that are gateway workers, sorted.
fn worker_threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("vigil-worker-"))
        .collect();
    names.sort();
    names
}

/// Waits (bounded) until the worker threads are `want`: a thread names itself once it runs.
async fn wait_threads(want: &[&str]) {
    for _ in 0..100 {
        if worker_threads() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(worker_threads(), want);
}

const GET: &[u8] = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// `vigil_gateway_worker_connections_total` per worker, from `/metrics`.
async fn per_worker(metrics: std::net::SocketAddr, workers: usize) -> Vec<u64> {
    let text = curl_raw(&[&format!("http://{metrics}/metrics")]).await.body;
    (1..=workers)
        .map(|w| {
            let prefix = format!("vigil_gateway_worker_connections_total{{worker=\"{w}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
                .parse()
                .unwrap()
        })
        .collect()
}

/// A gateway with two workers in front of the upstream at `url`, its files in `dir`, once both
/// worker threads run; and the PKI its clients trust.
async fn two_workers(dir: &std::path::Path, url: String) -> (Pki, Gw) {
    let pki = Pki::write(dir).unwrap();
    let mut cfg = config(dir, &pki, &[url]);
    cfg.listener.workers = 2;
    let gw = Gw::start(cfg).await;
    wait_threads(&["vigil-worker-1", "vigil-worker-2"]).await;
    (pki, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_serve_both_listeners_share_connections_and_drain_on_shutdown() {
    workers_cannot_change_on_reload_and_an_absurd_count_is_refused().await;
    each_worker_sends_on_an_h2c_connection_of_its_own().await;
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start("a").await;
    let (pki, gw) = two_workers(dir.path(), up.url()).await;

    // One connection per request, on the TLS listener and on the plain one: the kernel hashes
    // each connection's addresses to pick a worker's socket.
    let tls = client_config(&pki, &["http/1.1"], None);
    for _ in 0..20 {
        let mut s = tls_connect(gw.https, tls.clone()).await.unwrap();
        let raw = exchange(&mut s, GET, Duration::from_secs(3)).await;
        assert_eq!(status_of(&raw), 200, "{raw}");
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect(gw.http).await.unwrap();
        let raw = exchange(&mut s, GET, Duration::from_secs(3)).await;
        assert_eq!(status_of(&raw), 200, "{raw}");
    }
    let counts = per_worker(gw.metrics, 2).await;
    assert_eq!(counts.iter().sum::<u64>(), 40, "{counts:?}");
    // 40 connections all hashed to one of two sockets: about one chance in 2^39.
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");

    // A request in flight when the gateway stops is answered; then the workers are gone and
    // nothing listens.
    let mut slow = tls_connect(gw.https, tls.clone()).await.unwrap();
    let in_flight = tokio::spawn(async move {
        exchange(
            &mut slow,
            b"GET /echo?sleep_ms=400 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let https = gw.https;
    gw.stop().await;
    let raw = in_flight.await.unwrap();
    assert_eq!(status_of(&raw), 200, "{raw}");
    wait_threads(&[]).await;
    assert!(TcpStream::connect(https).await.is_err());
}

/// Each worker sends to an h2c upstream on a multiplexed connection of its own. (Part of the
/// test above, for the same reason.)
async fn each_worker_sends_on_an_h2c_connection_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start("a").await;
    let (_pki, gw) = two_workers(dir.path(), up.h2c_url()).await;
    // One connection per request, one after another.
    for _ in 0..32 {
        let mut s = TcpStream::connect(gw.http).await.unwrap();
        let raw = exchange(&mut s, GET, Duration::from_secs(3)).await;
        assert_eq!(status_of(&raw), 200, "{raw}");
        assert!(raw.contains(r#""version":"HTTP/2.0""#), "{raw}");
    }
    let counts = per_worker(gw.metrics, 2).await;
    // 32 connections all hashed to one of two sockets: about one chance in 2^31.
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    // A connection per worker, driven by that worker: not one shared by both (it would run on
    // whichever worker connected first), not one per request.
    assert_eq!(up.conns.load(Ordering::Relaxed), 2);
    gw.stop().await;
    wait_threads(&[]).await;
}

/// The count cannot change on reload, and an absurd one is refused. (Part of the test above:
/// the threads of two gateways in one process could not be told apart.)
async fn workers_cannot_change_on_reload_and_an_absurd_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.listener.workers = 1;
    let gw = Gw::start(cfg.clone()).await;
    wait_threads(&["vigil-worker-1"]).await;
    let mut more = cfg.clone();
    more.listener.workers = 2;
    let e = gw.get().reload(more).unwrap_err().to_string();
    assert!(
        e.contains("listener.workers cannot change on reload (running: 1, new: 2)"),
        "{e}"
    );
    gw.stop().await;
    wait_threads(&[]).await;

    // An address another listener holds is refused, SO_REUSEPORT or not: here a gateway
    // with workers, whose sockets would otherwise let a second one join in.
    let first = {
        let mut c = cfg.clone();
        c.listener.workers = 2;
        Gw::start(c).await
    };
    let mut second = cfg.clone();
    second.listener.workers = 2;
    second.listener.https = first.https;
    let keys = std::sync::Arc::new(vigil_hw::keys::FileKeyProvider::new(
        &second.tls.cert,
        &second.tls.key,
    ));
    let e = vigil_gateway::Gateway::start(second, keys)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "cannot listen on {} for listener.https",
            first.https
        )),
        "{e}"
    );
    first.stop().await;
    wait_threads(&[]).await;

    cfg.listener.workers = 100_000;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("listener.workers") && e.contains("100000 is more than 1024"),
        "{e}"
    );
}
