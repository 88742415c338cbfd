use std::{os::unix::fs::PermissionsExt, path::Path, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
    task::JoinHandle,
    time::timeout,
};
use tracing::{debug, warn};

use vigil_control::{
    ControlError, ErrorCode, Handler,
    wire::{self, MAX_LINE},
};

/// How long a client may take to send each request line, idle time included: a client that
/// stalls is disconnected instead of holding a task and a descriptor forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to read each reply before it is disconnected.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections served at once; further ones get a one-line error and are closed, so
/// stuck clients cannot pile up without bound.
pub const MAX_SESSIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("another vigild is already serving {path}; stop it first")]
    InUse { path: String },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Per-connection time limits (the constants above; tests shorten them).
#[derive(Clone, Copy, Debug)]
struct Limits {
    request: Duration,
    reply: Duration,
    sessions: usize,
}

const LIMITS: Limits = Limits {
    request: REQUEST_TIMEOUT,
    reply: REPLY_TIMEOUT,
    sessions: MAX_SESSIONS,
};

/// Binds the control socket (mode 0600 in a 0700 directory) and serves `handler` on it in the
/// background.
pub async fn serve(handler: Arc<dyn Handler>, path: &Path) -> Result<JoinHandle<()>, ServeError> {
    let io = |source| ServeError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::InUse {
                path: path.display().to_string(),
            });
        }
        std::fs::remove_file(path).map_err(io)?; // stale socket of a daemon that died
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(tokio::spawn(accept_loop(listener, handler, LIMITS)))
}

async fn accept_loop(listener: UnixListener, handler: Arc<dyn Handler>, limits: Limits) {
    let sessions = Arc::new(Semaphore::new(limits.sessions));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(permit) = sessions.clone().try_acquire_owned() else {
                    // Never waits: the client hears why, and the accept loop moves on.
                    let _ = stream.try_write(&busy_line(limits.sessions));
                    warn!(
                        limit = limits.sessions,
                        "control connection refused: too many open"
                    );
                    continue;
                };
                let h = handler.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = session(h, stream, limits).await {
                        debug!(error = %e, "control session ended");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn busy_line(limit: usize) -> Vec<u8> {
    wire::encode_reply(&Err(ControlError::new(
        ErrorCode::Busy,
        format!("vigild already serves {limit} control connections; retry when one ends"),
    )))
}

async fn session(
    handler: Arc<dyn Handler>,
    stream: UnixStream,
    limits: Limits,
) -> std::io::Result<()> {
    // Defence in depth behind the 0600 mode: only root or the daemon's own user may speak.
    let cred = stream.peer_cred()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if cred.uid() != 0 && cred.uid() != me {
        warn!(
            uid = cred.uid(),
            "control connection from an unprivileged user refused"
        );
        return Ok(());
    }
    serve_lines(handler, stream, limits).await
}

/// One JSON request per line, one reply per line, until the client hangs up, sends a line
/// over [`MAX_LINE`], stalls mid-request or does not take a reply in time.
async fn serve_lines(
    handler: Arc<dyn Handler>,
    stream: UnixStream,
    limits: Limits,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut bounded = (&mut reader).take(MAX_LINE as u64 + 1);
        let n = match timeout(limits.request, bounded.read_until(b'\n', &mut line)).await {
            Ok(n) => n?,
            Err(_) => {
                debug!("control client sent no complete request in time; closing");
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        let reply = if line.len() > MAX_LINE {
            Err(ControlError::new(
                ErrorCode::BadRequest,
                format!("request longer than {MAX_LINE} bytes"),
            ))
        } else {
            match wire::decode_request(&line) {
                Ok(req) => {
                    let h = handler.clone();
                    // Map operations are syscalls; keep them off the async workers.
                    tokio::task::spawn_blocking(move || h.handle(req))
                        .await
                        .unwrap_or_else(|e| {
                            Err(ControlError::new(
                                ErrorCode::Failed,
                                format!("request failed: {e}"),
                            ))
                        })
                }
                Err(e) => Err(e),
            }
        };
        let out = wire::encode_reply(&reply);
        match timeout(limits.reply, w.write_all(&out)).await {
            Ok(written) => written?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not read its reply in time",
                ));
            }
        }
        if line.len() > MAX_LINE {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use vigil_control::{Detached, Reply, Request};

    use super::*;

    const SHORT: Limits = Limits {
        request: Duration::from_millis(200),
        reply: Duration::from_millis(200),
        sessions: 2,
    };

    fn echo(req: Request) -> Result<Reply, ControlError> {
        Ok(Reply::Detached(Detached {
            detached: format!("{req:?}"),
        }))
    }

    async fn read_line(s: &mut UnixStream) -> String {
        let mut out = Vec::new();
        let mut r = BufReader::new(s);
        timeout(Duration::from_secs(5), r.read_until(b'\n', &mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn a_silent_or_stalled_client_is_disconnected() {
        for sent in [&b""[..], b"{\"cmd\":\"sta"] {
            let (server, mut client) = UnixStream::pair().unwrap();
            let task = tokio::spawn(serve_lines(Arc::new(echo), server, SHORT));
            client.write_all(sent).await.unwrap();
            let started = Instant::now();
            let mut rest = Vec::new();
            let n = timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 0, "closed without a reply");
            assert!(started.elapsed() < Duration::from_secs(2));
            task.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_its_reply_is_dropped() {
        let big = |_req: Request| {
            Ok(Reply::Detached(Detached {
                detached: "x".repeat(8 << 20),
            }))
        };
        let (server, mut client) = UnixStream::pair().unwrap();
        let task = tokio::spawn(serve_lines(Arc::new(big), server, SHORT));
        client.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let res = timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        let err = res.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn an_oversized_request_is_refused_and_closed() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let task = tokio::spawn(serve_lines(Arc::new(echo), server, SHORT));
        let w = tokio::spawn(async move {
            let _ = client.write_all(&vec![b'x'; MAX_LINE + 10]).await;
            client
        });
        let mut client = w.await.unwrap();
        let line = read_line(&mut client).await;
        assert!(line.contains("request longer than 65536 bytes"), "{line}");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn stuck_clients_neither_block_others_nor_pile_up() {
        let path = std::env::temp_dir().join(format!("vigil-ctl-test-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(accept_loop(
            listener,
            Arc::new(echo),
            Limits {
                request: Duration::from_secs(30),
                ..SHORT
            },
        ));
        // One client connects and says nothing: the next one is still answered.
        let _stuck = UnixStream::connect(&path).await.unwrap();
        let mut c = UnixStream::connect(&path).await.unwrap();
        c.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        assert!(read_line(&mut c).await.contains("Status"));
        // Both slots held: a third connection is told so and closed at once.
        let mut third = UnixStream::connect(&path).await.unwrap();
        let line = read_line(&mut third).await;
        assert!(
            line.contains("already serves 2 control connections"),
            "{line}"
        );
        drop(c);
        server.abort();
        let _ = std::fs::remove_file(&path);
    }
}
