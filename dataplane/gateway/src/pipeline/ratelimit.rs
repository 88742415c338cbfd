//! Rate limits: a token bucket per rule and key (client address, API-key header, identity,
//! route, or a combination). Over the limit: 429 with `Retry-After` and the `RateLimit-*`
//! headers. Local tables are bounded: when full, buckets idle long enough to be full again are
//! dropped first. Shared rules ask the fleet's store and, when it cannot answer, decide with a
//! smaller local bucket, counted in metrics.
//!
//! The chain holds two of these stages: rules keyed only by address or header run before any
//! costly work; rules keyed by `sub` or `route` run once identity and route are known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, header::RETRY_AFTER};

use super::stage::{Outcome, Rejection, RequestCtx, Stage, StageFuture};
use crate::config::{KeyPart, RateLimitConfig};
use crate::limits::SharedTake;
use crate::services::Services;

/// Keys tracked per rule.
const MAX_KEYS: usize = 100_000;
/// Keys longer than this are kept as their SHA-256: a header value can be kilobytes.
const MAX_KEY_BYTES: usize = 64;
/// The shared store answers within its own deadline; this only guards against one that hangs.
const STORE_SAFETY_NET: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A table of local buckets with one rate and burst.
#[derive(Debug)]
struct Local {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Local {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, key: &str, now: Instant) -> SharedTake {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            map.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let b = match map.get_mut(key) {
            Some(b) => b,
            None => map.entry(key.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            SharedTake {
                allowed: true,
                remaining: b.tokens as u64,
                retry_after_ms: 0,
            }
        } else {
            SharedTake {
                allowed: false,
                remaining: 0,
                retry_after_ms: ((1.0 - b.tokens) / self.rate * 1000.0).ceil() as u64,
            }
        }
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    parts: Vec<KeyPart>,
    headers: Vec<Option<HeaderName>>,
    rate: u32,
    burst: u32,
    shared: bool,
    /// The rule's own buckets, or (shared rules) the fallback buckets.
    local: Local,
}

impl Rule {
    fn new(cfg: &RateLimitConfig) -> Self {
        let parts = cfg.key_parts().unwrap_or_default();
        let headers = parts
            .iter()
            .map(|p| match p {
                KeyPart::Header(h) => HeaderName::from_bytes(h.as_bytes()).ok(),
                _ => None,
            })
            .collect();
        let (rate, burst) = if cfg.shared {
            cfg.fallback()
        } else {
            (cfg.rate, cfg.burst)
        };
        Self {
            name: cfg.name.clone(),
            parts,
            headers,
            rate: cfg.rate,
            burst: cfg.burst,
            shared: cfg.shared,
            local: Local::new(rate, burst),
        }
    }

    /// The bucket key: the rule's name, then each part. A part the request lacks (no header,
    /// no identity) is replaced by the client address, never left empty.
    fn key(&self, head: &Parts, ctx: &RequestCtx) -> String {
        use std::fmt::Write as _;
        let client: IpAddr = ctx.conn.client.ip();
        let mut key = String::with_capacity(64);
        for (part, header) in self.parts.iter().zip(&self.headers) {
            if !key.is_empty() {
                key.push('|');
            }
            let _ = match part {
                KeyPart::ClientIp => write!(key, "ip:{client}"),
                KeyPart::Header(_) => match header
                    .as_ref()
                    .and_then(|h| head.headers.get(h))
                    .and_then(|v| v.to_str().ok())
                {
                    Some(v) => write!(key, "h:{v}"),
                    None => write!(key, "ip:{client}"),
                },
                KeyPart::Subject => match ctx.principal.as_ref() {
                    Some(p) => write!(key, "sub:{}", p.subject),
                    None => write!(key, "ip:{client}"),
                },
                KeyPart::Route => write!(key, "route:{}", ctx.route.as_deref().unwrap_or("-")),
                KeyPart::Ja4 => match ctx.conn.tls.as_ref().and_then(|t| t.ja4.as_deref()) {
                    Some(fp) => write!(key, "ja4:{fp}"),
                    None => write!(key, "ip:{client}"),
                },
            };
        }
        if key.len() > MAX_KEY_BYTES {
            let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
            key = d.as_ref().iter().fold(String::from("sha256:"), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
        }
        format!("{}:{key}", self.name)
    }
}

#[derive(Debug)]
pub struct RateLimit {
    name: &'static str,
    rules: Vec<Rule>,
    /// Some rule is shared through the fleet's store (and may wait for it).
    any_shared: bool,
    services: Arc<Services>,
}

fn limited(limit: u32, take: SharedTake) -> Outcome {
    let secs = take.retry_after_ms.div_ceil(1000).max(1);
    Outcome::Respond(
        Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            .with_header(RETRY_AFTER, HeaderValue::from(secs))
            .with_header(
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(limit),
            )
            .with_header(
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from(0u32),
            )
            .with_header(
                HeaderName::from_static("ratelimit-reset"),
                HeaderValue::from(secs),
            ),
    )
}

impl RateLimit {
    /// The rules keyed only by address or header (`late = false`), or those keyed by
    /// identity or route (`late = true`).
    pub fn new(cfg: &[RateLimitConfig], late: bool, services: Arc<Services>) -> Self {
        let rules: Vec<Rule> = cfg
            .iter()
            .filter(|r| r.needs_identity() == late)
            .map(Rule::new)
            .collect();
        Self {
            any_shared: rules.iter().any(|r| r.shared),
            name: if late {
                "rate_limit_identity"
            } else {
                "rate_limit"
            },
            rules,
            services,
        }
    }

    /// Whether the stage has any rule (an empty one is left out of the chain).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    async fn decide(&self, head: &Parts, ctx: &RequestCtx) -> Outcome {
        for rule in &self.rules {
            let key = rule.key(head, ctx);
            let (take, limit) = if rule.shared {
                self.take_shared(rule, &key).await
            } else {
                (rule.local.take(&key, Instant::now()), rule.burst)
            };
            if !take.allowed {
                return limited(limit, take);
            }
        }
        Outcome::Continue
    }

    /// Asks the fleet's store; without one, or when it cannot answer, the local fallback
    /// bucket decides (and the limit reported is the fallback's).
    async fn take_shared(&self, rule: &Rule, key: &str) -> (SharedTake, u32) {
        if let Some(store) = self.services.buckets() {
            let asked =
                tokio::time::timeout(STORE_SAFETY_NET, store.take(key, rule.rate, rule.burst))
                    .await;
            if let Ok(Ok(take)) = asked {
                return (take, rule.burst);
            }
        }
        self.services.metrics.rate_limit_fallback(&rule.name);
        (
            rule.local.take(key, Instant::now()),
            rule.local.burst as u32,
        )
    }
}

impl Stage for RateLimit {
    fn name(&self) -> &'static str {
        self.name
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        Box::pin(async move { self.decide(head, ctx).await })
    }

    /// Local buckets answer at once; only a rule shared through the fleet's store waits.
    fn decide_now(
        &self,
        ctx: &mut RequestCtx,
        head: &mut Parts,
        _body: Option<&Bytes>,
    ) -> Option<Outcome> {
        if self.any_shared {
            return None;
        }
        for rule in &self.rules {
            let take = rule.local.take(&rule.key(head, ctx), Instant::now());
            if !take.allowed {
                return Some(limited(rule.burst, take));
            }
        }
        Some(Outcome::Continue)
    }
}

#[cfg(test)]
mod tests;
