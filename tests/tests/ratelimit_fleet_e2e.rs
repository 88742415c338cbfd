//! Two vigild instances keep one rate limit in a real redis-server: a burst split over both
//! boxes passes exactly once in total. When Redis dies, every request is still answered, each
//! box applies the fallback limit on its own, and status and /metrics say so; when Redis is
//! back, decisions return to it by themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpStream},
    os::fd::FromRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_e2e::{unique, upstream::Upstream};
use vigil_testkit::config::RateLimit;
use vigil_testkit::fleet::FleetKeys;
use vigil_testkit::ports::free_port;
use vigil_testkit::redis::Redis;
use vigil_testkit::vigild::Vigild;

const BURST: usize = 20;
/// The default fallback: half the burst, on each box.
const FALLBACK_BURST: usize = 10;

/// A TCP connection to 127.0.0.1:`port` from `src` (any 127/8 address), so a test can be a
/// new client, with buckets of its own, without a network namespace.
fn connect_from(src: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket this function just created and owns; the stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = addr(src, 0);
    let remote = addr(Ipv4Addr::LOCALHOST, port);
    // SAFETY: bind(2) and connect(2) on the socket above with valid sockaddr_in values whose
    // length is passed along.
    unsafe {
        if libc::bind(fd, (&raw const local).cast(), len) != 0
            || libc::connect(fd, (&raw const remote).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(stream)
}

/// One plain-HTTP GET of `path` from `src`: (status, lower-cased response head); status 0 when
/// the request got no answer.
fn get_from(src: Ipv4Addr, port: u16, path: &str) -> (u16, String) {
    let attempt = || -> std::io::Result<String> {
        let mut s = connect_from(src, port)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    match attempt() {
        Ok(text) => {
            let status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let head = text.split("\r\n\r\n").next().unwrap_or("").to_lowercase();
            (status, if path == "/metrics" { text } else { head })
        }
        Err(e) => (0, e.to_string()),
    }
}

fn get(src: Ipv4Addr, port: u16) -> (u16, String) {
    get_from(src, port, "/items")
}

/// Polls until `f` holds or `limit` passes.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(25));
    }
    false
}

struct Node {
    d: Vigild,
    http: u16,
}

impl Node {
    fn start(
        tag: &str,
        redis: &Redis,
        prefix: &str,
        keys: &FleetKeys,
        name: &str,
        upstream: &str,
    ) -> Node {
        let (https, http) = (free_port().unwrap(), free_port().unwrap());
        let mut d = Vigild::new(tag).unwrap();
        let rule = RateLimit::new("per-ip", "client_ip", 1, BURST as u32).shared();
        let cfg = d
            .gateway_config("127.0.0.1", https, upstream)
            .unwrap()
            .http(format!("127.0.0.1:{http}"))
            .fleet(redis.addr(), prefix, keys, name)
            .rate_limit(rule);
        d.configure(cfg).unwrap();
        d.start().unwrap();
        Node { d, http }
    }

    fn status(&self) -> Value {
        self.d.ctl_json(&["status"]).unwrap()
    }

    fn backend(&self) -> String {
        self.status()["fleet"]["rate_limits"]["backend"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn metrics(&self) -> String {
        let addr = self.status()["gateway"]["metrics"]
            .as_str()
            .unwrap()
            .to_owned();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        get_from(Ipv4Addr::LOCALHOST, port, "/metrics").1
    }
}

/// The value of the first /metrics line starting with `series`.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// `n` requests from `src` to `port`, one after another: the statuses and how long they took.
fn burst(src: Ipv4Addr, port: u16, n: usize) -> (Vec<(u16, String)>, Duration) {
    let start = Instant::now();
    let out = (0..n).map(|_| get(src, port)).collect();
    (out, start.elapsed())
}

fn count(rs: &[(u16, String)], status: u16) -> usize {
    rs.iter().filter(|(s, _)| *s == status).count()
}

/// At `rate` 1/s, a run shorter than a second adds no whole token: exactly `limit` pass.
fn assert_limit(passed: usize, limit: usize, took: Duration, what: &str) {
    eprintln!("{what}: {passed} passed in {took:?}");
    if took < Duration::from_millis(900) {
        assert_eq!(passed, limit, "{what}: {passed} passed in {took:?}");
    } else {
        let most = limit + took.as_secs() as usize + 1;
        assert!(
            (limit..=most).contains(&passed),
            "{what}: {passed} passed in {took:?}"
        );
    }
}

#[test]
fn two_boxes_share_one_limit_and_fall_back_locally_while_redis_is_down() {
    let mut redis = Redis::start().unwrap();
    let up = Upstream::start().unwrap();
    let prefix = format!("vigil-e2e-rl-{}", unique(30));
    let keys = FleetKeys::new(&["box-a", "box-b"]).unwrap();
    let a = Node::start(&unique(30), &redis, &prefix, &keys, "box-a", &up.url());
    let b = Node::start(&unique(31), &redis, &prefix, &keys, "box-b", &up.url());
    for x in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(5), || x.backend() == "redis"),
            "shared rate limits never reached Redis: {}\n{}",
            x.status(),
            x.d.log()
        );
    }

    // 1. Concurrent requests from one client, split over both boxes: exactly the burst passes
    //    in total, the rest get 429 with Retry-After and the shared limit.
    let client = Ipv4Addr::new(127, 0, 0, 1);
    let ports = [a.http, b.http];
    let start = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let port = ports[i % 2];
            thread::spawn(move || (0..5).map(|_| get(client, port)).collect::<Vec<_>>())
        })
        .collect();
    let results: Vec<(u16, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let took = start.elapsed();
    assert_eq!(results.len(), 80);
    assert_eq!(
        count(&results, 200) + count(&results, 429),
        80,
        "only 200 and 429 expected: {results:?}"
    );
    assert_limit(
        count(&results, 200),
        BURST,
        took,
        "shared burst over two boxes",
    );
    for (_, head) in results.iter().filter(|(s, _)| *s == 429) {
        assert!(head.contains("retry-after: "), "{head}");
        assert!(head.contains("ratelimit-limit: 20"), "{head}");
    }
    for x in [&a, &b] {
        let rl = &x.status()["fleet"]["rate_limits"];
        assert!(rl["decisions"].as_u64().unwrap() > 0, "{rl}");
        assert_eq!(rl["fallbacks"], 0, "{rl}");
    }

    // 2. Redis dies. Requests sent across the outage are all answered (no 5xx, no dropped
    //    connection), from a client that keeps its own buckets.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for port in ports {
                    seen.push(get(Ipv4Addr::new(127, 0, 0, 9), port).0);
                }
                thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    thread::sleep(Duration::from_millis(100));
    redis.stop();
    for x in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(3), || x.backend() == "local-fallback"),
            "status never reported the fallback: {}",
            x.status()
        );
    }
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let seen = background.join().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 429),
        "a request failed during the outage: {seen:?}"
    );

    // Each box now limits on its own, with the fallback burst (half), for a fresh client.
    let fresh = Ipv4Addr::new(127, 0, 0, 2);
    for x in [&a, &b] {
        let (rs, took) = burst(fresh, x.http, FALLBACK_BURST + 5);
        assert_eq!(count(&rs, 200) + count(&rs, 429), rs.len(), "{rs:?}");
        assert_limit(count(&rs, 200), FALLBACK_BURST, took, "fallback burst");
        let (_, head) = rs.iter().find(|(s, _)| *s == 429).unwrap();
        assert!(head.contains("retry-after: "), "{head}");
        assert!(head.contains("ratelimit-limit: 10"), "{head}");
    }
    let text = a.d.ctl(&["status"]).unwrap();
    assert!(text.contains("rate limits:   LOCAL FALLBACK"), "{text}");
    let rl = &a.status()["fleet"]["rate_limits"];
    assert!(rl["last_error"].is_string(), "{rl}");
    assert!(rl["fallbacks"].as_u64().unwrap() >= 15, "{rl}");
    let m = a.metrics();
    assert_eq!(
        metric(&m, "vigil_fleet_rate_limit_store_up "),
        Some(0),
        "{m}"
    );
    assert!(
        metric(&m, "vigil_fleet_rate_limit_store_fallbacks_total ").unwrap() >= 15,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "vigil_gateway_rate_limit_fallback_total{rule=\"per-ip\"} "
        )
        .unwrap()
            >= 15,
        "{m}"
    );

    // 3. Redis is back (empty, same port): both boxes return to it by themselves.
    redis.restart().unwrap();
    for x in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(5), || x.backend() == "redis"),
            "the boxes did not return to Redis: {}\n{}",
            x.status(),
            x.d.log()
        );
    }
    let text = b.d.ctl(&["status"]).unwrap();
    assert!(text.contains("rate limits:   shared in Redis"), "{text}");
    let before = a.status()["fleet"]["rate_limits"]["decisions"]
        .as_u64()
        .unwrap();
    let (rs, _) = burst(Ipv4Addr::new(127, 0, 0, 3), a.http, 3);
    assert_eq!(count(&rs, 200), 3, "{rs:?}");
    let after = a.status()["fleet"]["rate_limits"]["decisions"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 3);
    assert_eq!(
        metric(&a.metrics(), "vigil_fleet_rate_limit_store_up "),
        Some(1)
    );
    // The box logged the outage once and the recovery once, not per request.
    let log = a.d.log();
    eprintln!("box A's log:\n{log}");
    assert_eq!(log.matches("Redis unavailable").count(), 1, "{log}");
    assert_eq!(log.matches("Redis is back").count(), 1, "{log}");
}
