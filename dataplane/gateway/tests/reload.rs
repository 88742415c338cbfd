//! Hot reload under load (good and bad configs, zero failed requests), key rotation, and a
//! graceful shutdown that lets in-flight requests finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::clients::{client_config, curl, tls_connect};
use common::upstream::{TestBody, Upstream};
use common::{Gw, config};
use hyper_util::rt::{TokioExecutor, TokioIo};
use vigil_gateway::GatewayError;
use vigil_testkit::pki::Pki;

/// Sends requests on one TLS connection (h1 or h2) until `stop`; returns (ok, failed).
async fn load(
    addr: std::net::SocketAddr,
    pki: Arc<Pki>,
    h2: bool,
    until: Instant,
) -> (usize, usize) {
    let alpn: &[&str] = if h2 { &["h2"] } else { &["http/1.1"] };
    let tls = tls_connect(addr, client_config(&pki, alpn, None))
        .await
        .unwrap();
    let io = TokioIo::new(tls);
    let (mut ok, mut failed) = (0, 0);
    macro_rules! run {
        ($send:expr) => {
            for i in 0..5000u32 {
                if Instant::now() >= until {
                    break;
                }
                // Every fifth request lingers upstream so reloads land mid-request.
                let path = if i % 5 == 0 {
                    "/echo?sleep_ms=30"
                } else {
                    "/echo"
                };
                let req = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
                    .header("host", "localhost")
                    .body(TestBody::empty())
                    .unwrap();
                if $send.ready().await.is_err() {
                    failed += 1;
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(5), $send.send_request(req)).await {
                    Ok(Ok(resp)) if resp.status() == 200 => {
                        use http_body_util::BodyExt;
                        if resp.into_body().collect().await.is_ok() {
                            ok += 1
                        } else {
                            failed += 1
                        }
                    }
                    other => {
                        eprintln!("request {i} failed: {other:?}");
                        failed += 1
                    }
                }
            }
        };
    }
    if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        run!(send);
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        run!(send);
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_reloads_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::write(dir.path()).unwrap());
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let cfg = config(dir.path(), &pki, &[a.url()]);
    let gw = Gw::start(cfg.clone()).await;
    let until = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = [false, false, true]
        .into_iter()
        .map(|h2| tokio::spawn(load(gw.https, pki.clone(), h2, until)))
        .collect();
    let (mut good, mut bad) = (0, 0);
    let mut to_b = config(dir.path(), &pki, &[b.url()]);
    to_b.limits.max_header_count = 50;
    let mut broken = cfg.clone();
    broken.upstream[0].url = "ftp://127.0.0.1:1".to_owned();
    let mut moved = cfg.clone();
    moved.listener.https = "127.0.0.1:1".parse().unwrap();
    let mut i = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = if i % 2 == 0 {
            to_b.clone()
        } else {
            cfg.clone()
        };
        gw.get().reload(next).unwrap();
        good += 1;
        match gw.get().reload(broken.clone()) {
            Err(GatewayError::Config { source }) => assert_eq!(source.key, "upstream[0].url"),
            other => panic!("broken config accepted: {other:?}"),
        }
        assert!(matches!(
            gw.get().reload(moved.clone()),
            Err(GatewayError::NeedsRestart {
                key: "listener.https",
                ..
            })
        ));
        bad += 2;
        i += 1;
    }
    let mut total = 0;
    for c in clients {
        let (ok, failed) = c.await.unwrap();
        assert_eq!(failed, 0, "requests failed during reloads");
        total += ok;
    }
    assert!(total > 50, "only {total} requests ran");
    assert!(good >= 10);
    assert!(a.hits.load(Ordering::Relaxed) > 0 && b.hits.load(Ordering::Relaxed) > 0);
    let m = common::clients::curl_raw(&[&format!("http://{}/metrics", gw.metrics)]).await;
    assert!(
        m.body.contains(&format!(
            "vigil_gateway_reloads_total{{result=\"ok\"}} {good}"
        )),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(&format!(
            "vigil_gateway_reloads_total{{result=\"rejected\"}} {bad}"
        )),
        "{}",
        m.body
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_limits_and_rotated_key_to_new_requests_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let cfg = config(dir.path(), &pki, &[up.url()]);
    let gw = Gw::start(cfg.clone()).await;
    let cert_of = |s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    };
    let old = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    // A slow request in flight across the reload completes under the old config.
    let slow = tokio::spawn({
        let (ca, port) = (pki.ca.clone(), gw.https.port());
        async move {
            common::clients::curl_raw(&[
                "--cacert",
                &ca.display().to_string(),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                &format!("https://localhost:{port}/echo?sleep_ms=600"),
            ])
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Rotate: new key and certificate (same CA) written over the files, then reload.
    let dir2 = tempfile::tempdir().unwrap();
    let pki2 = Pki::write(dir2.path()).unwrap();
    std::fs::copy(&pki2.server_cert, &pki.server_cert).unwrap();
    std::fs::copy(&pki2.server_key, &pki.server_key).unwrap();
    let mut tighter = cfg.clone();
    tighter.limits.max_uri_bytes = 10;
    gw.get().reload(tighter).unwrap();
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(
        curl(&pki2, gw.https, "/echo/too/long/now", &[])
            .await
            .status,
        414
    );
    let new = tls_connect(gw.https, client_config(&pki2, &["http/1.1"], None))
        .await
        .unwrap();
    assert_ne!(cert_of(&old), cert_of(&new));
    // Connections made before the rotation keep working.
    let mut old = old;
    let raw = common::clients::exchange(
        &mut old,
        b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(common::clients::status_of(&raw), 200, "{raw}");
    // A key file that does not match its certificate is refused; the old key keeps serving.
    std::fs::copy(&pki.client_key, &pki.server_key).unwrap();
    assert!(matches!(
        gw.get().reload(cfg),
        Err(GatewayError::Keys { .. })
    ));
    assert!(
        tls_connect(gw.https, client_config(&pki2, &["http/1.1"], None))
            .await
            .is_ok()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let done = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let (ca, port, done) = (pki.ca.clone(), gw.https.port(), done.clone());
        async move {
            let r = common::clients::curl_raw(&[
                "--cacert",
                &ca.display().to_string(),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                &format!("https://localhost:{port}/echo?sleep_ms=700"),
            ])
            .await;
            done.fetch_add(1, Ordering::Relaxed);
            r
        }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    gw.gw.take().unwrap().shutdown(Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "drain waited {:?}",
        t.elapsed()
    );
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(done.load(Ordering::Relaxed), 1);
    assert!(
        tokio::net::TcpStream::connect(gw.https).await.is_err(),
        "still accepting"
    );
    // Every decision was flushed to the audit log before shutdown returned.
    let lines = common::audit_lines(&dir.path().join("audit.log"), 1).await;
    assert_eq!(lines[0]["status"], 200);
}
