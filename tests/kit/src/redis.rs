//! A private redis-server: its own port, no persistence, stopped by PID on drop. It can be
//! killed (as a crash would) and started again, empty, on the same port.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::pki::TlsFiles;
use crate::ports::{free_port, wait_port};
use crate::procs::Proc;

/// An ACL user and, optionally, TLS for a private Redis.
#[derive(Debug, Clone)]
pub struct Secure {
    /// The user vigild connects as (all keys and channels, all commands).
    pub user: String,
    pub password: String,
    /// The password of the `default` user, which the test itself uses (`cli`).
    pub admin_password: String,
    pub tls: Option<RedisTls>,
}

/// TLS files of a private Redis.
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// CA that signed `server` (and the client certificates Redis accepts).
    pub ca: PathBuf,
    pub server: TlsFiles,
    /// With a client certificate (signed by `ca`), Redis asks every client for one; `cli`
    /// presents this one.
    pub client: Option<TlsFiles>,
}

#[derive(Debug)]
pub struct Redis {
    port: u16,
    proc: Option<Proc>,
    secure: Option<Secure>,
}

impl Redis {
    /// Starts redis-server on a free loopback port and waits until it answers PING.
    pub fn start() -> Result<Self> {
        let mut r = Self {
            port: free_port()?,
            proc: None,
            secure: None,
        };
        r.spawn()?;
        Ok(r)
    }

    /// Starts redis-server with an ACL user (the `default` user needs `admin_password`) and,
    /// with `tls`, on a TLS port only.
    pub fn start_secure(secure: Secure) -> Result<Self> {
        let mut r = Self {
            port: free_port()?,
            proc: None,
            secure: Some(secure),
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.secure {
            None => {
                cmd.args(["--port", &port]);
            }
            Some(s) => {
                // Each word of the ACL rule is its own argument after `--user`.
                cmd.args(["--requirepass", &s.admin_password])
                    .args(["--user", &s.user, "on", &format!(">{}", s.password)])
                    .args(["~*", "&*", "+@all"]);
                match &s.tls {
                    None => {
                        cmd.args(["--port", &port]);
                    }
                    Some(t) => {
                        cmd.args(["--port", "0", "--tls-port", &port])
                            .arg("--tls-cert-file")
                            .arg(&t.server.cert)
                            .arg("--tls-key-file")
                            .arg(&t.server.key)
                            .arg("--tls-ca-cert-file")
                            .arg(&t.ca)
                            .args([
                                "--tls-auth-clients",
                                if t.client.is_some() { "yes" } else { "no" },
                            ]);
                    }
                }
            }
        }
        let p = Proc::spawn(&mut cmd).context("apt-get install redis-server")?;
        self.proc = Some(p);
        wait_port(self.port, Duration::from_secs(5), "redis-server")?;
        let pong = self.cli(&["PING"])?;
        if pong.trim() != "PONG" {
            bail!("redis-server on port {port} answered {pong:?} to PING");
        }
        Ok(())
    }

    /// Runs `redis-cli` against this server as the `default` user (admin), over TLS when the
    /// server uses it; its standard output.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        self.cli_as(None, args)
    }

    /// `redis-cli` as `user` with `password` (`None`: the admin), or without credentials when
    /// `user` is `Some(("", ""))`.
    pub fn cli_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(s) = &self.secure {
            match user {
                None => {
                    cmd.args(["--user", "default", "--pass", &s.admin_password]);
                }
                Some(("", _)) => {}
                Some((u, p)) => {
                    cmd.args(["--user", u, "--pass", p]);
                }
            }
            cmd.arg("--no-auth-warning");
            if let Some(t) = &s.tls {
                cmd.arg("--tls").arg("--cacert").arg(&t.ca);
                if let Some(c) = &t.client {
                    cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
                }
            }
        }
        cmd.args(args);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("apt-get install redis-tools (redis-cli)")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `redis://127.0.0.1:<port>` or `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let tls = self.secure.as_ref().is_some_and(|s| s.tls.is_some());
        format!(
            "{}://127.0.0.1:{}",
            if tls { "rediss" } else { "redis" },
            self.port
        )
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
