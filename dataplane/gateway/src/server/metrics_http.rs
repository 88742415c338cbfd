//! The metrics listener: `GET /metrics` in Prometheus text format, nothing else.

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
                    let resp = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        let health = shared.state.load().pool.health();
                        shared.metrics.body_memory_bytes.store(
                            shared.body_memory.used(),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        let mut r = text(StatusCode::OK, shared.metrics.render(&health));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        text(
                            StatusCode::NOT_FOUND,
                            "only GET /metrics is served\n".to_owned(),
                        )
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
