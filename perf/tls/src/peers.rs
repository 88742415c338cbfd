//! The processes a run needs: the trivial upstream (an nginx returning a fixed body), nginx as
//! the TLS proxy under test, and the gateway in a child process. Each is killed by PID when its
//! guard drops, so an aborted run leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process killed (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on a PID this process spawned and has not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits (bounded) until something accepts on `port`.
pub fn wait_port(port: u16, name: &str) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{name} did not listen on port {port} within 10 s")
}

fn common_conf(dir: &Path, tag: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\npid {d}/{tag}.pid;\n\
         error_log {d}/{tag}-error.log warn;\n\
         worker_rlimit_nofile 65536;\nevents {{ worker_connections 30000; }}\n"
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

fn start_nginx(dir: &Path, tag: &'static str, conf: String, port: u16) -> Result<Proc> {
    let path = dir.join(format!("{tag}.conf"));
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join(format!("{tag}-error.log")))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx (apt-get install nginx-light)")?;
    let p = Proc { child };
    wait_port(port, tag)?;
    Ok(p)
}

/// The upstream both proxies forward to: a fixed 200 answer, no logging.
pub fn upstream(dir: &Path, port: u16) -> Result<Proc> {
    let conf = format!(
        "{}http {{\n access_log off;\n keepalive_requests 100000;\n {}\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        common_conf(dir, "upstream"),
        temp_paths(dir),
    );
    start_nginx(dir, "upstream", conf, port)
}

/// nginx as the TLS proxy: one worker, keepalive_requests raised (it closes after 1,000
/// requests otherwise), access log on like the gateway's audit log.
pub fn nginx_proxy(
    dir: &Path,
    port: u16,
    upstream: u16,
    cert: &Path,
    key: &Path,
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
        common_conf(dir, "nginx"),
        temp_paths(dir),
        cert.display(),
        key.display(),
    );
    start_nginx(dir, "nginx", conf, port)
}

/// The PID that serves connections: nginx's single worker (child of the master).
pub fn nginx_worker(master: u32) -> Result<u32> {
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))?;
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .context("nginx master has no worker")
}

/// The gateway in a child process (this binary with `--serve-gateway CONFIG`), so its memory
/// and CPU are its own like nginx's.
pub fn gateway(config_json: &Path) -> Result<(Proc, u16)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--serve-gateway")
        .arg(config_json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child.stdout.take().context("gateway stdout")?;
    let p = Proc { child };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let port = line
        .strip_prefix("READY ")
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("gateway did not start: {line:?}"))?;
    Ok((p, port))
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// A temp directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("vigil-perf-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
