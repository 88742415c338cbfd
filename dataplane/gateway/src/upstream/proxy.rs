//! After the last stage: sends the accepted request to an upstream and brings its response back,
//! mapping failures to 502 (upstream failed) and 504 (upstream too slow). HTTP/1.1 upgrades
//! (WebSocket) are spliced byte for byte once the upstream answers 101; gRPC trailers pass
//! because bodies stream frame by frame.

use http::header::{HOST, SERVER};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::Pool;
use super::h1::SendError;
use crate::body::UpstreamBody;
use crate::headers::strip_hop_by_hop;
use crate::pipeline::{Rejection, RequestCtx};

/// Forwards the request; on success the response head is already cleaned for the client, and
/// the upstream's `total_timeout` is returned for the body deadline.
pub async fn forward(
    pool: &Pool,
    ctx: &mut RequestCtx,
    mut head: Parts,
    body: UpstreamBody,
    client_upgrade: Option<OnUpgrade>,
) -> Result<(Response<Incoming>, std::time::Duration), Rejection> {
    let Some(member) = pool.pick(ctx.upstream.as_deref()) else {
        return Err(Rejection::new(
            StatusCode::BAD_GATEWAY,
            "no_healthy_upstream",
        ));
    };
    ctx.upstream = Some(member.cfg.name.clone());
    let original_authority = head.uri.authority().cloned();
    // The client's protocol version, to answer in: an HTTP/1.0 upstream must not turn an
    // HTTP/1.1 client's response into HTTP/1.0 (and lose keep-alive).
    let client_version = head.version;
    // A target already in origin form is what an HTTP/1.1 upstream gets: kept as parsed,
    // rather than written out and parsed again.
    let origin_form = head.uri.scheme().is_none()
        && head.uri.authority().is_none()
        && head.uri.path_and_query().is_some();
    if member.url.h2c || !origin_form {
        let pq = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
        head.uri = member
            .uri_for(pq)
            .map_err(|_| Rejection::new(StatusCode::BAD_REQUEST, "bad_request_target"))?;
    }
    if member.url.h2c {
        head.version = Version::HTTP_2;
    } else {
        head.version = Version::HTTP_11;
        // An HTTP/2 client sends :authority instead of Host; HTTP/1.1 upstreams need Host.
        if !head.headers.contains_key(HOST)
            && let Some(a) = original_authority
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            head.headers.insert(HOST, v);
        }
    }
    if client_upgrade.is_some() && member.url.h2c {
        return Err(Rejection::new(
            StatusCode::BAD_GATEWAY,
            "upgrade_unsupported_upstream",
        ));
    }
    let req = Request::from_parts(head, body);
    // Bounds the wait for the upstream's head only; the body is bounded by total_timeout in
    // ClientBody, so long downloads are not cut by a short header timeout.
    let sent = tokio::time::timeout(member.cfg.header_timeout, member.send(req)).await;
    let mut resp = match sent {
        Err(_) => {
            return Err(Rejection::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
            ));
        }
        Ok(Err(SendError::Connect)) => {
            return Err(Rejection::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
            ));
        }
        Ok(Err(_)) => return Err(Rejection::new(StatusCode::BAD_GATEWAY, "upstream_error")),
        Ok(Ok(resp)) => resp,
    };
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let Some(client_upgrade) = client_upgrade else {
            // 101 to a request that did not ask for it: the upstream is broken.
            return Err(Rejection::new(StatusCode::BAD_GATEWAY, "upstream_error"));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(c), Ok(u)) = tokio::join!(client_upgrade, upstream_upgrade) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(u)).await;
            }
        });
    }
    *resp.version_mut() = client_version;
    strip_hop_by_hop(resp.headers_mut(), switching);
    // No version banner from the upstream reaches the client.
    resp.headers_mut().remove(SERVER);
    Ok((resp, member.cfg.total_timeout))
}
