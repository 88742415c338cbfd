//! The Redis bucket store against a real redis-server (one per test, killed by PID at the end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::fleet::test_redis::{TestRedis, bulks};

const TIMEOUT: Duration = Duration::from_millis(250);

/// Polls `f` every 10 ms for at most `limit`; whether it came true.
async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

async fn store(redis: &TestRedis, prefix: &str) -> RedisBuckets {
    let s = RedisBuckets::start(redis.link(), prefix, TIMEOUT);
    assert!(
        wait_for(Duration::from_secs(5), || s.is_up()).await,
        "the store never connected: {:?}",
        s.status()
    );
    s
}

/// One take, bounded: a store must answer (either way) well within the gateway's safety net.
async fn take(s: &RedisBuckets, key: &str, rate: u32, burst: u32) -> Result<SharedTake, ()> {
    tokio::time::timeout(Duration::from_secs(2), s.take(key, rate, burst))
        .await
        .expect("take hung")
        .map_err(|StoreUnavailable| ())
}

/// `n` takes at once on `key` spread over `stores`; the answers and how long they all took.
async fn concurrent(
    stores: &[RedisBuckets],
    n: usize,
    key: &str,
    rate: u32,
    burst: u32,
) -> (Vec<SharedTake>, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = stores[i % stores.len()].clone();
            let key = key.to_owned();
            tokio::spawn(async move { take(&s, &key, rate, burst).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(
            t.await
                .unwrap()
                .expect("Redis was up: no take may fall back"),
        );
    }
    (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_on_one_key_allow_exactly_the_burst() {
    let redis = TestRedis::start();
    let s = store(&redis, "t1").await;
    let (takes, took) = concurrent(std::slice::from_ref(&s), 200, "r:ip:198.18.0.2", 1, 50).await;
    let allowed: Vec<u64> = takes
        .iter()
        .filter(|t| t.allowed)
        .map(|t| t.remaining)
        .collect();
    // At 1 token/s, a run shorter than a second refills less than one token: exactly the
    // burst passes, and each allowed take saw a different whole number left (49 down to 0).
    if took < Duration::from_millis(900) {
        assert_eq!(allowed.len(), 50, "took {took:?}");
        let mut seen = allowed.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<u64>>());
    } else {
        let bound = 50 + took.as_secs() as usize + 1;
        assert!(
            (50..=bound).contains(&allowed.len()),
            "{} in {took:?}",
            allowed.len()
        );
    }
    for t in takes.iter().filter(|t| !t.allowed) {
        assert_eq!(t.remaining, 0);
        assert!((1..=1000).contains(&t.retry_after_ms), "{t:?}");
    }
    assert_eq!(s.status().decisions, 200);
    assert_eq!(s.status().fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boxes_on_one_redis_share_the_bucket_exactly() {
    let redis = TestRedis::start();
    let (a, b) = (store(&redis, "t2").await, store(&redis, "t2").await);
    // In turn: what A takes, B no longer has.
    for left in (20..30).rev() {
        let t = take(&a, "shared:ip:1", 1, 30).await.unwrap();
        assert_eq!((t.allowed, t.remaining), (true, left));
    }
    let t = take(&b, "shared:ip:1", 1, 30).await.unwrap();
    assert_eq!((t.allowed, t.remaining), (true, 19));
    // At once, split over both: exactly the burst passes in total.
    let (takes, took) = concurrent(&[a, b], 200, "shared:ip:2", 1, 30).await;
    let allowed = takes.iter().filter(|t| t.allowed).count();
    if took < Duration::from_millis(900) {
        assert_eq!(allowed, 30, "took {took:?}");
    } else {
        assert!(allowed >= 30 && allowed <= 30 + took.as_secs() as usize + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_refill_with_time_and_report_what_is_left() {
    let redis = TestRedis::start();
    let s = store(&redis, "t3").await;
    for left in (0..5).rev() {
        let t = take(&s, "r:k", 10, 5).await.unwrap();
        assert_eq!((t.allowed, t.remaining, t.retry_after_ms), (true, left, 0));
    }
    let t = take(&s, "r:k", 10, 5).await.unwrap();
    assert!(!t.allowed);
    assert_eq!(t.remaining, 0);
    // 10 tokens/s: the next one is at most 100 ms away.
    assert!((1..=100).contains(&t.retry_after_ms), "{t:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let t = take(&s, "r:k", 10, 5).await.unwrap();
    assert!(t.allowed, "{t:?}");
    assert!(
        (2..=4).contains(&t.remaining),
        "3 or more tokens back: {t:?}"
    );
    // The bucket is a hash {tokens, ts} expiring in twice its full-refill time (2 x 500 ms).
    let mut c = redis.conn().await;
    let fields = bulks(c.call(&[b"HGETALL", b"t3:rl:r:k"]).await.unwrap());
    let names: Vec<&[u8]> = fields.iter().step_by(2).map(Vec::as_slice).collect();
    assert_eq!(names, [b"tokens".as_slice(), b"ts".as_slice()]);
    let Value::Int(pttl) = c.call(&[b"PTTL", b"t3:rl:r:k"]).await.unwrap() else {
        panic!("PTTL");
    };
    assert!((1..=1000).contains(&pttl), "{pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_is_not_given_an_expiry_on_every_request() {
    let redis = TestRedis::start();
    let s = store(&redis, "t4").await;
    let mut c = redis.conn().await;
    c.call(&[b"CONFIG", b"RESETSTAT"]).await.unwrap();
    // Full refill takes 1000 s: one PEXPIRE, at creation, for 300 decisions.
    let (takes, _) = concurrent(std::slice::from_ref(&s), 300, "busy:k", 1, 1000).await;
    assert!(takes.iter().all(|t| t.allowed));
    assert!(redis.calls("evalsha").await >= 300);
    assert_eq!(redis.calls("pexpire").await, 1);
    // Full refill in 100 ms: at most one PEXPIRE per 100 ms of traffic, not one per request.
    c.call(&[b"CONFIG", b"RESETSTAT"]).await.unwrap();
    let start = Instant::now();
    let mut allowed = 0;
    for _ in 0..150 {
        if take(&s, "busy:fast", 100, 10).await.unwrap().allowed {
            allowed += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let periods = start.elapsed().as_millis() as u64 / 100;
    let pexpires = redis.calls("pexpire").await;
    assert!(
        pexpires <= periods + 2,
        "{pexpires} PEXPIREs in {periods} refill periods"
    );
    assert!(
        pexpires * 3 <= allowed,
        "{pexpires} PEXPIREs for {allowed} writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_means_local_decisions_at_once_until_it_is_back() {
    let mut redis = TestRedis::start();
    let s = store(&redis, "t5").await;
    assert!(take(&s, "r:k", 1, 5).await.unwrap().allowed);
    redis.kill();
    // The closed connection is noticed without any request.
    assert!(
        wait_for(Duration::from_secs(2), || !s.is_up()).await,
        "{:?}",
        s.status()
    );
    assert_eq!(s.status().backend, StoreBackend::LocalFallback);
    let errors = s.status().errors;
    let fallbacks = s.status().fallbacks;
    for _ in 0..100 {
        assert_eq!(take(&s, "r:k", 1, 5).await, Err(()));
    }
    // While down no take tries the network: none of them failed on a call.
    assert_eq!(s.status().errors, errors);
    assert_eq!(s.status().fallbacks, fallbacks + 100);
    assert!(s.status().last_error.is_some());
    redis.restart();
    assert!(
        wait_for(Duration::from_secs(5), || s.is_up()).await,
        "the store did not come back: {:?}",
        s.status()
    );
    assert_eq!(s.status().backend, StoreBackend::Redis);
    // The new server is empty: a fresh, full bucket.
    let t = take(&s, "r:k", 1, 5).await.unwrap();
    assert_eq!((t.allowed, t.remaining), (true, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_and_the_store_recovers_when_it_answers() {
    let redis = TestRedis::start();
    let s = store(&redis, "t6").await;
    assert!(take(&s, "r:k", 1, 5).await.unwrap().allowed);
    redis.pause();
    // The first take waits for its deadline, then every box decides locally.
    assert_eq!(take(&s, "r:k", 1, 5).await, Err(()));
    assert!(!s.is_up());
    for _ in 0..50 {
        assert_eq!(take(&s, "r:k", 1, 5).await, Err(()));
    }
    assert!(
        s.status().last_error.unwrap().contains("within 250 ms"),
        "{:?}",
        s.status()
    );
    redis.resume();
    assert!(
        wait_for(Duration::from_secs(5), || s.is_up()).await,
        "{:?}",
        s.status()
    );
    // Commands written before the hang may still run once it resumes: only ask that it allows.
    assert!(take(&s, "r:k", 1, 5).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_costs_one_eval_and_the_script_is_loaded_again() {
    let redis = TestRedis::start();
    let s = store(&redis, "t7").await;
    let sha = s.inner.sha.get().unwrap().clone();
    let mut c = redis.conn().await;
    c.call(&[b"SCRIPT", b"FLUSH"]).await.unwrap();
    let t = take(&s, "r:k", 1, 5).await.unwrap();
    assert_eq!((t.allowed, t.remaining), (true, 4));
    let mut loaded = false;
    for _ in 0..100 {
        let v = c
            .call(&[b"SCRIPT", b"EXISTS", sha.as_bytes()])
            .await
            .unwrap();
        if v == Value::Array(vec![Value::Int(1)]) {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(loaded, "the script was not loaded again");
    c.call(&[b"CONFIG", b"RESETSTAT"]).await.unwrap();
    let t = take(&s, "r:k", 1, 5).await.unwrap();
    assert_eq!((t.allowed, t.remaining), (true, 3));
    assert_eq!(redis.calls("eval").await, 0);
    assert!(s.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_at_one_key_falls_back_for_that_key_only() {
    let redis = TestRedis::start();
    let s = store(&redis, "t8").await;
    let mut c = redis.conn().await;
    c.call(&[b"SET", b"t8:rl:r:odd", b"x"]).await.unwrap();
    assert_eq!(take(&s, "r:odd", 1, 5).await, Err(()));
    assert!(s.is_up());
    assert!(take(&s, "r:even", 1, 5).await.unwrap().allowed);
    assert_eq!(s.status().errors, 1);
}
