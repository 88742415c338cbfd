//! JA4 fingerprints of TLS clients (FoxIO's JA4: `technical_details/JA4` of the JA4 project),
//! computed from the raw ClientHello bytes as they arrive, before rustls consumes them.
//!
//! `t13d1516h2_8daaf6152771_e5627efa2ab1`: protocol (`t`, TLS over TCP), the highest version in
//! `supported_versions` (else the hello's own), `d` with SNI or `i` without, the number of cipher
//! suites and of extensions (two digits, at most 99), the first and last characters of the first
//! ALPN value (`00` without one); then the first 12 hex digits of the SHA-256 of the sorted
//! cipher list, and of the sorted extension list (SNI and ALPN left out) followed by the
//! signature algorithms in their order. GREASE values (RFC 8701) are ignored everywhere.
//!
//! [`Recording`] wraps the TCP stream of a TLS connection and keeps the bytes read through it
//! until the ClientHello is complete (at most [`MAX_HELLO`] bytes), then stops recording.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept while waiting for a ClientHello; a longer one is not fingerprinted.
pub const MAX_HELLO: usize = 16 * 1024;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SNI: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;
const EXT_SIG_ALGS: u16 = 0x000d;
const EXT_VERSIONS: u16 = 0x002b;

/// RFC 8701: 0x0a0a, 0x1a1a, ..., 0xfafa.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A reader over a byte slice that fails (returns `None`) instead of running past the end.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    /// A vector with a `len_bytes`-byte length prefix.
    fn vec(&mut self, len_bytes: usize) -> Option<&'a [u8]> {
        let n = match len_bytes {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(n)
    }
    fn u16s(data: &[u8]) -> impl Iterator<Item = u16> + '_ {
        data.chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
}

/// The parts of a ClientHello JA4 reads, borrowed from the message, so computing JA4 allocates
/// only the sorted lists and the fingerprint.
#[derive(Debug, Default)]
struct Hello<'a> {
    version: u16,
    /// The cipher suite list as sent (2 bytes each, GREASE included).
    ciphers: &'a [u8],
    /// The extensions block as sent (type, length, data; GREASE included).
    extensions: &'a [u8],
    /// The last `signature_algorithms` list (2 bytes each, GREASE included).
    sig_algs: &'a [u8],
    /// The last `supported_versions` list (2 bytes each, GREASE included).
    versions: &'a [u8],
    /// The first protocol of the last ALPN list.
    alpn: Option<&'a [u8]>,
}

impl<'a> Hello<'a> {
    /// The extension types in the order sent, GREASE left out. [`parse`] checked the framing.
    fn extension_types(&self) -> impl Iterator<Item = u16> + 'a {
        let mut exts = Bytes(self.extensions);
        std::iter::from_fn(move || {
            let kind = exts.u16()?;
            exts.vec(2)?;
            Some(kind)
        })
        .filter(|k| !grease(*k))
    }
}

/// Parses a ClientHello handshake message (type, 3-byte length, body).
fn parse(msg: &[u8]) -> Option<Hello<'_>> {
    let mut m = Bytes(msg);
    if m.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = m.u24()?;
    let mut b = Bytes(m.take(len)?);
    let mut h = Hello {
        version: b.u16()?,
        ..Hello::default()
    };
    b.take(32)?; // random
    b.vec(1)?; // legacy session id
    h.ciphers = b.vec(2)?;
    b.vec(1)?; // compression methods
    if b.0.is_empty() {
        return Some(h); // no extensions at all (an old client)
    }
    h.extensions = b.vec(2)?;
    let mut exts = Bytes(h.extensions);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Bytes(exts.vec(2)?);
        match kind {
            EXT_SIG_ALGS => h.sig_algs = data.vec(2)?,
            EXT_VERSIONS => h.versions = data.vec(1)?,
            EXT_ALPN => h.alpn = Bytes(data.vec(2)?).vec(1),
            _ => {}
        }
    }
    Some(h)
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0x0100 => "s1",
        _ => "00",
    }
}

/// SHA-256 over a comma-separated list of 4-digit hex values, fed as it is written.
struct ListHash {
    ctx: ring::digest::Context,
    buf: [u8; 256],
    len: usize,
    empty: bool,
}

