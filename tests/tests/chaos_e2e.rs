//! vigild under load while what it depends on fails: the daemon itself killed with SIGKILL
//! (audit lines lost, within the documented bound), the upstream killed and restarted (502 with
//! a JSON reason, then 200 again), Redis killed and restarted (every request still served by
//! the local fallback), a storm of 50 reloads (no request fails) and the audit log's disk
//! filling up (whole lines only, losses counted and logged). Everything runs on loopback, is
//! bounded in requests and time, and every process started is stopped by its guard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_e2e::unique;
use vigil_testkit::config::{Config, RateLimit};
use vigil_testkit::fleet::FleetKeys;
use vigil_testkit::ports::free_port;
use vigil_testkit::redis::Redis;
use vigil_testkit::vigild::Vigild;

/// `[audit] queue_capacity` of these tests.
const QUEUE: usize = 1024;
/// Lines the audit writer holds outside the queue while it writes a batch (`BATCH` in
/// dataplane/gateway/src/audit/writer.rs).
const BATCH: usize = 256;

// ---------------------------------------------------------------------------------------------
// A plain HTTP/1.1 keep-alive client.

#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// One GET; the connection stays usable unless the response said `connection: close`.
    fn get(&mut self, path: &str) -> std::io::Result<(Resp, bool)> {
        write!(self.w, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let mut resp = Resp {
            status,
            headers,
            body: String::new(),
        };
        let mut body = Vec::new();
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                let mut chunk = vec![0; size + 2];
                self.r.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
            body.resize(n, 0);
            self.r.read_exact(&mut body)?;
        }
        resp.body = String::from_utf8_lossy(&body).into_owned();
        let close = resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok((resp, close))
    }
}

/// One request on a fresh connection (for /metrics).
fn get_once(port: u16, path: &str) -> std::io::Result<Resp> {
    Conn::open(port)?.get(path).map(|(r, _)| r)
}

// ---------------------------------------------------------------------------------------------
// Load: client threads sending requests until stopped or out of requests.

/// One request as a client saw it: the phase when it was sent and when its answer was read,
/// and the answer (or why there was none).
#[derive(Debug)]
struct Sample {
    sent: u8,
    done: u8,
    result: Result<Resp, String>,
}

/// Client threads; stopped (and joined) on drop, so a failing test leaves none behind.
struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU8>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// `clients` threads, each sending at most `max` requests to `port`, `pause` apart,
    /// reconnecting every `per_conn` requests (so reloads meet both old and new connections).
    fn start(port: u16, clients: usize, max: usize, per_conn: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(0));
        let threads = (0..clients)
            .map(|c| {
                let (stop, phase) = (stop.clone(), phase.clone());
                thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut conn: Option<(Conn, usize)> = None;
                    while !stop.load(Ordering::Relaxed) && out.len() < max {
                        let sent = phase.load(Ordering::SeqCst);
                        let path = format!("/items/{c}/{}", out.len());
                        let result = match conn.take() {
                            Some(c) => Ok(c),
                            None => Conn::open(port).map(|c| (c, 0)),
                        }
                        .and_then(|(mut cn, used)| {
                            let (resp, close) = cn.get(&path)?;
                            if !close && used + 1 < per_conn {
                                conn = Some((cn, used + 1));
                            }
                            Ok(resp)
                        })
                        .map_err(|e| e.to_string());
                        let failed = result.is_err();
                        let done = phase.load(Ordering::SeqCst);
                        out.push(Sample { sent, done, result });
                        if failed {
                            // The server is gone (kill test): do not spin on refused connects.
                            thread::sleep(Duration::from_millis(20));
                        }
                        thread::sleep(pause);
                    }
                    out
                })
            })
            .collect();
        Load {
            stop,
            phase,
            threads,
        }
    }

    fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::SeqCst);
    }

    /// Stops the clients and returns every sample.
    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Waits until `f` holds or `limit` passes (sequencing only, never a speed assertion).
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    f()
}

