//! TLS 1.3 session tickets sent with the connection's first response instead of on their own.
//!
//! A TLS 1.3 server sends its session tickets (RFC 8446, 4.6.1) once the client's Finished is
//! in, and tokio-rustls writes them as the handshake ends: a write (on loopback, a transmit
//! through the peer's TCP stack too) of their own, with the first response (or HTTP/2's
//! SETTINGS) following in another a moment later. No client waits for a ticket before it sends
//! its request, so [`Deferred`] keeps that last handshake write and puts it in front of the
//! connection's next one: tickets and response leave in one system call, one write fewer per
//! handshake (perf/README.md, "Session tickets sent with the first response").
//!
//! rustls has no call to send its tickets later, so what is held is recognised below it, on the
//! wire: the first write after the client's first record of type 23 (its first encrypted
//! record: the Finished, or the Certificate under mTLS), when that write starts at a record
//! boundary and is whole records of type 23. Before that record a TLS 1.3 server writes only
//! its hello flight, which begins with a handshake record; a TLS 1.2 client sends no record of
//! type 23 before the server's last flight (with False Start it does, and that flight, a
//! ChangeCipherSpec and a handshake record, is then not held). Only the handshake can start a
//! hold: [`Deferred::handshake_done`] ends the watch, so a response is never held, even when
//! rustls sends no ticket (a client that offers no `psk_dhe_ke` mode, a ticket it could not
//! encrypt). And, as a guard, a read before the handshake is done sends what is held first:
//! rustls reads only when it waits for the client, which may be waiting for those bytes.
//! (tokio-rustls 0.26 reads nothing while handshake bytes are still queued, so a hello flight
//! is not split around a client record today.)
//!
//! The held bytes go out ahead of the next write (in one `writev`), before a shutdown, or by
//! [`Deferred::release`]: a handshake that fails once the client's first encrypted record is in
//! has its alert held (`certificate_required` or a refused certificate under mTLS, a bad
//! Finished), and the caller releases it so the client learns why. A flush does not send them;
//! that flush, as the handshake ends, is the write this saves.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// TLS record content type of encrypted TLS 1.3 records (and of TLS 1.2 application data).
const APPLICATION_DATA: u8 = 23;

/// Slices in the one write that carries held bytes and the next write's first slices.
const SLICES: usize = 8;

/// Follows TLS record boundaries in a byte stream read piece by piece.
#[derive(Debug, Default, Clone, Copy)]
struct Records {
    head: [u8; 5],
    /// Header bytes of the current record seen so far (0 to 4).
    got: usize,
    /// Payload bytes of the current record still to come.
    rest: usize,
}

impl Records {
    /// Feeds the stream's next bytes; `kind` gets each record's content type as its header
    /// completes, and returns false to stop early.
    fn feed(&mut self, mut bytes: &[u8], mut kind: impl FnMut(u8) -> bool) {
        while !bytes.is_empty() {
            if self.rest > 0 {
                let n = self.rest.min(bytes.len());
                self.rest -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.got).min(bytes.len());
            self.head[self.got..self.got + n].copy_from_slice(&bytes[..n]);
            self.got += n;
            bytes = &bytes[n..];
            if self.got == 5 {
                self.got = 0;
                self.rest = usize::from(u16::from_be_bytes([self.head[3], self.head[4]]));
                if !kind(self.head[0]) {
                    return;
                }
            }
        }
    }

    /// Whether the bytes fed so far end where a record ends.
    fn at_boundary(&self) -> bool {
        self.got == 0 && self.rest == 0
    }
}

