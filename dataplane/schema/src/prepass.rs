//! Checks on the parsed tape that simd-json does not make: string, array and object sizes and
//! duplicate keys, for every value in the body (also those the schema never looks at). One
//! linear pass over the tape; each object's keys are compared once more for duplicates. The
//! JSON pointer of an offending value is only rebuilt when something is rejected.

use std::collections::HashSet;

use simd_json::Node;

use crate::error::{MAX_LOCATION_BYTES, Reason, Rejection, cap_location};
use crate::node::span;
use crate::options::Limits;

/// Objects with at most this many members are checked for duplicates by scanning their keys;
/// larger ones use a keyed hash set (linear, and a client cannot force collisions).
const SCAN_KEYS: usize = 16;

/// (tape index of the offending value, reason, what was refused).
type Found = (usize, Reason, &'static str);

/// Checks the tape of a body of `body_len` bytes.
pub(crate) fn check(tape: &[Node<'_>], body_len: usize, limits: &Limits) -> Result<(), Rejection> {
    let r = scan(tape, body_len, limits);
    r.map_err(|(at, reason, what)| Rejection::single(reason, path_to(tape, at), what))
}

fn next(tape: &[Node<'_>], j: usize) -> usize {
    j + tape.get(j).map_or(1, span)
}

fn scan(tape: &[Node<'_>], body_len: usize, limits: &Limits) -> Result<(), Found> {
    // A string cannot be longer than the body it came in (unescaping only shrinks it).
    let strings = body_len > limits.max_string_bytes;
    for (i, node) in tape.iter().enumerate() {
        match *node {
            Node::String(s) if strings && s.len() > limits.max_string_bytes => {
                return Err((i, Reason::TooLarge, "string"));
            }
            Node::Array { len, .. } if len > limits.max_array_len => {
                return Err((i, Reason::TooLarge, "array"));
            }
            Node::Object { len, .. } if len > limits.max_object_members => {
                return Err((i, Reason::TooLarge, "object"));
            }
            Node::Object { len, .. } if len > SCAN_KEYS => unique_keys_hashed(tape, i, len)?,
            Node::Object { len, .. } if len > SCAN_KEYS / 2 => {
                unique_keys::<SCAN_KEYS>(tape, i, len)?;
            }
            Node::Object { len, .. } if len > 1 => unique_keys::<{ SCAN_KEYS / 2 }>(tape, i, len)?,
            _ => {}
        }
    }
    Ok(())
}

/// Length, first and last byte of a key folded into one word: keys that differ in any of
/// them (nearly all distinct keys of an object) are told apart without comparing bytes.
#[inline]
fn fingerprint(k: &str) -> usize {
    let b = k.as_bytes();
    let ends = match (b.first(), b.last()) {
        (Some(f), Some(l)) => (usize::from(*f) << 40) | (usize::from(*l) << 48),
        _ => 0,
    };
    b.len() ^ ends
}

/// Refuses a small object (at tape index `at`, `len <= N` members) that repeats a key: each
/// key is compared with those before it by fingerprint, and by its bytes only when those
/// agree, in a stack array sized for the object (it is cleared for every object).
fn unique_keys<const N: usize>(tape: &[Node<'_>], at: usize, len: usize) -> Result<(), Found> {
    let mut seen = [(0usize, ""); N];
    let mut j = at + 1;
    for n in 0..len.min(N) {
        let Some(Node::String(k)) = tape.get(j) else {
            return Err((j, Reason::MalformedJson, "json"));
        };
        let f = fingerprint(k);
        let before = seen.get(..n).unwrap_or(&[]);
        if before.iter().any(|(sf, sk)| *sf == f && *sk == *k) {
            return Err((j + 1, Reason::DuplicateKey, "key"));
        }
        if let Some(slot) = seen.get_mut(n) {
            *slot = (f, k);
        }
        j = next(tape, j + 1);
    }
    Ok(())
}

/// [`unique_keys`] for larger objects, through a keyed hash set (linear, and a client cannot
/// force collisions).
fn unique_keys_hashed(tape: &[Node<'_>], at: usize, len: usize) -> Result<(), Found> {
    let mut set: HashSet<&str> = HashSet::with_capacity(len);
    let mut j = at + 1;
    for _ in 0..len {
        let Some(Node::String(k)) = tape.get(j) else {
            return Err((j, Reason::MalformedJson, "json"));
        };
        if !set.insert(k) {
            return Err((j + 1, Reason::DuplicateKey, "key"));
        }
        j = next(tape, j + 1);
    }
    Ok(())
}

/// The JSON pointer of the value at tape index `target`, found by descending from the root.
fn path_to(tape: &[Node<'_>], target: usize) -> String {
    let mut s = String::new();
    let mut c = 0;
    while c != target {
        let mut found = None;
        match tape.get(c) {
            Some(Node::Array { len, .. }) => {
                let mut j = c + 1;
                for idx in 0..*len {
                    let end = next(tape, j);
                    if (j..end).contains(&target) {
                        s.push('/');
                        s.push_str(&idx.to_string());
                        found = Some(j);
                        break;
                    }
                    j = end;
                }
            }
            Some(Node::Object { len, .. }) => {
                let mut j = c + 1;
                for _ in 0..*len {
                    let end = next(tape, j + 1);
                    if (j..end).contains(&target) {
                        if let Some(Node::String(k)) = tape.get(j) {
                            s.push('/');
                            s.push_str(&k.replace('~', "~0").replace('/', "~1"));
                        }
                        found = Some(j + 1);
                        break;
                    }
                    j = end;
                }
            }
            _ => {}
        }
        match found {
            Some(n) if s.len() <= MAX_LOCATION_BYTES => c = n,
            _ => break,
        }
    }
    cap_location(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn paths_are_rebuilt_from_the_tape() {
        let mut b = br#"{"a": [1, {"b/c": [true, "x"]}], "d": 2}"#.to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        let t = &tape.0;
        let idx = t
            .iter()
            .position(|n| matches!(n, Node::String("x")))
            .unwrap();
        assert_eq!(path_to(t, idx), "/a/1/b~1c/1");
        assert_eq!(path_to(t, 0), "");
        let d = t
            .iter()
            .position(|n| matches!(n, Node::String("d")))
            .unwrap();
        assert_eq!(path_to(t, d + 1), "/d");
    }

    #[test]
    fn duplicates_on_both_sides_of_the_small_object_limit() {
        let reason = |body: &str| {
            let mut b = body.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut b).unwrap();
            check(&tape.0, body.len(), &Limits::default()).map_err(|r| r.reason)
        };
        // Long keys that share their first eight bytes are told apart by the rest.
        assert!(reason(r#"{"abcdefghij1": 1, "abcdefghij2": 2}"#).is_ok());
        // Same length, first and last byte: the bytes between decide.
        assert!(reason(r#"{"a1b": 1, "a2b": 2, "": 3}"#).is_ok());
        assert_eq!(
            reason(r#"{"a1b": 1, "a2b": 2, "a1b": 3}"#),
            Err(Reason::DuplicateKey)
        );
        assert_eq!(
            reason(r#"{"": 1, "x": 2, "": 3}"#),
            Err(Reason::DuplicateKey)
        );
        assert_eq!(
            reason(r#"{"abcdefghijX": 1, "y": 2, "abcdefghijX": 3}"#),
            Err(Reason::DuplicateKey)
        );
        for n in [SCAN_KEYS, SCAN_KEYS + 1] {
            let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
            assert!(reason(&format!("{{{}}}", keys.join(","))).is_ok(), "{n}");
            let dup = format!("{{{}, \"k0\": 0}}", keys[1..].join(","));
            assert!(reason(&dup).is_ok(), "{n}");
            let dup = format!("{{{}, \"k1\": 0}}", keys[..n - 1].join(","));
            assert_eq!(reason(&dup), Err(Reason::DuplicateKey), "{n}");
        }
    }

    #[test]
    fn empty_containers_and_scalars_pass() {
        for body in ["[]", "{}", "1", "\"s\"", "[[], {}, [[]]]"] {
            let mut b = body.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut b).unwrap();
            assert!(
                check(&tape.0, body.len(), &Limits::default()).is_ok(),
                "{body}"
            );
        }
    }
}
