//! TLS proxy benchmark: the Vigil gateway against nginx, both terminating TLS 1.3 with the same
//! ECDSA P-256 key in front of the same upstream, both with one worker, loaded by the same
//! h2load. Reports requests/s, p50 and p99 for HTTP/1.1 and HTTP/2, full handshakes per second,
//! and memory per idle TLS connection; writes `perf/results/tls.json`.
//!
//! Usage: `vigil-perf-tls [--duration SECS] [--connections N] [--idle N] [--keepalive N]
//! [--out PATH]` (`--keepalive`: idle upstream connections kept by both proxies, default 64)
//! (needs `nginx` and `h2load` on PATH).

mod child;
mod idle;
mod load;
mod peers;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use vigil_gateway::GatewayConfig;
use vigil_gateway::config::{AuditSink, UpstreamConfig};

use peers::{Proc, TempDir, free_port};

struct Opts {
    keepalive: usize,
    duration: u32,
    connections: u32,
    idle: usize,
    out: PathBuf,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            keepalive: 64,
            duration: 10,
            connections: 16,
            idle: 10_000,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/tls.json"),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().with_context(|| format!("{a} needs a value"))?;
            match a.as_str() {
                "--duration" => o.duration = v.parse()?,
                "--connections" => o.connections = v.parse()?,
                "--idle" => o.idle = v.parse()?,
                "--keepalive" => o.keepalive = v.parse()?,
                "--out" => o.out = PathBuf::from(v),
                _ => anyhow::bail!("unknown option {a}; see the usage in the source header"),
            }
        }
        Ok(o)
    }
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
fn pki(dir: &Path) -> Result<(CertificateDer<'static>, PathBuf, PathBuf)> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Vigil bench CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let leaf = leaf.signed_by(&key, &ca, &ca_key)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, leaf.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((ca.der().clone(), cert_path, key_path))
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

fn gateway_config(
    dir: &Path,
    cert: &Path,
    key: &Path,
    upstream: u16,
    keepalive: usize,
) -> Result<PathBuf> {
    let mut cfg = GatewayConfig::default();
    cfg.listener.https = "127.0.0.1:0".parse()?;
    cfg.metrics.listen = "127.0.0.1:0".parse()?;
    cfg.listener.max_connections = 30_000;
    cfg.listener.max_requests_in_flight = 100_000;
    // Equal to nginx's client_header_timeout so idle connections survive the measurement.
    cfg.listener.header_timeout = std::time::Duration::from_secs(60);
    cfg.listener.idle_timeout = std::time::Duration::from_secs(75);
    cfg.tls.cert = cert.to_path_buf();
    cfg.tls.key = key.to_path_buf();
    cfg.audit.sink = AuditSink::File;
    cfg.audit.path = dir.join("audit.log");
    cfg.upstream.push(UpstreamConfig {
        name: "up".to_owned(),
        url: format!("http://127.0.0.1:{upstream}"),
        pool_size: keepalive,
        ..UpstreamConfig::default()
    });
    let path = dir.join("gateway.json");
    std::fs::write(&path, serde_json::to_vec(&cfg)?)?;
    Ok(path)
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
fn run_all(
    o: &Opts,
    dir: &Path,
    targets: &[Target; 2],
    ca: &CertificateDer<'static>,
) -> Result<[ProxyResult; 2]> {
    let mut idle = Vec::new();
    for t in targets {
        let i = idle::measure(t.port, t.pid, ca, o.idle)?;
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
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-gateway") {
        return child::serve(Path::new(args.get(2).context("--serve-gateway CONFIG")?));
    }
    let o = Opts::parse(&args[1..])?;
    raise_nofile();
    let tmp = TempDir::new()?;
    let dir = tmp.0.clone();
    let (ca, cert, key) = pki(&dir)?;
    let up_port = free_port()?;
    let _upstream = peers::upstream(&dir, up_port)?;

    // Both proxies run side by side (idle between their turns) so they can be alternated.
    let gw_cfg = gateway_config(&dir, &cert, &key, up_port, o.keepalive)?;
    let (gw, gw_port): (Proc, u16) = peers::gateway(&gw_cfg)?;
    let ng_port = free_port()?;
    let ng = peers::nginx_proxy(&dir, ng_port, up_port, &cert, &key, o.keepalive)?;
    let targets = [
        Target {
            name: "vigil",
            port: gw_port,
            pid: gw.pid(),
        },
        Target {
            name: "nginx",
            port: ng_port,
            pid: peers::nginx_worker(ng.pid())?,
        },
    ];
    let [vigil, nginx] = run_all(&o, &dir, &targets, &ca)?;
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
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        vigil,
        nginx,
        ratios,
        targets,
    };
    print_table(&report);
    if let Some(parent) = o.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&o.out, serde_json::to_vec_pretty(&report)?)?;
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
