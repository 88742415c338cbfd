//! Limits, methods, request smuggling and slowloris, with raw bytes over the plain listener and
//! over TLS, plus connection and request shedding and failing closed without a policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::clients::{client_config, curl, exchange, raw_both, status_of, tls_connect};
use common::upstream::Upstream;
use common::{Gw, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_testkit::pki::Pki;

fn req(extra: &str, body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n{body}")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_methods_answer_with_their_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.limits.max_header_count = 20;
    cfg.limits.max_header_bytes = 2048;
    cfg.limits.max_uri_bytes = 256;
    cfg.limits.max_body_bytes = 1000;
    let gw = Gw::start(cfg).await;
    let many: String = (0..25).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let big = format!("x-big: {}\r\n", "b".repeat(3000));
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "u".repeat(300)
    );
    let chunked_big: String = (0..20)
        .map(|_| format!("64\r\n{}\r\n", "c".repeat(100)))
        .collect::<String>()
        + "0\r\n\r\n";
    let chunked_ok = "a\r\n0123456789\r\n0\r\n\r\n";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("header count", req(&many, ""), 431, "too_many_headers"),
        ("header bytes", req(&big, ""), 431, "headers_too_large"),
        ("uri", long_uri.into_bytes(), 414, "uri_too_long"),
        (
            "content-length",
            req("Content-Length: 5000\r\n", ""),
            413,
            "body_too_large",
        ),
        (
            "streamed body",
            req("Transfer-Encoding: chunked\r\n", &chunked_big),
            413,
            "body_too_large",
        ),
        (
            "trace",
            b"TRACE / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "connect",
            b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            "small chunked body",
            req("Transfer-Encoding: chunked\r\n", chunked_ok),
            200,
            "\"body_len\":10",
        ),
    ];
    for (name, bytes, status, reason) in cases {
        for (via, raw) in ["plain", "tls"]
            .iter()
            .zip(raw_both(&pki, gw.http, gw.https, &bytes).await)
        {
            assert_eq!(status_of(&raw), status, "{name} via {via}: {raw}");
            assert!(raw.contains(reason), "{name} via {via}: {raw}");
            if status == 405 {
                assert!(raw.to_ascii_lowercase().contains("allow: get"), "{raw}");
            }
            if status != 200 {
                assert!(raw.contains("\"request_id\":\""), "{raw}");
                assert!(
                    !raw.contains("bbbb") && !raw.contains("uuuu"),
                    "request data echoed: {raw}"
                );
            }
        }
    }
    // Only the two good requests (plain and TLS) and possibly the streamed one reached it.
    assert!(up.hits.load(Ordering::Relaxed) <= 4);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_are_rejected_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "CL+TE",
            req(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE+CL",
            req(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "conflicting CL",
            req("Content-Length: 4\r\nContent-Length: 5\r\n", "abcde"),
        ),
        ("CL list", req("Content-Length: 4, 5\r\n", "abcde")),
        (
            "stacked TE",
            req("Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n"),
        ),
        ("TE not chunked", req("Transfer-Encoding: gzip\r\n", "")),
        ("obs-fold", req("X-A: 1\r\n  folded\r\n", "")),
        ("space before colon", req("Content-Length : 4\r\n", "abcd")),
        (
            "bad chunk size",
            req("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"),
        ),
        ("duplicate host", req("Host: evil\r\n", "")),
        (
            "bare LF",
            b"GET / HTTP/1.1\nHost: localhost\nX: a\rb\n\n".to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        for (via, raw) in ["plain", "tls"]
            .iter()
            .zip(raw_both(&pki, gw.http, gw.https, bytes).await)
        {
            assert_eq!(status_of(&raw), 400, "{name} via {via}: {raw}");
        }
    }
    // Only the malformed chunked body can have started upstream: its head was valid.
    assert!(
        up.hits.load(Ordering::Relaxed) <= 2,
        "{}",
        up.hits.load(Ordering::Relaxed)
    );
    gw.stop().await;
}

/// Sends a request head one byte at a time; returns how long until the gateway closed.
async fn dribble<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) -> Duration {
    let t = Instant::now();
    let head =
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut buf = [0u8; 512];
    for b in head.iter().cycle().take(40) {
        if s.write_all(&[*b]).await.is_err() {
            return t.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            // hyper may answer 408 before closing; the close follows.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.listener.header_timeout = Duration::from_secs(1);
    let gw = Gw::start(cfg).await;
    let mut tcp = TcpStream::connect(gw.http).await.unwrap();
    let plain = dribble(&mut tcp).await;
    let mut tls = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    let over_tls = dribble(&mut tls).await;
    for (via, d) in [("plain", plain), ("tls", over_tls)] {
        assert!(
            d >= Duration::from_millis(800) && d < Duration::from_millis(3000),
            "{via}: closed after {d:?}"
        );
    }
    assert_eq!(up.hits.load(Ordering::Relaxed), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_requests_over_budget_are_shed_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.listener.max_connections = 2;
    cfg.listener.max_requests_in_flight = 1;
    cfg.listener.retry_after_secs = 3;
    let gw = Gw::start(cfg).await;
    // Two connections hold the budget; the first also holds the one in-flight slot.
    let mut slow = TcpStream::connect(gw.http).await.unwrap();
    slow.write_all(b"GET /echo?sleep_ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = TcpStream::connect(gw.http).await.unwrap();
    let raw = exchange(
        &mut second,
        b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(
        raw.contains("overloaded") && raw.to_ascii_lowercase().contains("retry-after: 3"),
        "{raw}"
    );
    let mut third = TcpStream::connect(gw.http).await.unwrap();
    let raw = exchange(
        &mut third,
        b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("connection: close"),
        "{raw}"
    );
    drop((slow, second, third));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = common::clients::curl_raw(&[&format!("http://{}/metrics", gw.metrics)]).await;
    assert!(
        m.body.contains("vigil_gateway_shed_connections_total 1"),
        "{}",
        m.body
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_everything_is_refused_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let gw = Gw::start(config(dir.path(), &pki, &[])).await;
    for flag in ["--http1.1", "--http2"] {
        let r = curl(&pki, gw.https, "/anything", &[flag]).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["reason"], "policy_missing");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.listener.idle_timeout = Duration::from_millis(500);
    let gw = Gw::start(cfg).await;
    let tls = tls_connect(gw.https, client_config(&pki, &["h2"], None))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("https://localhost/echo")
        .body(common::upstream::TestBody::empty())
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 200);
    let t = Instant::now();
    // The gateway ends the idle HTTP/2 connection (GOAWAY, then close) by itself.
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("closed")
        .unwrap()
        .ok();
    let closed = t.elapsed();
    assert!(
        closed >= Duration::from_millis(400),
        "closed too early: {closed:?}"
    );
    gw.stop().await;
}
