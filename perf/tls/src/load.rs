//! Load with h2load (the same generator for both proxies): throughput and latency percentiles
//! from its per-request log, and full TLS 1.3 handshakes per second.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub requests_per_s: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn h2load(args: &[String]) -> Result<String> {
    let out = Command::new("h2load")
        .args(args)
        .output()
        .context("running h2load (apt-get install nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "h2load failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// `finished in 10.00s, 35012.30 req/s, ...` and `requests: ... N succeeded, M failed, ...`.
fn parse(text: &str) -> Result<(f64, f64, u64, u64)> {
    let fin = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .context("no 'finished in' line")?;
    let took = fin
        .trim_start_matches("finished in ")
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    let secs = seconds(took).with_context(|| format!("bad duration in {fin:?}"))?;
    let rps: f64 = fin
        .split(", ")
        .find(|p| p.ends_with("req/s"))
        .and_then(|p| p.trim_end_matches(" req/s").parse().ok())
        .context("bad req/s")?;
    let req = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .context("no requests line")?;
    let count = |what: &str| -> u64 {
        req.split(", ")
            .find(|p| p.ends_with(what))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        secs,
        rps,
        count("succeeded"),
        count("failed") + count("errored") + count("timeout"),
    ))
}

/// h2load prints `3.00s`, `52.34ms` or `812us`.
fn seconds(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
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
    let text = h2load(&args)?;
    let (_, rps, succeeded, failed) = parse(&text)?;
    // Log columns: start (us since epoch), status, microseconds to the end of the response.
    let mut lat: Vec<u64> = std::fs::read_to_string(&log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    lat.sort_unstable();
    Ok(Throughput {
        requests_per_s: rps,
        succeeded,
        failed,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
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
        let (s, _, ok, _) = parse(&h2load(&args)?)?;
        total += ok;
        time += s;
    }
    Ok((if time > 0.0 { total as f64 / time } else { 0.0 }, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_h2load_summary() {
        let text = "finished in 10.00s, 35012.30 req/s, 2.34MB/s\n\
            requests: 350123 total, 350123 started, 350120 done, 350120 succeeded, 3 failed, \
            0 errored, 0 timeout\n";
        let (s, rps, ok, bad) = parse(text).unwrap_or_default();
        assert_eq!((s, rps, ok, bad), (10.0, 35012.30, 350120, 3));
        assert_eq!(percentile(&[1000, 2000, 3000], 0.5), 2.0);
        assert_eq!(seconds("52.5ms"), Some(0.0525));
        assert_eq!(seconds("3.00s"), Some(3.0));
    }
}
