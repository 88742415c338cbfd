use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::limits::{SharedBuckets, StoreUnavailable, TakeFuture};
use crate::pipeline::{AuthMethod, Principal, test_ctx};

fn rule(key: &str, rate: u32, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        name: "t".into(),
        key: key.into(),
        rate,
        burst,
        shared: false,
        fallback_rate: None,
        fallback_burst: None,
    }
}

fn services() -> Arc<Services> {
    Arc::new(Services::new(Arc::default()))
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

fn ctx(ip: [u8; 4], sub: Option<&str>, route: Option<&str>) -> RequestCtx {
    let mut c = test_ctx(SocketAddr::from((ip, 40_000)));
    c.principal = sub.map(|s| Principal {
        subject: s.to_owned(),
        via: AuthMethod::Jwt,
        claims: Arc::new(vigil_identity::Claims::from_subject(s, &[])),
    });
    c.route = route.map(str::to_owned);
    c
}

/// Runs `n` requests and counts the ones let through.
async fn admitted(l: &RateLimit, n: usize, head: &Parts, c: &RequestCtx) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if l.decide(head, c).await == Outcome::Continue {
            ok += 1;
        }
    }
    ok
}

#[test]
fn a_bucket_refills_at_its_rate_up_to_its_burst() {
    let b = Local::new(2, 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(b.take("k", t0).allowed);
    }
    let refused = b.take("k", t0);
    assert!(!refused.allowed);
    assert_eq!(
        refused.retry_after_ms, 500,
        "one token at 2/s is 500 ms away"
    );
    // Half a second at 2/s earns one token back, not more.
    assert!(b.take("k", t0 + Duration::from_millis(500)).allowed);
    assert!(!b.take("k", t0 + Duration::from_millis(500)).allowed);
    // Idle for an hour: full again, never above the burst.
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(b.take("k", later).remaining, 2);
}

#[tokio::test]
async fn client_keys_are_per_address() {
    let l = RateLimit::new(&[rule("client_ip", 1, 3)], false, services());
    let (a, b) = (
        ctx([198, 18, 0, 1], None, None),
        ctx([198, 18, 0, 2], None, None),
    );
    assert_eq!(admitted(&l, 5, &head(None), &a).await, 3);
    assert_eq!(
        admitted(&l, 5, &head(None), &b).await,
        3,
        "another client has its own"
    );
}

#[tokio::test]
async fn header_keys_share_nothing_and_missing_headers_fall_back_to_the_client() {
    let l = RateLimit::new(&[rule("header:x-api-key", 1, 1)], false, services());
    let c = ctx([198, 18, 0, 1], None, None);
    assert_eq!(admitted(&l, 3, &head(Some("k1")), &c).await, 1);
    assert_eq!(admitted(&l, 3, &head(Some("k2")), &c).await, 1);
    assert_eq!(admitted(&l, 3, &head(None), &c).await, 1);
}

#[tokio::test]
async fn subject_and_route_keys_run_late_and_combine() {
    let cfg = [rule("client_ip", 100, 100), rule("sub+route", 1, 2)];
    let early = RateLimit::new(&cfg, false, services());
    let late = RateLimit::new(&cfg, true, services());
    assert_eq!((early.rules.len(), late.rules.len()), (1, 1));
    let h = head(None);
    let alice_get = ctx([198, 18, 0, 1], Some("alice"), Some("GET /a"));
    // Same subject from another address shares the bucket: the key is who, not where.
    let alice_elsewhere = ctx([198, 18, 0, 9], Some("alice"), Some("GET /a"));
    let alice_post = ctx([198, 18, 0, 1], Some("alice"), Some("POST /a"));
    let bob_get = ctx([198, 18, 0, 1], Some("bob"), Some("GET /a"));
    assert_eq!(admitted(&late, 1, &h, &alice_get).await, 1);
    assert_eq!(admitted(&late, 3, &h, &alice_elsewhere).await, 1);
    assert_eq!(admitted(&late, 3, &h, &alice_post).await, 2);
    assert_eq!(admitted(&late, 3, &h, &bob_get).await, 2);
    // Anonymous requests are keyed by their address.
    let anon1 = ctx([198, 18, 0, 1], None, Some("GET /a"));
    let anon2 = ctx([198, 18, 0, 2], None, Some("GET /a"));
    assert_eq!(admitted(&late, 3, &h, &anon1).await, 2);
    assert_eq!(admitted(&late, 3, &h, &anon2).await, 2);
}

