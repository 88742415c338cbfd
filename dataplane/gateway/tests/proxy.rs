//! Upstream behaviour: gRPC-style trailers over h2, WebSocket upgrade, failures mapped to
//! 502/504, health checks and round-robin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::clients::{client_config, curl, exchange, read_bytes, status_of, tls_connect};
use common::upstream::{TestBody, Upstream};
use common::{Gw, config};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_testkit::pki::Pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_through_to_an_h2_client_from_an_h2c_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("grpc").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.h2c_url()])).await;
    let tls = tls_connect(gw.https, client_config(&pki, &["h2"], None))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("https://localhost:{}/trailers", gw.https.port()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(TestBody::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = resp.into_body().collect().await.unwrap();
    let trailers = body.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("grpc-message").unwrap(), "fine");
    assert_eq!(&body.to_bytes()[..], b"payload");
    // An HTTP/1.1 client reaches the same h2c upstream.
    let r = curl(&pki, gw.https, "/echo", &["--http1.1"]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], "HTTP/2.0");
    gw.stop().await;
}

/// Upgrades `s` to a WebSocket through the gateway to the `ws` upstream.
async fn websocket_upgrade<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let head =
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let raw = exchange(s, head, Duration::from_millis(500)).await;
    assert_eq!(status_of(&raw), 101, "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{raw}"
    );
}

/// A client's masked text frame of "hello".
fn hello_frame() -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

async fn websocket_echo<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    websocket_upgrade(s).await;
    s.write_all(&hello_frame()).await.unwrap();
    let echoed = read_bytes(s, Duration::from_millis(800)).await;
    assert_eq!(echoed, b"\x81\x05hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_spliced_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("ws").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let mut tcp = TcpStream::connect(gw.http).await.unwrap();
    websocket_echo(&mut tcp).await;
    let mut tls = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    websocket_echo(&mut tls).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spliced_connection_still_ends_with_close_notify_after_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("ws").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let mut tls = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    websocket_upgrade(&mut tls).await;
    // One frame, then the client closes its sending side only (TLS 1.3 close_notify) and reads
    // on: the upstream echoes the frame and closes 200 ms later.
    tls.write_all(&hello_frame()).await.unwrap();
    tls.get_mut().1.send_close_notify();
    tls.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("the gateway ends the connection");
        match read {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // rustls reports a TCP end without close_notify as an unexpected EOF: the client
            // could not tell the upstream's end from a cut.
            Err(e) => panic!("the connection ended without the gateway's close_notify: {e}"),
        }
    }
    assert_eq!(got, b"\x81\x05hello");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_and_504() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("slow").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = config(dir.path(), &pki, &[format!("http://{closed}")]);
    let gw = Gw::start(cfg.clone()).await;
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (502, Some("upstream_unreachable"))
    );
    gw.stop().await;

    cfg.upstream[0].url = up.url();
    cfg.upstream[0].header_timeout = Duration::from_millis(300);
    let gw = Gw::start(cfg).await;
    let r = curl(&pki, gw.https, "/echo?sleep_ms=2000", &[]).await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (504, Some("upstream_timeout"))
    );
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_skips_unhealthy_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config(dir.path(), &pki, &[a.url(), b.url()]);
    for u in &mut cfg.upstream {
        u.health_path = Some("/health".to_owned());
        u.health_interval = Duration::from_millis(100);
    }
    let gw = Gw::start(cfg).await;
    let mut tcp = TcpStream::connect(gw.http).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let raw = exchange(
            &mut tcp,
            b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_millis(300),
        )
        .await;
        seen.push(if raw.contains("\"upstream\":\"a\"") {
            'a'
        } else if raw.contains("\"upstream\":\"b\"") {
            'b'
        } else {
            '?'
        });
    }
    seen.sort_unstable();
    assert_eq!(seen, vec!['a', 'a', 'b', 'b']);
    b.healthy.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = b.hits.load(Ordering::Relaxed);
    for _ in 0..4 {
        let r = curl(&pki, gw.https, "/echo", &[]).await;
        assert_eq!(r.json()["upstream"], "a");
    }
    assert_eq!(b.hits.load(Ordering::Relaxed), before);
    let m = common::clients::curl_raw(&[&format!("http://{}/metrics", gw.metrics)]).await;
    assert!(
        m.body
            .contains("vigil_gateway_upstream_healthy{upstream=\"up1\"} 0"),
        "{}",
        m.body
    );
    a.healthy.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (502, Some("no_healthy_upstream"))
    );
    gw.stop().await;
}
