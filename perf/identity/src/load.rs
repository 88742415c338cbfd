//! Load with h2load, HTTP/1.1, one request in flight per connection: requests/s from its
//! summary, latency percentiles and status codes from its per-request log. A run can be split
//! across several h2load processes started together (h2load sends the same headers on every
//! connection, so connections with different tokens need different processes); their rates are
//! summed and their logs merged.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// One measured round.
#[derive(Debug, Clone)]
pub struct Round {
    pub requests_per_s: f64,
    /// Requests h2load counted as succeeded (any status).
    pub succeeded: u64,
    /// Failed, errored or timed out.
    pub failed: u64,
    /// Responses in the logs with a status other than 2xx (must be 0 for the round to count).
    pub non_2xx: u64,
    /// Time to the end of each response, µs.
    pub latencies_us: Vec<u64>,
}

/// One h2load process of a run: its connections and the bearer token it sends, if any.
#[derive(Debug, Clone)]
pub struct Group {
    pub connections: u32,
    pub token: Option<String>,
}

/// `finished in 5.00s, 35012.30 req/s, ...` and `requests: ... N succeeded, M failed, ...`.
fn parse(text: &str) -> Result<(f64, u64, u64)> {
    let fin = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .context("no 'finished in' line")?;
    let rps: f64 = fin
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
    Ok((
        rps,
        count("succeeded"),
        count("failed") + count("errored") + count("timeout"),
    ))
}

/// Log lines: start (µs since the epoch), status, µs to the end of the response.
fn read_log(path: &Path, lat: &mut Vec<u64>) -> Result<u64> {
    let mut non_2xx = 0;
    for line in std::fs::read_to_string(path)?.lines() {
        let mut cols = line.split('\t');
        let status: Option<u16> = cols.nth(1).and_then(|s| s.trim().parse().ok());
        if !matches!(status, Some(200..=299)) {
            non_2xx += 1;
        }
        if let Some(us) = cols.next().and_then(|s| s.trim().parse().ok()) {
            lat.push(us);
        }
    }
    Ok(non_2xx)
}

/// The `p` quantile of sorted µs values, in ms.
pub fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i)
        .or(sorted.last())
        .map_or(f64::NAN, |&us| us as f64 / 1000.0)
}

fn spawn(args: &[String]) -> Result<Child> {
    Command::new("h2load")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running h2load (apt-get install nghttp2-client)")
}

fn common_args(group: &Group, log: &Path) -> Vec<String> {
    let mut args = vec![
        "--h1".to_owned(),
        "-t".to_owned(),
        "1".to_owned(),
        "-c".to_owned(),
        group.connections.to_string(),
        format!("--log-file={}", log.display()),
    ];
    if let Some(t) = &group.token {
        args.extend(["-H".to_owned(), format!("authorization: Bearer {t}")]);
    }
    args
}

/// Runs `ms` milliseconds of load (after `warm_up_ms`) on `https://127.0.0.1:port/path`, one
/// h2load process per group, all started together.
pub fn run(
    port: u16,
    path: &str,
    dir: &Path,
    groups: &[Group],
    ms: u64,
    warm_up_ms: u64,
) -> Result<Round> {
    let mut children = Vec::new();
    let mut logs = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let log = dir.join(format!("h2load-{i}.log"));
        let _ = std::fs::remove_file(&log);
        let mut args = common_args(g, &log);
        args.extend([
            "-D".to_owned(),
            format!("{ms}ms"),
            "--warm-up-time".to_owned(),
            format!("{warm_up_ms}ms"),
            format!("https://127.0.0.1:{port}{path}"),
        ]);
        children.push(spawn(&args)?);
        logs.push(log);
    }
    let (mut rps, mut succeeded, mut failed, mut non_2xx) = (0.0, 0, 0, 0);
    let mut lat = Vec::new();
    let mut first_error = None;
    for (child, log) in children.into_iter().zip(&logs) {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            first_error.get_or_insert_with(|| {
                format!(
                    "h2load failed: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            continue;
        }
        let (r, s, f) = parse(&text)?;
        rps += r;
        succeeded += s;
        failed += f;
        non_2xx += read_log(log, &mut lat)?;
    }
    if let Some(e) = first_error {
        bail!(e);
    }
    Ok(Round {
        requests_per_s: rps,
        succeeded,
        failed,
        non_2xx,
        latencies_us: lat,
    })
}

/// Sends one request and returns its status, to check a configuration answers 2xx before it is
/// measured.
pub fn probe(port: u16, path: &str, dir: &Path, token: Option<&str>) -> Result<u16> {
    let log = dir.join("h2load-probe.log");
    let _ = std::fs::remove_file(&log);
    let group = Group {
        connections: 1,
        token: token.map(str::to_owned),
    };
    let mut args = common_args(&group, &log);
    args.extend([
        "-n".to_owned(),
        "1".to_owned(),
        format!("https://127.0.0.1:{port}{path}"),
    ]);
    let out = spawn(&args)?.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "h2load failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::read_to_string(&log)?
        .lines()
        .find_map(|l| l.split('\t').nth(1)?.trim().parse().ok())
        .context("the probe request got no response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_h2load_summary_and_log() {
        let text = "finished in 5.00s, 35012.30 req/s, 2.34MB/s\n\
            requests: 175061 total, 175061 started, 175060 done, 175058 succeeded, 2 failed, \
            0 errored, 0 timeout\n";
        assert_eq!(parse(text).ok(), Some((35012.30, 175058, 2)));
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 0.5), 2.0);
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 0.99), 3.0);
        assert!(percentile_ms(&[], 0.5).is_nan());

        let dir = std::env::temp_dir().join(format!("vigil-perf-identity-t{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let log = dir.join("log");
        std::fs::write(
            &log,
            "1700000000000000\t200\t812\n1700000000000100\t429\t900\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut lat = Vec::new();
        assert_eq!(read_log(&log, &mut lat).ok(), Some(1));
        assert_eq!(lat, vec![812, 900]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