// ---------------------------------------------------------------------------------------------
// An upstream that can be killed (listener and every connection closed at once) and started
// again on the same port.

struct Upstream {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start(port: u16) -> Upstream {
        let mut u = Upstream {
            port,
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            accept: None,
        };
        u.spawn();
        u
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let listener = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match TcpListener::bind(self.addr()) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => panic!("upstream bind: {e}"),
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        self.stop = Arc::new(AtomicBool::new(false));
        let (stop, conns) = (self.stop.clone(), self.conns.clone());
        self.accept = Some(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        if let Ok(c) = s.try_clone() {
                            conns.lock().unwrap().push(c);
                        }
                        thread::spawn(move || serve(s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener closes here: new connections are refused.
        }));
    }

    /// Closes the listener and every open connection, as the death of the process would.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Answers keep-alive GETs with a small JSON body until the peer or `kill` closes.
fn serve(s: TcpStream) {
    let Ok(read) = s.try_clone() else { return };
    let mut r = BufReader::new(read);
    let mut w = s;
    loop {
        let mut path = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if path.is_empty() {
                path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            }
        }
        let body = format!("{{\"upstream\":\"chaos\",\"path\":\"{path}\"}}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// vigild with the gateway on loopback.

struct Gw {
    d: Vigild,
    http: u16,
    cfg: Config,
}

impl Gw {
    /// vigild without XDP in front of `upstream`, HTTPS and plain HTTP, audit lines in `audit`
    /// (`None`: `audit.log` in the daemon's directory), `extra` applied.
    fn start(
        tag: &str,
        upstream: SocketAddr,
        audit: Option<&Path>,
        extra: impl FnOnce(Config) -> Config,
    ) -> Gw {
        let (https, http) = (free_port().unwrap(), free_port().unwrap());
        let mut d = Vigild::new(tag).unwrap();
        let audit = audit.map_or_else(|| d.path("audit.log"), Path::to_path_buf);
        let cfg = d
            .gateway_config("127.0.0.1", https, format!("http://{upstream}"))
            .unwrap()
            .http(format!("127.0.0.1:{http}"))
            .audit_file(&audit)
            .set("audit.queue_capacity", QUEUE as i64);
        let cfg = extra(cfg);
        d.configure(cfg.clone()).unwrap();
        d.start().unwrap();
        Gw { d, http, cfg }
    }

    fn audit_path(&self) -> PathBuf {
        self.d.path("audit.log")
    }

    fn metrics(&self) -> String {
        let status = self.d.ctl_json(&["status"]).unwrap();
        let addr = status["gateway"]["metrics"].as_str().unwrap().to_owned();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        get_once(port, "/metrics").unwrap().body
    }

    /// vigild still running, answering its control socket, and no panic in its log.
    fn assert_healthy(&mut self) {
        let log = self.d.log();
        assert!(self.d.alive(), "vigild exited:\n{log}");
        assert!(!log.contains("panicked"), "vigild panicked:\n{log}");
        let status = self.d.ctl_json(&["status"]).unwrap();
        assert_eq!(status["daemon"]["running"], true, "{status}");
    }
}

/// The value of the series `name` (exact, labels included) in a /metrics text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The audit file's lines as JSON; panics on a line that is not one whole record. With
/// `torn_tail`, a last line cut by a kill is tolerated (and returned separately).
fn audit_lines(path: &Path, torn_tail: bool) -> (Vec<Value>, Option<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut torn = None;
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        let last = lines.pop().unwrap_or_default();
        assert!(torn_tail, "the audit log ends in a partial line: {last}");
        torn = Some(last.to_owned());
    }
    let parsed = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l.trim_end())
                .unwrap_or_else(|e| panic!("audit line is not one JSON record ({e}): {l}"))
        })
        .collect();
    (parsed, torn)
}

