//! Checks on the parsed tape that simd-json does not make: string, array and object sizes and
//! duplicate keys, for every value in the body (also those the schema never looks at). One
//! linear pass over the tape; each object's keys are compared once more for duplicates. The
//! JSON pointer of an offending value is only rebuilt when something is rejected.

use std::collections::HashSet;

use simd_json::Node;

use crate::error::{MAX_LOCATION_BYTES, Reason, Rejection, cap_location};
use crate::node::span;
use crate::options::Limits;
use crate::tree::prefix;

/// Objects with at most this many members are checked for duplicates by scanning their keys;
/// larger ones use a keyed hash set (linear, and a client cannot force collisions).
const SCAN_KEYS: usize = 16;

/// (tape index of the offending value, reason, what was refused).
type Found = (usize, Reason, &'static str);

/// Reusable work list, so a request allocates nothing here in steady state.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// (prefix, tape index) of the keys of the small object being scanned.
    keys: Vec<(u64, usize)>,
}

/// Checks the tape of a body of `body_len` bytes.
pub(crate) fn check(
    tape: &[Node<'_>],
    body_len: usize,
    limits: &Limits,
    work: &mut Work,
) -> Result<(), Rejection> {
    let r = scan(tape, body_len, limits, work);
    r.map_err(|(at, reason, what)| Rejection::single(reason, path_to(tape, at), what))
}

fn key_at<'t>(tape: &'t [Node<'_>], i: usize) -> &'t str {
    match tape.get(i) {
        Some(Node::String(s)) => s,
        _ => "",
    }
}

fn next(tape: &[Node<'_>], j: usize) -> usize {
    j + tape.get(j).map_or(1, span)
}

fn scan(tape: &[Node<'_>], body_len: usize, limits: &Limits, w: &mut Work) -> Result<(), Found> {
    // A string cannot be longer than the body it came in (unescaping only shrinks it).
    let strings = body_len > limits.max_string_bytes;
    for (i, node) in tape.iter().enumerate() {
        match node {
            Node::String(s) if strings && s.len() > limits.max_string_bytes => {
                return Err((i, Reason::TooLarge, "string"));
            }
            Node::Array { len, .. } if *len > limits.max_array_len => {
                return Err((i, Reason::TooLarge, "array"));
            }
            Node::Object { len, .. } if *len > limits.max_object_members => {
                return Err((i, Reason::TooLarge, "object"));
            }
            Node::Object { len, .. } if *len > 1 => unique_keys(tape, i, *len, &mut w.keys)?,
            _ => {}
        }
    }
    Ok(())
}

/// Refuses an object (at tape index `at`, `len` members) that repeats a key.
fn unique_keys(
    tape: &[Node<'_>],
    at: usize,
    len: usize,
    keys: &mut Vec<(u64, usize)>,
) -> Result<(), Found> {
    keys.clear();
    let mut set: Option<HashSet<&str>> = (len > SCAN_KEYS).then(|| HashSet::with_capacity(len));
    let mut j = at + 1;
    for _ in 0..len {
        let Some(Node::String(k)) = tape.get(j) else {
            return Err((j, Reason::MalformedJson, "json"));
        };
        let dup = match &mut set {
            Some(set) => !set.insert(k),
            None => {
                let p = prefix(k);
                let d = keys
                    .iter()
                    .any(|(kp, ki)| *kp == p && key_at(tape, *ki) == *k);
                keys.push((p, j));
                d
            }
        };
        if dup {
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
    fn empty_containers_and_scalars_pass() {
        for body in ["[]", "{}", "1", "\"s\"", "[[], {}, [[]]]"] {
            let mut b = body.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut b).unwrap();
            assert!(
                check(
                    &tape.0,
                    body.len(),
                    &Limits::default(),
                    &mut Work::default()
                )
                .is_ok(),
                "{body}"
            );
        }
    }
}
