//! A gateway under test in a child process (this binary with `--serve-gateway CONFIG`, so its
//! CPU time is its own), and the counters of its metrics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use vigil_testkit::procs::{Proc, spawn_ready};

/// A gateway child process and its ports.
#[derive(Debug)]
pub struct GatewayProc {
    proc: Proc,
    pub https: u16,
    pub metrics: u16,
}

impl GatewayProc {
    /// Starts the gateway with `config`; with `redis` (`host:port`), the `shared = true`
    /// rate-limit rules keep their buckets there.
    pub fn start(config: &Path, redis: Option<&str>) -> Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("--serve-gateway").arg(config);
        if let Some(addr) = redis {
            cmd.args(["--redis", addr]);
        }
        let (proc, ports) = spawn_ready(&mut cmd)?;
        match ports.as_slice() {
            [https, metrics] => Ok(Self {
                proc,
                https: *https,
                metrics: *metrics,
            }),
            _ => bail!("the gateway announced {ports:?}, not its HTTPS and metrics ports"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

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
