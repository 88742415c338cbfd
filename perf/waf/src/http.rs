//! The side-by-side over HTTP: Vigil's gateway with `--patches` virtual patches and injection
//! detection on (`block`) against nginx with ModSecurity and the OWASP Core Rule Set (paranoia
//! level 1, blocking), both terminating TLS 1.3 in front of the same nginx upstream, with a
//! plain nginx TLS proxy as the floor. wrk (one thread) on the generator's CPU, every server on
//! the other; its CPU is recorded and a round where it was the limit is flagged.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vigil_testkit::load::wrk;
use vigil_testkit::pki::TlsFiles;
use vigil_testkit::ports::{free_port, wait_port};
use vigil_testkit::procs::cpu::{pin_self, pin_tree, run_measured};
use vigil_testkit::procs::{self, Proc, nginx};

/// Above this share of its CPU the generator may have been the limit.
const GENERATOR_LIMIT: f64 = 90.0;

/// The GET and POST the benchmark sends (both benign, both inspected).
pub const GET_PATH: &str = "/api/orders/8812?sort=-created&q=running%20shoes&page=2";
pub const POST_PATH: &str = "/api/orders";

/// `--serve-gateway CONFIG PATCHES`: the gateway in this (child) process.
pub fn serve(config: &Path, patches: usize) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let cfg: vigil_gateway::GatewayConfig = toml::from_str(&text).context("gateway config")?;
    let set = crate::patches(patches)?;
    procs::serve_ready(1, async move {
        let keys = Arc::new(vigil_hw::keys::FileKeyProvider::new(
            &cfg.tls.cert,
            &cfg.tls.key,
        ));
        let gw = vigil_gateway::Gateway::start(cfg, keys).await?;
        gw.set_patches(set)?;
        let https = gw.https_addr().port();
        Ok((gw, vec![https]))
    })
}

/// nginx with ModSecurity (the Debian module) and the CRS, blocking at paranoia level 1.
fn modsecurity(dir: &Path, port: u16, upstream: u16, tls: &TlsFiles) -> Result<Proc> {
    let d = dir.display();
    let rules = dir.join("modsec.conf");
    std::fs::write(
        &rules,
        "Include /etc/nginx/modsecurity.conf\nSecRuleEngine On\nSecAuditEngine Off\n\
         SecRequestBodyAccess On\n\
         Include /etc/modsecurity/crs/crs-setup.conf\n\
         Include /usr/share/modsecurity-crs/rules/*.conf\n",
    )?;
    let conf = dir.join("modsec-nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;\n\
             worker_processes 1;\ndaemon off;\npid {d}/modsec.pid;\n\
             error_log {d}/modsec-error.log warn;\nworker_rlimit_nofile 65536;\n\
             events {{ worker_connections 30000; }}\n\
             http {{\n access_log off;\n keepalive_requests 100000;\n \
             client_body_temp_path {d}/mtb; proxy_temp_path {d}/mtp; fastcgi_temp_path {d}/mtf; \
             uwsgi_temp_path {d}/mtu; scgi_temp_path {d}/mts;\n \
             upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n \
             server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  \
             ssl_certificate_key {};\n  ssl_protocols TLSv1.3;\n  modsecurity on;\n  \
             modsecurity_rules_file {};\n  location / {{ proxy_pass http://up; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n",
            tls.cert.display(),
            tls.key.display(),
            rules.display()
        ),
    )?;
    if !Path::new("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so").exists() {
        bail!(
            "apt-get install libnginx-mod-http-modsecurity modsecurity-crs (scripts/setup.sh does)"
        );
    }
    let p = Proc::spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("modsec-error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )?;
    // The CRS takes a moment to load.
    wait_port(port, Duration::from_secs(30), "nginx + ModSecurity")?;
    Ok(p)
}

fn gateway_config(dir: &Path, tls: &TlsFiles, upstream: u16) -> Result<std::path::PathBuf> {
    let path = dir.join("gateway.toml");
    vigil_testkit::config::Config::gateway("127.0.0.1:0", tls)
        .set("listener.max_connections", 30_000)
        .set("listener.max_requests_in_flight", 100_000)
        .set("listener.header_timeout", "60s")
        .set("listener.idle_timeout", "75s")
        .set("detection.mode", "block")
        .audit_file(&dir.join("audit.log"))
        .upstream(
            vigil_testkit::config::Upstream::new("up", format!("http://127.0.0.1:{upstream}"))
                .pool_size(64),
        )
        .write(&path)?;
    Ok(path)
}

