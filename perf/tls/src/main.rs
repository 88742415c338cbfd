//! TLS proxy benchmark: the Vigil gateway against nginx, both terminating TLS 1.3 with the same
//! ECDSA P-256 key in front of the same upstream, both with one worker, loaded by the same
//! h2load. Reports requests/s, p50 and p99 for HTTP/1.1 and HTTP/2, full handshakes per second,
//! and memory per idle TLS connection; writes `perf/results/tls.json`.
//!
//! Usage: `vigil-perf-tls --help` (needs `nginx` and `h2load` on PATH).

mod child;
mod idle;
mod load;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;
use vigil_testkit::config::{Config, Upstream};
use vigil_testkit::machine::nproc;
use vigil_testkit::pki::{Ca, TlsFiles};
use vigil_testkit::ports::free_port;
use vigil_testkit::procs::{self, Proc, nginx};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-tls",
    about = "The Vigil gateway against nginx as TLS 1.3 proxies in front of the same upstream: \
             requests/s and latency (HTTP/1.1 and HTTP/2), full handshakes/s, memory per idle \
             connection"
)]
struct Opts {
    /// Seconds per load run.
    #[arg(long, default_value_t = 10)]
    duration: u32,
    /// Connections per load run.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Idle TLS connections opened to measure memory per connection.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Idle upstream connections kept by both proxies.
    #[arg(long, default_value_t = 64)]
    keepalive: usize,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/tls.json"))]
    out: PathBuf,
    /// Internal: serve the gateway with this config in this process (the harness's child).
    #[arg(long, hide = true)]
    serve_gateway: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ProxyResult {
    h1: load::Throughput,
    h2: load::Throughput,
    handshakes_per_s: f64,
    handshakes: u64,
    idle: idle::Idle,
}

#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    rounds_best_of: usize,
    duration_s: u32,
    connections: u32,
    h2_streams_per_connection: u32,
    upstream_keepalive: usize,
    key: &'static str,
    tls_version: &'static str,
    gateway_worker_threads: usize,
    nginx_worker_processes: u32,
    cpus: usize,
    vigil: ProxyResult,
    nginx: ProxyResult,
    ratios: serde_json::Value,
    targets: serde_json::Value,
}

/// A CA and a server certificate for localhost, ECDSA P-256, written to `dir`.
fn pki(dir: &Path) -> Result<(Ca, TlsFiles)> {
    let ca = Ca::new("Vigil bench CA")?;
    let tls = ca.server(&["localhost", "127.0.0.1"])?.write_in(dir)?;
    Ok((ca, tls))
}

