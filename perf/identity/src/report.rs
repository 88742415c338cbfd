//! The figures per configuration, their ratios, the JSON file and the printed table.

use serde::Serialize;
use serde_json::{Value, json};

use vigil_testkit::load::{lowest, median, percentile_ms};
use vigil_testkit::machine::loadavg;

use crate::load::{self, Group};
use crate::{Opts, WARM_UP_MS, child, fixtures};

/// One round's figures.
#[derive(Debug)]
struct RoundFigures {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    redis_cpu_us: Option<f64>,
}

/// What the rounds of one configuration gathered.
#[derive(Debug, Default)]
pub struct Acc {
    rounds: Vec<RoundFigures>,
    succeeded: u64,
    failed: u64,
}

impl Acc {
    pub fn add(&mut self, round: load::Round, cpu_us: f64, redis_cpu_us: Option<f64>) {
        let mut lat = round.latencies_us;
        lat.sort_unstable();
        self.rounds.push(RoundFigures {
            requests_per_s: round.requests_per_s,
            p50_ms: percentile_ms(&lat, 0.50),
            p99_ms: percentile_ms(&lat, 0.99),
            cpu_us,
            redis_cpu_us,
        });
        self.succeeded += round.succeeded;
        self.failed += round.failed;
    }
}

/// A configuration's figures over its rounds. Other work on the machine only ever makes a
/// round slower or costlier, so the headline figures are the best rounds'; the medians show
/// how much the machine got in the way.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Best round.
    pub requests_per_s: f64,
    /// Of the best round, from h2load's per-request log.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Lowest over rounds: the gateway process's CPU time (all threads) per request it
    /// answered.
    pub gateway_cpu_us_per_request: f64,
    /// Lowest over rounds: redis-server's CPU time per request (the Redis configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cpu_us_per_request: Option<f64>,
    pub requests_per_s_median: f64,
    pub gateway_cpu_us_per_request_median: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub rounds_requests_per_s: Vec<f64>,
    pub rounds_gateway_cpu_us_per_request: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub name: &'static str,
    pub what: &'static str,
    /// Distinct bearer tokens sent (0: none).
    pub tokens: usize,
    /// h2load processes the connections were spread over.
    pub load_processes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Summary>,
    /// requests/s over `plain`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_plain: Option<f64>,
    /// Gateway CPU per request over `plain`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ratio_to_plain: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_to: Option<&'static str>,
    /// requests/s over `compared_to`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_compared: Option<f64>,
    /// Gateway CPU µs per request minus `compared_to`'s: what the added stage costs the
    /// gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_cpu_us_per_request: Option<f64>,
    /// The h2load processes' CPU time over each round's wall time, % of their one CPU.
    pub rounds_generator_cpu_percent: Vec<f64>,
    /// Rounds left out because the generators used more than 90% of their CPU: those
    /// measured the client, not the gateway.
    pub generator_limited_rounds: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunReport {
    pub fn new(
        name: &'static str,
        what: &'static str,
        compared_to: Option<&'static str>,
        groups: &[Group],
    ) -> Self {
        let mut tokens: Vec<_> = groups.iter().filter_map(|g| g.token.as_ref()).collect();
        tokens.sort();
        tokens.dedup();
        Self {
            name,
            what,
            tokens: tokens.len(),
            load_processes: groups.len(),
            result: None,
            ratio_to_plain: None,
            cpu_ratio_to_plain: None,
            compared_to,
            ratio_to_compared: None,
            extra_cpu_us_per_request: None,
            rounds_generator_cpu_percent: Vec::new(),
            generator_limited_rounds: 0,
            error: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub timestamp_unix: u64,
    pub machine: Value,
    pub loadavg_1m_at_end: Option<f64>,
    pub load: Value,
    pub gateway: Value,
    pub runs: Vec<RunReport>,
}

/// Summaries and ratios. Only configurations that ran every round without error get a result,
/// so rounds line up by index.
pub fn finish(
    o: &Opts,
    started: u64,
    machine: Value,
    mut reports: Vec<RunReport>,
    acc: Vec<Acc>,
    round_ms: u64,
) -> Report {
    for (rep, a) in reports.iter_mut().zip(acc) {
        if rep.error.is_some() || a.rounds.len() != o.rounds {
            continue;
        }
        let Some(best) = a
            .rounds
            .iter()
            .max_by(|x, y| x.requests_per_s.total_cmp(&y.requests_per_s))
        else {
            continue;
        };
        let rps: Vec<f64> = a.rounds.iter().map(|r| r.requests_per_s).collect();
        let cpu: Vec<f64> = a.rounds.iter().map(|r| r.cpu_us).collect();
        let redis: Vec<f64> = a.rounds.iter().filter_map(|r| r.redis_cpu_us).collect();
        rep.result = Some(Summary {
            requests_per_s: best.requests_per_s,
            p50_ms: best.p50_ms,
            p99_ms: best.p99_ms,
            gateway_cpu_us_per_request: lowest(&cpu).unwrap_or(f64::NAN),
            redis_cpu_us_per_request: lowest(&redis),
            requests_per_s_median: median(rps.clone()).unwrap_or(f64::NAN),
            gateway_cpu_us_per_request_median: median(cpu.clone()).unwrap_or(f64::NAN),
            succeeded: a.succeeded,
            failed: a.failed,
            rounds_requests_per_s: rps,
            rounds_gateway_cpu_us_per_request: cpu,
        });
    }
    let figures = |name: &str, reports: &[RunReport]| {
        reports
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.result.as_ref())
            .map(|s| (s.requests_per_s, s.gateway_cpu_us_per_request))
    };
    let plain = figures("plain", &reports);
    let bases: Vec<_> = reports
        .iter()
        .map(|r| r.compared_to.and_then(|c| figures(c, &reports)))
        .collect();
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    for (rep, base) in reports.iter_mut().zip(bases) {
        let Some(s) = &rep.result else {
            continue;
        };
        let (rps, cpu) = (s.requests_per_s, s.gateway_cpu_us_per_request);
        if let Some((p_rps, p_cpu)) = plain {
            rep.ratio_to_plain = ratio(rps, p_rps);
            rep.cpu_ratio_to_plain = ratio(cpu, p_cpu);
        }
        if let Some((b_rps, b_cpu)) = base {
            rep.ratio_to_compared = ratio(rps, b_rps);
            rep.extra_cpu_us_per_request = Some(cpu - b_cpu);
        }
    }
    Report {
        benchmark: "identity",
        timestamp_unix: started,
        machine,
        loadavg_1m_at_end: loadavg(),
        load: json!({
            "tool": "h2load (nghttp2), HTTP/1.1 over TLS 1.3, one request in flight per connection",
            "connections": o.connections,
            "threads_per_h2load": 1,
            "measured_seconds_per_config": o.secs,
            "rounds": o.rounds,
            "round_ms": round_ms,
            "warm_up_ms_per_round": WARM_UP_MS,
            "path": fixtures::PATH,
        }),
        gateway: json!({
            "worker_threads": child::WORKERS,
            "key": "ECDSA P-256",
            "upstream": "nginx, one worker, fixed 200 answer, 64 pooled connections",
            "audit": "file",
            "rate_limit": {"key": "sub", "rate": fixtures::LIMIT, "burst": fixtures::LIMIT},
        }),
        runs: reports,
    }
}

pub fn print_table(reports: &[RunReport], rounds: usize) {
    println!(
        "req/s, p50, p99: best of {rounds} rounds; cpu us: gateway CPU per request, lowest of \
         {rounds} rounds; ratio and +cpu us: against the configuration compared to"
    );
    println!(
        "{:<16} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7}  {:<16} {:>7} {:>8}",
        "config",
        "req/s",
        "p50 ms",
        "p99 ms",
        "x plain",
        "cpu us",
        "x plain",
        "compared to",
        "ratio",
        "+cpu us"
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
    for r in reports {
        let Some(t) = &r.result else {
            let why = r.error.as_deref().unwrap_or("no result");
            println!("{:<16} {why}", r.name);
            continue;
        };
        println!(
            "{:<16} {:>8.0} {:>7.2} {:>7.2} {:>7} {:>8.1} {:>7}  {:<16} {:>7} {:>8}",
            r.name,
            t.requests_per_s,
            t.p50_ms,
            t.p99_ms,
            opt(r.ratio_to_plain, 3),
            t.gateway_cpu_us_per_request,
            opt(r.cpu_ratio_to_plain, 3),
            r.compared_to.unwrap_or("-"),
            opt(r.ratio_to_compared, 3),
            opt(r.extra_cpu_us_per_request, 1),
        );
    }
    for r in reports {
        if let Some(us) = r.result.as_ref().and_then(|t| t.redis_cpu_us_per_request) {
            println!("{}: redis-server CPU {us:.1} us per request", r.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(requests_per_s: f64) -> load::Round {
        load::Round {
            requests_per_s,
            succeeded: 10,
            failed: 0,
            non_2xx: 0,
            latencies_us: vec![1000, 2000, 3000],
        }
    }

    #[test]
    fn the_best_round_counts_and_stages_are_compared_to_their_base() {
        let args = ["x", "--secs", "2", "--rounds", "2"].map(str::to_owned);
        let o = Opts::parse_from_args(args).unwrap_or_else(|e| panic!("{e}"));
        let reports = vec![
            RunReport::new("plain", "", None, &[]),
            RunReport::new("jwt", "", Some("plain"), &[]),
            RunReport::new("broken", "", Some("plain"), &[]),
        ];
        let mut acc: Vec<Acc> = (0..3).map(|_| Acc::default()).collect();
        for (rps, cpu) in [(100.0, 10.0), (200.0, 12.0)] {
            acc[0].add(round(rps), cpu, None);
            acc[1].add(round(rps / 2.0), cpu * 2.0, None);
        }
        acc[2].add(round(1.0), 1.0, None);
        let r = finish(&o, 0, Value::Null, reports, acc, 1000);
        let plain = r.runs[0]
            .result
            .as_ref()
            .map(|s| (s.requests_per_s, s.p50_ms));
        assert_eq!(plain, Some((200.0, 2.0)));
        let jwt = &r.runs[1];
        assert_eq!(jwt.ratio_to_plain, Some(0.5));
        assert_eq!(jwt.cpu_ratio_to_plain, Some(2.0));
        assert_eq!(jwt.extra_cpu_us_per_request, Some(10.0));
        assert!(
            r.runs[2].result.is_none(),
            "a run short of rounds has no result"
        );
    }
}
