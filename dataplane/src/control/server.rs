use std::{os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    task::JoinHandle,
};
use tracing::{debug, warn};

use super::proto::{MAX_LINE, Reply, Request};
use crate::daemon::Daemon;

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

/// Binds the control socket (mode 0600 in a 0700 directory) and serves it in the background.
pub async fn serve(daemon: Arc<Daemon>, path: &Path) -> Result<JoinHandle<()>, ServeError> {
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
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let d = daemon.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session(d, stream).await {
                            debug!(error = %e, "control session ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn session(daemon: Arc<Daemon>, stream: UnixStream) -> std::io::Result<()> {
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
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let reply = if line.len() > MAX_LINE {
            Reply::err(format!("request longer than {MAX_LINE} bytes"))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => {
                    let d = daemon.clone();
                    // Map operations are syscalls; keep them off the async workers.
                    tokio::task::spawn_blocking(move || d.handle(req))
                        .await
                        .unwrap_or_else(|e| Reply::err(format!("request failed: {e}")))
                }
                Err(e) => Reply::err(format!("malformed request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        w.write_all(&out).await?;
        if line.len() > MAX_LINE {
            return Ok(());
        }
    }
}
