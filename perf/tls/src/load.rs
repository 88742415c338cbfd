//! Load with h2load (the same generator for both proxies): throughput and latency percentiles
//! from its per-request log, and full TLS 1.3 handshakes per second. Its output is read by the
//! test kit.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use vigil_testkit::load::h2load;
use vigil_testkit::load::percentile_ms;

/// One throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub requests_per_s: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `secs` seconds of load with `conns` connections; `h2` uses `streams` per connection.
pub fn throughput(
    port: u16,
    dir: &Path,
    h2: bool,
    conns: u32,
    streams: u32,
    secs: u32,
) -> Result<Throughput> {
    let log = dir.join("h2load.log");
    let _ = std::fs::remove_file(&log);
    let mut args = vec![
        "-t".to_owned(),
        "1".to_owned(),
        "-c".to_owned(),
        conns.to_string(),
        "-D".to_owned(),
        secs.to_string(),
        "--warm-up-time".to_owned(),
        "1".to_owned(),
        format!("--log-file={}", log.display()),
    ];
    if h2 {
        args.extend(["-m".to_owned(), streams.to_string()]);
    } else {
        args.push("--h1".to_owned());
    }
    args.push(format!("https://127.0.0.1:{port}/"));
    let summary = h2load::parse(&h2load::run(&args)?)?;
    let mut lat = Vec::new();
    h2load::read_log(&log, &mut lat)?;
    lat.sort_unstable();
    Ok(Throughput {
        requests_per_s: summary.requests_per_s,
        succeeded: summary.succeeded,
        failed: summary.failed,
        p50_ms: percentile_ms(&lat, 0.50),
        p99_ms: percentile_ms(&lat, 0.99),
    })
}

/// Full handshakes per second: batches of `batch` new connections, one request each, repeated
/// for about `secs` seconds. h2load does not resume sessions, so every connection is a full
/// TLS 1.3 handshake.
pub fn handshakes(port: u16, batch: u32, secs: u32) -> Result<(f64, u64)> {
    let (mut total, mut time) = (0u64, 0f64);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(u64::from(secs)) {
        let args: Vec<String> = vec![
            "--h1".into(),
            "-t".into(),
            "1".into(),
            "-c".into(),
            batch.to_string(),
            "-n".into(),
            batch.to_string(),
            format!("https://127.0.0.1:{port}/"),
        ];
        let summary = h2load::parse(&h2load::run(&args)?)?;
        total += summary.succeeded;
        time += summary.seconds;
    }
    Ok((if time > 0.0 { total as f64 / time } else { 0.0 }, total))
}
