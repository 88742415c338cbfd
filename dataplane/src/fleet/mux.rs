//! One Redis connection shared by every concurrent caller (pipelining).
//!
//! Callers hand an encoded command and a oneshot sender to a writer task through a bounded
//! queue; the writer pushes the sender onto a FIFO and writes the command, batching whatever
//! else is queued into the same write. A reader task parses replies and pops the FIFO: Redis
//! answers in order on one connection, so the n-th reply belongs to the n-th command. A caller
//! that stops waiting (its deadline passed) only drops its receiver; its reply is still read and
//! discarded, so the pairing never shifts.
//!
//! Requests queued or in flight are bounded by a semaphore: when it is exhausted `call` fails at
//! once with [`RespError::Full`] instead of waiting. When either task fails (I/O error, EOF, a
//! malformed reply), the connection closes: every waiting caller gets an error and later calls
//! fail without I/O; [`Mux::closed`] resolves so the owner can notice without traffic.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch},
    task::AbortHandle,
};

use super::resp::{RespError, Value, encode, read_value};

/// Commands written with one `write_all` at most: a burst of callers shares a syscall and a
/// packet, without one batch growing without bound.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Value, RespError>>;

struct Job {
    cmd: Vec<u8>,
    reply: Reply,
    /// Held until the reply is delivered (or the connection fails): bounds queued + in flight.
    permit: OwnedSemaphorePermit,
}

struct Waiting {
    reply: Reply,
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Shared {
    /// Callers whose command was written (or is being written), oldest first.
    waiting: Mutex<VecDeque<Waiting>>,
    /// Why the connection closed; `None` while it is open.
    closed: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiting")
    }
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, VecDeque<Waiting>> {
        // Every update is a push or a pop: a panic elsewhere cannot leave the queue torn.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes once (the first reason wins) and fails every waiting caller.
    fn close(&self, why: &str) {
        let failed: Vec<Waiting> = {
            let mut waiting = self.waiting();
            if self.closed.borrow().is_some() {
                return;
            }
            self.closed.send_replace(Some(why.to_owned()));
            waiting.drain(..).collect()
        };
        for w in failed {
            let _ = w.reply.send(Err(RespError::Closed));
        }
    }
}

/// A pipelined connection; see the module documentation.
#[derive(Debug)]
pub struct Mux {
    tx: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    tasks: [AbortHandle; 2],
}

impl Mux {
    /// Connects (TCP_NODELAY: a decision is one small command, and Nagle would hold it back
    /// waiting for the previous reply's ACK) and starts the writer and reader tasks. At most
    /// `capacity` commands are queued or waiting for their reply at once.
    pub async fn connect(addr: &str, capacity: usize) -> Result<Mux, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            waiting: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            closed: watch::Sender::new(None),
        });
        let writer = tokio::spawn(write_loop(write, rx, shared.clone())).abort_handle();
        let reader = tokio::spawn(read_loop(read, shared.clone())).abort_handle();
        Ok(Mux {
            tx,
            permits: Arc::new(Semaphore::new(capacity)),
            shared,
            tasks: [writer, reader],
        })
    }

    /// Sends one command and waits for its reply; a server error becomes
    /// `RespError::Server`. Fails at once with `Full` when `capacity` commands are pending and
    /// with `Closed` once the connection is gone. The caller bounds the wait (the reply of a
    /// dropped call is read and discarded). The command is encoded before the first poll, so
    /// the future borrows only the connection, not `args`.
    pub fn call<'a>(
        &'a self,
        args: &[&[u8]],
    ) -> impl Future<Output = Result<Value, RespError>> + Send + use<'a> {
        let cmd = encode(args);
        async move {
            if self.is_closed() {
                return Err(RespError::Closed);
            }
            let permit = self
                .permits
                .clone()
                .try_acquire_owned()
                .map_err(|_| RespError::Full)?;
            let (reply, rx) = oneshot::channel();
            // The channel holds as many jobs as there are permits, so it is never full here:
            // an error means the writer is gone.
            self.tx
                .try_send(Job { cmd, reply, permit })
                .map_err(|_| RespError::Closed)?;
            match rx.await {
                Ok(Ok(Value::Error(e))) => Err(RespError::Server(e)),
                Ok(r) => r,
                Err(_) => Err(RespError::Closed),
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Resolves once the connection has closed, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.shared.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The sender lives in `shared`, which `self` keeps alive: not reached.
            Err(_) => String::new(),
        }
    }

    /// Closes the connection now: waiting callers get `Closed`.
    pub fn shutdown(&self, why: &str) {
        self.shared.close(why);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.shutdown("connection dropped");
    }
}

