//! Request bodies from bytes: parse with simd-json into a flat tape (reusing per-thread
//! buffers), classify parser failures into distinct reasons, then check the limits simd-json
//! does not enforce (lengths, member counts, duplicate keys) in one iterative pass over the tape.

use std::cell::RefCell;
use std::collections::HashSet;

use simd_json::{Buffers, ErrorType, Node, Tape};

use crate::error::{Reason, Rejection};
use crate::options::Limits;

/// Parse scratch kept per thread so a request costs no allocation in steady state. Buffers
/// grown by a body larger than this are dropped instead of kept.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;

struct Scratch {
    buffers: Buffers,
    depth: usize,
    tape: Tape<'static>,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
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
    let depth = limits.depth();
    let taken = SCRATCH.with(|s| s.borrow_mut().take());
    let mut scratch = match taken {
        Some(s) if s.depth == depth => s,
        _ => Scratch {
            buffers: Buffers::with_max_depth(buf.len(), depth),
            depth,
            tape: Tape::null(),
        },
    };
    let len = buf.len();
    let mut tape: Tape<'_> = scratch.tape.reset();
    let parsed = simd_json::fill_tape(buf, &mut scratch.buffers, &mut tape);
    let result = match parsed {
        Ok(()) => Ok(prepass(&tape.0, limits).and_then(|()| f(&tape.0))),
        Err(e) => Err(parse_failure(e.error(), e.index())),
    };
    scratch.tape = tape.reset();
    if len <= KEEP_SCRATCH_BYTES {
        SCRATCH.with(|s| *s.borrow_mut() = Some(scratch));
    }
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

/// Whether the number token around `at` follows the JSON grammar (so it failed only because it
/// does not fit). Numbers are never rewritten by the parser, so the bytes are still the input's.
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
    json_number(buf.get(start..end).unwrap_or(&[]))
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

/// A container being scanned by [`prepass`].
struct Frame<'a> {
    is_object: bool,
    len: usize,
    /// Elements or members consumed so far.
    done: usize,
    /// Current key when in an object.
    key: &'a str,
    /// Where this object's keys start in the shared key stack (small objects).
    keys_from: usize,
    /// Seen keys of a large object.
    set: Option<HashSet<&'a str>>,
}

/// Objects with at most this many members are checked for duplicates by scanning.
const SCAN_KEYS: usize = 16;

fn pointer(stack: &[Frame<'_>]) -> String {
    let mut s = String::new();
    for f in stack {
        s.push('/');
        if f.is_object {
            s.push_str(&f.key.replace('~', "~0").replace('/', "~1"));
        } else {
            s.push_str(&f.done.to_string());
        }
    }
    s
}

fn reject(stack: &[Frame<'_>], reason: Reason, what: &'static str) -> Rejection {
    Rejection::single(reason, pointer(stack), what)
}

/// Length, count and duplicate-key checks over the tape, without recursion.
fn prepass(tape: &[Node<'_>], limits: &Limits) -> Result<(), Rejection> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < tape.len() {
        // Finish containers whose members are all consumed.
        while let Some(top) = stack.last() {
            if top.done < top.len {
                break;
            }
            let keys_from = top.keys_from;
            stack.pop();
            keys.truncate(keys_from);
            if let Some(parent) = stack.last_mut() {
                parent.done += 1;
            }
        }
        if let Some(top) = stack.last_mut()
            && top.is_object
        {
            let Some(Node::String(k)) = tape.get(i) else {
                return Err(reject(&stack, Reason::MalformedJson, "json"));
            };
            top.key = k;
            if k.len() > limits.max_string_bytes {
                return Err(reject(&stack, Reason::TooLarge, "string"));
            }
            let dup = match &mut top.set {
                Some(set) => !set.insert(k),
                None => {
                    let d = keys[top.keys_from..].contains(k);
                    keys.push(k);
                    d
                }
            };
            if dup {
                return Err(reject(&stack, Reason::DuplicateKey, "key"));
            }
            i += 1;
        }
        match tape.get(i) {
            Some(Node::String(s)) if s.len() > limits.max_string_bytes => {
                return Err(reject_child(&stack, Reason::TooLarge, "string"));
            }
            Some(Node::Array { len, .. }) if *len > limits.max_array_len => {
                return Err(reject_child(&stack, Reason::TooLarge, "array"));
            }
            Some(Node::Object { len, .. }) if *len > limits.max_object_members => {
                return Err(reject_child(&stack, Reason::TooLarge, "object"));
            }
            Some(Node::Array { len, .. } | Node::Object { len, .. }) => {
                let is_object = matches!(tape.get(i), Some(Node::Object { .. }));
                stack.push(Frame {
                    is_object,
                    len: *len,
                    done: 0,
                    key: "",
                    keys_from: keys.len(),
                    set: (is_object && *len > SCAN_KEYS).then(|| HashSet::with_capacity(*len)),
                });
            }
            _ => {
                if let Some(top) = stack.last_mut() {
                    top.done += 1;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// Location of the value about to be read: the stack's pointer, where an array's position is
/// the element being read.
fn reject_child(stack: &[Frame<'_>], reason: Reason, what: &'static str) -> Rejection {
    reject(stack, reason, what)
}