impl ListHash {
    fn new() -> Self {
        Self {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            buf: [0; 256],
            len: 0,
            empty: true,
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.ctx.update(&self.buf);
            self.len = 0;
        }
        self.buf[self.len] = b;
        self.len += 1;
        self.empty = false;
    }

    /// `values` as 4-digit hex, comma-separated.
    fn list(&mut self, values: impl Iterator<Item = u16>) {
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.byte(b',');
            }
            for shift in [12, 8, 4, 0] {
                self.byte(crate::hex::DIGITS[usize::from((v >> shift) & 0xf)]);
            }
        }
    }

    /// Appends the first 12 hex digits of the hash (`000000000000` for empty text).
    fn finish_into(mut self, out: &mut String) {
        if self.empty {
            out.push_str("000000000000");
            return;
        }
        self.ctx.update(&self.buf[..self.len]);
        for b in self.ctx.finish().as_ref().iter().take(6) {
            crate::hex::push(out, u64::from(*b), 2);
        }
    }
}

/// Appends the first and last characters of the first ALPN value; when either is not
/// alphanumeric, the first hex digit of its first byte and the last of its last byte; `00`
/// without ALPN.
fn push_alpn_code(out: &mut String, alpn: Option<&[u8]>) {
    let Some((first, last)) = alpn.and_then(|a| Some((*a.first()?, *a.last()?))) else {
        out.push_str("00");
        return;
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        out.push(char::from(first));
        out.push(char::from(last));
    } else {
        crate::hex::push(out, u64::from(first >> 4), 1);
        crate::hex::push(out, u64::from(last & 0x0f), 1);
    }
}

/// Appends `n` as two decimal digits, at most 99.
fn push_count(out: &mut String, n: usize) {
    let n = n.min(99) as u8;
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

/// The JA4 fingerprint of a ClientHello handshake message; `None` when it does not parse.
pub fn ja4(client_hello: &[u8]) -> Option<String> {
    let h = parse(client_hello)?;
    let version = Bytes::u16s(h.versions)
        .filter(|v| !grease(*v))
        .max()
        .unwrap_or(h.version);
    // One list, sorted in two parts: the ciphers, then the extensions JA4 hashes.
    let mut sorted: Vec<u16> = Vec::with_capacity(h.ciphers.len() / 2 + h.extensions.len() / 4);
    sorted.extend(Bytes::u16s(h.ciphers).filter(|c| !grease(*c)));
    let ciphers = sorted.len();
    let (mut extensions, mut sni) = (0, 'i');
    for kind in h.extension_types() {
        extensions += 1;
        match kind {
            EXT_SNI => sni = 'd',
            EXT_ALPN => {}
            _ => sorted.push(kind),
        }
    }
    let (c, e) = sorted.split_at_mut(ciphers);
    c.sort_unstable();
    e.sort_unstable();
    let mut out = String::with_capacity(36);
    out.push('t');
    out.push_str(version_code(version));
    out.push(sni);
    push_count(&mut out, ciphers);
    push_count(&mut out, extensions);
    push_alpn_code(&mut out, h.alpn);
    out.push('_');
    let mut hash = ListHash::new();
    hash.list(c.iter().copied());
    hash.finish_into(&mut out);
    out.push('_');
    let mut hash = ListHash::new();
    hash.list(e.iter().copied());
    let mut sig_algs = Bytes::u16s(h.sig_algs).filter(|s| !grease(*s)).peekable();
    if sig_algs.peek().is_some() {
        hash.byte(b'_');
        hash.list(sig_algs);
    }
    hash.finish_into(&mut out);
    Some(out)
}

/// The bytes of a connection up to its complete ClientHello.
#[derive(Debug, Default)]
pub struct HelloRecorder {
    raw: Vec<u8>,
    done: bool,
}

impl HelloRecorder {
    /// Adds bytes read from the connection. Stops taking bytes once the ClientHello is whole,
    /// the stream is not TLS, or [`MAX_HELLO`] is reached.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        let room = MAX_HELLO.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
        match self.hello_len() {
            Ok(Some(_)) | Err(()) => self.done = true,
            Ok(None) => self.done = self.raw.len() >= MAX_HELLO,
        }
    }

    /// Whether nothing more is wanted.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Calls `part` with the payloads of the leading handshake records, in order (whole
    /// records, and the part of the last one that has arrived); `Err` when a record of another
    /// kind comes before any handshake byte.
    fn handshake_parts<'s>(&'s self, mut part: impl FnMut(&'s [u8])) -> Result<(), ()> {
        let mut r = Bytes(&self.raw);
        let mut taken = 0;
        while r.0.len() >= 5 {
            let kind = r.u8().ok_or(())?;
            r.u16().ok_or(())?;
            let len = usize::from(r.u16().ok_or(())?);
            if kind != HANDSHAKE {
                return if taken == 0 { Err(()) } else { Ok(()) };
            }
            let avail = len.min(r.0.len());
            taken += avail;
            part(r.take(avail).ok_or(())?);
            if avail < len {
                break;
            }
        }
        Ok(())
    }

    /// `Ok(Some(n))`: the handshake bytes hold a whole ClientHello of `n` bytes; `Ok(None)`: not
    /// yet; `Err`: not a TLS handshake.
    fn hello_len(&self) -> Result<Option<usize>, ()> {
        let (mut head, mut got, mut have) = ([0u8; 4], 0, 0);
        self.handshake_parts(|p| {
            for &b in p.iter().take(4 - got) {
                head[got] = b;
                got += 1;
            }
            have += p.len();
        })?;
        if got < 4 {
            return Ok(None);
        }
        if head[0] != CLIENT_HELLO {
            return Err(());
        }
        let n =
            4 + ((usize::from(head[1]) << 16) | (usize::from(head[2]) << 8) | usize::from(head[3]));
        Ok((have >= n).then_some(n))
    }

    /// The JA4 fingerprint, once the ClientHello is whole.
    pub fn ja4(&self) -> Option<String> {
        let n = self.hello_len().ok()??;
        let mut first: Option<&[u8]> = None;
        self.handshake_parts(|p| {
            first.get_or_insert(p);
        })
        .ok()?;
        match first {
            // Nearly always: the hello fits its first record and is read where it lies.
            Some(first) if first.len() >= n => ja4(&first[..n]),
            _ => {
                let mut joined = Vec::with_capacity(n);
                self.handshake_parts(|p| joined.extend_from_slice(p)).ok()?;
                ja4(joined.get(..n)?)
            }
        }
    }
}

