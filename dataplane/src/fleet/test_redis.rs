//! A private redis-server for unit tests: a free loopback port, no persistence, killed by PID
//! when dropped (also when the test fails). It can be stopped (SIGSTOP, a hung server),
//! killed and started again on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use redis::Value;

use super::link::Link;

/// A plain connection for checking what the store wrote.
pub struct Conn(redis::aio::MultiplexedConnection);

impl Conn {
    /// One command, its words as given.
    pub async fn call(&mut self, words: &[&[u8]]) -> redis::RedisResult<Value> {
        let mut cmd = redis::cmd(std::str::from_utf8(words[0]).unwrap());
        for w in &words[1..] {
            cmd.arg(*w);
        }
        cmd.query_async(&mut self.0).await
    }
}

/// The bulk strings of an array reply.
pub fn bulks(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[derive(Debug)]
pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    pub fn start() -> TestRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut r = TestRedis { port, child: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a fresh (empty) server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            let pid = i32::try_from(c.id()).unwrap();
            // SAFETY: kill(2) on the PID of a child this struct started and has not reaped.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// The server stops answering but keeps its connections (and the kernel still accepts).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// A link to this server without credentials or TLS.
    pub fn link(&self) -> Link {
        Link::open(&self.addr()).unwrap()
    }

    /// A plain connection for checking what the store wrote.
    pub async fn conn(&self) -> Conn {
        Conn(self.link().multiplexed().await.unwrap())
    }

    /// How many times Redis ran `cmd` (from scripts too) since the last CONFIG RESETSTAT.
    pub async fn calls(&self, cmd: &str) -> u64 {
        let mut c = self.conn().await;
        let info = match c.call(&[b"INFO", b"commandstats"]).await.unwrap() {
            Value::BulkString(b) => String::from_utf8(b).unwrap(),
            Value::VerbatimString { text, .. } => text,
            other => panic!("INFO answered {other:?}"),
        };
        let prefix = format!("cmdstat_{cmd}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