#[tokio::test]
async fn a_refusal_says_when_to_come_back() {
    let l = RateLimit::new(&[rule("client_ip", 1, 1)], false, services());
    let c = ctx([198, 18, 0, 1], None, None);
    l.decide(&head(None), &c).await;
    let Outcome::Respond(r) = l.decide(&head(None), &c).await else {
        panic!("the second request passed")
    };
    let get = |n: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("retry-after"), Some(HeaderValue::from(1u32)));
    assert_eq!(get("ratelimit-limit"), Some(HeaderValue::from(1u32)));
    assert_eq!(get("ratelimit-remaining"), Some(HeaderValue::from(0u32)));
}

#[tokio::test]
async fn long_keys_are_hashed_not_stored() {
    let l = RateLimit::new(&[rule("header:x-api-key", 1, 1)], false, services());
    let c = ctx([198, 18, 0, 1], None, None);
    let long = "k".repeat(4000);
    let key = l.rules[0].key(&head(Some(&long)), &c);
    assert!(
        key.starts_with("t:sha256:") && key.len() == "t:sha256:".len() + 64,
        "{key}"
    );
    assert_eq!(admitted(&l, 2, &head(Some(&long)), &c).await, 1);
}

/// An in-process store standing in for the fleet's: counts calls, answers or fails on demand.
#[derive(Debug, Default)]
struct Store {
    calls: AtomicU64,
    down: std::sync::atomic::AtomicBool,
    buckets: Mutex<HashMap<String, u32>>,
}

impl SharedBuckets for Store {
    fn take<'a>(&'a self, key: &'a str, _rate: u32, burst: u32) -> TakeFuture<'a> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let res = if self.down.load(Ordering::Relaxed) {
            Err(StoreUnavailable)
        } else {
            let mut m = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let used = m.entry(key.to_owned()).or_default();
            *used += 1;
            Ok(SharedTake {
                allowed: *used <= burst,
                remaining: u64::from(burst.saturating_sub(*used)),
                retry_after_ms: if *used <= burst { 0 } else { 2500 },
            })
        };
        Box::pin(std::future::ready(res))
    }
}

#[tokio::test]
async fn shared_rules_ask_the_store_and_fall_back_to_half_when_it_is_down() {
    let mut cfg = rule("client_ip", 10, 10);
    cfg.shared = true;
    let svc = services();
    let store = Arc::new(Store::default());
    svc.buckets
        .store(Some(Arc::new(store.clone() as Arc<dyn SharedBuckets>)));
    let l = RateLimit::new(&[cfg], false, svc.clone());
    let c = ctx([198, 18, 0, 1], None, None);
    assert_eq!(admitted(&l, 12, &head(None), &c).await, 10);
    assert_eq!(store.calls.load(Ordering::Relaxed), 12);
    let Outcome::Respond(r) = l.decide(&head(None), &c).await else {
        panic!("over the shared limit but passed")
    };
    assert!(
        r.headers.iter().any(|(k, v)| k == RETRY_AFTER && v == "3"),
        "retry-after rounds the store's 2500 ms up: {r:?}"
    );
    let text = svc.metrics.render(&[]);
    assert!(
        !text.contains("vigil_gateway_rate_limit_fallback_total{"),
        "{text}"
    );
    // The store goes down: the local fallback (half of 10) decides, and says so in metrics.
    store.down.store(true, Ordering::Relaxed);
    assert_eq!(admitted(&l, 8, &head(None), &c).await, 5);
    let text = svc.metrics.render(&[]);
    assert!(
        text.contains("vigil_gateway_rate_limit_fallback_total{rule=\"t\"} 8"),
        "{text}"
    );
}

#[tokio::test]
async fn shared_rules_without_a_store_use_the_fallback() {
    let mut cfg = rule("client_ip", 4, 4);
    cfg.shared = true;
    cfg.fallback_burst = Some(1);
    let l = RateLimit::new(&[cfg], false, services());
    let c = ctx([198, 18, 0, 1], None, None);
    assert_eq!(admitted(&l, 3, &head(None), &c).await, 1);
}
