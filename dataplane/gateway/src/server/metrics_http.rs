//! The metrics listener: `GET /metrics` (OpenMetrics text), `GET /healthz` (200 while the
//! process serves: liveness) and `GET /readyz` (200 when XDP is attached, the key loaded, the
//! policy compiled and an upstream healthy; 503 naming what is missing: readiness).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::service::text;
use crate::shared::{RunLevel, Shared};

/// Serves metrics until the gateway stops.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut level: watch::Receiver<RunLevel>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = level.changed() => break,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let resp = if req.method() != Method::GET {
                        text(
                            StatusCode::METHOD_NOT_ALLOWED,
                            "only GET is served here\n".to_owned(),
                        )
                    } else {
                        match req.uri().path() {
                            "/metrics" => metrics(&shared),
                            "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
                            "/readyz" => ready(&shared),
                            _ => text(
                                StatusCode::NOT_FOUND,
                                "served here: /metrics, /healthz, /readyz\n".to_owned(),
                            ),
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn metrics(shared: &Arc<Shared>) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let health = shared.state.load().pool.health();
    shared.metrics.body_memory_bytes.store(
        shared.body_memory.used(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let own = {
        let shared = shared.clone();
        let source: crate::metrics::MetricsSource =
            Arc::new(move |e: &mut crate::metrics::Exposition<'_, '_>| {
                e.gauge(
                    "vigil_ready",
                    "1 when /readyz answers 200 (XDP attached, key loaded, policy compiled, an \
                     upstream healthy).",
                    i64::from(shared.not_ready().is_empty()),
                )?;
                let now = std::time::Instant::now();
                let banned = shared
                    .services
                    .banned_fingerprints
                    .load()
                    .values()
                    .filter(|until| **until > now)
                    .count();
                upstream_connections(e, &shared)?;
                e.gauge(
                    "vigil_gateway_banned_fingerprints",
                    "Client TLS fingerprints (JA4) an auto-ban rule has banned, refused from any \
                     address now.",
                    i64::try_from(banned).unwrap_or(i64::MAX),
                )?;
                shared.resolver.write_metrics(e)
            });
        source
    };
    let mut r = text(StatusCode::OK, shared.metrics.render_with(&health, own));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

fn ready(shared: &Shared) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let missing = shared.not_ready();
    let (status, body) = if missing.is_empty() {
        (StatusCode::OK, serde_json::json!({ "ready": true }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false, "missing": missing }),
        )
    };
    let mut r = text(status, format!("{body}\n"));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The HTTP/1.1 upstreams' connection counts, from the pool in force.
fn upstream_connections(
    e: &mut crate::metrics::Exposition<'_, '_>,
    shared: &Shared,
) -> std::fmt::Result {
    let conns = shared.state.load().pool.connections();
    e.counters(
        "vigil_gateway_upstream_connections_opened_total",
        "Connections opened to each HTTP/1.1 upstream since the config in force was loaded.",
        conns
            .iter()
            .map(|(n, opened, _)| ([("upstream", n.as_str())], *opened)),
    )?;
    e.gauges(
        "vigil_gateway_upstream_connections_pooled",
        "Connections each HTTP/1.1 upstream's pool holds (idle, or reading the body of the \
         response they came back with).",
        conns.iter().map(|(n, _, pooled)| {
            (
                [("upstream", n.as_str())],
                i64::try_from(*pooled).unwrap_or(i64::MAX),
            )
        }),
    )
}
