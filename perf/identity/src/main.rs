//! Identity and rate-limit benchmark: the same gateway, in front of the same upstream, loaded by
//! the same h2load, configured with more and more of the request path: plain TLS proxy, an
//! OpenAPI policy, a bearer JWT (ES256, verified-token cache hits), a rate limit per subject
//! kept locally, the same limit kept in Redis (vigild's store). Reports requests/s, p50 and
//! p99 and the gateway's CPU time per request for each configuration, with the ratio to the
//! plain proxy; writes `perf/results/identity.json` and prints a table.
//!
//! Usage: `vigil-perf-identity [--secs S] [--connections N] [--tokens N] [--rounds N]
//! [--out PATH]` (needs `nginx`, `h2load` and `redis-server` on PATH). `--secs` is the measured
//! time per configuration, cut into `--rounds` rounds that interleave the configurations.
//! `--tokens 0` leaves out the two runs that spread the load over several h2load processes.

mod child;
mod fixtures;
mod load;
mod procs;
mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use fixtures::{Issuer, PATH, Setup};
use load::Group;
use procs::{GatewayProc, Proc, TempDir, free_port};
use report::{Acc, RunReport};

/// Warm-up before each round: the connections' handshakes are not measured.
const WARM_UP_MS: u64 = 250;

const USAGE: &str = "usage: vigil-perf-identity [--secs S (5)] [--connections N (32)] \
                     [--tokens N (--connections; 0: no split runs)] [--rounds N (10)] \
                     [--out PATH (perf/results/identity.json)]";

#[derive(Debug)]
struct Opts {
    secs: u32,
    connections: u32,
    tokens: u32,
    rounds: usize,
    out: PathBuf,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            secs: 5,
            connections: 32,
            tokens: 0,
            rounds: 10,
            out: Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("perf"))
                .join("results/identity.json"),
        };
        let mut tokens = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--help" || a == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let v = it
                .next()
                .with_context(|| format!("{a} needs a value; {USAGE}"))?;
            match a.as_str() {
                "--secs" => o.secs = v.parse()?,
                "--connections" => o.connections = v.parse()?,
                "--tokens" => tokens = Some(v.parse()?),
                "--rounds" => o.rounds = v.parse()?,
                "--out" => o.out = PathBuf::from(v),
                _ => anyhow::bail!("unknown option {a}; {USAGE}"),
            }
        }
        // Default: one token per connection.
        o.tokens = tokens.unwrap_or(o.connections);
        anyhow::ensure!(o.secs >= 1, "--secs must be at least 1");
        anyhow::ensure!(o.connections >= 1, "--connections must be at least 1");
        anyhow::ensure!(o.rounds >= 1, "--rounds must be at least 1");
        anyhow::ensure!(
            u64::from(o.secs) * 1000 / o.rounds as u64 >= 500,
            "--secs / --rounds must leave at least 500 ms per round"
        );
        anyhow::ensure!(
            o.tokens <= o.connections,
            "--tokens must not exceed --connections (each h2load process needs a connection)"
        );
        Ok(o)
    }
}

/// The gateways under test, each in its own child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gw {
    Plain,
    Policy,
    Jwt,
    LimitLocal,
    LimitRedis,
}

/// One measured configuration: a gateway and how the load is sent to it.
#[derive(Debug)]
struct Run {
    name: &'static str,
    what: &'static str,
    gateway: Gw,
    groups: Vec<Group>,
    /// The run this one adds a stage (or a change) to.
    compared_to: Option<&'static str>,
}

/// `connections` spread as evenly as possible over `n` h2load processes, each with its token.
fn split(connections: u32, tokens: &[String]) -> Vec<Group> {
    let n = u32::try_from(tokens.len()).unwrap_or(u32::MAX).max(1);
    tokens
        .iter()
        .zip(0u32..)
        .map(|(t, i)| Group {
            connections: connections / n + u32::from(i < connections % n),
            token: Some(t.clone()),
        })
        .filter(|g| g.connections > 0)
        .collect()
}

