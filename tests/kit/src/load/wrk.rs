//! wrk: its summary with `--latency`.

use anyhow::{Context, Result};

/// What wrk's summary says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub requests_per_s: f64,
    /// From the `--latency` distribution, when printed.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Socket errors (connect, read, write, timeout) and non-2xx or 3xx responses.
    pub errors: u64,
}

/// Parses `N requests in 10.00s, ...`, `Requests/sec: R`, the `50%`/`99%` lines of
/// `Latency Distribution`, `Socket errors: connect a, read b, write c, timeout d` and
/// `Non-2xx or 3xx responses: n`.
pub fn parse(text: &str) -> Result<Summary> {
    let line = |prefix: &str| text.lines().map(str::trim).find(|l| l.starts_with(prefix));
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no 'requests in' line")?;
    let requests_per_s = line("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .context("no Requests/sec line")?;
    let quantile = |q: &str| {
        line(q)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(ms)
    };
    let socket_errors: u64 = line("Socket errors:").map_or(0, |l| {
        l.split(',')
            .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    let non_2xx: u64 = line("Non-2xx or 3xx responses:")
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(Summary {
        requests,
        requests_per_s,
        p50_ms: quantile("50%"),
        p99_ms: quantile("99%"),
        errors: socket_errors + non_2xx,
    })
}

/// wrk's latencies: `812.00us`, `1.23ms`, `2.01s`, in milliseconds.
fn ms(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else {
        (text.strip_suffix('s')?, 1e3)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// `wrk` with one thread, `conns` connections for `secs` seconds, its latency distribution and
/// a 5 s timeout, running `script` against `https://127.0.0.1:port`.
pub fn command(
    port: u16,
    script: &std::path::Path,
    conns: u32,
    secs: u32,
) -> std::process::Command {
    let mut c = std::process::Command::new("wrk");
    c.args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("https://127.0.0.1:{port}"));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_latency_run() -> Result<()> {
        let text = "Running 10s test @ http://127.0.0.1:8080/\n  1 threads and 16 connections\n\
            \x20 Latency Distribution\n     50%  350.00us\n     75%  400.00us\n\
            \x20    90%    1.20ms\n     99%    2.50ms\n\
            \x20 451234 requests in 10.00s, 60.25MB read\n\
            \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
            \x20 Non-2xx or 3xx responses: 4\nRequests/sec:  45123.40\nTransfer/sec:      6.02MB\n";
        let s = parse(text)?;
        assert_eq!(s.requests, 451_234);
        assert_eq!(s.requests_per_s, 45123.40);
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
        assert!(near(s.p50_ms, 0.35) && near(s.p99_ms, 2.5), "{s:?}");
        assert_eq!(s.errors, 7);
        assert!(parse("Requests/sec: 1\n").is_err());
        Ok(())
    }
}