async fn write_loop(mut w: OwnedWriteHalf, mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        buf.clear();
        {
            // Queued before writing, so the reader always finds the caller of a reply.
            let mut waiting = shared.waiting();
            if shared.closed.borrow().is_some() {
                // Dropping the jobs drops their senders: the callers see `Closed`.
                return;
            }
            for job in batch.drain(..) {
                buf.extend_from_slice(&job.cmd);
                waiting.push_back(Waiting {
                    reply: job.reply,
                    _permit: job.permit,
                });
            }
        }
        if let Err(e) = w.write_all(&buf).await {
            shared.close(&format!("redis connection: {e}"));
            return;
        }
        // Large one-off buffers are not kept for the life of the connection.
        if buf.capacity() > 256 * 1024 {
            buf = Vec::with_capacity(16 * 1024);
        }
    }
}

async fn read_loop(r: OwnedReadHalf, shared: Arc<Shared>) {
    let mut r = BufReader::new(r);
    loop {
        let value = match read_value(&mut r).await {
            Ok(v) => v,
            Err(e) => {
                shared.close(&e.to_string());
                return;
            }
        };
        let Some(w) = shared.waiting().pop_front() else {
            shared.close("redis protocol: a reply nobody asked for");
            return;
        };
        let _ = w.reply.send(Ok(value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A server that answers `ECHO x` with `x`, in order, or never when `silent`.
    async fn echo_server(silent: bool) -> (String, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let Ok((s, _)) = l.accept().await else { return };
            let (r, mut w) = s.into_split();
            let mut r = tokio::io::BufReader::new(r);
            loop {
                // *2 $4 ECHO $n <arg>: five lines per command.
                let mut lines = Vec::new();
                for _ in 0..5 {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    lines.push(line);
                }
                if silent {
                    continue;
                }
                let arg = lines[4].trim_end();
                let reply = format!("${}\r\n{arg}\r\n", arg.len());
                if w.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        (addr, h)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_their_own_replies() {
        let (addr, _server) = echo_server(false).await;
        let mux = Arc::new(Mux::connect(&addr, 1024).await.unwrap());
        let calls: Vec<_> = (0..500)
            .map(|i| {
                let mux = mux.clone();
                tokio::spawn(async move {
                    let arg = format!("m{i}");
                    let v = mux.call(&[b"ECHO", arg.as_bytes()]).await.unwrap();
                    assert_eq!(v, Value::Bulk(Some(arg.into_bytes())));
                })
            })
            .collect();
        for c in calls {
            tokio::time::timeout(Duration::from_secs(10), c)
                .await
                .unwrap()
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_queue_fails_at_once_and_a_closed_connection_fails_everyone() {
        let (addr, server) = echo_server(true).await;
        let mux = Arc::new(Mux::connect(&addr, 4).await.unwrap());
        let stuck: Vec<_> = (0..4)
            .map(|i| {
                let mux = mux.clone();
                tokio::spawn(async move { mux.call(&[b"ECHO", format!("{i}").as_bytes()]).await })
            })
            .collect();
        // Wait (bounded) until all four hold their permits.
        for _ in 0..200 {
            if mux.permits.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let full = tokio::time::timeout(Duration::from_secs(1), mux.call(&[b"ECHO", b"x"]))
            .await
            .expect("a full queue must not wait");
        assert!(matches!(full, Err(RespError::Full)), "{full:?}");
        // The server goes away: the waiting callers fail, and so does every later call.
        server.abort();
        let why = tokio::time::timeout(Duration::from_secs(5), mux.closed())
            .await
            .unwrap();
        assert!(!why.is_empty());
        for s in stuck {
            let r = tokio::time::timeout(Duration::from_secs(5), s)
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(r, Err(RespError::Closed)), "{r:?}");
        }
        assert!(matches!(
            mux.call(&[b"ECHO", b"y"]).await,
            Err(RespError::Closed)
        ));
    }
}