fn script(dir: &Path, post: Option<&str>) -> Result<std::path::PathBuf> {
    let lua = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let (name, text) = match post {
        None => (
            "get.lua",
            format!(
                "wrk.method = \"GET\"\nwrk.path = {}\n\
                 wrk.headers[\"User-Agent\"] = \"shop-app/4.2.1 (Android 14)\"\n",
                lua(GET_PATH)
            ),
        ),
        Some(body) => (
            "post.lua",
            format!(
                "wrk.method = \"POST\"\nwrk.path = {}\nwrk.body = {}\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.headers[\"User-Agent\"] = \"shop-app/4.2.1 (Android 14)\"\n",
                lua(POST_PATH),
                lua(body)
            ),
        ),
    };
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub server: &'static str,
    pub request: &'static str,
    pub round: usize,
    pub requests_per_s: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub generator_cpu_percent: f64,
    pub generator_limited: bool,
}

/// Medians over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub server: &'static str,
    pub request: &'static str,
    pub requests_per_s: f64,
    pub p99_ms: f64,
    /// Over nginx + ModSecurity + CRS, same request, same run.
    pub ratio_to_modsecurity: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub patches: usize,
    pub rounds: Vec<Run>,
    pub summary: Vec<Summary>,
}

/// The median of the finite values (NaN when there are none).
fn median(v: Vec<f64>) -> f64 {
    vigil_testkit::load::median(v).unwrap_or(f64::NAN)
}

/// Runs the comparison: `rounds` rounds of `secs` seconds per server and request.
pub fn compare(
    dir: &Path,
    patches: usize,
    rounds: usize,
    secs: u32,
    conns: u32,
    cpus: (usize, usize),
) -> Result<Report> {
    let (generator_cpu, server_cpu) = cpus;
    let tls = vigil_testkit::pki::self_signed(&["127.0.0.1"])?.write_in(dir)?;
    let up_port = free_port()?;
    let upstream = nginx::upstream(dir, up_port)?;
    pin_tree(upstream.pid(), server_cpu)?;
    let plain_port = free_port()?;
    let plain = nginx::tls_proxy(dir, plain_port, up_port, &tls, 64)?;
    pin_tree(plain.pid(), server_cpu)?;
    let ms_port = free_port()?;
    let ms = modsecurity(dir, ms_port, up_port, &tls)?;
    pin_tree(ms.pid(), server_cpu)?;
    let cfg = gateway_config(dir, &tls, up_port)?;
    let exe = std::env::current_exe()?;
    let (gw, ports) = procs::spawn_ready(
        Command::new(exe)
            .arg("--serve-gateway")
            .arg(&cfg)
            .args(["--serve-patches", &patches.to_string()]),
    )?;
    let gw_port = *ports.first().context("the gateway announced no port")?;
    pin_tree(gw.pid(), server_cpu)?;
    pin_self(generator_cpu)?;

    let body = crate::post_body();
    let scripts = [
        ("GET", script(dir, None)?),
        ("POST 1 KiB JSON", script(dir, Some(&body))?),
    ];
    let servers: [(&'static str, u16); 3] = [
        ("vigil (patches + detection)", gw_port),
        ("nginx + ModSecurity + CRS", ms_port),
        ("nginx, no inspection", plain_port),
    ];
    // Each server must answer the benign requests with 200 before it is measured.
    for (name, port) in servers {
        for (req, s) in &scripts {
            let m = run_measured(&mut wrk::command(port, s, 1, 1), Some(generator_cpu))?;
            let sum = wrk::parse(&m.stdout)?;
            if sum.errors > 0 || sum.requests == 0 {
                bail!(
                    "{name} does not answer the benign {req} with 200: {}",
                    m.stdout
                );
            }
        }
    }
    let mut runs = Vec::new();
    for round in 0..rounds {
        for (name, port) in servers {
            for (req, s) in &scripts {
                let m = run_measured(&mut wrk::command(port, s, conns, secs), Some(generator_cpu))?;
                let sum = wrk::parse(&m.stdout)?;
                let cpu = m.cpu_percent();
                runs.push(Run {
                    server: name,
                    request: req,
                    round,
                    requests_per_s: sum.requests_per_s,
                    p99_ms: sum.p99_ms.unwrap_or(f64::NAN),
                    errors: sum.errors,
                    generator_cpu_percent: cpu,
                    generator_limited: cpu > GENERATOR_LIMIT,
                });
            }
        }
    }
    let mut summary = Vec::new();
    for (name, _) in servers {
        for (req, _) in &scripts {
            let of = |server: &str| {
                runs.iter()
                    .filter(|r| r.server == server && r.request == *req && !r.generator_limited)
                    .collect::<Vec<_>>()
            };
            let mine = of(name);
            let rps = median(mine.iter().map(|r| r.requests_per_s).collect());
            let ms_rps = median(
                of("nginx + ModSecurity + CRS")
                    .iter()
                    .map(|r| r.requests_per_s)
                    .collect(),
            );
            summary.push(Summary {
                server: name,
                request: req,
                requests_per_s: rps,
                p99_ms: median(mine.iter().map(|r| r.p99_ms).collect()),
                ratio_to_modsecurity: rps / ms_rps,
            });
        }
    }
    drop((gw, ms, plain, upstream));
    Ok(Report {
        patches,
        rounds: runs,
        summary,
    })
}
