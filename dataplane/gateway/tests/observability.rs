//! Audit lines (present, complete, redacted; file and syslog sinks) and metrics counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::clients::{curl, curl_raw};
use common::upstream::Upstream;
use common::{Gw, audit_lines, config};
use vigil_gateway::config::{AuditSink, SyslogTransport};
use vigil_testkit::pki::Pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_record_decisions_and_never_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.audit.headers = vec![
        "user-agent".into(),
        "authorization".into(),
        "cookie".into(),
        "x-api-key".into(),
    ];
    cfg.audit.redact = vec!["x-api-key".into(), "token".into()];
    cfg.limits.max_uri_bytes = 64;
    let gw = Gw::start(cfg).await;
    let r = curl(
        &pki,
        gw.https,
        "/orders/7?token=tok-SECRET-1&page=2",
        &[
            "-H",
            "Authorization: Bearer AUTH-SECRET-2",
            "-H",
            "Cookie: sid=COOKIE-SECRET-3",
            "-H",
            "X-Api-Key: KEY-SECRET-4",
            "-A",
            "probe/1.0",
            "--data",
            "0123456789",
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").unwrap();
    let long = format!("/{}", "p".repeat(100));
    let rejected = curl(&pki, gw.https, &long, &["--http2"]).await;
    assert_eq!(rejected.status, 414);
    let lines = audit_lines(&dir.path().join("audit.log"), 2).await;
    let raw = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    for secret in ["SECRET", "tok-", "page=2"] {
        assert!(!raw.contains(secret), "{secret} in audit log: {raw}");
    }
    let ok = lines
        .iter()
        .find(|l| l["request_id"] == id.as_str())
        .expect("line for the request");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["reason"], "ok");
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["path"], "/orders/7?page=");
    assert_eq!(ok["tls"], "TLSv1.3");
    assert_eq!(ok["upstream"], "up0");
    assert_eq!(ok["bytes_in"], 10);
    assert!(ok["bytes_out"].as_u64().unwrap() > 100);
    assert!(ok["latency_us"].as_u64().unwrap() > 0);
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok["headers"]["user-agent"], "probe/1.0");
    for h in ["authorization", "cookie", "x-api-key"] {
        assert_eq!(ok["headers"][h], "[redacted]", "{h}");
    }
    let bad = lines
        .iter()
        .find(|l| l["status"] == 414)
        .expect("line for the rejection");
    assert_eq!(bad["reason"], "uri_too_long");
    assert!(bad["upstream"].is_null());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_handshakes_and_daemon_text() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let gw = Gw::start(config(dir.path(), &pki, &[up.url()])).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    gw.get()
        .add_decision_observer(Arc::new(move |d: &vigil_gateway::Decision<'_>| {
            sink.lock()
                .unwrap()
                .push((d.client.ip(), d.status, d.reason));
        }));
    gw.get()
        .add_metrics_source(Arc::new(|e: &mut vigil_gateway::Exposition<'_, '_>| {
            e.counter("vigil_xdp_dropped_packets_total", "test", 42)
        }));
    let url = format!("http://{}/metrics", gw.metrics);
    for _ in 0..3 {
        assert_eq!(curl(&pki, gw.https, "/echo", &[]).await.status, 200);
    }
    assert_eq!(
        curl(&pki, gw.https, "/", &["-X", "TRACE"]).await.status,
        405
    );
    // A plain-HTTP client on the TLS port is a failed handshake.
    let _ = curl_raw(&[&format!("http://127.0.0.1:{}/", gw.https.port())]).await;
    let mut body = String::new();
    for _ in 0..50 {
        body = curl_raw(&[&url]).await.body;
        if body.contains("reason=\"method_not_allowed\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        body.contains("vigil_gateway_requests_total{route=\"-\",status=\"200\",reason=\"ok\"} 3"),
        "{body}"
    );
    assert!(body.contains("vigil_gateway_requests_total{route=\"-\",status=\"405\",reason=\"method_not_allowed\"} 1"), "{body}");
    assert!(
        body.contains("vigil_gateway_tls_handshakes_total 4"),
        "{body}"
    );
    // Three requests one after the other share a pooled upstream connection (one per worker
    // thread at most, with listener.workers), which stays pooled; the config has no health
    // probe, so the upstream's connections are the requests'.
    let value = |family: &str| {
        let prefix = format!("{family}{{upstream=\"up0\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let opened = value("vigil_gateway_upstream_connections_opened_total");
    let accepted = up.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, Some(accepted), "{body}");
    let most = gw.get().config().listener.workers.max(1);
    assert!(
        (1..=most).contains(&accepted),
        "{accepted} connections for 3 requests"
    );
    assert_eq!(
        value("vigil_gateway_upstream_connections_pooled"),
        opened,
        "{body}"
    );
    assert!(
        body.contains("vigil_gateway_tls_handshake_failures_total{reason="),
        "{body}"
    );
    assert!(
        body.contains("vigil_gateway_request_duration_seconds_count 4"),
        "{body}"
    );
    assert!(
        body.contains("vigil_gateway_audit_dropped_total 0"),
        "{body}"
    );
    assert!(body.contains("vigil_gateway_open_connections "), "{body}");
    assert!(
        body.contains("\nvigil_xdp_dropped_packets_total 42\n"),
        "{body}"
    );
    assert!(
        body.contains("vigil_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    // The process, the build and the TLS key are described too.
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "vigil_build_info{version=",
        "vigil_tls_key_available 1",
        "vigil_tls_certificate_expiry_timestamp_seconds ",
        "vigil_ready 1",
    ] {
        assert!(body.contains(name), "{name} missing:\n{body}");
    }
    let health = curl_raw(&[&format!("http://{}/healthz", gw.metrics)]).await;
    assert_eq!(health.body, "ok\n");
    let ready = curl_raw(&[&format!("http://{}/readyz", gw.metrics)]).await;
    assert_eq!(ready.body.trim(), r#"{"ready":true}"#);
    let seen = seen.lock().unwrap().clone();
    let local: std::net::IpAddr = [127, 0, 0, 1].into();
    assert_eq!(
        seen.iter().filter(|d| **d == (local, 200, "ok")).count(),
        3,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|d| **d == (local, 405, "method_not_allowed"))
            .count(),
        1
    );
    assert_eq!(
        curl_raw(&[&format!("http://{}/other", gw.metrics)])
            .await
            .status,
        404
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_sinks_receive_rfc5424_lines() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.audit.sink = AuditSink::Syslog;
    cfg.audit.syslog_address = udp.local_addr().unwrap();
    let gw = Gw::start(cfg.clone()).await;
    assert_eq!(
        curl(&pki, gw.https, "/echo?secret=1", &[]).await.status,
        200
    );
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("<134>1 20"), "{msg}");
    assert!(
        msg.contains(" vigild ") && msg.contains(" audit - {\"time\""),
        "{msg}"
    );
    assert!(msg.contains("\"path\":\"/echo?secret=\""), "{msg}");
    gw.stop().await;

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.audit.syslog_transport = SyslogTransport::Tcp;
    cfg.audit.syslog_address = tcp.local_addr().unwrap();
    let gw = Gw::start(cfg).await;
    assert_eq!(curl(&pki, gw.https, "/echo", &[]).await.status, 200);
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), tcp.accept())
        .await
        .unwrap()
        .unwrap();
    let got = common::clients::read_for(&mut conn, Duration::from_millis(500)).await;
    let (len, rest) = got.split_once(' ').unwrap();
    assert_eq!(
        len.parse::<usize>().unwrap(),
        rest.len(),
        "octet-counted frame: {got}"
    );
    assert!(rest.starts_with("<134>1 "), "{got}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_audit_sink_drops_lines_but_never_blocks_requests() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    // A FIFO nobody reads: once its 64 KiB buffer is full, every write blocks.
    let fifo = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut cfg = config(dir.path(), &pki, &[up.url()]);
    cfg.audit.path = fifo;
    cfg.audit.queue_capacity = 4;
    let gw = Gw::start(cfg).await;
    let tls = common::clients::tls_connect(
        gw.https,
        common::clients::client_config(&pki, &["h2"], None),
    )
    .await
    .unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let t = std::time::Instant::now();
    let mut ok = 0;
    for chunk in 0..12 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let mut send = send.clone();
                let uri = format!("https://localhost/echo?n={}", chunk * 50 + i);
                tokio::spawn(async move {
                    let req = http::Request::get(uri)
                        .body(common::upstream::TestBody::empty())
                        .unwrap();
                    let resp =
                        tokio::time::timeout(Duration::from_secs(5), send.send_request(req)).await;
                    matches!(resp, Ok(Ok(r)) if r.status() == 200)
                })
            })
            .collect();
        for b in batch {
            ok += usize::from(b.await.unwrap());
        }
    }
    assert_eq!(ok, 600);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "requests waited for the audit sink"
    );
    let body = curl_raw(&[&format!("http://{}/metrics", gw.metrics)])
        .await
        .body;
    let dropped: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("vigil_gateway_audit_dropped_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(dropped > 0, "{body}");
    // Closing the reader unblocks the writer so shutdown is quick.
    drop(reader);
    gw.stop().await;
}
