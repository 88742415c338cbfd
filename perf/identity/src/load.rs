//! Load with h2load, HTTP/1.1, one request in flight per connection: requests/s from its
//! summary, latency percentiles and status codes from its per-request log. A run can be split
//! across several h2load processes started together (h2load sends the same headers on every
//! connection, so connections with different tokens need different processes); their rates are
//! summed and their logs merged.

use std::path::Path;

use anyhow::{Context, Result};
use vigil_testkit::load::h2load;

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
        children.push(h2load::spawn(&args)?);
        logs.push(log);
    }
    let (mut rps, mut succeeded, mut failed, mut non_2xx) = (0.0, 0, 0, 0);
    let mut lat = Vec::new();
    let mut first_error = None;
    for (child, log) in children.into_iter().zip(&logs) {
        let text = match h2load::finish(child) {
            Ok(text) => text,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let summary = h2load::parse(&text)?;
        rps += summary.requests_per_s;
        succeeded += summary.succeeded;
        failed += summary.failed;
        non_2xx += h2load::read_log(log, &mut lat)?;
    }
    if let Some(e) = first_error {
        return Err(e);
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
    h2load::run(&args)?;
    std::fs::read_to_string(&log)?
        .lines()
        .find_map(|l| l.split('\t').nth(1)?.trim().parse().ok())
        .context("the probe request got no response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_sends_its_own_token_and_logs_every_request() {
        let log = Path::new("/tmp/l");
        let with = Group {
            connections: 3,
            token: Some("t1".to_owned()),
        };
        let args = common_args(&with, log);
        assert!(args.windows(2).any(|w| w == ["-c", "3"]), "{args:?}");
        assert!(
            args.contains(&"authorization: Bearer t1".to_owned()),
            "{args:?}"
        );
        assert!(args.contains(&"--log-file=/tmp/l".to_owned()), "{args:?}");
        let without = Group {
            connections: 1,
            token: None,
        };
        assert!(!common_args(&without, log).contains(&"-H".to_owned()));
    }
}
