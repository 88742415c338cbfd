//! The processes a run needs: the trivial upstream (an nginx returning a fixed body), one gateway
//! per configuration in a child process, and redis-server for shared buckets. Each is killed by
//! PID when its guard drops, so an aborted run leaves nothing behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process killed (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// CPU time the whole process (every thread, live or exited) has used, in ns.
    pub fn cpu_ns(&self) -> Result<u64> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: clock_getcpuclockid writes one clockid_t through a valid pointer.
        let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
        if rc != 0 {
            bail!("clock_getcpuclockid({pid}): error {rc}");
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            bail!(
                "clock_gettime(cpu clock of {pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(u64::try_from(ts.tv_sec)? * 1_000_000_000 + u64::try_from(ts.tv_nsec)?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
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
fn wait_port(port: u16, name: &str) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{name} did not listen on port {port} within 10 s")
}

/// The upstream every configuration forwards to: nginx, one worker, a fixed 200 answer, no
/// logging.
pub fn upstream(dir: &Path, port: u16) -> Result<Proc> {
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/upstream.pid;\n\
         error_log {d}/upstream-error.log warn;\n\
         worker_rlimit_nofile 65536;\nevents {{ worker_connections 30000; }}\n\
         http {{\n access_log off;\n keepalive_requests 100000;\n \
         client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy; \
         fastcgi_temp_path {d}/tmp-fcgi; uwsgi_temp_path {d}/tmp-uwsgi; \
         scgi_temp_path {d}/tmp-scgi;\n \
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
    );
    let path = dir.join("upstream.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join("upstream-error.log"))
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
    wait_port(port, "upstream nginx")?;
    Ok(p)
}

/// A gateway child process and its ports.
#[derive(Debug)]
pub struct GatewayProc {
    proc: Proc,
    pub https: u16,
    pub metrics: u16,
}

impl GatewayProc {
    pub fn cpu_ns(&self) -> Result<u64> {
        self.proc.cpu_ns()
    }

    /// The counters of the gateway's metrics that say what it did with the requests.
    pub fn scrape(&self) -> Result<Scrape> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let mut m = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(n) = value.parse::<u64>() else {
                continue;
            };
            let metric = name.split('{').next().unwrap_or(name);
            match metric {
                "vigil_gateway_requests_total" => {
                    m.requests += n;
                    if !name.contains("status=\"2") {
                        m.non_2xx += n;
                    }
                }
                "vigil_gateway_rate_limit_fallback_total" => m.fallbacks += n,
                "vigil_fleet_rate_limit_store_decisions_total" => m.store_decisions += n,
                _ => {}
            }
        }
        Ok(m)
    }
}

/// Counters from the gateway's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scrape {
    /// Requests answered (`vigil_gateway_requests_total`, every label).
    pub requests: u64,
    /// Of them, answered with a status other than 2xx.
    pub non_2xx: u64,
    /// Shared rate-limit decisions made by the local fallback
    /// (`vigil_gateway_rate_limit_fallback_total`).
    pub fallbacks: u64,
    /// Decisions the Redis store answered (`vigil_fleet_rate_limit_store_decisions_total`).
    pub store_decisions: u64,
}

/// The gateway in a child process (this binary with `--serve-gateway CONFIG [REDIS]`), so its
/// CPU time is its own.
pub fn gateway(config_json: &Path, redis: Option<&str>) -> Result<GatewayProc> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--serve-gateway").arg(config_json);
    if let Some(addr) = redis {
        cmd.arg(addr);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child.stdout.take().context("gateway stdout")?;
    let p = Proc { child };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let ports: Vec<u16> = line
        .strip_prefix("READY ")
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match ports.as_slice() {
        [https, metrics] => Ok(GatewayProc {
            proc: p,
            https: *https,
            metrics: *metrics,
        }),
        _ => bail!("gateway did not start: {line:?}"),
    }
}

/// redis-server on `port` (loopback only, no persistence), answered PING before returning.
pub fn redis(dir: &Path, port: u16) -> Result<Proc> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (apt-get install redis-server)")?;
    let p = Proc { child };
    wait_port(port, "redis-server")?;
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    if &buf != b"+PONG\r\n" {
        bail!(
            "redis-server on port {port} answered {:?} to PING",
            String::from_utf8_lossy(&buf)
        );
    }
    Ok(p)
}

/// A temp directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("vigil-perf-identity-{}", std::process::id()));
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