fn runs(o: &Opts, issuer: &Issuer) -> Result<Vec<Run>> {
    let token = issuer.token("bench-user")?;
    // Every configuration sends the same request, token included, so they differ only in
    // what the gateway does with it.
    let one = |token: &String| {
        vec![Group {
            connections: o.connections,
            token: Some(token.clone()),
        }]
    };
    let mut runs = vec![
        Run {
            name: "plain",
            what: "TLS proxy, no policy (requests carry the same token, forwarded unchecked)",
            gateway: Gw::Plain,
            groups: one(&token),
            compared_to: None,
        },
        Run {
            name: "policy",
            what: "OpenAPI policy, one GET operation, no security (the token forwarded unchecked)",
            gateway: Gw::Policy,
            groups: one(&token),
            compared_to: Some("plain"),
        },
        Run {
            name: "jwt",
            what: "the operation requires a bearer JWT (ES256, jwks_file); one valid token on \
                   every request, so the verified-token cache answers",
            gateway: Gw::Jwt,
            groups: one(&token),
            compared_to: Some("policy"),
        },
    ];
    if o.tokens > 0 {
        let same = vec![token.clone(); o.tokens as usize];
        let distinct = (0..o.tokens)
            .map(|i| issuer.token(&format!("bench-user-{i}")))
            .collect::<Result<Vec<_>>>()?;
        runs.push(Run {
            name: "jwt-split",
            what: "as jwt, the connections spread over --tokens h2load processes (default one \
                   per connection), all sending the same token: the control for jwt-tokens",
            gateway: Gw::Jwt,
            groups: split(o.connections, &same),
            compared_to: Some("jwt"),
        });
        runs.push(Run {
            name: "jwt-tokens",
            what: "as jwt-split, each h2load process (and so each of its connections) with its \
                   own token and subject",
            gateway: Gw::Jwt,
            groups: split(o.connections, &distinct),
            compared_to: Some("jwt-split"),
        });
    }
    runs.push(Run {
        name: "jwt+limit-local",
        what: "jwt plus a [[rate_limit]] keyed by sub, far above the load, buckets in the \
               gateway's memory",
        gateway: Gw::LimitLocal,
        groups: one(&token),
        compared_to: Some("jwt"),
    });
    runs.push(Run {
        name: "jwt+limit-redis",
        what: "the same rule with shared = true, buckets in a redis-server on loopback through \
               vigild's Redis store",
        gateway: Gw::LimitRedis,
        groups: one(&token),
        compared_to: Some("jwt+limit-local"),
    });
    Ok(runs)
}

/// The running gateways and the processes they need (dropped in this order).
struct Gateways {
    list: Vec<(Gw, GatewayProc)>,
    redis: Option<Proc>,
    /// Why the Redis configuration could not be started, if it could not.
    redis_error: Option<String>,
}

impl Gateways {
    fn get(&self, gw: Gw) -> Option<&GatewayProc> {
        self.list.iter().find(|(g, _)| *g == gw).map(|(_, p)| p)
    }
}

