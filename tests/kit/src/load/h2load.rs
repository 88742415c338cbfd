//! h2load (nghttp2): its summary, and its per-request log (`--log-file`).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// What h2load's summary says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Wall time of the measured part.
    pub seconds: f64,
    pub requests_per_s: f64,
    /// Requests answered, whatever the status.
    pub succeeded: u64,
    /// Failed, errored or timed out.
    pub failed: u64,
}

/// Parses `finished in 10.00s, 35012.30 req/s, ...` and `requests: ... N succeeded, M failed,
/// E errored, T timeout`.
pub fn parse(text: &str) -> Result<Summary> {
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
    let seconds = duration(took).with_context(|| format!("bad duration in {fin:?}"))?;
    let requests_per_s = fin
        .split(", ")
        .find(|p| p.ends_with("req/s"))
        .and_then(|p| p.trim_end_matches(" req/s").parse().ok())
        .with_context(|| format!("no req/s in {fin:?}"))?;
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
    Ok(Summary {
        seconds,
        requests_per_s,
        succeeded: count("succeeded"),
        failed: count("failed") + count("errored") + count("timeout"),
    })
}

/// h2load's durations: `3.00s`, `52.34ms` or `812us`, in seconds.
pub fn duration(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Reads a `--log-file` (start in µs since the epoch, status, µs to the end of the response):
/// pushes each latency onto `latencies_us` and returns how many statuses were not 2xx.
pub fn read_log(path: &Path, latencies_us: &mut Vec<u64>) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut non_2xx = 0;
    for line in text.lines() {
        let mut cols = line.split('\t');
        let status: Option<u16> = cols.nth(1).and_then(|s| s.trim().parse().ok());
        if !matches!(status, Some(200..=299)) {
            non_2xx += 1;
        }
        if let Some(us) = cols.next().and_then(|s| s.trim().parse().ok()) {
            latencies_us.push(us);
        }
    }
    Ok(non_2xx)
}

/// Starts h2load with `args`, output piped.
pub fn spawn(args: &[String]) -> Result<Child> {
    Command::new("h2load")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running h2load (apt-get install nghttp2-client)")
}

/// Runs h2load with `args` to the end; its stdout, or all it said as the error.
pub fn run(args: &[String]) -> Result<String> {
    finish(spawn(args)?)
}

/// Waits for an h2load started by [`spawn`]; its stdout, or all it said as the error.
pub fn finish(child: Child) -> Result<String> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "h2load failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_and_the_log() -> Result<()> {
        let text = "finished in 10.00s, 35012.30 req/s, 2.34MB/s\n\
            requests: 350123 total, 350123 started, 350120 done, 350120 succeeded, 3 failed, \
            1 errored, 0 timeout\n";
        let s = parse(text)?;
        assert_eq!(
            (s.seconds, s.requests_per_s, s.succeeded, s.failed),
            (10.0, 35012.30, 350120, 4)
        );
        assert!(parse("nothing").is_err());
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-12);
        assert!(near(duration("52.5ms"), 0.0525));
        assert!(near(duration("812us"), 0.000812));
        assert!(near(duration("3.00s"), 3.0));
        assert_eq!(duration("3"), None);

        let dir = tempfile::tempdir()?;
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "1700000000000000\t200\t812\n1700000000000100\t429\t900\n",
        )?;
        let mut lat = Vec::new();
        assert_eq!(read_log(&log, &mut lat)?, 1);
        assert_eq!(lat, vec![812, 900]);
        Ok(())
    }
}
