//! Identity and rate-limit benchmark: the same gateway, in front of the same upstream, loaded by
//! the same h2load, configured with more and more of the request path: plain TLS proxy, an
//! OpenAPI policy, a bearer JWT (ES256, verified-token cache hits), a rate limit per subject
//! kept locally, the same limit kept in Redis (vigild's store). Reports requests/s, p50 and
//! p99 and the gateway's CPU time per request for each configuration, with the ratio to the
//! plain proxy; writes `perf/results/identity.json` and prints a table.
//!
//! Usage: `vigil-perf-identity --help` (needs `nginx`, `h2load` and `redis-server` on PATH).

mod child;
mod fixtures;
mod gateway;
mod load;
mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use vigil_testkit::ports::free_port;
use vigil_testkit::procs::cpu::{allowed, pin_self, pin_tree, reaped_children_cpu_seconds};
use vigil_testkit::procs::{Proc, nginx};
use vigil_testkit::redis::Redis;

use fixtures::{Issuer, PATH, Setup};
use gateway::GatewayProc;
use load::Group;
use report::{Acc, RunReport};

/// Warm-up before each round: the connections' handshakes are not measured.
const WARM_UP_MS: u64 = 250;
/// A round whose load generators used more of their CPU than this measured them, not the
/// gateway: it is not counted.
const GENERATOR_LIMIT: f64 = 90.0;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-identity",
    about = "The gateway with an OpenAPI policy, JWT verification and rate limits (local and in \
             Redis) against the same gateway as a plain TLS proxy"
)]
struct Opts {
    /// Measured seconds per configuration, cut into --rounds rounds that interleave the
    /// configurations.
    #[arg(long, default_value_t = 5)]
    secs: u32,
    /// h2load connections, one request in flight each.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// h2load processes (one token each) for the split runs; default one per connection, 0
    /// leaves out the two runs that spread the load over several processes.
    #[arg(long)]
    tokens: Option<u32>,
    /// Rounds the seconds are cut into; each runs every configuration once.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The CPU of the load generators (and of this harness).
    #[arg(long, default_value_t = 0)]
    generator_cpu: usize,
    /// The CPU of the gateways, the upstream nginx and redis-server.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = default_out())]
    out: PathBuf,
    /// Internal: serve a gateway with this config in this process (the harness's child).
    #[arg(long, hide = true)]
    serve_gateway: Option<PathBuf>,
    /// Internal: with --serve-gateway, the Redis for shared rate-limit buckets.
    #[arg(long, hide = true, requires = "serve_gateway")]
    redis: Option<String>,
}

fn default_out() -> PathBuf {
    let perf = Path::new(env!("CARGO_MANIFEST_DIR"));
    perf.parent().unwrap_or(perf).join("results/identity.json")
}

impl Opts {
    /// The options from `args` (the program name first), checked together.
    fn parse_from_args(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let o = Self::try_parse_from(args)?;
        anyhow::ensure!(o.secs >= 1, "--secs must be at least 1");
        anyhow::ensure!(o.connections >= 1, "--connections must be at least 1");
        anyhow::ensure!(o.rounds >= 1, "--rounds must be at least 1");
        anyhow::ensure!(
            o.generator_cpu != o.server_cpu,
            "--generator-cpu and --server-cpu must differ"
        );
        anyhow::ensure!(
            u64::from(o.secs) * 1000 / o.rounds as u64 >= 500,
            "--secs / --rounds must leave at least 500 ms per round"
        );
        anyhow::ensure!(
            o.tokens() <= o.connections,
            "--tokens must not exceed --connections (each h2load process needs a connection)"
        );
        Ok(o)
    }

