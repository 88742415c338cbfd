//! Body wrappers: the request body is size-limited and time-limited while it streams to the
//! upstream (a 413 is decided on the byte that crosses the limit, not after buffering), and the
//! response body counts bytes and reports when it is finished so the audit line and metrics are
//! written once per request with the real byte count.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::budget::Share;

/// Errors carried through bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body sent upstream.
pub type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;
/// Body of a response before it is wrapped for the client.
pub type InnerBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Why a request body stopped early; read after the upstream call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyFault {
    None = 0,
    TooLarge = 1,
    Malformed = 2,
    TimedOut = 3,
}

/// Shared between a [`LimitedBody`] and the request handler.
#[derive(Debug, Default)]
pub struct BodyState {
    bytes: AtomicU64,
    fault: AtomicU8,
}

impl BodyState {
    /// Bytes of request body received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The fault that ended the body, if any.
    pub fn fault(&self) -> BodyFault {
        match self.fault.load(Ordering::Relaxed) {
            1 => BodyFault::TooLarge,
            2 => BodyFault::Malformed,
            3 => BodyFault::TimedOut,
            _ => BodyFault::None,
        }
    }

    fn set(&self, f: BodyFault) {
        self.fault.store(f as u8, Ordering::Relaxed);
    }
}

/// Error returned by a [`LimitedBody`] that stopped.
#[derive(Debug, thiserror::Error)]
#[error("request body stopped: {fault:?}")]
pub struct BodyStopped {
    fault: BodyFault,
}

/// A deadline whose timer is made only once a body first has to wait for its peer: most
/// bodies (empty, or read in the poll that asks for them) never wait, and then no timer is
/// allocated or registered at all. The instant is fixed when the deadline is made.
#[derive(Debug)]
struct Deadline {
    at: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Self { at, timer: None }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)))
            .as_mut()
            .poll(cx)
    }
}

/// A client body with a size limit and a deadline.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    max: u64,
    seen: u64,
    deadline: Deadline,
    state: Arc<BodyState>,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, max: u64, timeout: Duration, state: Arc<BodyState>) -> Self {
        Self {
            inner,
            max,
            seen: 0,
            deadline: Deadline::new(Instant::now() + timeout),
            state,
        }
    }

    fn stop(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state.set(fault);
        Poll::Ready(Some(Err(Box::new(BodyStopped { fault }))))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    this.state.bytes.store(this.seen, Ordering::Relaxed);
                    if this.seen > this.max {
                        return this.stop(BodyFault::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => this.stop(BodyFault::Malformed),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => this.stop(BodyFault::TimedOut),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body could not be buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// Buffering it would take bodies in memory over `limits.max_body_memory`.
    Memory,
    /// The body stopped (too large, malformed, timed out: see its [`BodyState`]).
    Stopped,
}

/// Reads a whole body into memory for the stages that check it, holding its bytes in `share`
/// of the body-memory budget (refusing past it) as they arrive. A declared length is reserved
/// before the first byte is read, so a body that cannot fit is refused without being received.
pub async fn buffer<B>(
    mut body: LimitedBody<B>,
    expected: Option<u64>,
    share: &mut Share,
) -> Result<Bytes, BufferError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let expected = expected.map(|n| n.min(body.max));
    if let Some(n) = expected
        && !share.reservation.grow(n, share.max)
    {
        return Err(BufferError::Memory);
    }
    // A body that arrives in one frame (a small one mostly does) is kept as it came: copied
    // only once a second frame has to join it.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BufferError::Stopped)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total += data.len() as u64;
        if !share.reservation.grow(total, share.max) {
            return Err(BufferError::Memory);
        }
        if first.is_none() && buf.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(held) = first.take() {
            buf.reserve(usize::try_from(expected.unwrap_or(0).max(total)).unwrap_or(0));
            buf.extend_from_slice(&held);
        }
        buf.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// How the response bodies of one connection move towards the client, for the send timeout.
#[derive(Debug)]
pub struct SendClock {
    origin: std::time::Instant,
    /// Bodies waiting for the client to take their next bytes.
    waiting: AtomicUsize,
    /// When a body last moved (milliseconds since `origin`).
    progress_ms: AtomicU64,
}

impl SendClock {
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
            waiting: AtomicUsize::new(0),
            progress_ms: AtomicU64::new(0),
        }
    }

    fn progress(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.progress_ms.store(ms, Ordering::Relaxed);
    }

    /// How long bodies have waited for the client without any of them moving (zero when none
    /// waits).
    pub fn stalled_for(&self) -> Duration {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.progress_ms.load(Ordering::Relaxed)))
    }
}

impl Default for SendClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Follows one response body on its way to the client: the body waits for the client from the
/// moment it is handed to the HTTP stack until the stack asks for more, and waits for its own
/// source (not counted: the upstream's timeouts bound that) while the source has nothing.
#[derive(Debug)]
pub struct SendWatch {
    clock: Arc<SendClock>,
    waiting: bool,
}