fn raise_nofile() {
    let lim = libc::rlimit {
        rlim_cur: 65_536,
        rlim_max: 65_536,
    };
    // SAFETY: setrlimit reads a valid, initialised rlimit struct; failure only leaves the limit
    // as it was, which the idle test then reports as fewer connections.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// The gateway's config: limits raised so the load is never refused for them, header timeout
/// equal to nginx's client_header_timeout so idle connections survive the measurement.
fn gateway_config(dir: &Path, tls: &TlsFiles, upstream: u16, keepalive: usize) -> Result<PathBuf> {
    let path = dir.join("gateway.toml");
    Config::gateway("127.0.0.1:0", tls)
        .set("listener.max_connections", 30_000)
        .set("listener.max_requests_in_flight", 100_000)
        .set("listener.header_timeout", "60s")
        .set("listener.idle_timeout", "75s")
        .audit_file(&dir.join("audit.log"))
        .upstream(
            Upstream::new("up", format!("http://127.0.0.1:{upstream}"))
                .pool_size(u32::try_from(keepalive)?),
        )
        .write(&path)?;
    Ok(path)
}

/// The gateway in a child process (this binary with `--serve-gateway CONFIG`), so its memory
/// and CPU are its own like nginx's; its HTTPS port.
fn gateway(config: &Path) -> Result<(Proc, u16)> {
    let exe = std::env::current_exe()?;
    let (p, ports) = procs::spawn_ready(Command::new(exe).arg("--serve-gateway").arg(config))?;
    let https = *ports.first().context("the gateway announced no port")?;
    Ok((p, https))
}

/// Runs of each measurement per proxy; the best is reported.
const ROUNDS: usize = 2;

/// One proxy under test.
struct Target {
    name: &'static str,
    port: u16,
    pid: u32,
}

/// The better (higher requests/s) of two runs: load from the other engineers' jobs on a shared
/// machine only ever makes a run slower.
fn best(a: Option<load::Throughput>, b: load::Throughput) -> load::Throughput {
    match a {
        Some(a) if a.requests_per_s >= b.requests_per_s => a,
        _ => b,
    }
}

/// Measures both proxies, alternating them within each round so drift in background load hits
/// both alike; each figure is the best of `ROUNDS`.
fn run_all(o: &Opts, dir: &Path, targets: &[Target; 2], ca: &Ca) -> Result<[ProxyResult; 2]> {
    let mut idle = Vec::new();
    for t in targets {
        let i = idle::measure(t.port, t.pid, ca.der(), o.idle)?;
        eprintln!(
            "{}: idle {} connections, {:.1} KiB each",
            t.name, i.connections, i.kib_per_connection
        );
        idle.push(i);
    }
    let mut hs = [(0f64, 0u64); 2];
    let mut h1: [Option<load::Throughput>; 2] = [None, None];
    let mut h2: [Option<load::Throughput>; 2] = [None, None];
    for round in 0..ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            let (rate, n) = load::handshakes(t.port, 100, o.duration)?;
            eprintln!("{} round {round}: {rate:.0} handshakes/s", t.name);
            if rate > hs[i].0 {
                hs[i] = (rate, n);
            }
        }
        for (i, t) in targets.iter().enumerate() {
            let r = load::throughput(t.port, dir, false, o.connections, 1, o.duration)?;
            eprintln!(
                "{} round {round}: h1 {:.0} req/s p99 {:.2} ms",
                t.name, r.requests_per_s, r.p99_ms
            );
            h1[i] = Some(best(h1[i].take(), r));
        }
        for (i, t) in targets.iter().enumerate() {
            let r = load::throughput(t.port, dir, true, o.connections, 10, o.duration)?;
            eprintln!(
                "{} round {round}: h2 {:.0} req/s p99 {:.2} ms",
                t.name, r.requests_per_s, r.p99_ms
            );
            h2[i] = Some(best(h2[i].take(), r));
        }
    }
    let mut out = Vec::new();
    for (i, idle) in idle.into_iter().enumerate() {
        out.push(ProxyResult {
            h1: h1[i].take().context("no h1 run")?,
            h2: h2[i].take().context("no h2 run")?,
            handshakes_per_s: hs[i].0,
            handshakes: hs[i].1,
            idle,
        });
    }
    let [a, b]: [ProxyResult; 2] = out.try_into().map_err(|_| anyhow::anyhow!("two results"))?;
    Ok([a, b])
}

