//! Responses the gateway writes itself, and the headers every response carries.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Full};

use crate::body::InnerBody;
use crate::headers::X_REQUEST_ID;
use crate::pipeline::Rejection;

/// `{"status":N,"reason":"code","request_id":"...","location":"...","keyword":"..."}`: only
/// values the gateway chose or names of the place a check failed, never submitted values.
pub fn rejection(rej: &Rejection, request_id: &str) -> Response<InnerBody> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        status: u16,
        reason: &'a str,
        request_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keyword: Option<&'a str>,
    }
    let body = serde_json::to_string(&Body {
        status: rej.status.as_u16(),
        reason: rej.reason,
        request_id,
        location: rej.location.as_deref(),
        keyword: rej.keyword.as_deref(),
    })
    .unwrap_or_default();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = rej.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in &rej.headers {
        h.insert(name.clone(), value.clone());
    }
    resp
}

/// Adds the request id and security headers to any response.
pub fn finalize(h: &mut HeaderMap, request_id: Option<&HeaderValue>, hsts: Option<&HeaderValue>) {
    if let Some(v) = request_id {
        h.insert(X_REQUEST_ID, v.clone());
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(v) = hsts {
        h.insert(STRICT_TRANSPORT_SECURITY, v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[tokio::test]
    async fn rejection_body_is_small_json_with_reason_and_id() {
        let rej = Rejection::new(StatusCode::URI_TOO_LONG, "uri_too_long");
        let resp = rejection(&rej, "id-1");
        assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        assert_eq!(
            &bytes[..],
            br#"{"status":414,"reason":"uri_too_long","request_id":"id-1"}"#
        );
    }
}