impl SendWatch {
    /// A response head handed to the HTTP stack: the client has to take it now.
    pub fn new(clock: Arc<SendClock>) -> Self {
        clock.progress();
        clock.waiting.fetch_add(1, Ordering::AcqRel);
        Self {
            clock,
            waiting: true,
        }
    }

    /// The HTTP stack asked for more of the body: what it had was taken.
    fn polled(&mut self) {
        self.clock.progress();
    }

    /// The body handed over data (`true`: the client must take it) or waits for its source.
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.clock.waiting.fetch_add(1, Ordering::AcqRel);
            } else {
                self.clock.waiting.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for SendWatch {
    fn drop(&mut self) {
        self.clock.progress();
        self.set_waiting(false);
    }
}

/// Reads and discards what the client sends of `body`, up to `max` bytes and for at most
/// `wait`; returns whether the body ended.
pub async fn drain<B>(body: &mut LimitedBody<B>, max: u64, wait: Duration) -> bool
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let read = async {
        let mut seen = 0u64;
        while seen <= max {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        false
    };
    tokio::time::timeout(wait, read).await.unwrap_or(false)
}

/// Called once when a response body is finished or dropped, with the bytes sent.
pub type OnDone = Box<dyn FnOnce(u64) + Send>;

/// The body of every response the gateway sends: counts bytes, enforces the upstream's total
/// deadline, and calls its [`OnDone`] exactly once.
pub struct ClientBody {
    inner: InnerBody,
    sent: u64,
    deadline: Option<Deadline>,
    on_done: Option<OnDone>,
    watch: Option<SendWatch>,
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl ClientBody {
    /// `watch` follows the body for the connection's send timeout.
    pub fn new(
        inner: InnerBody,
        deadline: Option<Instant>,
        on_done: OnDone,
        watch: Option<SendWatch>,
    ) -> Self {
        Self {
            inner,
            sent: 0,
            deadline: deadline.map(Deadline::new),
            on_done: Some(on_done),
            watch,
        }
    }

    fn finish(&mut self) {
        self.watch = None;
        if let Some(done) = self.on_done.take() {
            done(self.sent);
        }
    }

    fn waiting_for_client(&mut self, waiting: bool) {
        if let Some(w) = self.watch.as_mut() {
            w.set_waiting(waiting);
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(w) = this.watch.as_mut() {
            w.polled();
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent = this.sent.saturating_add(data.len() as u64);
                }
                // Handed to the HTTP stack: now the client has to take it.
                this.waiting_for_client(true);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => {
                // Waiting for the upstream, which its own timeouts bound.
                this.waiting_for_client(false);
                if let Some(d) = this.deadline.as_mut()
                    && d.poll(cx).is_ready()
                {
                    this.finish();
                    return Poll::Ready(Some(Err("upstream total_timeout reached".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn limited_body_stops_past_the_limit_and_records_why() {
        let state = Arc::new(BodyState::default());
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let limited = LimitedBody::new(body, 9, Duration::from_secs(5), state.clone());
        assert!(limited.collect().await.is_err());
        assert_eq!(state.fault(), BodyFault::TooLarge);
        let state = Arc::new(BodyState::default());
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let limited = LimitedBody::new(body, 10, Duration::from_secs(5), state.clone());
        assert_eq!(
            limited.collect().await.ok().map(|c| c.to_bytes().len()),
            Some(10)
        );
        assert_eq!((state.fault(), state.bytes()), (BodyFault::None, 10));
    }

    fn frames(parts: &[&'static [u8]]) -> LimitedBody<impl Body<Data = Bytes, Error = BoxError>> {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        LimitedBody::new(body, 1 << 20, Duration::from_secs(5), Arc::default())
    }

    #[tokio::test]
    async fn buffer_keeps_a_single_frame_and_joins_several_within_the_budget() {
        let memory = Arc::new(crate::budget::BodyMemory::default());
        let one: &'static [u8] = b"{\"a\":1}";
        let budget = |max| crate::budget::Budget {
            memory: &memory,
            max,
        };
        let mut r = budget(1024).share();
        let got = buffer(frames(&[one]), Some(7), &mut r).await.ok();
        // The frame itself, not a copy.
        assert_eq!(got.as_ref().map(|b| b.as_ptr()), Some(one.as_ptr()));
        assert_eq!(memory.used(), 7);
        drop(r);
        assert_eq!(memory.used(), 0);

        let mut r = budget(1024).share();
        let got = buffer(frames(&[b"{\"a\"", b"", b":", b"12}"]), None, &mut r).await;
        assert_eq!(got.ok().as_deref(), Some(&b"{\"a\":12}"[..]));
        assert_eq!(memory.used(), 8);
        drop(r);

        // Past the memory budget on the second frame: refused, nothing held.
        let mut r = budget(6).share();
        let got = buffer(frames(&[b"0123", b"4567"]), None, &mut r).await;
        assert!(matches!(got, Err(BufferError::Memory)));
        drop(r);
        assert_eq!(memory.used(), 0);
    }
}
