//! TLS proxy benchmark: the Vigil gateway against nginx, both terminating TLS 1.3 with the same
//! ECDSA P-256 key in front of the same upstream, both with one worker, loaded by the same
//! h2load. Reports requests/s, p50 and p99 for HTTP/1.1 and HTTP/2, full handshakes per second,
//! and memory per idle TLS connection; writes `perf/results/tls.json`.
//!
//! Usage: `vigil-perf-tls [--duration SECS] [--connections N] [--idle N] [--out PATH]`
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
    duration: u32,
    connections: u32,
    idle: usize,
    out: PathBuf,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
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
    duration_s: u32,
    connections: u32,
    h2_streams_per_connection: u32,
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

fn gateway_config(dir: &Path, cert: &Path, key: &Path, upstream: u16) -> Result<PathBuf> {
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
        pool_size: 64,
        ..UpstreamConfig::default()
    });
    let path = dir.join("gateway.json");
    std::fs::write(&path, serde_json::to_vec(&cfg)?)?;
    Ok(path)
}

fn run_one(
    o: &Opts,
    dir: &Path,
    port: u16,
    pid: u32,
    ca: &CertificateDer<'static>,
) -> Result<ProxyResult> {
    let idle = idle::measure(port, pid, ca, o.idle)?;
    eprintln!(
        "  idle: {} connections, {:.1} KiB each",
        idle.connections, idle.kib_per_connection
    );
    let (hs, n) = load::handshakes(port, 100, o.duration)?;
    eprintln!("  handshakes: {hs:.0}/s");
    let h1 = load::throughput(port, dir, false, o.connections, 1, o.duration)?;
    eprintln!(
        "  h1: {:.0} req/s, p99 {:.2} ms",
        h1.requests_per_s, h1.p99_ms
    );
    let h2 = load::throughput(port, dir, true, o.connections, 10, o.duration)?;
    eprintln!(
        "  h2: {:.0} req/s, p99 {:.2} ms",
        h2.requests_per_s, h2.p99_ms
    );
    Ok(ProxyResult {
        h1,
        h2,
        handshakes_per_s: hs,
        handshakes: n,
        idle,
    })
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

    eprintln!("vigil gateway:");
    let (gw, gw_port): (Proc, u16) = peers::gateway(&gateway_config(&dir, &cert, &key, up_port)?)?;
    let vigil = run_one(&o, &dir, gw_port, gw.pid(), &ca)?;
    drop(gw);

    eprintln!("nginx:");
    let ng_port = free_port()?;
    let ng = peers::nginx_proxy(&dir, ng_port, up_port, &cert, &key)?;
    let worker = peers::nginx_worker(ng.pid())?;
    let nginx = run_one(&o, &dir, ng_port, worker, &ca)?;
    drop(ng);

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
        duration_s: o.duration,
        connections: o.connections,
        h2_streams_per_connection: 10,
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
