//! A private redis-server: its own port, no persistence, stopped by PID on drop. It can be
//! killed (as a crash would) and started again, empty, on the same port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::ports::{free_port, wait_port};
use crate::procs::Proc;

#[derive(Debug)]
pub struct Redis {
    port: u16,
    proc: Option<Proc>,
}

impl Redis {
    /// Starts redis-server on a free loopback port and waits until it answers PING.
    pub fn start() -> Result<Self> {
        let mut r = Self {
            port: free_port()?,
            proc: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let port = self.port;
        let p = Proc::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .context("apt-get install redis-server")?;
        self.proc = Some(p);
        wait_port(port, Duration::from_secs(5), "redis-server")?;
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
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The running server process, for its CPU time.
    pub fn proc(&self) -> Option<&Proc> {
        self.proc.as_ref()
    }

    /// SIGKILL, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // Child::kill signals this child's PID only; the guard's drop then reaps it.
            let _ = p.child_mut().kill();
        }
    }

    /// A fresh, empty server on the same port after `stop`, as a restarted Redis.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
