//! TLS termination seen by real clients: curl over HTTP/1.1 and HTTP/2, openssl s_client with
//! TLS 1.2 and 1.3, ALPN, a rustls client, and mTLS accepted and refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::clients::{client_config, curl, exchange, s_client, status_of, tls_connect};
use common::upstream::Upstream;
use common::{Gw, config};
use vigil_gateway::config::{ClientAuth, MinVersion};
use vigil_testkit::pki::Pki;

/// `GET /echo` with `Connection: close` over `s`, which must answer 200.
async fn get_echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    let raw = exchange(
        s,
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&raw), 200, "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_h1_and_h2_are_proxied_with_hardened_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let r = curl(
            &pki,
            gw.https,
            "/echo?x=1",
            &[
                flag,
                "-H",
                "Connection: x-private",
                "-H",
                "x-private: leak",
                "-H",
                "X-Forwarded-For: 6.6.6.6",
                "-H",
                "Keep-Alive: timeout=5",
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{flag}: {r:?}");
        assert_eq!(r.http_version, version);
        let id = r.header("x-request-id").expect("request id returned");
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            r.header("strict-transport-security").as_deref(),
            Some("max-age=31536000")
        );
        assert_eq!(r.header("server"), None, "upstream Server header leaked");
        assert_eq!(
            r.header("x-upstream-hop"),
            None,
            "hop-by-hop from upstream leaked"
        );
        let seen = r.json();
        let h = &seen["headers"];
        assert_eq!(h["x-request-id"], id.as_str());
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            format!(
                "for=127.0.0.1;proto=https;host=\"localhost:{}\"",
                gw.https.port()
            )
        );
        assert_eq!(h["host"], format!("localhost:{}", gw.https.port()));
        // HTTP/2 has no Connection header (curl drops it), so only HTTP/1.1 can name x-private
        // as hop-by-hop.
        let hops: &[&str] = if version == "1.1" {
            &["x-private", "keep-alive", "connection"]
        } else {
            &["keep-alive", "connection"]
        };
        for hop in hops {
            assert!(h.get(*hop).is_none(), "{hop} forwarded: {h}");
        }
        assert_eq!(seen["uri"], "/echo?x=1");
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::Relaxed), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_refused_by_default_and_accepted_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    let gw = Gw::start(cfg.clone()).await;
    let (ok, out) = s_client(gw.https, &pki.ca, &["-tls1_2"]).await;
    assert!(!ok, "TLS 1.2 accepted by default: {out}");
    let (ok, out) = s_client(gw.https, &pki.ca, &["-tls1_3"]).await;
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("Verify return code: 0"), "{out}");
    let metrics = common::clients::curl_raw(&[&format!("http://{}/metrics", gw.metrics)]).await;
    assert!(
        metrics
            .body
            .contains("vigil_gateway_tls_handshake_failures_total{reason=\"protocol_version\"} 1"),
        "{}",
        metrics.body
    );
    gw.stop().await;

    cfg.tls.min_version = MinVersion::Tls12;
    let gw = Gw::start(cfg).await;
    let (ok, out) = s_client(gw.https, &pki.ca, &["-tls1_2"]).await;
    assert!(ok && out.contains("TLSv1.2"), "{out}");
    assert!(
        out.contains("ECDHE-ECDSA-AES") || out.contains("ECDHE-ECDSA-CHACHA20"),
        "{out}"
    );
    // Non-AEAD (CBC) suites are never offered, even with 1.2 allowed.
    let (ok, out) = s_client(
        gw.https,
        &pki.ca,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"],
    )
    .await;
    assert!(!ok, "CBC suite accepted: {out}");
    let r = curl(&pki, gw.https, "/echo", &["--tlsv1.2", "--tls-max", "1.2"]).await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_selects_protocol_for_rustls_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    for (offer, expect) in [
        (&["h2", "http/1.1"][..], "h2"),
        (&["http/1.1"][..], "http/1.1"),
    ] {
        let s = tls_connect(gw.https, client_config(&pki, offer, None))
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(expect.as_bytes()));
        assert_eq!(
            s.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }
    // An HTTP/1.1 exchange over the rustls client.
    let mut s = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    get_echo(&mut s).await;
    // A client offering only an unknown protocol is refused.
    let err = tls_connect(gw.https, client_config(&pki, &["spdy/3"], None)).await;
    assert!(err.is_err());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clients_close_notify_the_gateway_closes_without_writing_again() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let mut s = tls_connect(gw.https, client_config(&pki, &["http/1.1"], None))
        .await
        .unwrap();
    // A keep-alive exchange: the connection stays open after the response.
    let raw = exchange(
        &mut s,
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(status_of(&raw), 200, "{raw}");
    // The client's close_notify alone: its socket stays open to see what comes back.
    s.get_mut().1.send_close_notify();
    s.flush().await.unwrap();
    let (mut tcp, _) = s.into_inner();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    // As nginx does: no close_notify of its own (a 24-byte record), the socket just closed.
    assert_eq!(
        n, 0,
        "the gateway wrote {n} bytes after the client's close_notify"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tickets_come_with_the_first_response_and_resume_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let cfg = client_config(&pki, &["http/1.1"], None);
    let mut s = tls_connect(gw.https, cfg.clone()).await.unwrap();
    assert_eq!(s.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
    // The handshake is over on both sides; the gateway writes nothing until it has a response
    // to put its tickets in front of.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), s.get_ref().0.peek(&mut byte));
    if let Ok(n) = early.await {
        panic!("the gateway wrote before any request: {n:?}");
    }
    get_echo(&mut s).await;
    // The tickets reached the client with that response: the next handshake resumes.
    let mut s = tls_connect(gw.https, cfg).await.unwrap();
    assert_eq!(s.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
    get_echo(&mut s).await;
    gw.stop().await;
}

/// The alert a client gets: in the handshake, or at the first read after it (TLS 1.3 refuses a
/// client certificate after the client's side is done). Panics on any other outcome.
async fn alert_received(
    addr: std::net::SocketAddr,
    cfg: std::sync::Arc<rustls::ClientConfig>,
) -> rustls::AlertDescription {
    let err = match tls_connect(addr, cfg).await {
        Err(e) => e,
        Ok(mut s) => {
            let mut buf = [0u8; 64];
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("the gateway answers a refused certificate")
                .expect_err("a refused certificate reads no data")
        }
    };
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => *alert,
        _ => panic!("no alert received: {err:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_certificate_reaches_the_client_as_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.tls.client_ca = Some(pki.ca.clone());
    let gw = Gw::start(cfg).await;
    // Written after the client's first encrypted record (its Certificate), where the tickets
    // would be: sent, not held.
    let anonymous = client_config(&pki, &["http/1.1"], None);
    assert_eq!(
        alert_received(gw.https, anonymous).await,
        rustls::AlertDescription::CertificateRequired
    );
    let rogue = client_config(&pki, &["http/1.1"], Some((&pki.rogue_cert, &pki.rogue_key)));
    assert_eq!(
        alert_received(gw.https, rogue).await,
        rustls::AlertDescription::UnknownCA
    );
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_accepts_ca_clients_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.tls.client_ca = Some(pki.ca.clone());
    cfg.audit.headers = vec![];
    let gw = Gw::start(cfg.clone()).await;
    let (cert, key) = (
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let r = curl(&pki, gw.https, "/echo", &["--cert", &cert, "--key", &key]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(r.status, 0, "no client cert must fail the handshake: {r:?}");
    let (rc, rk) = (
        pki.rogue_cert.display().to_string(),
        pki.rogue_key.display().to_string(),
    );
    let r = curl(&pki, gw.https, "/echo", &["--cert", &rc, "--key", &rk]).await;
    assert_eq!(r.status, 0, "rogue CA accepted: {r:?}");
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The identity reaches the audit line.
    let lines = common::audit_lines(&dir.path().join("audit.log"), 1).await;
    assert_eq!(lines[0]["identity"]["subject"], "CN=svc-orders");
    assert_eq!(
        lines[0]["identity"]["sans"][0],
        "uri:spiffe://vigil.test/svc-orders"
    );
    gw.stop().await;

    cfg.tls.client_auth = ClientAuth::Optional;
    let gw = Gw::start(cfg).await;
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(r.status, 200, "optional mTLS must admit anonymous clients");
    let r = curl(&pki, gw.https, "/echo", &["--cert", &rc, "--key", &rk]).await;
    assert_eq!(r.status, 0, "a presented certificate must still verify");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ca_that_is_a_fifo_or_device_is_refused_and_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let cfg = config(dir.path(), &pki, &[up.url()]);
    let gw = Gw::start(cfg.clone()).await;
    let fifo = dir.path().join("ca-fifo.pem");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    for (ca, needle) in [
        (fifo, "is a FIFO, not a regular file"),
        (
            std::path::PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ] {
        let mut bad = cfg.clone();
        bad.tls.client_ca = Some(ca);
        let started = std::time::Instant::now();
        let err = gw.get().reload(bad.clone()).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let msg = err.to_string();
        assert!(
            matches!(err, vigil_gateway::GatewayError::ClientCaFile { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with("tls.client_ca: ") && msg.contains(needle),
            "{msg}"
        );
        let keys = std::sync::Arc::new(vigil_hw::keys::FileKeyProvider::new(
            &bad.tls.cert,
            &bad.tls.key,
        ));
        let refused = vigil_gateway::Gateway::start(bad, keys).await.err();
        assert!(refused.is_some_and(|e| e.to_string().contains(needle)));
    }
    let r = curl(&pki, gw.https, "/echo", &[]).await;
    assert_eq!(r.status, 200, "the running config must keep serving: {r:?}");
    gw.stop().await;
}
