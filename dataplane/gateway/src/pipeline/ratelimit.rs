//! Rate limits: a token bucket per rule and key (client address or an API-key header value).
//! Over the limit: 429 with `Retry-After` and the `RateLimit-*` headers. Tables are bounded:
//! when full, buckets idle long enough to be full again are dropped first.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, header::RETRY_AFTER};

use super::{Outcome, Rejection, RequestCtx, Stage, StageFuture, ready};
use crate::config::RateLimitConfig;

/// Keys tracked per rule.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Rule {
    header: Option<HeaderName>,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
pub struct RateLimit {
    rules: Vec<Rule>,
}

/// What a rule decided for one request.
#[derive(Debug, PartialEq)]
enum Take {
    Ok,
    /// Seconds until a token is back.
    Wait(u64),
}

impl Rule {
    fn key(&self, head: &Parts, client: IpAddr) -> String {
        // A request without the header shares its client address's bucket: leaving the header
        // out must not be a way around the limit.
        self.header
            .as_ref()
            .and_then(|h| head.headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| format!("ip:{client}"), |v| format!("h:{v}"))
    }

    fn take(&self, key: String, now: Instant) -> Take {
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            map.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Take::Ok
        } else {
            Take::Wait(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

impl RateLimit {
    pub fn new(cfg: &[RateLimitConfig]) -> Self {
        let rules = cfg
            .iter()
            .map(|r| Rule {
                header: r
                    .header()
                    .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
                rate: f64::from(r.rate),
                burst: f64::from(r.burst),
                buckets: Mutex::new(HashMap::new()),
            })
            .collect();
        Self { rules }
    }

    fn decide(&self, head: &Parts, client: IpAddr, now: Instant) -> Outcome {
        for rule in &self.rules {
            if let Take::Wait(secs) = rule.take(rule.key(head, client), now) {
                let limit = HeaderValue::from(rule.burst as u64);
                return Outcome::Respond(
                    Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                        .with_header(RETRY_AFTER, HeaderValue::from(secs))
                        .with_header(HeaderName::from_static("ratelimit-limit"), limit)
                        .with_header(
                            HeaderName::from_static("ratelimit-remaining"),
                            HeaderValue::from(0u32),
                        )
                        .with_header(
                            HeaderName::from_static("ratelimit-reset"),
                            HeaderValue::from(secs),
                        ),
                );
            }
        }
        Outcome::Continue
    }
}

impl Stage for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        ready(self.decide(head, ctx.conn.client.ip(), Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(key: &str, rate: u32, burst: u32) -> RateLimit {
        RateLimit::new(&[RateLimitConfig {
            name: "t".into(),
            key: key.into(),
            rate,
            burst,
        }])
    }

    fn head(api_key: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri("/x");
        if let Some(k) = api_key {
            b = b.header("x-api-key", k);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| unreachable!())
    }

    fn limited(o: &Outcome) -> bool {
        matches!(o, Outcome::Respond(r) if r.status == StatusCode::TOO_MANY_REQUESTS)
    }

    #[test]
    fn burst_then_rate_per_client() {
        let l = limiter("client_ip", 2, 3);
        let (a, b): (IpAddr, IpAddr) = ([198, 18, 0, 1].into(), [198, 18, 0, 2].into());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.decide(&head(None), a, t0), Outcome::Continue);
        }
        assert!(limited(&l.decide(&head(None), a, t0)));
        assert_eq!(
            l.decide(&head(None), b, t0),
            Outcome::Continue,
            "another client has its own"
        );
        // Half a second at 2/s earns one token back.
        assert_eq!(
            l.decide(&head(None), a, t0 + Duration::from_millis(500)),
            Outcome::Continue
        );
        assert!(limited(&l.decide(
            &head(None),
            a,
            t0 + Duration::from_millis(500)
        )));
    }

    #[test]
    fn header_keys_share_nothing_and_missing_headers_fall_back_to_the_client() {
        let l = limiter("header:x-api-key", 1, 1);
        let ip: IpAddr = [198, 18, 0, 1].into();
        let t0 = Instant::now();
        assert_eq!(l.decide(&head(Some("k1")), ip, t0), Outcome::Continue);
        assert!(limited(&l.decide(&head(Some("k1")), ip, t0)));
        assert_eq!(l.decide(&head(Some("k2")), ip, t0), Outcome::Continue);
        assert_eq!(l.decide(&head(None), ip, t0), Outcome::Continue);
        assert!(limited(&l.decide(&head(None), ip, t0)));
    }

    #[test]
    fn retry_after_says_when_a_token_is_back() {
        let l = limiter("client_ip", 1, 1);
        let ip: IpAddr = [198, 18, 0, 1].into();
        let t0 = Instant::now();
        l.decide(&head(None), ip, t0);
        let Outcome::Respond(r) = l.decide(&head(None), ip, t0) else {
            unreachable!()
        };
        assert!(
            r.headers.iter().any(|(n, v)| n == RETRY_AFTER && v == "1"),
            "{r:?}"
        );
        assert!(
            r.headers.iter().any(|(n, _)| n == "ratelimit-limit"),
            "{r:?}"
        );
    }
}
