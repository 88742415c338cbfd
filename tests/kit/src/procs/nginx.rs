//! nginx as a peer: the trivial upstream every benchmark forwards to, and a TLS proxy to compare
//! the gateway with. One worker, `keepalive_requests` raised (nginx closes a connection after
//! 1,000 requests otherwise), every path under the run's directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Proc;
use crate::ports::wait_port;

fn head(dir: &Path, tag: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\npid {d}/{tag}.pid;\n\
         error_log {d}/{tag}-error.log warn;\n\
         worker_rlimit_nofile 65536;\nevents {{ worker_connections 61000; }}\n"
    )
}

fn temp_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy; \
         fastcgi_temp_path {d}/tmp-fcgi; uwsgi_temp_path {d}/tmp-uwsgi; \
         scgi_temp_path {d}/tmp-scgi;\n"
    )
}

fn start(dir: &Path, tag: &str, conf: String, port: u16) -> Result<Proc> {
    let path = dir.join(format!("{tag}.conf"));
    std::fs::write(&path, conf)?;
    let p = Proc::spawn(
        Command::new("nginx")
            .arg("-e")
            .arg(dir.join(format!("{tag}-error.log")))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .context("apt-get install nginx-light")?;
    wait_port(port, Duration::from_secs(10), &format!("nginx ({tag})"))?;
    Ok(p)
}

/// The upstream on 127.0.0.1:`port`: a fixed `200 ok`, no logging.
pub fn upstream(dir: &Path, port: u16) -> Result<Proc> {
    let conf = format!(
        "{}http {{\n access_log off;\n keepalive_requests 100000;\n {}\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        head(dir, "upstream"),
        temp_paths(dir),
    );
    start(dir, "upstream", conf, port)
}

/// nginx terminating TLS 1.3 (and HTTP/2) on 127.0.0.1:`port` in front of the upstream on
/// `upstream`, keeping `keepalive` idle upstream connections, with an access log like the
/// gateway's audit log.
pub fn tls_proxy(
    dir: &Path,
    port: u16,
    upstream: u16,
    tls: &crate::pki::TlsFiles,
    keepalive: usize,
) -> Result<Proc> {
    let d = dir.display();
    let conf = format!(
        "{}http {{\n access_log {d}/access.log;\n keepalive_requests 100000;\n \
         keepalive_timeout 75s;\n client_header_timeout 60s;\n {}\
         upstream up {{ server 127.0.0.1:{upstream}; keepalive {keepalive}; }}\n \
         server {{\n  listen 127.0.0.1:{port} ssl http2 backlog=4096;\n  \
         ssl_certificate {};\n  ssl_certificate_key {};\n  ssl_protocols TLSv1.3;\n  \
         location / {{ proxy_pass http://up; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; }}\n }}\n}}\n",
        head(dir, "nginx"),
        temp_paths(dir),
        tls.cert.display(),
        tls.key.display(),
    );
    start(dir, "nginx", conf, port)
}

/// The PID that serves connections: nginx's single worker, the master's child. The master
/// listens before it forks the worker, so a port that answers does not mean the worker is
/// there yet: wait for it, up to 5 s.
pub fn worker(master: u32) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .with_context(|| format!("reading nginx master {master}'s children"))?;
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("nginx master {master} has no worker 5 s after it started listening");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
