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

/// The parts of a ClientHello JA4 reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Hello {
    version: u16,
    ciphers: Vec<u16>,
    /// In the order sent, GREASE left out.
    extensions: Vec<u16>,
    sig_algs: Vec<u16>,
    versions: Vec<u16>,
    alpn: Option<Vec<u8>>,
}

/// Parses a ClientHello handshake message (type, 3-byte length, body).
fn parse(msg: &[u8]) -> Option<Hello> {
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
    h.ciphers = Bytes::u16s(b.vec(2)?).filter(|c| !grease(*c)).collect();
    b.vec(1)?; // compression methods
    if b.0.is_empty() {
        return Some(h); // no extensions at all (an old client)
    }
    let mut exts = Bytes(b.vec(2)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Bytes(exts.vec(2)?);
        if grease(kind) {
            continue;
        }
        h.extensions.push(kind);
        match kind {
            EXT_SIG_ALGS => {
                h.sig_algs = Bytes::u16s(data.vec(2)?).filter(|s| !grease(*s)).collect();
            }
            EXT_VERSIONS => {
                h.versions = Bytes::u16s(data.vec(1)?).filter(|v| !grease(*v)).collect();
            }
            EXT_ALPN => {
                let mut list = Bytes(data.vec(2)?);
                h.alpn = list.vec(1).map(<[u8]>::to_vec);
            }
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

/// First 12 hex digits of the SHA-256 of `text` (`000000000000` for an empty list).
fn hash12(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = String::with_capacity(12);
    for b in d.as_ref().iter().take(6) {
        crate::hex::push(&mut out, u64::from(*b), 2);
    }
    out
}

/// `values` as 4-digit hex, comma-separated.
fn hex_list(values: impl Iterator<Item = u16>) -> String {
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::hex::push(&mut out, u64::from(v), 4);
    }
    out
}

/// The first and last characters of the first ALPN value; when either is not alphanumeric, the
/// first hex digit of its first byte and the last of its last byte; `00` without ALPN.
fn alpn_code(alpn: Option<&[u8]>) -> String {
    let Some((first, last)) = alpn.and_then(|a| Some((*a.first()?, *a.last()?))) else {
        return "00".to_owned();
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        format!("{}{}", char::from(first), char::from(last))
    } else {
        format!("{:x}{:x}", first >> 4, last & 0x0f)
    }
}

/// The JA4 fingerprint of a ClientHello handshake message; `None` when it does not parse.
pub fn ja4(client_hello: &[u8]) -> Option<String> {
    let h = parse(client_hello)?;
    let version = h.versions.iter().copied().max().unwrap_or(h.version);
    let sni = if h.extensions.contains(&EXT_SNI) {
        'd'
    } else {
        'i'
    };
    let mut ciphers = h.ciphers.clone();
    ciphers.sort_unstable();
    let mut exts: Vec<u16> = h
        .extensions
        .iter()
        .copied()
        .filter(|e| *e != EXT_SNI && *e != EXT_ALPN)
        .collect();
    exts.sort_unstable();
    let mut ext_text = hex_list(exts.into_iter());
    if !h.sig_algs.is_empty() {
        ext_text.push('_');
        ext_text.push_str(&hex_list(h.sig_algs.iter().copied()));
    }
    Some(format!(
        "t{}{sni}{:02}{:02}{}_{}_{}",
        version_code(version),
        h.ciphers.len().min(99),
        h.extensions.len().min(99),
        alpn_code(h.alpn.as_deref()),
        hash12(&hex_list(ciphers.into_iter())),
        hash12(&ext_text),
    ))
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

    /// `Ok(Some(n))`: the handshake bytes hold a whole ClientHello of `n` bytes; `Ok(None)`: not
    /// yet; `Err`: not a TLS handshake.
    fn hello_len(&self) -> Result<Option<usize>, ()> {
        let hs = self.handshake_bytes()?;
        if hs.len() < 4 {
            return Ok(None);
        }
        if hs[0] != CLIENT_HELLO {
            return Err(());
        }
        let n = 4 + ((usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]));
        Ok((hs.len() >= n).then_some(n))
    }

    /// The payloads of the leading handshake records, joined (whole records only, and the
    /// available part of the last one).
    fn handshake_bytes(&self) -> Result<Vec<u8>, ()> {
        let mut out = Vec::new();
        let mut r = Bytes(&self.raw);
        while r.0.len() >= 5 {
            let kind = r.u8().ok_or(())?;
            r.u16().ok_or(())?;
            let len = usize::from(r.u16().ok_or(())?);
            if kind != HANDSHAKE {
                return if out.is_empty() { Err(()) } else { Ok(out) };
            }
            let avail = len.min(r.0.len());
            out.extend_from_slice(r.take(avail).ok_or(())?);
            if avail < len {
                break;
            }
        }
        Ok(out)
    }

    /// The JA4 fingerprint, once the ClientHello is whole.
    pub fn ja4(&self) -> Option<String> {
        let n = self.hello_len().ok()??;
        ja4(&self.handshake_bytes().ok()?[..n])
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