/// The audit file's lines once no request is in flight: waits for the last batch to be
/// written, then requires every line to be one whole record. While requests flow, a reader can
/// see a batch's tail before the rest of the batch is written; `audit_lines(path, true)` is the
/// count to use then.
fn settled_audit_lines(path: &Path) -> Vec<Value> {
    assert!(
        wait_for(Duration::from_secs(10), || audit_lines(path, true)
            .1
            .is_none()),
        "the audit log still ends in a partial line with no request in flight"
    );
    audit_lines(path, false).0
}

fn ok_count(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| matches!(&s.result, Ok(r) if r.status == 200))
        .count()
}

/// Every sample answered 200, or a summary of those that were not.
fn assert_all_ok(samples: &[Sample], what: &str, log: &str) {
    let bad: Vec<String> = samples
        .iter()
        .filter(|s| !matches!(&s.result, Ok(r) if r.status == 200))
        .take(10)
        .map(|s| match &s.result {
            Ok(r) => format!("{} {}", r.status, r.body),
            Err(e) => format!("no answer: {e}"),
        })
        .collect();
    let failed = samples.len() - ok_count(samples);
    assert!(
        failed == 0,
        "{what}: {failed} of {} requests failed, e.g. {bad:?}\nvigild log:\n{log}",
        samples.len()
    );
}

// ---------------------------------------------------------------------------------------------

/// a. SIGKILL under load loses at most the lines still queued: `queue_capacity` + one batch
///    (docs/gateway.md); the restarted daemon cuts a line the kill left half-written.
#[test]
fn kill_9_under_load_loses_at_most_the_queued_audit_lines() {
    let up = Upstream::start(free_port().unwrap());
    let mut gw = Gw::start(&unique(60), up.addr(), None, |c| c);
    let load = Load::start(gw.http, 4, 5_000, 50, Duration::ZERO);
    // Kill while requests are flowing: once a good share of them has been answered.
    let audit = gw.audit_path();
    wait_for(Duration::from_secs(60), || {
        std::fs::metadata(&audit).map_or(0, |m| m.len()) > 300 * 1000
    });
    gw.d.kill9();
    let samples = load.finish();
    let answered: HashSet<String> = samples
        .iter()
        .filter_map(|s| match &s.result {
            Ok(r) if r.status == 200 => r.header("x-request-id").map(str::to_owned),
            _ => None,
        })
        .collect();
    let answered_n = ok_count(&samples);
    assert_eq!(answered.len(), answered_n, "a 200 without a request id");
    assert!(answered_n >= 500, "too little load: {answered_n} answered");
    let (before, torn) = audit_lines(&audit, true);

    // The restarted daemon appends after whole lines only.
    gw.d.start().unwrap();
    let mut c = Conn::open(gw.http).unwrap();
    for i in 0..5 {
        assert_eq!(c.get(&format!("/after/{i}")).unwrap().0.status, 200);
    }
    drop(c);
    gw.d.term();
    let (after, _) = audit_lines(&audit, false);
    assert_eq!(after.len(), before.len() + 5, "lines after the restart");
    assert!(
        after[before.len()..]
            .iter()
            .all(|l| l["path"].as_str().is_some_and(|p| p.starts_with("/after/")))
    );
    if torn.is_some() {
        assert!(
            gw.d.log().contains("partial line"),
            "the cut was not logged:\n{}",
            gw.d.log()
        );
    }

    let logged: HashSet<&str> = before
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    let lost = answered
        .iter()
        .filter(|id| !logged.contains(id.as_str()))
        .count();
    eprintln!(
        "kill -9: {answered_n} requests answered, {} audit lines written, {lost} answered \
         requests without an audit line, partial last line: {}",
        before.len(),
        torn.map_or(0, |t| t.len())
    );
    assert!(
        lost <= QUEUE + BATCH,
        "{lost} answered requests have no audit line (bound {})",
        QUEUE + BATCH
    );
}