/// Whether `bufs` are whole records, all of type 23, and at least one.
fn whole_encrypted_records(bufs: &[IoSlice<'_>]) -> bool {
    let mut r = Records::default();
    let (mut any, mut only) = (false, true);
    for b in bufs {
        r.feed(b, |kind| {
            any = true;
            only = kind == APPLICATION_DATA;
            only
        });
        if !only {
            return false;
        }
    }
    any && r.at_boundary()
}

#[derive(Debug)]
enum State {
    /// During the handshake: following both directions' records. `armed` once the client has
    /// sent a record of type 23.
    Watching {
        inbound: Records,
        outbound: Records,
        armed: bool,
    },
    /// The handshake's last write, not sent yet; `settled` once the handshake is over.
    Held { bytes: Vec<u8>, settled: bool },
    /// Passing everything through.
    Off,
}

/// A stream below rustls that holds a TLS 1.3 server's session tickets until its next write
/// (see the module documentation).
#[derive(Debug)]
pub struct Deferred<IO> {
    io: IO,
    state: State,
}

impl<IO> Deferred<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            state: State::Watching {
                inbound: Records::default(),
                outbound: Records::default(),
                armed: false,
            },
        }
    }

    /// The handshake is over: nothing more is held. Bytes already held still go out with the
    /// next write.
    pub fn handshake_done(&mut self) {
        match &mut self.state {
            State::Watching { .. } => self.state = State::Off,
            State::Held { settled, .. } => *settled = true,
            State::Off => {}
        }
    }

    /// Whether bytes are held.
    pub fn holding(&self) -> bool {
        matches!(self.state, State::Held { .. })
    }
}