fn start_gateways(dir: &Path, up_port: u16) -> Result<Gateways> {
    let tls = fixtures::tls_cert(dir)?;
    let api = fixtures::description(dir, false)?;
    let api_jwt = fixtures::description(dir, true)?;
    let mut list = Vec::new();
    let setups = [
        (Gw::Plain, "plain", None, None),
        (Gw::Policy, "policy", Some(api), None),
        (Gw::Jwt, "jwt", Some(api_jwt.clone()), None),
        (
            Gw::LimitLocal,
            "limit-local",
            Some(api_jwt.clone()),
            Some(fixtures::rate_limit(false)),
        ),
    ];
    for (gw, name, policy, rate_limit) in setups {
        let setup = Setup {
            name,
            policy,
            rate_limit,
        };
        let cfg = fixtures::gateway_config(dir, &tls, up_port, setup)?;
        let p = procs::gateway(&cfg, None).with_context(|| format!("gateway {name}"))?;
        list.push((gw, p));
    }
    // Without Redis the other configurations still run; this one reports why it did not.
    let setup = Setup {
        name: "limit-redis",
        policy: Some(api_jwt),
        rate_limit: Some(fixtures::rate_limit(true)),
    };
    let cfg = fixtures::gateway_config(dir, &tls, up_port, setup)?;
    let started = free_port().and_then(|port| {
        let redis = procs::redis(dir, port)?;
        let gw = procs::gateway(&cfg, Some(&format!("127.0.0.1:{port}")))
            .context("gateway limit-redis")?;
        Ok((redis, gw))
    });
    let (redis, redis_error) = match started {
        Ok((redis, gw)) => {
            list.push((Gw::LimitRedis, gw));
            (Some(redis), None)
        }
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Ok(Gateways {
        list,
        redis,
        redis_error,
    })
}

/// What one round of one configuration measured.
struct Measured {
    round: load::Round,
    gateway_cpu_us: f64,
    redis_cpu_us: Option<f64>,
}

/// One round of one configuration: h2load's figures, and the gateway's (and Redis's) CPU time
/// over the requests the gateway answered in the same span. Fails when a response was not 2xx
/// or a shared decision fell back to the local bucket.
fn measure(
    gw: &GatewayProc,
    redis: Option<&Proc>,
    run: &Run,
    dir: &Path,
    ms: u64,
) -> Result<Measured> {
    let redis_cpu = |r: Option<&Proc>| r.map(Proc::cpu_ns).transpose();
    let (cpu0, r0, m0) = (gw.cpu_ns()?, redis_cpu(redis)?, gw.scrape()?);
    let t = load::run(gw.https, PATH, dir, &run.groups, ms, WARM_UP_MS)?;
    let (cpu1, r1, m1) = (gw.cpu_ns()?, redis_cpu(redis)?, gw.scrape()?);
    let served = m1.requests.saturating_sub(m0.requests);
    let non_2xx = m1.non_2xx.saturating_sub(m0.non_2xx);
    if t.non_2xx > 0 || non_2xx > 0 {
        anyhow::bail!(
            "{} of {} responses were not 2xx (gateway: {non_2xx} of {served})",
            t.non_2xx,
            t.succeeded
        );
    }
    anyhow::ensure!(served > 0, "the gateway answered no request");
    let fallbacks = m1.fallbacks.saturating_sub(m0.fallbacks);
    anyhow::ensure!(
        fallbacks == 0,
        "{fallbacks} rate-limit decisions fell back to the local bucket"
    );
    if redis.is_some() {
        let decisions = m1.store_decisions.saturating_sub(m0.store_decisions);
        anyhow::ensure!(
            decisions >= served,
            "Redis answered {decisions} decisions for {served} requests"
        );
    }
    let per_request = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0 / served as f64;
    Ok(Measured {
        round: t,
        gateway_cpu_us: per_request(cpu0, cpu1),
        redis_cpu_us: r0.zip(r1).map(|(a, b)| per_request(a, b)),
    })
}

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("vigil-perf-identity: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Ok(false): the report was written but some configuration failed.
fn real_main() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-gateway") {
        let config = args.get(1).context("--serve-gateway CONFIG [REDIS]")?;
        child::serve(Path::new(config), args.get(2).map(String::as_str))?;
        return Ok(true);
    }
    let o = Opts::parse(&args)?;
    let machine = report::machine();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let tmp = TempDir::new()?;
    let dir = tmp.0.clone();
    let issuer = Issuer::new(&dir)?;
    let runs = runs(&o, &issuer)?;
    let up_port = free_port()?;
    let upstream = procs::upstream(&dir, up_port)?;
    let gateways = start_gateways(&dir, up_port)?;
    let mut reports: Vec<RunReport> = runs
        .iter()
        .map(|r| RunReport::new(r.name, r.what, r.compared_to, &r.groups))
        .collect();
    let mut acc: Vec<Acc> = runs.iter().map(|_| Acc::default()).collect();

    // Each configuration answers 2xx before it is measured, or it is not measured.
    for (run, rep) in runs.iter().zip(reports.iter_mut()) {
        let Some(gw) = gateways.get(run.gateway) else {
            let why = gateways.redis_error.as_deref().unwrap_or("not started");
            eprintln!("{}: not run: {why}", run.name);
            rep.error = Some(why.to_owned());
            continue;
        };
        for g in &run.groups {
            match load::probe(gw.https, PATH, &dir, g.token.as_deref()) {
                Ok(200..=299) => {}
                Ok(s) => rep.error = Some(format!("the probe request was answered {s}")),
                Err(e) => rep.error = Some(format!("probe: {e:#}")),
            }
        }
    }

    // Short rounds interleave the configurations (each round starting with the next one) so
    // drift in background load hits them alike, and each gets several chances at a quiet spell.
    let round_ms = u64::from(o.secs) * 1000 / o.rounds as u64;
    for round in 0..o.rounds {
        for k in 0..runs.len() {
            let i = (k + round) % runs.len();
            let (Some(run), Some(rep), Some(acc)) =
                (runs.get(i), reports.get_mut(i), acc.get_mut(i))
            else {
                continue;
            };
            let Some(gw) = gateways.get(run.gateway) else {
                continue;
            };
            if rep.error.is_some() {
                continue;
            }
            let redis = match run.gateway {
                Gw::LimitRedis => gateways.redis.as_ref(),
                _ => None,
            };
            match measure(gw, redis, run, &dir, round_ms) {
                Ok(m) => {
                    eprintln!(
                        "round {round} {:<16} {:>9.0} req/s {:>7.1} us gateway CPU/request",
                        run.name, m.round.requests_per_s, m.gateway_cpu_us
                    );
                    acc.add(m.round, m.gateway_cpu_us, m.redis_cpu_us);
                }
                Err(e) => {
                    eprintln!("round {round} {}: {e:#}", run.name);
                    rep.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    drop(gateways);
    drop(upstream);

    let ok = reports.iter().all(|r| r.error.is_none());
    let report = report::finish(&o, started, machine, reports, acc, round_ms);
    report::print_table(&report.runs, o.rounds);
    if let Some(parent) = o.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&o.out, serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", o.out.display());
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_spreads_connections_one_token_each() {
        let tokens: Vec<String> = (0..3).map(|i| format!("t{i}")).collect();
        let g = split(8, &tokens);
        let conns: Vec<u32> = g.iter().map(|g| g.connections).collect();
        assert_eq!(conns, vec![3, 3, 2]);
        assert_eq!(
            g.iter()
                .filter_map(|g| g.token.as_deref())
                .collect::<Vec<_>>(),
            ["t0", "t1", "t2"]
        );
        assert_eq!(split(2, &tokens).len(), 2);
    }

    #[test]
    fn options_default_to_one_token_per_connection() {
        let o = Opts::parse(&["--connections".to_owned(), "12".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((o.secs, o.rounds, o.tokens), (5, 10, 12));
        assert!(Opts::parse(&["--tokens".to_owned(), "40".to_owned()]).is_err());
        assert!(Opts::parse(&["--rounds".to_owned(), "20".to_owned()]).is_err());
        assert!(
            Opts::parse(&[
                "--secs".to_owned(),
                "10".to_owned(),
                "--rounds".to_owned(),
                "20".to_owned()
            ])
            .is_ok()
        );
    }
}
