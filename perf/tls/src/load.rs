//! The load generators, each pinned to the generator's CPU with its CPU time measured: wrk (one
//! thread) for HTTP/1.1, h2load for HTTP/2 and for full handshakes. A run whose generator used
//! more than [`GENERATOR_LIMIT`] percent of its CPU measured the client, not the server, and is
//! marked so.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use vigil_testkit::load::{h2load, percentile_ms, wrk};
use vigil_testkit::procs::cpu::{Measured, cpu_seconds, run_measured};

/// Above this share of its CPU the generator may have been the limit: the run is refused.
pub const GENERATOR_LIMIT: f64 = 90.0;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub requests_per_s: f64,
    pub requests: u64,
    /// Socket errors, non-2xx answers, h2load's failed requests.
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The generator's CPU time over the run's wall time, % of one CPU.
    pub generator_cpu_percent: f64,
    /// The proxy's and the upstream's CPU over the run, % of one CPU (filled by the caller).
    pub proxy_cpu_percent: f64,
    pub upstream_cpu_percent: f64,
    /// The proxy's CPU time per answered request, µs: steadier than requests/s when other
    /// work on the machine takes a share of the server's CPU.
    pub proxy_cpu_us_per_request: f64,
    /// The generator was above [`GENERATOR_LIMIT`]: the figure is the client's, not counted.
    pub generator_limited: bool,
}

impl Run {
    fn new(requests_per_s: f64, requests: u64, errors: u64, p: (f64, f64), m: &Measured) -> Self {
        let cpu = m.cpu_percent();
        Self {
            requests_per_s,
            requests,
            errors,
            p50_ms: p.0,
            p99_ms: p.1,
            generator_cpu_percent: cpu,
            proxy_cpu_percent: f64::NAN,
            upstream_cpu_percent: f64::NAN,
            proxy_cpu_us_per_request: f64::NAN,
            generator_limited: cpu > GENERATOR_LIMIT,
        }
    }
}

/// `secs` seconds of wrk (one thread, `conns` connections, latency distribution) with `script`
/// against `https://127.0.0.1:port`, on `cpu`.
pub fn wrk(port: u16, script: &Path, conns: u32, secs: u32, cpu: usize) -> Result<Run> {
    let m = run_measured(&mut wrk::command(port, script, conns, secs), Some(cpu))?;
    let s = wrk::parse(&m.stdout)?;
    let (Some(p50), Some(p99)) = (s.p50_ms, s.p99_ms) else {
        bail!("wrk printed no latency distribution: {}", m.stdout);
    };
    Ok(Run::new(
        s.requests_per_s,
        s.requests,
        s.errors,
        (p50, p99),
        &m,
    ))
}

/// `secs` seconds of HTTP/2 load from h2load (one thread, `conns` connections with `streams`
/// streams each) on `cpu`, with the bearer `token`, latencies from its per-request log.
pub fn h2(
    port: u16,
    dir: &Path,
    token: &str,
    conns: u32,
    streams: u32,
    secs: u32,
    cpu: usize,
) -> Result<Run> {
    let log = dir.join("h2load.log");
    let _ = std::fs::remove_file(&log);
    let m = run_measured(
        Command::new("h2load")
            .args([
                "-t",
                "1",
                "-c",
                &conns.to_string(),
                "-m",
                &streams.to_string(),
            ])
            .args(["-D", &secs.to_string(), "--warm-up-time", "1"])
            .args(["-H", &format!("authorization: Bearer {token}")])
            .arg(format!("--log-file={}", log.display()))
            .arg(format!(
                "https://127.0.0.1:{port}{}",
                crate::cases::GET_PATH
            )),
        Some(cpu),
    )?;
    let summary = h2load::parse(&m.stdout)?;
    let mut lat = Vec::new();
    let non_2xx = h2load::read_log(&log, &mut lat)?;
    lat.sort_unstable();
    let p = (percentile_ms(&lat, 0.50), percentile_ms(&lat, 0.99));
    let mut run = Run::new(
        summary.requests_per_s,
        summary.succeeded,
        summary.failed + non_2xx,
        p,
        &m,
    );
    // The warm-up second is in the wall time but not in the rate: count the CPU over the
    // measured part only, which errs towards flagging.
    run.generator_cpu_percent = 100.0 * m.cpu_s / (m.wall_s - 1.0).max(0.1);
    run.generator_limited = run.generator_cpu_percent > GENERATOR_LIMIT;
    Ok(run)
}

/// One round of full handshakes against one server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Handshakes {
    /// Handshakes per second over h2load's own measured time.
    pub per_s: f64,
    pub count: u64,
    /// The generator's CPU share over the round.
    pub generator_cpu_percent: f64,
    /// The server's CPU time per handshake (and its one request), in microseconds.
    pub proxy_cpu_us: f64,
}

impl Handshakes {
    /// Whether the generator was the limit of this round (its rate then measured the client).
    pub fn generator_limited(&self) -> bool {
        self.generator_cpu_percent.is_nan() || self.generator_cpu_percent > GENERATOR_LIMIT
    }

    /// What one core of the server could sustain at this round's CPU cost per handshake.
    pub fn per_core_s(&self) -> f64 {
        if self.proxy_cpu_us > 0.0 {
            1e6 / self.proxy_cpu_us
        } else {
            f64::NAN
        }
    }
}

/// Full TLS 1.3 handshakes per second: batches of `batch` new connections with one request
/// each (h2load does not resume sessions) for about `secs` seconds, on `cpu`, against the
/// server `pid` listening on `port`, whose CPU time over the round is recorded too. One batch
/// first is not counted: it brings the server's memory up to a batch's working set, a cost of
/// the round's start and not of a handshake; both servers get it. (Memory an allocator gives
/// back during the round is still faulted in again inside it: perf/README.)
pub fn handshakes(port: u16, pid: u32, batch: u32, secs: u32, cpu: usize) -> Result<Handshakes> {
    let run_batch = || {
        run_measured(
            Command::new("h2load")
                .args(["--h1", "-t", "1", "-c", &batch.to_string()])
                .args(["-n", &batch.to_string()])
                .arg(format!("https://127.0.0.1:{port}/")),
            Some(cpu),
        )
    };
    let warm = h2load::parse(&run_batch()?.stdout)?;
    if warm.succeeded == 0 {
        bail!("the warm-up batch of {batch} handshakes to port {port} got no answer");
    }
    let (mut total, mut time, mut cpu_s, mut wall_s) = (0u64, 0f64, 0f64, 0f64);
    let proxy_0 = cpu_seconds(pid)?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(u64::from(secs)) {
        let m = run_batch()?;
        let summary = h2load::parse(&m.stdout)?;
        total += summary.succeeded;
        time += summary.seconds;
        cpu_s += m.cpu_s;
        wall_s += m.wall_s;
    }
    let proxy_s = cpu_seconds(pid)? - proxy_0;
    Ok(Handshakes {
        per_s: if time > 0.0 { total as f64 / time } else { 0.0 },
        count: total,
        generator_cpu_percent: if wall_s > 0.0 {
            100.0 * cpu_s / wall_s
        } else {
            f64::NAN
        },
        proxy_cpu_us: if total > 0 {
            1e6 * proxy_s / total as f64
        } else {
            f64::NAN
        },
    })
}