fn main() -> Result<()> {
    let o = Opts::parse();
    if let Some(config) = &o.serve_gateway {
        return child::serve(config);
    }
    raise_nofile();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-perf-tls-")
        .tempdir()?;
    let dir = tmp.path();
    let (ca, tls) = pki(dir)?;
    let up_port = free_port()?;
    let _upstream = nginx::upstream(dir, up_port)?;

    // Both proxies run side by side (idle between their turns) so they can be alternated.
    let gw_cfg = gateway_config(dir, &tls, up_port, o.keepalive)?;
    let (gw, gw_port) = gateway(&gw_cfg)?;
    let ng_port = free_port()?;
    let ng = nginx::tls_proxy(dir, ng_port, up_port, &tls, o.keepalive)?;
    let targets = [
        Target {
            name: "vigil",
            port: gw_port,
            pid: gw.pid(),
        },
        Target {
            name: "nginx",
            port: ng_port,
            pid: nginx::worker(ng.pid())?,
        },
    ];
    let [vigil, nginx] = run_all(&o, dir, &targets, &ca)?;
    drop((gw, ng));

    let r = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let ratios = serde_json::json!({
        "h1_requests_per_s": r(vigil.h1.requests_per_s, nginx.h1.requests_per_s),
        "h2_requests_per_s": r(vigil.h2.requests_per_s, nginx.h2.requests_per_s),
        "handshakes_per_s": r(vigil.handshakes_per_s, nginx.handshakes_per_s),
        "idle_kib_per_connection": r(vigil.idle.kib_per_connection, nginx.idle.kib_per_connection),
    });
    let targets = serde_json::json!({
        "h1_requests_per_s_ge_nginx": vigil.h1.requests_per_s >= nginx.h1.requests_per_s,
        "h2_requests_per_s_ge_nginx": vigil.h2.requests_per_s >= nginx.h2.requests_per_s,
        "h1_p99_le_nginx_plus_1ms": vigil.h1.p99_ms <= nginx.h1.p99_ms + 1.0,
        "h2_p99_le_nginx_plus_1ms": vigil.h2.p99_ms <= nginx.h2.p99_ms + 1.0,
        "handshakes_ge_1_5x_nginx": vigil.handshakes_per_s >= 1.5 * nginx.handshakes_per_s,
        "idle_lt_20_kib_per_connection": vigil.idle.kib_per_connection < 20.0,
    });
    let report = Report {
        tool: "h2load (nghttp2) for load and handshakes; rustls client for idle connections",
        rounds_best_of: ROUNDS,
        duration_s: o.duration,
        connections: o.connections,
        h2_streams_per_connection: 10,
        upstream_keepalive: o.keepalive,
        key: "ECDSA P-256",
        tls_version: "TLSv1.3",
        gateway_worker_threads: child::WORKERS,
        nginx_worker_processes: 1,
        cpus: nproc(),
        vigil,
        nginx,
        ratios,
        targets,
    };
    print_table(&report);
    vigil_testkit::machine::write_report(&o.out, &report)?;
    println!("wrote {}", o.out.display());
    Ok(())
}

fn print_table(r: &Report) {
    let (v, n) = (&r.vigil, &r.nginx);
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "metric", "vigil", "nginx", "ratio"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!(
            "{name:<34} {a:>12.2} {b:>12.2} {:>8.2}",
            if b > 0.0 { a / b } else { f64::NAN }
        );
    };
    row("h1 requests/s", v.h1.requests_per_s, n.h1.requests_per_s);
    row("h1 p50 ms", v.h1.p50_ms, n.h1.p50_ms);
    row("h1 p99 ms", v.h1.p99_ms, n.h1.p99_ms);
    row("h2 requests/s", v.h2.requests_per_s, n.h2.requests_per_s);
    row("h2 p50 ms", v.h2.p50_ms, n.h2.p50_ms);
    row("h2 p99 ms", v.h2.p99_ms, n.h2.p99_ms);
    row(
        "TLS 1.3 full handshakes/s",
        v.handshakes_per_s,
        n.handshakes_per_s,
    );
    row(
        "KiB per idle TLS connection",
        v.idle.kib_per_connection,
        n.idle.kib_per_connection,
    );
    println!("targets: {}", r.targets);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_config_parses_and_validates() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, tls) = pki(dir.path())?;
        let path = gateway_config(dir.path(), &tls, 9, 64)?;
        let cfg: vigil_gateway::GatewayConfig = toml::from_str(&std::fs::read_to_string(path)?)?;
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.upstream[0].pool_size, 64);
        assert_eq!(
            cfg.listener.header_timeout,
            std::time::Duration::from_secs(60)
        );
        Ok(())
    }

    #[test]
    fn help_and_defaults() {
        let o = Opts::try_parse_from(["vigil-perf-tls"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((o.duration, o.connections, o.keepalive), (10, 16, 64));
        let help = Opts::try_parse_from(["vigil-perf-tls", "--help"]).err();
        assert_eq!(
            help.map(|e| e.kind()),
            Some(clap::error::ErrorKind::DisplayHelp)
        );
    }
}
