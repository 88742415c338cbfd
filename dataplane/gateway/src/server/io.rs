//! Connection bookkeeping: an IO wrapper that notes when bytes last moved (for the idle timeout)
//! and a guard that keeps the open-connection count right whatever way a task ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::framing::Framing;
use crate::metrics::Metrics;

/// Activity of one connection.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    /// Requests of this connection whose response is not finished.
    pub inflight: AtomicUsize,
    /// Requests received on this connection so far.
    pub requests: AtomicU64,
    /// 1 + index of the first HTTP/1.1 head with both Content-Length and Transfer-Encoding.
    pub ambiguous_from: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            ambiguous_from: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Numbers a new request; true if its head (or an earlier one) had ambiguous framing.
    pub fn next_request_is_ambiguous(&self) -> bool {
        let index = self.requests.fetch_add(1, Ordering::AcqRel);
        let from = self.ambiguous_from.load(Ordering::Acquire);
        from != 0 && index + 1 >= from
    }

    /// Time since bytes last moved.
    pub fn idle_for(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// An IO stream that touches its [`Activity`] on every transfer.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    framing: Option<Framing>,
}

impl<T> Tracked<T> {
    /// `http1` enables the framing tracker (HTTP/1.1 or not yet known).
    pub fn new(inner: T, activity: Arc<Activity>, http1: bool) -> Self {
        Self {
            inner,
            activity,
            framing: http1.then(Framing::default),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
            let this = &mut *self;
            if let Some(f) = this.framing.as_mut()
                && let Some(index) = f.feed(&buf.filled()[before..])
            {
                let _ = this.activity.ambiguous_from.compare_exchange(
                    0,
                    index + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts open connections for shedding, the gauge and the shutdown drain.
#[derive(Debug, Default)]
pub struct ConnCount {
    open: AtomicUsize,
    zero: Notify,
}

impl ConnCount {
    /// Registers a connection; returns the guard and how many are open including it.
    pub fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> (ConnGuard, usize) {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        let guard = ConnGuard {
            count: self.clone(),
            metrics: metrics.clone(),
        };
        (guard, n)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is open.
    pub async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements the count when the connection task ends.
#[derive(Debug)]
pub struct ConnGuard {
    count: Arc<ConnCount>,
    metrics: Arc<Metrics>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.metrics
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
        if self.count.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.count.zero.notify_waiters();
        }
    }
}