/// A stream that records what is read through it until the ClientHello is whole.
#[derive(Debug)]
pub struct Recording<IO> {
    io: IO,
    rec: Option<Box<HelloRecorder>>,
}

impl<IO> Recording<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            rec: Some(Box::default()),
        }
    }

    /// The JA4 fingerprint of what was recorded; recording stops for good.
    pub fn take_ja4(&mut self) -> Option<String> {
        self.rec.take().and_then(|r| r.ja4())
    }

    /// The stream below.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Recording<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(rec) = this.rec.as_mut().filter(|r| !r.done()) {
            rec.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Recording<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A ClientHello handshake message with these ciphers and extensions (in order), built as a
    /// client would send it.
    fn hello(ciphers: &[u16], exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        body.extend(((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend(c.to_be_bytes());
        }
        body.extend([1, 0]);
        let mut e = Vec::new();
        for (kind, data) in exts {
            e.extend(kind.to_be_bytes());
            e.extend((data.len() as u16).to_be_bytes());
            e.extend(data);
        }
        body.extend((e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut msg = vec![CLIENT_HELLO];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn u16_list(prefix: usize, v: &[u16]) -> Vec<u8> {
        let mut out = if prefix == 1 {
            vec![(v.len() * 2) as u8]
        } else {
            ((v.len() * 2) as u16).to_be_bytes().to_vec()
        };
        for x in v {
            out.extend(x.to_be_bytes());
        }
        out
    }

    fn alpn(protos: &[&str]) -> Vec<u8> {
        let mut l = Vec::new();
        for p in protos {
            l.push(p.len() as u8);
            l.extend(p.as_bytes());
        }
        let mut out = (l.len() as u16).to_be_bytes().to_vec();
        out.extend(l);
        out
    }

    const SIG_ALGS: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    const CIPHERS: [u16; 15] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];

    /// The hello of JA4's own worked example (technical_details/JA4, "Example"), in its
    /// original order, with `grease` GREASE values mixed in when asked.
    fn spec_hello(exts_in_order: &[u16], with_grease: bool) -> Vec<u8> {
        let mut ciphers = CIPHERS.to_vec();
        if with_grease {
            ciphers.insert(0, 0x0a0a);
        }
        let mut exts: Vec<(u16, Vec<u8>)> = Vec::new();
        if with_grease {
            exts.push((0x1a1a, vec![]));
        }
        for &kind in exts_in_order {
            let data = match kind {
                EXT_SNI => {
                    let name = b"example.com";
                    let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
                    d.push(0);
                    d.extend((name.len() as u16).to_be_bytes());
                    d.extend(name);
                    d
                }
                EXT_ALPN => alpn(&["h2", "http/1.1"]),
                EXT_SIG_ALGS => u16_list(2, &SIG_ALGS),
                EXT_VERSIONS if with_grease => u16_list(1, &[0x2a2a, 0x0304, 0x0303]),
                EXT_VERSIONS => u16_list(1, &[0x0304, 0x0303]),
                _ => vec![0, 0],
            };
            exts.push((kind, data));
        }
        hello(&ciphers, &exts)
    }

    #[test]
    fn the_specifications_example_and_a_published_browser_fingerprint() {
        // JA4's worked example: t13d1516h2_8daaf6152771_e5627efa2ab1.
        let order = [
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        for grease in [false, true] {
            assert_eq!(
                ja4(&spec_hello(&order, grease)).unwrap(),
                "t13d1516h2_8daaf6152771_e5627efa2ab1",
                "GREASE mixed in: {grease}"
            );
        }
        // A published Chrome 143 fingerprint (its raw form in the original order, ja4_ro):
        // t13d1516h2_8daaf6152771_d8a2da3f94cd.
        let chrome = [
            0x002d, 0x0033, 0x0010, 0xfe0d, 0x0017, 0x44cd, 0x0000, 0x000b, 0x000a, 0x002b, 0xff01,
            0x0023, 0x0012, 0x0005, 0x000d, 0x001b,
        ];
        assert_eq!(
            ja4(&spec_hello(&chrome, true)).unwrap(),
            "t13d1516h2_8daaf6152771_d8a2da3f94cd"
        );
    }

    #[test]
    fn the_a_part_follows_version_sni_and_alpn() {
        let base = |exts: &[(u16, Vec<u8>)]| ja4(&hello(&CIPHERS[..3], exts)).unwrap();
        // No supported_versions: the hello's own version; no SNI: i; no ALPN: 00; no
        // signature algorithms: no underscore in the hashed text (6d807ffa2a79 in the spec's
        // list, here an empty one).
        assert!(base(&[]).starts_with("t12i030000_"), "{}", base(&[]));
        assert!(base(&[]).ends_with("_000000000000"), "{}", base(&[]));
        let h1 = base(&[(EXT_ALPN, alpn(&["http/1.1", "h2"]))]);
        assert!(h1.starts_with("t12i0301h1_"), "{h1}");
        // Not alphanumeric at an end: the first hex digit of the first byte, the last of the
        // last byte.
        let mut odd = alpn(&["xx"]);
        let n = odd.len();
        odd[n - 2] = 0x01;
        odd[n - 1] = 0xff;
        let odd = base(&[(EXT_ALPN, odd)]);
        assert!(odd.starts_with("t12i03010f_"), "{odd}");
    }

    #[test]
    fn counts_stop_at_99_grease_only_lists_count_as_empty_and_the_last_repeat_counts() {
        let many: Vec<u16> = (0..120).map(|i| 0x1000 + i).collect();
        let exts: Vec<(u16, Vec<u8>)> = (0..120).map(|i| (0x3000 + i, vec![])).collect();
        let f = ja4(&hello(&many, &exts)).unwrap();
        assert!(f.starts_with("t12i999900_"), "{f}");
        // Signature algorithms that are all GREASE: hashed as an empty list, with no `_`.
        let sig = |v: &[u16]| (EXT_SIG_ALGS, u16_list(2, v));
        let none = ja4(&hello(&CIPHERS, &[sig(&[])])).unwrap();
        assert_eq!(
            ja4(&hello(&CIPHERS, &[sig(&[0x0a0a, 0x1a1a])])).unwrap(),
            none
        );
        assert_ne!(ja4(&hello(&CIPHERS, &[sig(&[0x0403])])).unwrap(), none);
        // supported_versions with only GREASE: the hello's own version.
        let v = ja4(&hello(&CIPHERS, &[(EXT_VERSIONS, u16_list(1, &[0x2a2a]))])).unwrap();
        assert!(v.starts_with("t12i1501"), "{v}");
        // An extension sent twice: counted twice, and its last value is the one read.
        let twice = [(EXT_ALPN, alpn(&["h2"])), (EXT_ALPN, alpn(&["http/1.1"]))];
        let twice = ja4(&hello(&CIPHERS, &twice)).unwrap();
        assert!(twice.starts_with("t12i1502h1_"), "{twice}");
    }

    #[test]
    fn records_after_the_hello_are_left_and_one_before_it_stops_the_recording() {
        let msg = spec_hello(&[0x0000, 0x0010], false);
        let record = |kind: u8, body: &[u8]| {
            let mut r = vec![kind, 3, 1];
            r.extend((body.len() as u16).to_be_bytes());
            r.extend(body);
            r
        };
        // The hello fills its record exactly; an alert record follows in the same read.
        let mut wire = record(HANDSHAKE, &msg);
        wire.extend(record(21, &[2, 40]));
        let mut rec = HelloRecorder::default();
        rec.feed(&wire);
        assert!(rec.done());
        assert_eq!(rec.ja4(), ja4(&msg));
        assert!(rec.ja4().is_some());
        // An empty handshake record, then application data: no handshake byte came first, so
        // this is no ClientHello and nothing more is kept.
        let mut wire = record(HANDSHAKE, &[]);
        wire.extend(record(23, &[0; 10]));
        let mut rec = HelloRecorder::default();
        rec.feed(&wire);
        assert!(rec.done());
        assert_eq!(rec.ja4(), None);
    }

    #[test]
    fn the_recorder_waits_for_the_whole_hello_across_records_and_reads() {
        let msg = spec_hello(&[0x0000, 0x0010, 0x000d, 0x002b], false);
        // Split into two records, fed in 7-byte reads.
        let (a, b) = msg.split_at(60);
        let mut wire = Vec::new();
        for part in [a, b] {
            wire.extend([HANDSHAKE, 3, 1]);
            wire.extend((part.len() as u16).to_be_bytes());
            wire.extend(part);
        }
        let mut rec = HelloRecorder::default();
        for chunk in wire.chunks(7) {
            assert!(!rec.done(), "done too early");
            rec.feed(chunk);
        }
        assert!(rec.done());
        assert_eq!(rec.ja4(), ja4(&msg));
        assert!(rec.ja4().is_some());
        // The usual case: one record, one read, the hello read where it lies.
        let mut one = vec![HANDSHAKE, 3, 1];
        one.extend((msg.len() as u16).to_be_bytes());
        one.extend(&msg);
        let mut rec = HelloRecorder::default();
        rec.feed(&one);
        assert!(rec.done());
        assert_eq!(rec.ja4(), ja4(&msg));
    }

    #[test]
    fn garbage_and_plain_http_give_no_fingerprint_and_stop_recording() {
        let mut rec = HelloRecorder::default();
        rec.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(rec.done());
        assert_eq!(rec.ja4(), None);
        // A truncated hello, then a huge claimed length: recording stops at the cap.
        let mut rec = HelloRecorder::default();
        rec.feed(&[HANDSHAKE, 3, 1, 0xff, 0xff, CLIENT_HELLO, 0xff, 0xff, 0xff]);
        rec.feed(&vec![0u8; MAX_HELLO]);
        assert!(rec.done());
        assert_eq!(rec.ja4(), None);
        for n in 0..200 {
            let msg = spec_hello(&[0x0000, 0x0010, 0x000d], false);
            let _ = ja4(&msg[..msg.len().min(n)]);
        }
    }
}
