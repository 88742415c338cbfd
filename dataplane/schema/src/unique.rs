//! Structural equality and hashing of JSON nodes, for `enum`, `const` and `uniqueItems`.
//! `uniqueItems` hashes every element once (keyed SipHash, so a client cannot force collisions)
//! and compares only elements whose hashes collide: linear, not quadratic, in the array length.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::node::{JsonNode, Kind};
use crate::number::{self, Num};

/// Objects up to this many members are compared by scanning; larger ones through a map.
const SCAN_MEMBERS: usize = 16;

pub(crate) fn equal<'a, 'b, A: JsonNode<'a>, B: JsonNode<'b>>(a: A, b: B) -> bool {
    match (a.kind(), b.kind()) {
        (Kind::Null, Kind::Null) => true,
        (Kind::Bool(x), Kind::Bool(y)) => x == y,
        (Kind::Num(x), Kind::Num(y)) => number::equal(x, y),
        (Kind::Str(x), Kind::Str(y)) => x == y,
        (Kind::Array(n), Kind::Array(m)) => {
            n == m && a.items().zip(b.items()).all(|(x, y)| equal(x, y))
        }
        (Kind::Object(n), Kind::Object(m)) if n == m => {
            if m <= SCAN_MEMBERS {
                a.members()
                    .all(|(k, x)| b.members().any(|(k2, y)| k == k2 && equal(x, y)))
            } else {
                let map: HashMap<&str, B> = b.members().collect();
                // Duplicate keys would make the counts lie; the parser rejects them first.
                map.len() == m
                    && a.members()
                        .all(|(k, x)| map.get(k).is_some_and(|y| equal(x, *y)))
            }
        }
        _ => false,
    }
}

fn hash_node<'a, J: JsonNode<'a>, S: BuildHasher>(j: J, s: &S, h: &mut S::Hasher) {
    match j.kind() {
        Kind::Null => 0u8.hash(h),
        Kind::Bool(b) => (1u8, b).hash(h),
        Kind::Num(n) => {
            2u8.hash(h);
            // Equal numbers must hash alike whatever their representation (1 == 1.0).
            match n {
                Num::I(i) => i128::from(i).hash(h),
                Num::U(u) => i128::from(u).hash(h),
                Num::F(f) if f.fract() == 0.0 && f.abs() < 1.7e38 => (f as i128).hash(h),
                Num::F(f) => f.to_bits().hash(h),
            }
        }
        Kind::Str(st) => (3u8, st).hash(h),
        Kind::Array(n) => {
            (4u8, n).hash(h);
            for item in j.items() {
                hash_node(item, s, h);
            }
        }
        Kind::Object(n) => {
            (5u8, n).hash(h);
            // Member order does not matter: combine member hashes commutatively.
            let mut sum = 0u64;
            for (k, v) in j.members() {
                let mut mh = s.build_hasher();
                k.hash(&mut mh);
                hash_node(v, s, &mut mh);
                sum = sum.wrapping_add(mh.finish());
            }
            sum.hash(h);
        }
    }
}

pub(crate) fn all_unique<'a, J: JsonNode<'a>>(arr: J) -> bool {
    let items: Vec<J> = arr.items().collect();
    if items.len() < 2 {
        return true;
    }
    if items.len() <= 8 {
        return items
            .iter()
            .enumerate()
            .all(|(i, a)| items[i + 1..].iter().all(|b| !equal(*a, *b)));
    }
    let state = RandomState::new();
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut h = state.build_hasher();
        hash_node(*item, &state, &mut h);
        let bucket = seen.entry(h.finish()).or_default();
        if bucket
            .iter()
            .any(|&j| items.get(j).is_some_and(|other| equal(*item, *other)))
        {
            return false;
        }
        bucket.push(i);
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::node::TapeNode;
    use serde_json::json;

    #[test]
    fn numbers_compare_across_representations() {
        assert!(equal(&json!(1), &json!(1.0)));
        assert!(!equal(&json!(1), &json!(true)));
        assert!(equal(
            &json!({"a": [1, {"b": null}]}),
            &json!({"a": [1.0, {"b": null}]})
        ));
        assert!(!equal(&json!([1, 2]), &json!([2, 1])));
    }

    #[test]
    fn unique_items_small_and_large() {
        assert!(all_unique(&json!([1, 2, "1", [1], {"a": 1}])));
        assert!(!all_unique(&json!([{"a": 1, "b": 2}, {"b": 2, "a": 1}])));
        let big: Vec<serde_json::Value> = (0..10_000).map(|i| json!({"id": i})).collect();
        assert!(all_unique(&serde_json::Value::Array(big.clone())));
        let mut dup = big;
        dup.push(json!({"id": 5000.0}));
        assert!(!all_unique(&serde_json::Value::Array(dup)));
    }

    #[test]
    fn tape_and_value_agree() {
        let mut bytes = br#"[{"x": 1, "y": [true]}, {"y": [true], "x": 1.0}]"#.to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        assert!(!all_unique(TapeNode(&tape.0)));
        let first = TapeNode(&tape.0).items().next().unwrap();
        assert!(equal(first, &json!({"y": [true], "x": 1})));
    }
}
