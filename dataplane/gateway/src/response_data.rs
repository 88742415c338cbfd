//! Sensitive data leaving the API (`[response_data]`, a route's `x-vigil: {response_data: ...}`;
//! docs/detection.md): card numbers (Luhn-checked, known issuer prefixes), IBANs (mod-97
//! checked), e-mail addresses, JWTs, bearer tokens and PEM private keys in response bodies.
//!
//! `log` scans and reports, `mask` replaces the sensitive characters in the streamed body
//! (letters and digits become `*`, a card keeps its last four digits; quotes, backslashes and
//! JSON escapes are never touched, and the length stays the same, so a JSON body stays valid and
//! its Content-Length right), `block` buffers the body and answers 502 `response_blocked`
//! instead. Streaming stays streaming: [`ScanBody`] holds back the last [`WINDOW`] bytes of
//! what it has seen, so a value split across chunks is still found whole; values longer than
//! the window (a JWT over 8 KiB) may be missed when they straddle chunks.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use crate::body::{BoxError, InnerBody};

/// Bytes held back while streaming, so a value split across chunks is seen whole.
pub const WINDOW: usize = 8 * 1024;

/// A kind of sensitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Card,
    Iban,
    Email,
    Jwt,
    Bearer,
    PrivateKey,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Card,
        Kind::Iban,
        Kind::Email,
        Kind::Jwt,
        Kind::Bearer,
        Kind::PrivateKey,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Email => "email",
            Kind::Jwt => "jwt",
            Kind::Bearer => "bearer",
            Kind::PrivateKey => "private_key",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Kinds found in one response, as bits (shared between the body and the audit line).
#[derive(Debug, Default, Clone)]
pub struct Found(Arc<AtomicU8>);

impl Found {
    pub fn add(&self, k: Kind) {
        self.0.fetch_or(k.bit(), Ordering::Relaxed);
    }
    /// The kinds found so far.
    pub fn kinds(&self) -> Vec<Kind> {
        let bits = self.0.load(Ordering::Relaxed);
        Kind::ALL
            .into_iter()
            .filter(|k| bits & k.bit() != 0)
            .collect()
    }
}

/// The compiled patterns of the kinds asked for.
#[derive(Debug)]
pub struct Scanner {
    patterns: Vec<(Kind, Regex)>,
}

