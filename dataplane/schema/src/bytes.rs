//! Request bodies from bytes: parse with simd-json into a flat tape (reusing per-thread
//! buffers), classify parser failures into distinct reasons, then hand the tape to the checks
//! simd-json does not make (see `prepass`).

use std::cell::RefCell;

use simd_json::{Buffers, ErrorType, Node, Tape};

use crate::error::{Reason, Rejection};
use crate::options::Limits;
use crate::prepass;

/// Parse scratch kept per thread so a request costs no allocation in steady state. Buffers
/// grown by a body larger than this are dropped instead of kept.
const KEEP_SCRATCH_BYTES: usize = 4 << 20;

struct Scratch {
    buffers: Buffers,
    depth: usize,
    tape: Tape<'static>,
}

impl Scratch {
    fn new(len: usize, depth: usize) -> Self {
        Scratch {
            buffers: Buffers::with_max_depth(len, depth),
            depth,
            tape: Tape(Vec::new()),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// A body as simd-json takes it: a plain slice, which it copies into its own padded buffer, or
/// a slice whose bytes after `len` are padding it may read, parsed where it is.
enum Body<'b> {
    Slice(&'b mut [u8]),
    Padded(&'b mut [u8], usize),
}

/// Parses into `s`'s buffers, runs the prepass and then `f` on the tape.
fn parse_with<R>(
    s: &mut Scratch,
    body: Body<'_>,
    limits: &Limits,
    f: impl FnOnce(&[Node<'_>]) -> Result<R, Rejection>,
) -> Result<Result<R, Rejection>, Failure> {
    let mut tape: Tape<'_> = std::mem::replace(&mut s.tape, Tape(Vec::new())).reset();
    let (len, parsed) = match body {
        Body::Slice(buf) => (
            buf.len(),
            simd_json::fill_tape(buf, &mut s.buffers, &mut tape),
        ),
        Body::Padded(buf, len) => (
            len,
            simd_json::fill_tape_padded(buf, len, &mut s.buffers, &mut tape),
        ),
    };
    let result = match parsed {
        Ok(()) => Ok(prepass::check(&tape.0, len, limits).and_then(|()| f(&tape.0))),
        Err(e) => Err(parse_failure(e.error(), e.index())),
    };
    s.tape = tape.reset();
    result
}

/// Parses `buf`, checks limits and hands the tape to `f`.
pub(crate) fn with_tape<R>(
    buf: &mut [u8],
    limits: &Limits,
    f: impl FnOnce(&[Node<'_>]) -> Result<R, Rejection>,
) -> Result<R, Rejection> {
    if buf.len() > limits.max_body_bytes {
        return Err(Rejection::single(Reason::TooLarge, String::new(), "body"));
    }
    let len = buf.len();
    let result = with_scratch(Body::Slice(&mut *buf), len, limits, f);
    finish(result, buf)
}

/// [`with_tape`] for a body the caller owns: padding is appended (within spare capacity if
/// there is [`simd_json::INPUT_PADDING`] of it) so that simd-json parses the body in place
/// instead of copying it. The vector has its original length again afterwards.
pub(crate) fn with_owned_tape<R>(
    buf: &mut Vec<u8>,
    limits: &Limits,
    f: impl FnOnce(&[Node<'_>]) -> Result<R, Rejection>,
) -> Result<R, Rejection> {
    let len = buf.len();
    if len > limits.max_body_bytes {
        return Err(Rejection::single(Reason::TooLarge, String::new(), "body"));
    }
    buf.resize(len + simd_json::INPUT_PADDING, b' ');
    let result = with_scratch(Body::Padded(&mut buf[..], len), len, limits, f);
    buf.truncate(len);
    finish(result, buf)
}

/// Parses with this thread's reusable buffers when the body is small enough to keep them.
fn with_scratch<R>(
    body: Body<'_>,
    len: usize,
    limits: &Limits,
    f: impl FnOnce(&[Node<'_>]) -> Result<R, Rejection>,
) -> Result<Result<R, Rejection>, Failure> {
    let depth = limits.depth();
    if len > KEEP_SCRATCH_BYTES {
        return parse_with(&mut Scratch::new(len, depth), body, limits, f);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_some_and(|s| s.depth != depth) {
                *slot = None;
            }
            let s = slot.get_or_insert_with(|| Scratch::new(len, depth));
            parse_with(s, body, limits, f)
        }
        // Only if validation were re-entered on this thread: use private buffers.
        Err(_) => parse_with(&mut Scratch::new(len, depth), body, limits, f),
    })
}

/// Turns a parse failure into a rejection; `buf` is the body as parsed.
fn finish<R>(result: Result<Result<R, Rejection>, Failure>, buf: &[u8]) -> Result<R, Rejection> {
    match result {
        Ok(r) => r,
        Err(Failure::Number(at)) => {
            // simd-json reports overflowing and malformed numbers alike; look at the token.
            let reason = if number_token_is_valid(buf, at) {
                Reason::NumberOutOfRange
            } else {
                Reason::MalformedJson
            };
            Err(Rejection::single(reason, String::new(), "number"))
        }
        Err(Failure::Other(reason, what)) => Err(Rejection::single(reason, String::new(), what)),
    }
}

enum Failure {
    /// A number failed to parse near this byte offset.
    Number(usize),
    Other(Reason, &'static str),
}

fn parse_failure(kind: &ErrorType, index: usize) -> Failure {
    match kind {
        ErrorType::DepthLimitExceeded => Failure::Other(Reason::TooDeep, "nesting"),
        ErrorType::InvalidUtf8 | ErrorType::InvalidUnicodeCodepoint => {
            Failure::Other(Reason::InvalidUtf8, "utf8")
        }
        ErrorType::InputTooLarge => Failure::Other(Reason::TooLarge, "body"),
        ErrorType::InvalidNumber | ErrorType::InvalidExponent | ErrorType::Overflow => {
            Failure::Number(index)
        }
        _ => Failure::Other(Reason::MalformedJson, "json"),
    }
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Whether the number token around `at` is a whole JSON number that failed only because it
/// does not fit: it follows the JSON grammar, starts where a value may start and ends where a
/// value may end. `12abc`, `0x1F` or `1/2` stop simd-json inside a number too, but they are
/// not numbers at all. Bytes before `at` may have been rewritten by in-place string unescaping,
/// but only inside strings: a number's own bytes and the separators around it are the input's.
fn number_token_is_valid(buf: &[u8], at: usize) -> bool {
    let mut at = at.min(buf.len().saturating_sub(1));
    if !buf.get(at).copied().is_some_and(is_number_byte) && at > 0 {
        at -= 1;
    }
    let mut start = at;
    while start > 0 && buf.get(start - 1).copied().is_some_and(is_number_byte) {
        start -= 1;
    }
    let mut end = at;
    while buf.get(end).copied().is_some_and(is_number_byte) {
        end += 1;
    }
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let before = buf
        .get(..start)
        .unwrap_or(&[])
        .iter()
        .rev()
        .find(|b| !ws(b));
    let after = buf.get(end..).unwrap_or(&[]).iter().find(|b| !ws(b));
    matches!(before, None | Some(b'[' | b',' | b':'))
        && matches!(after, None | Some(b',' | b']' | b'}'))
        && json_number(buf.get(start..end).unwrap_or(&[]))
}

/// `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`
fn json_number(t: &[u8]) -> bool {
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(t);
    if n == 0 || (n > 1 && t[0] == b'0') {
        return false;
    }
    let mut rest = &t[n..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::{CompileOptions, Dialect, Limits, Reason, Rejection, Validator};
    use serde_json::json;

    fn any() -> Validator {
        Validator::compile(
            &json!({}),
            Dialect::Draft2020_12,
            &CompileOptions::default(),
        )
        .unwrap()
    }

    fn reject(body: &[u8], limits: &Limits) -> Rejection {
        let mut b = body.to_vec();
        any()
            .validate_bytes(&mut b, limits)
            .expect_err("must be rejected")
    }

    #[test]
    fn owned_bodies_parse_in_place_with_the_same_answers() {
        let v = Validator::compile(
            &json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
            Dialect::Draft2020_12,
            &CompileOptions::default(),
        )
        .unwrap();
        let limits = Limits {
            max_string_bytes: 8,
            ..Limits::default()
        };
        for body in [
            &br#"{"a": 1}"#[..],
            br#"{"a": "x"}"#,
            br#"{"a": 1, "a": 2}"#,
            br#"{"a": 1e400}"#,
            br#"{"a": 12x}"#,
            br#"{"b": "much too long"}"#,
            b"\xff",
            b"",
        ] {
            let by_slice = v.validate_bytes(&mut body.to_vec(), &limits);
            let mut owned = body.to_vec();
            let by_vec = v.validate_vec(&mut owned, &limits);
            assert_eq!(
                by_slice
                    .as_ref()
                    .map_err(|r| (r.reason, r.violations.len())),
                by_vec.as_ref().map_err(|r| (r.reason, r.violations.len())),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(owned.len(), body.len());
        }
        // With spare capacity for the padding nothing is reallocated.
        let mut body = Vec::with_capacity(64 + crate::BODY_PADDING);
        body.extend_from_slice(br#"{"a": 1}"#);
        let at = body.as_ptr();
        assert!(v.validate_vec(&mut body, &limits).is_ok());
        assert_eq!(body.as_ptr(), at);
    }

    #[test]
    fn deep_nesting_is_too_deep_not_a_crash() {
        let n = 100_000;
        let mut body = "[".repeat(n).into_bytes();
        body.extend(std::iter::repeat_n(b']', n));
        assert_eq!(reject(&body, &Limits::default()).reason, Reason::TooDeep);
        let mut objs = "{\"a\":".repeat(n);
        objs.push('1');
        objs.push_str(&"}".repeat(n));
        assert_eq!(
            reject(objs.as_bytes(), &Limits::default()).reason,
            Reason::TooDeep
        );
        // The limit is exact: depth 64 passes, 65 does not.
        let limits = Limits::default();
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(any().validate_bytes(&mut ok.into_bytes(), &limits).is_ok());
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(reject(deep.as_bytes(), &limits).reason, Reason::TooDeep);
    }

    #[test]
    fn duplicate_keys_anywhere() {
        let r = reject(
            br#"{"a": 1, "b": {"x": [1, {"k": 1, "k": 2}]}}"#,
            &Limits::default(),
        );
        assert_eq!(r.reason, Reason::DuplicateKey);
        assert_eq!(r.violations[0].instance_location, "/b/x/1/k");
        // Large objects take the hashed path.
        let mut big: Vec<String> = (0..1000).map(|i| format!("\"k{i}\": {i}")).collect();
        big.push("\"k500\": 0".into());
        let body = format!("{{{}}}", big.join(","));
        let r = reject(body.as_bytes(), &Limits::default());
        assert_eq!(
            (r.reason, r.violations[0].instance_location.as_str()),
            (Reason::DuplicateKey, "/k500")
        );
        // Same key in sibling objects is fine.
        let mut ok = br#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]"#.to_vec();
        assert!(any().validate_bytes(&mut ok, &Limits::default()).is_ok());
    }

    #[test]
    fn numbers_that_do_not_fit() {
        for body in [
            "1e400",
            "[1, -1e999]",
            "{\"a\": 18446744073709551616}",
            "[-9223372036854775809]",
        ] {
            assert_eq!(
                reject(body.as_bytes(), &Limits::default()).reason,
                Reason::NumberOutOfRange,
                "{body}"
            );
        }
        for body in ["[01]", "[1.e5]", "[-]", "[1.5e]", "[.5]"] {
            assert_eq!(
                reject(body.as_bytes(), &Limits::default()).reason,
                Reason::MalformedJson,
                "{body}"
            );
        }
        let mut ok = b"[18446744073709551615, -9223372036854775808, 1e308, 5e-324]".to_vec();
        assert!(any().validate_bytes(&mut ok, &Limits::default()).is_ok());
    }

    /// Only a real number that does not fit is `number_out_of_range`: bodies that merely begin
    /// like a number (simd-json stops inside its number parser for them) are not JSON.
    #[test]
    fn parse_failures_are_malformed_unless_a_number_is_out_of_range() {
        let cases: [(&[u8], Reason); 22] = [
            (b"abc", Reason::MalformedJson),
            (b"-", Reason::MalformedJson),
            (b"{", Reason::MalformedJson),
            (b"tru", Reason::MalformedJson),
            (b"\"x", Reason::MalformedJson),
            (b"12abc", Reason::MalformedJson),
            (b"0x1F", Reason::MalformedJson),
            (b"1/2", Reason::MalformedJson),
            (b"[1,2,3a]", Reason::MalformedJson),
            (b"1e5x", Reason::MalformedJson),
            (b"1e999 x", Reason::MalformedJson),
            (b"[1e999 x]", Reason::MalformedJson),
            (b"99999999999999999999x", Reason::MalformedJson),
            (b"{\"a\": 1e400 \"b\"}", Reason::MalformedJson),
            (b"\"a\"1e400", Reason::MalformedJson),
            (b"5\x01", Reason::MalformedJson),
            (b"1e999999", Reason::NumberOutOfRange),
            (b" 1e400 ", Reason::NumberOutOfRange),
            (b"[1, -1e999]", Reason::NumberOutOfRange),
            (b"[\n1e400\n]", Reason::NumberOutOfRange),
            (b"{\"a\":1e400}", Reason::NumberOutOfRange),
            // Strings before the number are unescaped in place; the number is still found.
            (
                b"{\"s\": \"\\u0041\\n\\u0042\", \"n\": 1e400}",
                Reason::NumberOutOfRange,
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(
                reject(body, &Limits::default()).reason,
                reason,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Random bytes from a JSON-ish alphabet: out of range only where serde_json agrees
        // that a number does not fit (or takes it, as a double: it does not refuse big integers).
        let alphabet = b"0123456789-+.eE[]{},: \"atx\x01\xff";
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut body = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for _ in 0..(seed % 24 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                body.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let mut b = body.clone();
            let Err(r) = any().validate_bytes(&mut b, &Limits::default()) else {
                continue;
            };
            if r.reason == Reason::NumberOutOfRange {
                let reference = serde_json::from_slice::<serde_json::Value>(&body);
                assert!(
                    reference
                        .as_ref()
                        .map_or_else(|e| e.to_string().contains("out of range"), |_| true),
                    "{:?}: {reference:?}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn utf8_and_syntax() {
        assert_eq!(
            reject(b"[\"\xff\"]", &Limits::default()).reason,
            Reason::InvalidUtf8
        );
        assert_eq!(
            reject(b"\"\xc3\x28\"", &Limits::default()).reason,
            Reason::InvalidUtf8
        );
        assert_eq!(
            reject(br#""\ud800""#, &Limits::default()).reason,
            Reason::InvalidUtf8
        );
        for body in ["", "{", "[1,]", "{\"a\" 1}", "nul", "[1] x", "{'a': 1}"] {
            assert_eq!(
                reject(body.as_bytes(), &Limits::default()).reason,
                Reason::MalformedJson,
                "{body:?}"
            );
        }
    }

    #[test]
    fn size_limits() {
        let limits = Limits {
            max_body_bytes: 1000,
            max_string_bytes: 8,
            max_array_len: 3,
            max_object_members: 2,
            ..Limits::default()
        };
        let cases: [(&str, &str); 5] = [
            (r#"{"a": "123456789"}"#, "/a"),
            (r#"{"123456789": 1}"#, "/123456789"),
            (r#"{"a": [[1, 2, 3, 4]]}"#, "/a/0"),
            (r#"[{"a": 1, "b": 2, "c": 3}]"#, "/0"),
            (r#"{"a": 1, "b": 2, "c": 3}"#, ""),
        ];
        for (body, at) in cases {
            let r = reject(body.as_bytes(), &limits);
            assert_eq!(
                (r.reason, r.violations[0].instance_location.as_str()),
                (Reason::TooLarge, at),
                "{body}"
            );
        }
        assert_eq!(reject(&vec![b' '; 1001], &limits).reason, Reason::TooLarge);
        let mut ok = br#"{"a": [1, 2, 3], "b": "12345678"}"#.to_vec();
        assert!(any().validate_bytes(&mut ok, &limits).is_ok());
    }

    #[test]
    fn long_keys_are_not_echoed_whole() {
        let key = "k".repeat(100_000);
        let body = format!("{{\"{key}\": 1, \"{key}\": 2}}");
        let r = reject(body.as_bytes(), &Limits::default());
        assert_eq!(r.reason, Reason::DuplicateKey);
        assert!(r.violations[0].instance_location.len() <= crate::MAX_LOCATION_BYTES + 3);
        let v = Validator::compile(
            &json!({"additionalProperties": false}),
            Dialect::Draft7,
            &CompileOptions::default(),
        )
        .unwrap();
        let mut b = format!("{{\"{key}\": 1}}").into_bytes();
        let r = v.validate_bytes(&mut b, &Limits::default()).unwrap_err();
        assert!(r.violations[0].instance_location.ends_with('…'));
    }

    #[test]
    fn large_arrays_validate_linearly() {
        let v = Validator::compile(
            &json!({"type": "array", "uniqueItems": true, "items": {"type": "integer"}}),
            Dialect::Draft2020_12,
            &CompileOptions::default(),
        )
        .unwrap();
        let items: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
        let mut body = format!("[{}]", items.join(",")).into_bytes();
        assert!(v.validate_bytes(&mut body, &Limits::default()).is_ok());
        let mut dup = format!("[{},7]", items.join(",")).into_bytes();
        let r = v.validate_bytes(&mut dup, &Limits::default()).unwrap_err();
        assert_eq!(r.violations[0].keyword, "uniqueItems");
    }

    #[test]
    fn number_token_grammar() {
        for good in ["0", "-0", "1.5", "1e400", "-12.5E+3"] {
            assert!(super::json_number(good.as_bytes()), "{good}");
        }
        for bad in ["01", "1.", ".1", "-", "1e", "1e+", "+1", "1.2.3"] {
            assert!(!super::json_number(bad.as_bytes()), "{bad}");
        }
    }
}