/// b. The upstream dies under load: requests meanwhile get 502 with a JSON reason; once it is
///    back every request succeeds again, and vigild never falls over.
#[test]
fn upstream_killed_and_restarted_under_load() {
    // A request is judged only if it was sent and answered within one phase; the kill and the
    // restart have phases of their own, so those that race them are not.
    const UP: u8 = 0;
    const KILLING: u8 = 1;
    const DOWN: u8 = 2;
    const RESTARTING: u8 = 3;
    const BACK: u8 = 4;
    let mut up = Upstream::start(free_port().unwrap());
    let mut gw = Gw::start(&unique(61), up.addr(), None, |c| c);
    let load = Load::start(gw.http, 4, 3_000, 25, Duration::ZERO);
    let audit = gw.audit_path();
    // Counted while requests flow: a batch's tail may be in the middle of its write.
    let lines = || audit_lines(&audit, true).0.len();
    assert!(wait_for(Duration::from_secs(30), || lines() >= 200));

    load.set_phase(KILLING);
    up.kill();
    load.set_phase(DOWN);
    let statuses = |status: u64| {
        audit_lines(&audit, true)
            .0
            .iter()
            .filter(|l| l["status"] == status)
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(30), || statuses(502) >= 100),
        "no 502s while the upstream is down\n{}",
        gw.d.log()
    );
    load.set_phase(RESTARTING);
    up.restart();
    load.set_phase(BACK);
    let ok_before = statuses(200);
    assert!(wait_for(Duration::from_secs(30), || statuses(200) >= ok_before + 200));
    let samples = load.finish();
    gw.assert_healthy();
    assert!(!settled_audit_lines(&audit).is_empty());

    let within = |p: u8| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.sent == p && s.done == p)
            .collect()
    };
    let unanswered: Vec<&String> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().err())
        .collect();
    assert!(
        unanswered.is_empty(),
        "requests without an answer: {unanswered:?}"
    );
    // Those that raced the kill or the restart got one or the other.
    for s in &samples {
        let r = s.result.as_ref().unwrap();
        assert!([200, 502].contains(&r.status), "{r:?}");
    }
    for s in within(UP).iter().chain(within(BACK).iter()) {
        let r = s.result.as_ref().unwrap();
        assert_eq!(r.status, 200, "with the upstream up: {r:?}");
    }
    let down = within(DOWN);
    assert!(!down.is_empty());
    for s in &down {
        let r = s.result.as_ref().unwrap();
        assert_eq!(r.status, 502, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        assert_eq!(v["status"], 502, "{r:?}");
        assert!(
            ["upstream_unreachable", "upstream_error"]
                .contains(&v["reason"].as_str().unwrap_or("")),
            "{r:?}"
        );
        assert!(r.header("x-request-id").is_some());
    }
    eprintln!(
        "upstream outage: {} requests before, {} during (all 502), {} after (all 200), {} across \
         a switch",
        within(UP).len(),
        down.len(),
        within(BACK).len(),
        samples.len() - within(UP).len() - down.len() - within(BACK).len()
    );
}