impl<IO: AsyncWrite + Unpin> Deferred<IO> {
    /// Writes what is held, if anything, and stops holding.
    pub async fn release(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_release(cx)).await?;
        self.io.flush().await
    }

    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.holding() {
            if ready!(self.poll_write_bufs(cx, &[]))? == 0 && self.holding() {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `bufs` behind what is held, if anything; with no `bufs`, only what is held.
    fn poll_write_bufs(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match &mut self.state {
                State::Off => return Pin::new(&mut self.io).poll_write_vectored(cx, bufs),
                State::Watching {
                    outbound, armed, ..
                } => {
                    if *armed && outbound.at_boundary() && whole_encrypted_records(bufs) {
                        let mut held = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
                        for b in bufs {
                            held.extend_from_slice(b);
                        }
                        let n = held.len();
                        self.state = State::Held {
                            bytes: held,
                            settled: false,
                        };
                        return Poll::Ready(Ok(n));
                    }
                    if *armed {
                        // The write after the client's first encrypted record is not the
                        // tickets: nothing is held on this connection.
                        self.state = State::Off;
                        continue;
                    }
                    let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
                    let mut left = n;
                    for b in bufs {
                        let take = left.min(b.len());
                        outbound.feed(&b[..take], |_| true);
                        left -= take;
                        if left == 0 {
                            break;
                        }
                    }
                    return Poll::Ready(Ok(n));
                }
                State::Held { bytes: held, .. } => {
                    let mut slices = [IoSlice::new(&[]); SLICES];
                    slices[0] = IoSlice::new(held);
                    let k = 1 + bufs.len().min(SLICES - 1);
                    slices[1..k].copy_from_slice(&bufs[..k - 1]);
                    let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?;
                    if n == 0 {
                        return Poll::Ready(Ok(0));
                    }
                    if n < held.len() {
                        held.drain(..n);
                        continue;
                    }
                    let past = n - held.len();
                    self.state = State::Off;
                    if past > 0 || bufs.iter().all(|b| b.is_empty()) {
                        return Poll::Ready(Ok(past));
                    }
                    // Only the held bytes went: the caller's go now, or wait for room.
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Deferred<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if matches!(self.state, State::Held { settled: false, .. }) {
            ready!(self.poll_release(cx))?;
        }
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let State::Watching {
            inbound,
            armed: armed @ false,
            ..
        } = &mut this.state
        {
            inbound.feed(&buf.filled()[before..], |kind| {
                *armed = kind == APPLICATION_DATA;
                !*armed
            });
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deferred<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if matches!(self.state, State::Off) {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        self.poll_write_bufs(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// Does not send held bytes (see the module documentation).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::VecDeque;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// One TLS record of `kind` with `len` payload bytes.
    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        r.resize(5 + len, kind);
        r
    }

    fn tickets() -> Vec<u8> {
        [record(APPLICATION_DATA, 200), record(APPLICATION_DATA, 200)].concat()
    }

    /// A socket whose reads hand out `reads` one by one, which keeps each write call's bytes
    /// and takes at most `room` bytes per call; `room` 0 is a full socket (`Pending`, the task
    /// woken at once as if room had come).
    #[derive(Default)]
    struct Wire {
        reads: VecDeque<Vec<u8>>,
        writes: Vec<Vec<u8>>,
        room: VecDeque<usize>,
        shut: bool,
    }

    impl AsyncRead for Wire {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(r) = self.reads.pop_front() {
                buf.put_slice(&r);
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Wire {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let room = self.room.pop_front().unwrap_or(usize::MAX);
            if room == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            all.truncate(room);
            let n = all.len();
            if n > 0 {
                self.writes.push(all);
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// The client sends `bytes`, and the server reads them in one read.
    async fn client_sends(d: &mut Deferred<Wire>, bytes: &[u8]) {
        d.io.reads.push_back(bytes.to_vec());
        let mut buf = vec![0u8; bytes.len() + 1];
        assert_eq!(d.read(&mut buf).await.unwrap(), bytes.len());
    }

    /// The server side of a TLS 1.3 handshake up to the client's Finished: the ClientHello in
    /// two reads, the hello flight written, the client's ChangeCipherSpec and Finished read.
    async fn through_the_handshake(d: &mut Deferred<Wire>) -> Vec<u8> {
        let hello = record(22, 300);
        client_sends(d, &hello[..7]).await;
        client_sends(d, &hello[7..]).await;
        let flight = [
            record(22, 90),
            record(20, 1),
            record(APPLICATION_DATA, 900),
            record(APPLICATION_DATA, 300),
        ]
        .concat();
        d.write_all(&flight).await.unwrap();
        d.flush().await.unwrap();
        let finished = [record(20, 1), record(APPLICATION_DATA, 53)].concat();
        client_sends(d, &finished).await;
        flight
    }

    #[tokio::test]
    async fn the_tickets_go_out_in_front_of_the_next_write_in_one_call() {
        let mut d = Deferred::new(Wire::default());
        let flight = through_the_handshake(&mut d).await;
        d.write_all(&tickets()).await.unwrap();
        d.flush().await.unwrap();
        d.handshake_done();
        assert_eq!(
            d.io.writes,
            std::slice::from_ref(&flight),
            "tickets sent alone"
        );
        assert!(d.holding());
        // Reading the request does not send them: the response will.
        client_sends(&mut d, &record(APPLICATION_DATA, 80)).await;
        assert!(d.holding());
        let response = record(APPLICATION_DATA, 120);
        d.write_all(&response).await.unwrap();
        assert_eq!(
            d.io.writes,
            [flight, [tickets(), response.clone()].concat()]
        );
        // Nothing is held any more: later writes pass as they are.
        d.write_all(&response).await.unwrap();
        assert_eq!(d.io.writes.len(), 3);
        assert!(!d.holding());
    }

    #[tokio::test]
    async fn short_and_blocked_writes_keep_the_order_and_lose_nothing() {
        // The socket takes 150 bytes, then is full, then takes 150, ...; or it takes exactly
        // what is held, then is full before the response's own bytes.
        for room in [vec![150, 0, 150], vec![410, 0]] {
            let mut d = Deferred::new(Wire::default());
            let mut expect = through_the_handshake(&mut d).await;
            d.write_all(&tickets()).await.unwrap();
            d.handshake_done();
            d.io.room = room.clone().into();
            let response = record(APPLICATION_DATA, 300);
            d.write_all(&response).await.unwrap();
            expect.extend_from_slice(&tickets());
            expect.extend_from_slice(&response);
            assert_eq!(d.io.writes.concat(), expect, "room {room:?}");
            assert!(!d.holding());
        }
    }

    #[tokio::test]
    async fn a_shutdown_or_a_release_sends_what_is_held() {
        for release in [false, true] {
            let mut d = Deferred::new(Wire::default());
            let flight = through_the_handshake(&mut d).await;
            // An alert after a refused Finished or client certificate: one encrypted record.
            let alert = record(APPLICATION_DATA, 19);
            d.write_all(&alert).await.unwrap();
            assert!(d.holding());
            d.io.room = [10, 0].into();
            if release {
                d.release().await.unwrap();
                assert!(!d.io.shut);
            } else {
                d.shutdown().await.unwrap();
                assert!(d.io.shut);
            }
            assert_eq!(d.io.writes.concat(), [flight, alert].concat(), "{release}");
            assert!(!d.holding());
        }
    }

    #[tokio::test]
    async fn nothing_is_held_once_the_handshake_is_done() {
        // rustls sent no ticket: the first response must not wait for a next write.
        let mut d = Deferred::new(Wire::default());
        let flight = through_the_handshake(&mut d).await;
        d.handshake_done();
        let response = record(APPLICATION_DATA, 120);
        d.write_all(&response).await.unwrap();
        assert_eq!(d.io.writes, [flight, response]);
        assert!(!d.holding());
    }

    #[tokio::test]
    async fn a_read_during_the_handshake_sends_what_is_held_first() {
        // The hello flight goes out in two writes; between them the client sends a record of
        // type 23 (one rustls will refuse), so the rest of the flight is held. rustls then
        // reads, waiting for the client, which waits for that rest: it goes out first.
        let mut d = Deferred::new(Wire::default());
        client_sends(&mut d, &record(22, 200)).await;
        let first = [record(22, 90), record(20, 1)].concat();
        d.write_all(&first).await.unwrap();
        client_sends(&mut d, &record(APPLICATION_DATA, 30)).await;
        let rest = [record(APPLICATION_DATA, 900), record(APPLICATION_DATA, 300)].concat();
        d.write_all(&rest).await.unwrap();
        assert!(d.holding());
        client_sends(&mut d, &record(APPLICATION_DATA, 53)).await;
        assert_eq!(d.io.writes, [first, rest]);
        assert!(!d.holding());
    }

    #[tokio::test]
    async fn writes_before_the_clients_encrypted_records_pass() {
        // A HelloRetryRequest, the second hello, and a flight: the client has sent handshake
        // and ChangeCipherSpec records only, so nothing is held.
        let mut d = Deferred::new(Wire::default());
        client_sends(&mut d, &record(22, 200)).await;
        let hrr = record(22, 80);
        d.write_all(&hrr).await.unwrap();
        client_sends(&mut d, &[record(20, 1), record(22, 220)].concat()).await;
        let flight = [record(22, 90), record(APPLICATION_DATA, 900)].concat();
        d.write_all(&flight).await.unwrap();
        assert_eq!(d.io.writes, [hrr, flight]);
        assert!(!d.holding());
    }

    #[tokio::test]
    async fn a_write_that_is_not_whole_encrypted_records_ends_the_watch() {
        // TLS 1.2 with False Start: the client's request comes before the server's last flight
        // (a ChangeCipherSpec and a handshake record), which must go out at once, and so must
        // the response after it.
        let mut d = Deferred::new(Wire::default());
        client_sends(&mut d, &record(22, 200)).await;
        let hello = [record(22, 90), record(22, 800), record(22, 4)].concat();
        d.write_all(&hello).await.unwrap();
        let finished_and_request = [
            record(22, 70),
            record(20, 1),
            record(22, 40),
            record(APPLICATION_DATA, 100),
        ];
        client_sends(&mut d, &finished_and_request.concat()).await;
        let last = [record(20, 1), record(22, 40)].concat();
        d.write_all(&last).await.unwrap();
        let response = record(APPLICATION_DATA, 120);
        d.write_all(&response).await.unwrap();
        assert_eq!(d.io.writes, [hello, last, response]);

        // A write that ends inside a record does not start a hold either.
        let mut d = Deferred::new(Wire::default());
        let _ = through_the_handshake(&mut d).await;
        let part = record(APPLICATION_DATA, 200);
        d.write_all(&part[..100]).await.unwrap();
        assert!(!d.holding());
    }

    #[test]
    fn records_are_followed_across_pieces() {
        let stream = [record(22, 3), record(20, 1), record(23, 300)].concat();
        for cut in 0..stream.len() {
            let mut r = Records::default();
            let mut kinds = Vec::new();
            r.feed(&stream[..cut], |k| {
                kinds.push(k);
                true
            });
            r.feed(&stream[cut..], |k| {
                kinds.push(k);
                true
            });
            assert_eq!(kinds, [22, 20, 23], "cut at {cut}");
            assert!(r.at_boundary());
        }
        assert!(whole_encrypted_records(&[
            IoSlice::new(&record(23, 4)),
            IoSlice::new(&record(23, 0)),
        ]));
        let one = record(23, 10);
        assert!(whole_encrypted_records(&[
            IoSlice::new(&one[..3]),
            IoSlice::new(&one[3..])
        ]));
        assert!(!whole_encrypted_records(&[IoSlice::new(&one[..14])]));
        let mixed = [record(23, 4), record(21, 2)].concat();
        assert!(!whole_encrypted_records(&[IoSlice::new(&mixed)]));
        assert!(!whole_encrypted_records(&[]));
        assert!(!whole_encrypted_records(&[IoSlice::new(&[])]));
    }
}