fn regex(kind: Kind) -> Regex {
    let pattern = match kind {
        // 13 to 19 digits, single spaces or dashes between groups, not inside a longer run.
        Kind::Card => r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        Kind::Iban => r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        Kind::Email => {
            r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?-u:\b)"
        }
        Kind::Jwt => r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        Kind::Bearer => r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{20,}=*",
        Kind::PrivateKey => r"-----BEGIN [A-Z ]{0,24}PRIVATE KEY-----",
    };
    // The patterns are constants of this file; a failure is a bug caught by the tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("{kind:?}: {e}"))
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners,
/// UnionPay, Maestro): a Luhn-valid number outside them is more likely an id than a card.
fn issuer(d: &[u8]) -> bool {
    let n = |len: usize| -> u32 {
        d.iter()
            .take(len)
            .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let (two, four, three) = (n(2), n(4), n(3));
    d.first() == Some(&b'4')
        || (51..=55).contains(&two)
        || (2221..=2720).contains(&four)
        || two == 34
        || two == 37
        || four == 6011
        || two == 65
        || (644..=649).contains(&three)
        || two == 35
        || (300..=305).contains(&three)
        || two == 36
        || two == 38
        || two == 62
        || two == 50
        || (56..=58).contains(&two)
        || two == 67
}

fn iban_ok(s: &[u8]) -> bool {
    let chars: Vec<u8> = s.iter().copied().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&chars.len()) {
        return false;
    }
    let (head, tail) = chars.split_at(4);
    let mut rem: u32 = 0;
    for &c in tail.iter().chain(head) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

impl Scanner {
    pub fn new(kinds: &[Kind]) -> Self {
        Self {
            patterns: kinds.iter().map(|&k| (k, regex(k))).collect(),
        }
    }

    /// Every sensitive value in `buf`: its kind and span, in no particular order.
    pub fn find(&self, buf: &[u8]) -> Vec<(Kind, Range<usize>)> {
        let mut out = Vec::new();
        for (kind, re) in &self.patterns {
            for m in re.find_iter(buf) {
                let s = m.as_bytes();
                let ok = match kind {
                    Kind::Card => {
                        let d: Vec<u8> = s.iter().copied().filter(u8::is_ascii_digit).collect();
                        (13..=19).contains(&d.len()) && issuer(&d) && luhn(&d)
                    }
                    Kind::Iban => iban_ok(s),
                    _ => true,
                };
                if !ok {
                    continue;
                }
                let mut range = m.range();
                match kind {
                    // The key's whole block, up to its END line when it is in the buffer.
                    Kind::PrivateKey => {
                        let rest = &buf[range.end..];
                        range.end += find(rest, b"-----END ")
                            .and_then(|i| find(&rest[i + 9..], b"-----").map(|j| i + 9 + j + 5))
                            .unwrap_or(rest.len());
                    }
                    // The token, not the word.
                    Kind::Bearer => range.start += 6,
                    _ => {}
                }
                out.push((*kind, range));
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `span` of `buf` is a bare JSON number (`"pan": 4111111111111111`): it comes after
/// `:`, `[` or `,` and before `,`, `]` or `}`, spaces aside. Masked with `*` it would no longer
/// be JSON, so its digits become `9`s instead.
fn bare_number(buf: &[u8], span: &Range<usize>) -> bool {
    let before = buf[..span.start]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace());
    let after = buf[span.end..].iter().find(|b| !b.is_ascii_whitespace());
    matches!(before, Some(b':' | b'[' | b','))
        && matches!(after, Some(b',' | b']' | b'}') | None)
        && buf[span.clone()].iter().all(u8::is_ascii_digit)
}

/// Masks `span` of `buf` in place: letters and digits become `*` (a card keeps its last four
/// digits, a private key its BEGIN/END lines; a card written as a bare JSON number gets `9`s);
/// backslash escapes are left whole, so a JSON body stays valid.
fn mask(buf: &mut [u8], kind: Kind, span: Range<usize>) {
    let span = span.start.min(buf.len())..span.end.min(buf.len());
    let fill = if kind == Kind::Card && bare_number(buf, &span) {
        b'9'
    } else {
        b'*'
    };
    let keep_from = match kind {
        Kind::Card => {
            // The position of the 4th digit from the end.
            let mut seen = 0;
            let mut at = span.end;
            for i in span.clone().rev() {
                if buf[i].is_ascii_digit() {
                    seen += 1;
                    if seen == 4 {
                        at = i;
                        break;
                    }
                }
            }
            at
        }
        _ => span.end,
    };
    let mut i = span.start;
    if kind == Kind::PrivateKey {
        // Past the BEGIN line's closing dashes.
        if let Some(j) = find(&buf[i + 11..span.end], b"-----") {
            i += 11 + j + 5;
        }
    }
    while i < keep_from {
        let b = buf[i];
        if b == b'\\' {
            // An escape: `\n`, `\"`, `\uXXXX` stay as they are.
            i += if buf.get(i + 1) == Some(&b'u') { 6 } else { 2 };
            continue;
        }
        if kind == Kind::PrivateKey && buf[i..].starts_with(b"-----END") {
            break;
        }
        if b.is_ascii_alphanumeric() || (kind == Kind::PrivateKey && b"+/=".contains(&b)) {
            buf[i] = fill;
        }
        i += 1;
    }
}

/// What a route asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Log,
    Mask,
}

impl std::fmt::Debug for ScanBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanBody")
            .field("action", &self.action)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// A response body scanned (and masked) as it streams, holding back [`WINDOW`] bytes.
pub struct ScanBody {
    inner: InnerBody,
    scanner: Arc<Scanner>,
    action: Action,
    found: Found,
    /// Seen but not yet sent.
    pending: BytesMut,
    /// The upstream's body has ended (data or trailers).
    done: bool,
    trailers: Option<Frame<Bytes>>,
}

impl ScanBody {
    /// `prefix` is what was already read from `inner` (a block route that outgrew its buffer).
    pub fn new(
        inner: InnerBody,
        prefix: BytesMut,
        scanner: Arc<Scanner>,
        action: Action,
        found: Found,
    ) -> Self {
        Self {
            inner,
            scanner,
            action,
            found,
            pending: prefix,
            done: false,
            trailers: None,
        }
    }

    /// Scans the pending bytes and returns what may be sent: all but the window, or everything
    /// at the end.
    fn release(&mut self, all: bool) -> Option<Bytes> {
        let keep = if all { 0 } else { WINDOW };
        if self.pending.len() <= keep {
            return None;
        }
        let cut = self.pending.len() - keep;
        for (kind, span) in self.scanner.find(&self.pending) {
            // Counted (and masked) once: when the value starts in the part sent now.
            if span.start >= cut {
                continue;
            }
            self.found.add(kind);
            if self.action == Action::Mask {
                mask(&mut self.pending, kind, span);
            }
        }
        Some(self.pending.split_to(cut).freeze())
    }
}

impl Body for ScanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                if let Some(data) = this.release(true) {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.pending.extend_from_slice(&data);
                        if let Some(out) = this.release(false) {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(trailers) => {
                        this.trailers = Some(trailers);
                        this.done = true;
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Masking keeps the length: what the upstream announced still holds.
        let mut h = self.inner.size_hint();
        let p = self.pending.len() as u64;
        h.set_lower(h.lower().saturating_add(p));
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(p));
        }
        h
    }
}

/// The mode of `[response_data]` and of `x-vigil: {response_data: ...}`.
pub use vigil_policy::ResponseDataMode;

/// Why a response could not be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It carries sensitive data and its route blocks.
    Blocked,
    /// It is compressed (or otherwise encoded) and its route masks or blocks.
    Uninspectable,
    /// The upstream's body failed while being read.
    Upstream,
    /// The total deadline passed while `block` was reading it.
    Timeout,
    /// `block` could not hold it within `limits.max_body_memory`.
    Memory,
}

/// Applies `mode` to a response: wraps its body for `log` and `mask`, reads it whole (up to
/// `max_block` bytes) for `block`. `found` collects the kinds seen.
pub async fn inspect(
    resp: http::Response<InnerBody>,
    mode: ResponseDataMode,
    scanner: Arc<Scanner>,
    max_block: u64,
    deadline: tokio::time::Instant,
    found: Found,
    budget: crate::budget::Budget<'_>,
) -> Result<http::Response<InnerBody>, Refusal> {
    use http_body_util::BodyExt;
    let encoded = resp
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let action = match mode {
        ResponseDataMode::Off => return Ok(resp),
        ResponseDataMode::Log if encoded => return Ok(resp),
        _ if encoded => return Err(Refusal::Uninspectable),
        ResponseDataMode::Log => Action::Log,
        ResponseDataMode::Mask | ResponseDataMode::Block => Action::Mask,
    };
    if mode != ResponseDataMode::Block {
        return Ok(
            resp.map(|b| ScanBody::new(b, BytesMut::new(), scanner, action, found).boxed_unsync())
        );
    }
    let (parts, mut body) = resp.into_parts();
    let mut buf = BytesMut::new();
    let mut memory = budget.share();
    let mut trailers = None;
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| Refusal::Timeout)?;
        match frame {
            None => break,
            Some(Err(_)) => return Err(Refusal::Upstream),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    // What `block` holds counts against the budget the request bodies share.
                    if !memory.hold(buf.len() + data.len()) {
                        return Err(Refusal::Memory);
                    }
                    buf.extend_from_slice(&data);
                    if buf.len() as u64 > max_block {
                        // Too long to hold: the rest streams masked, never unmasked.
                        let rest = ScanBody::new(body, buf, scanner, Action::Mask, found);
                        let rest = crate::budget::reserved(rest.boxed_unsync(), memory);
                        return Ok(http::Response::from_parts(parts, rest));
                    }
                }
                Err(t) => {
                    trailers = Some(t);
                    break;
                }
            },
        }
    }
    let hits = scanner.find(&buf);
    if !hits.is_empty() {
        for (k, _) in hits {
            found.add(k);
        }
        return Err(Refusal::Blocked);
    }
    let whole = http_body_util::Full::new(buf.freeze()).map_err(|never| match never {});
    let inner = match trailers.and_then(|t| t.into_trailers().ok()) {
        Some(t) => whole
            .with_trailers(async move { Some(Ok(t)) })
            .boxed_unsync(),
        None => whole.boxed_unsync(),
    };
    Ok(http::Response::from_parts(
        parts,
        crate::budget::reserved(inner, memory),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;

    fn all() -> Scanner {
        Scanner::new(&Kind::ALL)
    }

    fn masked(text: &str) -> (String, Vec<Kind>) {
        let mut buf = text.as_bytes().to_vec();
        let mut kinds = Vec::new();
        for (k, span) in all().find(&buf) {
            kinds.push(k);
            mask(&mut buf, k, span);
        }
        kinds.sort_by_key(|k| *k as u8);
        kinds.dedup();
        (String::from_utf8(buf).unwrap(), kinds)
    }

    #[test]
    fn each_kind_is_found_checked_and_masked_keeping_json_valid() {
        let body = r#"{"card":"4111 1111 1111 1111","iban":"DE89370400440532013000","mail":"ada@example.com","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU","auth":"Bearer abcdefghijklmnopqrstuvwxyz012345","key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}"#;
        let (out, kinds) = masked(body);
        assert_eq!(
            kinds,
            [
                Kind::Card,
                Kind::Iban,
                Kind::Email,
                Kind::Jwt,
                Kind::Bearer,
                Kind::PrivateKey
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(v["card"], "**** **** **** 1111");
        assert_eq!(v["iban"], "**********************");
        assert_eq!(v["mail"], "***@*******.***");
        assert!(
            v["token"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c == '*' || c == '.')
        );
        assert_eq!(v["auth"], "Bearer ********************************");
        let key = v["key"].as_str().unwrap();
        assert!(
            key.starts_with("-----BEGIN PRIVATE KEY-----\n****"),
            "{key}"
        );
        assert!(key.ends_with("-----END PRIVATE KEY-----\n"), "{key}");
        assert!(!key.contains("MIIE"), "{key}");
        assert_eq!(out.len(), body.len(), "same length: Content-Length holds");
    }

    #[test]
    fn a_card_written_as_a_json_number_stays_a_number() {
        let (out, kinds) = masked(r#"{"pan": 4111111111111111, "list":[5555555555554444]}"#);
        assert_eq!(kinds, [Kind::Card]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(v["pan"].as_u64(), Some(9_999_999_999_991_111));
        assert_eq!(v["list"][0].as_u64(), Some(9_999_999_999_994_444));
    }

    #[test]
    fn numbers_that_are_not_cards_or_ibans_are_left_alone() {
        for text in [
            "order 4111111111111112",     // Luhn fails
            "id 1234567890123452",        // Luhn ok, no card issuer
            "phone +49 30 1234567",       // too short
            "ts 16999999999999999999999", // inside a longer run
            "DE89370400440532013001",     // IBAN check fails
            "uuid 0b4c7e1e-7f3a-4d2b-9a51-2c0e8d7e4f11",
        ] {
            let (out, kinds) = masked(text);
            assert!(kinds.is_empty(), "{text}: {kinds:?}");
            assert_eq!(out, text);
        }
    }

    async fn stream(chunks: Vec<&'static [u8]>, action: Action) -> (Vec<u8>, Vec<Kind>) {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
        );
        let inner = http_body_util::StreamBody::new(frames).boxed_unsync();
        let found = Found::default();
        let body = ScanBody::new(
            inner,
            BytesMut::new(),
            Arc::new(all()),
            action,
            found.clone(),
        );
        let out = body.collect().await.unwrap().to_bytes().to_vec();
        (out, found.kinds())
    }

    #[tokio::test]
    async fn a_value_split_across_chunks_is_found_and_the_length_kept() {
        let (out, kinds) = stream(
            vec![b"{\"pan\":\"5555 5555 55", b"55 4444\",\"x\":\"", b"ok\"}"],
            Action::Mask,
        )
        .await;
        assert_eq!(kinds, [Kind::Card]);
        assert_eq!(out, b"{\"pan\":\"**** **** **** 4444\",\"x\":\"ok\"}");
        // Log only: found, not changed.
        let (out, kinds) = stream(vec![b"ada@exam", b"ple.com"], Action::Log).await;
        assert_eq!(
            (out.as_slice(), kinds.as_slice()),
            (&b"ada@example.com"[..], &[Kind::Email][..])
        );
        // A long body: released as it streams, minus the window.
        let big: &'static [u8] = Box::leak(vec![b'a'; 3 * WINDOW].into_boxed_slice());
        let (out, kinds) = stream(vec![big, b" 4111-1111-1111-1111"], Action::Mask).await;
        assert!(kinds == [Kind::Card] && out.ends_with(b"****-****-****-1111"));
    }
}
