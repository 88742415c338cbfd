//! Connection bookkeeping: an IO wrapper that notes when bytes last moved (for the idle timeout)
//! and a guard that keeps the open-connection count right whatever way a task ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{Fault, Framing};
use crate::body::SendClock;

/// Activity of one connection.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    /// Requests of this connection whose response is not finished.
    pub inflight: AtomicUsize,
    /// Requests received on this connection so far.
    pub requests: AtomicU64,
    /// 1 + index of the first HTTP/1.1 head whose framing is ambiguous, and why.
    ambiguous_from: AtomicU64,
    fault: AtomicU8,
    /// An HTTP/1.1 request head has begun and not ended.
    head_partial: AtomicBool,
    /// Milliseconds (since `origin`, plus one) at which a write to the client first found the
    /// socket full; 0 while writes go through.
    write_blocked_at: AtomicU64,
    /// Response bodies of this connection on their way to the client.
    pub send: Arc<SendClock>,
    /// Milliseconds (since `origin`) at which the connection last became free for a new
    /// request head: set up, or its last response finished.
    head_wait_from: AtomicU64,
    /// The client spoke HTTP/2 (prior knowledge, on a connection without ALPN).
    h2: AtomicBool,
    /// The connection was upgraded (a 101 answered) and is spliced to the upstream: its end
    /// takes the full shutdown, see [`Tracked`].
    spliced: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            ambiguous_from: AtomicU64::new(0),
            fault: AtomicU8::new(0),
            head_partial: AtomicBool::new(false),
            write_blocked_at: AtomicU64::new(0),
            send: Arc::new(SendClock::new()),
            head_wait_from: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            spliced: AtomicBool::new(false),
        })
    }

    /// The connection is upgraded and spliced to the upstream from here on.
    pub fn mark_spliced(&self) {
        self.spliced.store(true, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since the connection was set up for HTTP.
    pub fn age(&self) -> Duration {
        self.origin.elapsed()
    }

    /// A response is finished: the request no longer counts as in flight, and once none is,
    /// the wait for the next request head starts.
    pub fn request_done(&self) {
        let now = self.now_ms();
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.head_wait_from.store(now, Ordering::Relaxed);
        }
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long an HTTP/1.1 connection has waited for a request head: `None` while a request
    /// is in flight or on an HTTP/2 connection, which have no head to wait for.
    pub fn head_wait(&self, http1: bool) -> Option<Duration> {
        if !http1 || self.h2.load(Ordering::Relaxed) || self.inflight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let from = self.head_wait_from.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(from)))
    }

    /// Numbers a new request; the reason to refuse it if its head (or an earlier one) had
    /// ambiguous framing.
    pub fn next_request_framing(&self) -> Option<&'static str> {
        let index = self.requests.fetch_add(1, Ordering::AcqRel);
        let from = self.ambiguous_from.load(Ordering::Acquire);
        (from != 0 && index + 1 >= from).then(|| {
            self.framing_fault()
                .map_or("ambiguous_framing", Fault::reason)
        })
    }

    /// The framing fault seen on this connection, if any.
    pub fn framing_fault(&self) -> Option<Fault> {
        match self.fault.load(Ordering::Acquire) {
            1 => Some(Fault::Ambiguous),
            2 => Some(Fault::RepeatedLength),
            3 => Some(Fault::HugeLength),
            _ => None,
        }
    }

    fn note_fault(&self, index: u64, fault: Fault) {
        let code = match fault {
            Fault::Ambiguous => 1,
            Fault::RepeatedLength => 2,
            Fault::HugeLength => 3,
        };
        if self
            .ambiguous_from
            .compare_exchange(0, index + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.fault.store(code, Ordering::Release);
        }
    }

    /// Whether the client is part way through an HTTP/1.1 request head (as opposed to a
    /// keep-alive connection waiting, silent, for its next request).
    pub fn head_partial(&self) -> bool {
        self.head_partial.load(Ordering::Relaxed)
    }

    /// Time since bytes last moved.
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_ms.load(Ordering::Relaxed)),
        )
    }

    /// How long the client has not been taking what the gateway sends: the socket has been full
    /// for that long, or response bodies have waited that long for the client (an HTTP/2 flow
    /// control window kept at zero) without any of them moving.
    pub fn send_stalled_for(&self) -> Duration {
        let now = self.now_ms();
        let blocked = match self.write_blocked_at.load(Ordering::Relaxed) {
            0 => 0,
            at => now.saturating_sub(at - 1),
        };
        Duration::from_millis(blocked).max(self.send.stalled_for())
    }
}

impl Activity {
    /// Notes the result of a write: progress, or the moment the socket first refused bytes.
    fn wrote<E>(&self, r: &Poll<Result<usize, E>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.touch();
                self.write_blocked_at.store(0, Ordering::Relaxed);
            }
            Poll::Pending => self.write_blocked(),
            _ => {}
        }
    }

    fn write_blocked(&self) {
        let _ = self.write_blocked_at.compare_exchange(
            0,
            self.now_ms() + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// An IO stream that touches its [`Activity`] on every transfer.
///
/// Once the peer has closed its side cleanly (a read ends: for TLS, after its `close_notify`),
/// shutting an HTTP connection down only flushes what is still buffered: no `close_notify` of
/// ours and no TCP shutdown, as nginx does after a peer's clean close. hyper shuts an HTTP
/// connection down after the end of its reads only when no response is left to send, and the
/// peer has usually closed its socket by then, so our alert would only come back as a reset,
/// and the shutdown would fail; that was a TLS record, two system calls and a reset per
/// connection (perf/tls, handshakes). Dropping the stream then closes the socket. A spliced
/// connection (an upgrade) keeps the full shutdown: there the peer may have closed only its
/// sending side and still read what the upstream sends, whose end our `close_notify` marks.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    framing: Option<Framing>,
    peer_closed: bool,
}

impl<T> Tracked<T> {
    /// `http1` enables the framing tracker (HTTP/1.1 or not yet known).
    pub fn new(inner: T, activity: Arc<Activity>, http1: bool) -> Self {
        Self {
            inner,
            activity,
            framing: http1.then(Framing::default),
            peer_closed: false,
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
        let room = buf.remaining() > 0;
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if room && buf.filled().len() == before && matches!(r, Poll::Ready(Ok(()))) {
            // End of stream: TLS reports it only after the peer's close_notify (a bare TCP end
            // is an error there).
            self.peer_closed = true;
        }
        if buf.filled().len() > before {
            self.activity.touch();
            let this = &mut *self;
            if let Some(f) = this.framing.as_mut() {
                if let Some((index, fault)) = f.feed(&buf.filled()[before..]) {
                    this.activity.note_fault(index, fault);
                }
                if f.h2() {
                    this.activity.h2.store(true, Ordering::Relaxed);
                }
                this.activity
                    .head_partial
                    .store(f.partial_head(), Ordering::Relaxed);
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
        self.activity.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        // A TLS stream writes its buffered records here: blocked just like a write.
        match &r {
            Poll::Ready(Ok(())) => self.activity.write_blocked_at.store(0, Ordering::Relaxed),
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Err(_)) => {}
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed && !self.activity.spliced.load(Ordering::Relaxed) {
            return self.poll_flush(cx);
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