    /// Default: one token per connection.
    fn tokens(&self) -> u32 {
        self.tokens.unwrap_or(self.connections)
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
    let token = issuer.token("bench-user");
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
    if o.tokens() > 0 {
        let same = vec![token.clone(); o.tokens() as usize];
        let distinct: Vec<String> = (0..o.tokens())
            .map(|i| issuer.token(&format!("bench-user-{i}")))
            .collect();
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
    redis: Option<Redis>,
    /// Why the Redis configuration could not be started, if it could not.
    redis_error: Option<String>,
}

impl Gateways {
    fn get(&self, gw: Gw) -> Option<&GatewayProc> {
        self.list.iter().find(|(g, _)| *g == gw).map(|(_, p)| p)
    }
}

fn start_gateways(dir: &Path, up_port: u16, cpu: usize) -> Result<Gateways> {
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
        let p = GatewayProc::start(&cfg, None).with_context(|| format!("gateway {name}"))?;
        pin_tree(p.pid(), cpu)?;
        list.push((gw, p));
    }
    // Without Redis the other configurations still run; this one reports why it did not.
    let setup = Setup {
        name: "limit-redis",
        policy: Some(api_jwt),
        rate_limit: Some(fixtures::rate_limit(true)),
    };
    let cfg = fixtures::gateway_config(dir, &tls, up_port, setup)?;
    let started = Redis::start().and_then(|redis| {
        if let Some(p) = redis.proc() {
            pin_tree(p.pid(), cpu)?;
        }
        let gw = GatewayProc::start(&cfg, Some(&redis.addr())).context("gateway limit-redis")?;
        pin_tree(gw.pid(), cpu)?;
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
    /// The generators' CPU over the round, % of one CPU.
    generator_cpu_percent: f64,
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
    let (g0, wall) = (reaped_children_cpu_seconds(), std::time::Instant::now());
    let t = load::run(gw.https, PATH, dir, &run.groups, ms, WARM_UP_MS)?;
    let generator_cpu_percent =
        100.0 * (reaped_children_cpu_seconds() - g0) / wall.elapsed().as_secs_f64();
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
        generator_cpu_percent,
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
    let o = match Opts::parse_from_args(std::env::args()) {
        Ok(o) => o,
        // --help and --version print to stdout and exit 0; a bad option prints its usage.
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(e) => e.exit(),
            Err(e) => return Err(e),
        },
    };
    if let Some(config) = &o.serve_gateway {
        child::serve(config, o.redis.clone())?;
        return Ok(true);
    }
    let machine = vigil_testkit::machine::machine();
    // The harness and the h2load processes it starts on one CPU, every server on another
    // (after the machine's facts, which would otherwise count one CPU).
    pin_self(o.generator_cpu)?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-perf-identity-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let issuer = Issuer::new(&dir)?;
    let runs = runs(&o, &issuer)?;
    let up_port = free_port()?;
    let upstream = nginx::upstream(&dir, up_port)?;
    pin_tree(upstream.pid(), o.server_cpu)?;
    let gateways = start_gateways(&dir, up_port, o.server_cpu)?;
    eprintln!(
        "pinned: generators on CPU {}, upstream nginx worker on {}",
        allowed(std::process::id())?,
        allowed(nginx::worker(upstream.pid())?)?
    );
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
                Gw::LimitRedis => gateways.redis.as_ref().and_then(Redis::proc),
                _ => None,
            };
            match measure(gw, redis, run, &dir, round_ms) {
                Ok(m) => {
                    eprintln!(
                        "round {round} {:<16} {:>9.0} req/s {:>7.1} us gateway CPU/request, \
                         generator CPU {:.0}%",
                        run.name, m.round.requests_per_s, m.gateway_cpu_us, m.generator_cpu_percent
                    );
                    rep.rounds_generator_cpu_percent
                        .push(m.generator_cpu_percent);
                    if m.generator_cpu_percent > GENERATOR_LIMIT {
                        eprintln!(
                            "*** GENERATOR-LIMITED: h2load used {:.0}% of its CPU (limit \
                             {GENERATOR_LIMIT:.0}%); round {round} of {} NOT counted ***",
                            m.generator_cpu_percent, run.name
                        );
                        rep.generator_limited_rounds += 1;
                    } else {
                        acc.add(m.round, m.gateway_cpu_us, m.redis_cpu_us);
                    }
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
    for rep in &mut reports {
        if rep.error.is_none() && rep.generator_limited_rounds == o.rounds {
            rep.error = Some(format!(
                "every round was generator-limited (h2load above {GENERATOR_LIMIT:.0}% CPU)"
            ));
        }
    }

    let ok = reports.iter().all(|r| r.error.is_none());
    let report = report::finish(&o, started, machine, reports, acc, round_ms);
    report::print_table(&report.runs, o.rounds);
    vigil_testkit::machine::write_report(&o.out, &report)?;
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
        let parse = |args: &[&str]| {
            let all = std::iter::once("vigil-perf-identity").chain(args.iter().copied());
            Opts::parse_from_args(all.map(str::to_owned))
        };
        let o = parse(&["--connections", "12"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((o.secs, o.rounds, o.tokens()), (5, 10, 12));
        assert!(parse(&["--tokens", "40"]).is_err());
        assert!(parse(&["--rounds", "20"]).is_err());
        assert!(parse(&["--secs", "10", "--rounds", "20"]).is_ok());
        assert!(parse(&["--redis", "127.0.0.1:1"]).is_err());
        let help = parse(&["--help"])
            .err()
            .and_then(|e| e.downcast::<clap::Error>().ok());
        assert_eq!(
            help.map(|e| e.kind()),
            Some(clap::error::ErrorKind::DisplayHelp)
        );
    }
}