/// c. Redis (shared rate limits) dies under load: every request is still served, by the local
///    fallback, and decisions go back to Redis once it is back (docs/gateway.md, Shared rate
///    limits: "A request is never refused or failed because Redis is unavailable").
#[test]
fn redis_killed_and_restarted_under_load() {
    let mut redis = Redis::start().unwrap();
    let up = Upstream::start(free_port().unwrap());
    let keys = FleetKeys::new(&["chaos"]).unwrap();
    let mut gw = Gw::start(&unique(62), up.addr(), None, |c| {
        c.fleet(
            redis.addr(),
            &format!("vigil-chaos-{}", unique(62)),
            &keys,
            "chaos",
        )
        .rate_limit(RateLimit::new("per-ip", "client_ip", 100_000, 100_000).shared())
    });
    let backend = |gw: &Gw| {
        gw.d.ctl_json(&["status"]).unwrap()["fleet"]["rate_limits"]["backend"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(wait_for(Duration::from_secs(10), || backend(&gw) == "redis"));
    let load = Load::start(gw.http, 4, 3_000, 25, Duration::ZERO);
    let audit = gw.audit_path();
    // Counted while requests flow: a batch's tail may be in the middle of its write.
    let lines = || audit_lines(&audit, true).0.len();
    assert!(wait_for(Duration::from_secs(30), || lines() >= 200));

    redis.stop();
    assert!(
        wait_for(Duration::from_secs(10), || backend(&gw) == "local-fallback"),
        "never switched to the local fallback\n{}",
        gw.d.log()
    );
    let n = lines();
    assert!(wait_for(Duration::from_secs(30), || lines() >= n + 200));
    redis.restart().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || backend(&gw) == "redis"),
        "never went back to Redis\n{}",
        gw.d.log()
    );
    let n = lines();
    assert!(wait_for(Duration::from_secs(30), || lines() >= n + 200));
    let samples = load.finish();
    gw.assert_healthy();
    assert!(settled_audit_lines(&audit).len() >= n + 200);
    assert_all_ok(&samples, "Redis outage", &gw.d.log());
    let metrics = gw.metrics();
    let fallbacks = metric(&metrics, "vigil_fleet_rate_limit_store_fallbacks_total").unwrap_or(0);
    assert!(fallbacks > 0, "no decision used the fallback:\n{metrics}");
    eprintln!(
        "Redis outage: {} requests, all 200; {fallbacks} decided by the local fallback",
        samples.len()
    );
}

/// d. 50 reloads (SIGHUP) while clients send requests on old and new connections, plain and
///    TLS: none fails (docs/gateway.md: "reloads never cut requests in flight").
#[test]
fn a_storm_of_50_reloads_fails_no_request() {
    let up = Upstream::start(free_port().unwrap());
    let mut gw = Gw::start(&unique(63), up.addr(), None, |c| {
        c.set("limits.max_header_count", 100)
    });
    let https: u16 = {
        let status = gw.d.ctl_json(&["status"]).unwrap();
        let a = status["gateway"]["https"].as_str().unwrap().to_owned();
        a.rsplit(':').next().unwrap().parse().unwrap()
    };
    let reloads = |gw: &Gw| metric(&gw.metrics(), "vigil_gateway_reloads_total{result=\"ok\"}");
    assert_eq!(reloads(&gw), Some(0));
    // Paced, so the clients are still sending when the last reload comes.
    let load = Load::start(gw.http, 4, 20_000, 10, Duration::from_millis(2));
    // TLS clients too: curl keeps one connection for the URLs of one run (h2 and h1).
    let stop = Arc::new(AtomicBool::new(false));
    let tls = {
        let (stop, cert) = (stop.clone(), gw.d.ca());
        thread::spawn(move || {
            let mut codes = Vec::new();
            let url = format!("https://127.0.0.1:{https}/tls");
            for run in 0..100 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "20"])
                    .arg(if run % 2 == 0 { "--http2" } else { "--http1.1" })
                    .arg("--cacert")
                    .arg(&cert)
                    .args(["-w", "%{http_code}\\n"])
                    .args((0..10).flat_map(|_| ["-o", "/dev/null", url.as_str()]))
                    .output()
                    .unwrap();
                codes.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::to_owned),
                );
            }
            codes
        })
    };

    for i in 1..=50u32 {
        // A real change each time (the kit writes the file whole, by rename).
        let next = gw.cfg.clone().set("limits.max_header_count", 100 + i % 2);
        gw.d.configure(next).unwrap();
        assert!(gw.d.signal(libc::SIGHUP));
        // One at a time: signals sent faster than handled would merge into one reload.
        assert!(
            wait_for(Duration::from_secs(10), || reloads(&gw)
                == Some(u64::from(i))),
            "reload {i} not applied\n{}",
            gw.d.log()
        );
        // Some requests between two reloads.
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let samples = load.finish();
    let codes = tls.join().unwrap();
    gw.assert_healthy();
    let metrics = gw.metrics();
    assert_eq!(
        metric(&metrics, "vigil_gateway_reloads_total{result=\"rejected\"}"),
        Some(0)
    );
    assert_all_ok(&samples, "reload storm", &gw.d.log());
    assert!(!codes.is_empty());
    assert!(
        codes.iter().all(|c| c == "200"),
        "TLS requests during the reload storm: {codes:?}"
    );
    eprintln!(
        "reload storm: 50 reloads, {} plain and {} TLS requests, all 200",
        samples.len(),
        codes.len()
    );
}

