//! Checks on the parsed tape that simd-json does not make: string, array and object sizes and
//! duplicate keys, for every value in the body (also those the schema never looks at). One
//! pass over containers, taking each child's subtree size from the tape, with an explicit work
//! list instead of recursion. The JSON pointer of an offending value is only rebuilt when
//! something is rejected.

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

/// Reusable work lists, so a request allocates nothing here in steady state.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Tape indices of containers still to scan.
    containers: Vec<usize>,
    /// (prefix, tape index) of the keys of the small object being scanned.
    keys: Vec<(u64, usize)>,
}

pub(crate) fn check(tape: &[Node<'_>], limits: &Limits, work: &mut Work) -> Result<(), Rejection> {
    work.containers.clear();
    let r = scan(tape, limits, work);
    r.map_err(|(at, reason, what)| Rejection::single(reason, path_to(tape, at), what))
}

fn key_at<'t>(tape: &'t [Node<'_>], i: usize) -> &'t str {
    match tape.get(i) {
        Some(Node::String(s)) => s,
        _ => "",
    }
}

fn value(tape: &[Node<'_>], i: usize, limits: &Limits, work: &mut Vec<usize>) -> Result<(), Found> {
    match tape.get(i) {
        Some(Node::String(s)) if s.len() > limits.max_string_bytes => {
            Err((i, Reason::TooLarge, "string"))
        }
        Some(Node::Array { len, .. }) if *len > limits.max_array_len => {
            Err((i, Reason::TooLarge, "array"))
        }
        Some(Node::Object { len, .. }) if *len > limits.max_object_members => {
            Err((i, Reason::TooLarge, "object"))
        }
        Some(Node::Array { len, .. } | Node::Object { len, .. }) if *len > 0 => {
            work.push(i);
            Ok(())
        }
        Some(_) => Ok(()),
        None => Err((i, Reason::MalformedJson, "json")),
    }
}

fn next(tape: &[Node<'_>], j: usize) -> usize {
    j + tape.get(j).map_or(1, span)
}

fn scan(tape: &[Node<'_>], limits: &Limits, w: &mut Work) -> Result<(), Found> {
    let Work {
        containers: work,
        keys,
    } = w;
    value(tape, 0, limits, work)?;
    while let Some(c) = work.pop() {
        match tape.get(c) {
            Some(Node::Array { len, .. }) => {
                let mut j = c + 1;
                for _ in 0..*len {
                    value(tape, j, limits, work)?;
                    j = next(tape, j);
                }
            }
            Some(Node::Object { len, .. }) => {
                keys.clear();
                let mut set: Option<HashSet<&str>> =
                    (*len > SCAN_KEYS).then(|| HashSet::with_capacity(*len));
                let mut j = c + 1;
                for _ in 0..*len {
                    let Some(Node::String(k)) = tape.get(j) else {
                        return Err((j, Reason::MalformedJson, "json"));
                    };
                    if k.len() > limits.max_string_bytes {
                        return Err((j + 1, Reason::TooLarge, "string"));
                    }
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
                    value(tape, j + 1, limits, work)?;
                    j = next(tape, j + 1);
                }
            }
            _ => {}
        }
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
                check(&tape.0, &Limits::default(), &mut Work::default()).is_ok(),
                "{body}"
            );
        }
    }
}