/// A small tmpfs on a directory; unmounted on drop, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
        }
        assert!(
            out.status.success(),
            "mount (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still open by a vigild being torn down: detach now, freed when it closes.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// e. The audit log's disk fills up: requests are still served, the log keeps whole lines
///    only, the lines lost are counted and said in the daemon log, and writing resumes once
///    there is room.
#[test]
fn a_full_audit_disk_keeps_whole_lines_and_says_what_was_lost() {
    let up = Upstream::start(free_port().unwrap());
    let tag = unique(64);
    let dir = std::env::temp_dir().join(format!("vigil-e2e-{tag}-fs"));
    let fs = Tmpfs::mount(dir, "64k");
    let audit = fs.dir.join("audit.log");
    let mut gw = Gw::start(&tag, up.addr(), Some(&audit), |c| c);
    let mut c = Conn::open(gw.http).unwrap();
    let mut answered = 0;
    let mut send = |c: &mut Conn, n: usize, tag: &str| {
        for i in 0..n {
            let (r, _) = c.get(&format!("/{tag}/{i}")).unwrap();
            assert_eq!(r.status, 200, "{r:?}");
            answered += 1;
        }
        answered
    };
    send(&mut c, 5, "before");
    assert!(wait_for(Duration::from_secs(10), || audit_lines(
        &audit, false
    )
    .0
    .len()
        == 5));

    // Fill the disk; the log's last page keeps some room, so writes end part-way.
    let filler = fs.dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[b'x'; 4096]).is_ok() {}
        while f.write_all(b"x").is_ok() {}
    }
    let errors = |gw: &Gw| {
        metric(&gw.metrics(), "vigil_gateway_audit_write_errors_total").unwrap_or(0) as usize
    };
    let total = send(&mut c, 60, "full");
    assert!(
        // While a batch is being written (and cut back) a reader may see its partial tail:
        // only the settled file must hold whole lines.
        wait_for(Duration::from_secs(10), || audit_lines(&audit, true)
            .0
            .len()
            + errors(&gw)
            == total),
        "lines neither written nor counted"
    );
    // Every line is now written or counted: no batch is in flight, the file is settled.
    let _ = audit_lines(&audit, false);
    let lost = errors(&gw);
    assert!(lost > 0, "the disk never filled up");

    std::fs::remove_file(&filler).unwrap();
    let total = send(&mut c, 20, "after");
    drop(c);
    gw.d.term();
    let (lines, _) = audit_lines(&audit, false);
    let log = gw.d.log();
    assert_eq!(lines.len() + lost, total, "{log}");
    let paths: Vec<&str> = lines.iter().filter_map(|l| l["path"].as_str()).collect();
    assert!(
        paths.ends_with(
            &(0..20)
                .map(|i| format!("/after/{i}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        "{paths:?}"
    );
    // Each message carries the count since the one before; together they say all of it.
    let said: usize = log
        .lines()
        .filter(|l| l.contains("audit lines lost"))
        .filter_map(|l| {
            let n = l.split("lost=").nth(1)?;
            n.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(said, lost, "the loss is not in the daemon log:\n{log}");
    eprintln!(
        "full disk: {total} requests answered, {} audit lines written, {lost} lost and counted",
        lines.len()
    );
}
