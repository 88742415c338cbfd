//! The compiled patch set and its evaluation.
//!
//! Every pattern condition (equals, prefix, contains, regex, glob) of every patch is compiled,
//! per field, into one `regex::bytes::RegexSet`: each value of a field is scanned once,
//! whatever the number of patches, in time linear in the value (the regex crate has no
//! backtracking), within bounded memory (a set over the limits is refused at load). Only the
//! patches one of whose conditions matched are then looked at, so a request that matches
//! nothing costs one pass per field present in some patch, plus the patches made only of
//! numeric or length tests.
//!
//! That pass is a literal scan first: when every pattern of a field has a finite set of
//! literals one of which each of its matches must begin with (an `equals`, `prefix`, `contains`
//! or glob has one; so does most of a regex such as `(?i)union\s+select`), the field's values
//! are searched for all of those literals at once (Aho-Corasick), and the set runs only on a
//! value that holds one. A large set of literal patterns thus costs about one `memchr` over the
//! value: the regex set's own DFA is slow once its patterns number in the hundreds (1.7 us on
//! a 1 KiB body with 166 patterns, against 17 ns for the scan).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aho_corasick::AhoCorasick;
use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::{
    PatchError,
    rule::{Action, Checked, Combine, Field, Test, unix_now},
};

/// Memory a field's compiled set may take (NFA and lazy DFA cache each).
const SET_SIZE_LIMIT: usize = 64 << 20;

/// Bytes of literals a field's prefilter may hold; past it the field goes without one.
const PREFILTER_BYTES: usize = 1 << 20;

/// What the engine needs of a request. The gateway implements it over the live request;
/// `vigilctl patch test` over a request read from a file.
pub trait Request {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn route(&self) -> Option<&str>;
    /// Every value of a query parameter, percent-decoded.
    fn query(&self, name: &str, each: &mut dyn FnMut(&[u8]));
    /// Every value of a header; `name` is lowercase.
    fn header(&self, name: &str, each: &mut dyn FnMut(&[u8]));
    fn cookie(&self, name: &str, each: &mut dyn FnMut(&[u8]));
    /// The value at a JSON pointer of the body, when the body is JSON and has one: a string
    /// as its text, another scalar or a container as JSON.
    fn json(&self, pointer: &str, each: &mut dyn FnMut(&[u8]));
    /// The body as buffered; `None` when it was not.
    fn body(&self) -> Option<&[u8]>;
    /// The client's JA4 fingerprint; `None` without TLS (and offline).
    fn ja4(&self) -> Option<&str> {
        None
    }
}

fn values(req: &dyn Request, field: &Field, each: &mut dyn FnMut(&[u8])) {
    match field {
        Field::Method => each(req.method().as_bytes()),
        Field::Route => {
            if let Some(r) = req.route() {
                each(r.as_bytes());
            }
        }
        Field::Path => each(req.path().as_bytes()),
        Field::Query(n) => req.query(n, each),
        Field::Header(n) => req.header(n, each),
        Field::Cookie(n) => req.cookie(n, each),
        Field::Json(p) => req.json(p, each),
        Field::Body => {
            if let Some(b) = req.body() {
                each(b);
            }
        }
        Field::Ja4 => {
            if let Some(j) = req.ja4() {
                each(j.as_bytes());
            }
        }
    }
}

/// One field's patterns, matched in one pass.
#[derive(Debug)]
struct FieldSet {
    field: Field,
    /// Literals one of which every match of every pattern begins with; `None` when some
    /// pattern has no such finite set (the set then runs on every value).
    prefilter: Option<AhoCorasick>,
    set: RegexSet,
    /// For each pattern of the set, the condition it is (index into `conds`).
    owners: Vec<usize>,
}

/// A condition as compiled: its patch, and for non-pattern tests the test itself.
#[derive(Debug)]
struct Cond {
    patch: usize,
    field: Field,
    test: Test,
}

/// Hits of one patch, kept across recompiles of the set (the gateway passes them on).
#[derive(Debug, Default)]
pub struct Hits {
    pub count: AtomicU64,
    pub last_unix: AtomicU64,
}

/// A patch that matched a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: String,
    pub action: Action,
    pub ban_ttl: std::time::Duration,
}

/// The compiled set.
#[derive(Debug, Default)]
pub struct PatchSet {
    patches: Vec<Checked>,
    hits: Vec<Arc<Hits>>,
    conds: Vec<Cond>,
    fields: Vec<FieldSet>,
    /// Each patch's conditions: a range of `conds`.
    ranges: Vec<std::ops::Range<usize>>,
    /// Patches with no pattern condition: looked at on every request.
    unindexed: Vec<usize>,
}

impl PatchSet {
    /// Compiles `patches` (already checked). `old` lends its hit counters to patches that
    /// keep their id.
    pub fn compile(patches: Vec<Checked>, old: Option<&PatchSet>) -> Result<PatchSet, PatchError> {
        if patches.len() > crate::rule::MAX_PATCHES {
            return Err(PatchError::TooMany {
                max: crate::rule::MAX_PATCHES,
            });
        }
        let mut conds = Vec::new();
        let mut by_field: BTreeMap<Field, (Vec<String>, Vec<usize>)> = BTreeMap::new();
        let mut indexed = vec![false; patches.len()];
        let mut ranges = Vec::with_capacity(patches.len());
        for (pi, p) in patches.iter().enumerate() {
            let start = conds.len();
            for (field, test) in &p.conditions {
                let ci = conds.len();
                if let Test::Pattern(re) = test {
                    let e = by_field.entry(field.clone()).or_default();
                    e.0.push(re.clone());
                    e.1.push(ci);
                    indexed[pi] = true;
                }
                conds.push(Cond {
                    patch: pi,
                    field: field.clone(),
                    test: test.clone(),
                });
            }
            ranges.push(start..conds.len());
        }
        let mut fields = Vec::with_capacity(by_field.len());
        for (field, (patterns, owners)) in by_field {
            let set = RegexSetBuilder::new(&patterns)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(SET_SIZE_LIMIT)
                .build()
                .map_err(|e| PatchError::TooBig {
                    field: field.to_string(),
                    patterns: patterns.len(),
                    why: e.to_string(),
                })?;
            let prefilter = prefilter(&patterns);
            fields.push(FieldSet {
                field,
                prefilter,
                set,
                owners,
            });
        }
        let hits = patches
            .iter()
            .map(|p| old.and_then(|o| o.hits_of(&p.patch.id)).unwrap_or_default())
            .collect();
        let unindexed = (0..patches.len()).filter(|i| !indexed[*i]).collect();
        Ok(PatchSet {
            patches,
            hits,
            conds,
            fields,
            ranges,
            unindexed,
        })
    }

    fn hits_of(&self, id: &str) -> Option<Arc<Hits>> {
        self.patches
            .iter()
            .position(|p| p.patch.id == id)
            .map(|i| self.hits[i].clone())
    }

    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }

    /// Whether some patch looks at the body (raw or JSON): the gateway then reads bodies
    /// before the patch stage runs.
    pub fn needs_body(&self) -> bool {
        self.conds
            .iter()
            .any(|c| matches!(c.field, Field::Body | Field::Json(_)))
    }

    pub fn patches(&self) -> impl Iterator<Item = (&Checked, &Hits)> {
        self.patches.iter().zip(self.hits.iter().map(|h| &**h))
    }

    /// The patches `req` matches, in the order they were added, expired ones left out; each
    /// counted as a hit unless `dry_run`.
    pub fn evaluate(&self, req: &dyn Request, dry_run: bool) -> Vec<Hit> {
        if self.patches.is_empty() {
            return Vec::new();
        }
        let mut matched = vec![false; self.conds.len()];
        let mut candidates = self.unindexed.clone();
        for fs in &self.fields {
            values(req, &fs.field, &mut |v| {
                // The common case, no pattern matches, without building the match list: most
                // often without running the set at all.
                if fs.prefilter.as_ref().is_some_and(|p| !p.is_match(v)) || !fs.set.is_match(v) {
                    return;
                }
                for pat in fs.set.matches(v).iter() {
                    let ci = fs.owners[pat];
                    matched[ci] = true;
                    candidates.push(self.conds[ci].patch);
                }
            });
        }
        candidates.sort_unstable();
        candidates.dedup();
        let now = unix_now();
        let mut out = Vec::new();
        for pi in candidates {
            let p = &self.patches[pi];
            if p.expires_unix <= now {
                continue;
            }
            let mut results = self.ranges[pi].clone().map(|ci| {
                let c = &self.conds[ci];
                match c.test {
                    Test::Pattern(_) => matched[ci],
                    _ => scalar(req, &c.field, &c.test),
                }
            });
            let hit = match p.patch.combine {
                Combine::All => results.all(|r| r),
                Combine::Any => results.any(|r| r),
            };
            if hit {
                if !dry_run {
                    self.hits[pi].count.fetch_add(1, Ordering::Relaxed);
                    self.hits[pi].last_unix.store(now, Ordering::Relaxed);
                }
                out.push(Hit {
                    id: p.patch.id.clone(),
                    action: p.patch.action,
                    ban_ttl: p.ban_ttl,
                });
            }
        }
        out
    }
}

/// The literals every match of one of `patterns` begins with (regex-syntax's prefix
/// extraction: exact for a literal, the possible beginnings of a regex), as one Aho-Corasick
/// automaton; `None` when a pattern has none (its matches can begin anywhere, or with the empty
/// string) or when they would take more than [`PREFILTER_BYTES`].
fn prefilter(patterns: &[String]) -> Option<AhoCorasick> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let mut literals: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for p in patterns {
        // As `regex::bytes` reads it: `(?-u:\xFF)` may match bytes that are not UTF-8.
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(p)
            .ok()?;
        let seq = extractor.extract(&hir);
        let lits = seq.literals()?;
        if lits.is_empty() {
            return None;
        }
        for l in lits {
            if l.as_bytes().is_empty() {
                return None;
            }
            bytes += l.as_bytes().len();
            if bytes > PREFILTER_BYTES {
                return None;
            }
            literals.push(l.as_bytes().to_vec());
        }
    }
    literals.sort_unstable();
    literals.dedup();
    AhoCorasick::new(&literals).ok()
}

/// A numeric or length test: true when any value of the field passes.
fn scalar(req: &dyn Request, field: &Field, test: &Test) -> bool {
    let mut any = false;
    values(req, field, &mut |v| {
        let pass = match *test {
            Test::LongerThan(n) => v.len() as u64 > n,
            Test::ShorterThan(n) => (v.len() as u64) < n,
            Test::Lt(x) | Test::Gt(x) | Test::Eq(x) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .is_some_and(|n| match *test {
                    Test::Lt(_) => n < x,
                    Test::Gt(_) => n > x,
                    _ => n == x,
                }),
            Test::Pattern(_) => false,
        };
        any |= pass;
    });
    any
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(patterns: &[&str]) -> (RegexSet, Option<AhoCorasick>) {
        let owned: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        (RegexSet::new(&owned).unwrap(), prefilter(&owned))
    }

    #[test]
    fn literal_sets_get_a_prefilter_and_open_ended_ones_do_not() {
        assert!(
            set(&[r"^EXPLOIT\-1$", r"<!ENTITY x5 SYSTEM", r"^/internal/v2/"])
                .1
                .is_some()
        );
        assert!(
            set(&[r"(?i)union\s+select.*from\s+t1\b", r"^[^/]*\.php$"])
                .1
                .is_none()
        );
        assert!(set(&[r"(?i)union\s+select.*from\s+t1\b"]).1.is_some());
        // One pattern that can begin anywhere takes the prefilter away from its whole field.
        assert!(set(&[r"<!ENTITY", r".*passwd"]).1.is_none());
        assert!(set(&[r"<!ENTITY", r"x?"]).1.is_none());
    }

    /// The prefilter only ever skips values no pattern matches: checked over patterns of every
    /// kind the rules compile to and values made from them, mutated and random.
    #[test]
    fn the_prefilter_never_hides_a_match() {
        let patterns = [
            r"^EXPLOIT\-12$",
            r"^legacy\-7",
            r"<!ENTITY x5 SYSTEM",
            r"(?i)union\s+select.*from\s+t3\b",
            r"(?i)\$\{jndi:",
            r"^/internal/v[0-9]+/",
            r"^/files/[^/]*/\.\./.*$",
            r"(?:cmd|exec)=(?:sh|bash)",
            r"(?i)kelvin",
            r"\x00\x01",
            r"café",
            r"(?-u:\xff)",
        ];
        let mut seeds: Vec<Vec<u8>> = vec![
            b"EXPLOIT-12".to_vec(),
            b"legacy-7-x".to_vec(),
            b"{\"a\":\"<!ENTITY x5 SYSTEM \"}".to_vec(),
            b"1 UnIoN  SeLeCt a FROM t3".to_vec(),
            b"${JNDI:ldap://x}".to_vec(),
            b"/internal/v42/admin".to_vec(),
            b"/files/a/../etc/passwd".to_vec(),
            b"?exec=bash".to_vec(),
            "\u{212a}ELVIN".as_bytes().to_vec(),
            b"\x00\x01".to_vec(),
            "un café".as_bytes().to_vec(),
            b"\xff".to_vec(),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"aeiounslctEXPLOIT-/.0123456789<!ENTITY x${}jndi:=\xff\x00\x01";
        for i in 0..4000 {
            let base = seeds[i % 12].clone();
            let mut v = base.clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % (v.len() + 1);
                match next() % 3 {
                    0 => v.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    1 if at < v.len() => {
                        v.remove(at);
                    }
                    _ if at < v.len() => v[at] = v[at].to_ascii_uppercase(),
                    _ => {}
                }
            }
            seeds.push(v);
        }
        for subset in [
            &patterns[..],
            &patterns[..4],
            &patterns[2..3],
            &patterns[5..],
        ] {
            let owned: Vec<String> = subset.iter().map(|p| (*p).to_owned()).collect();
            let set = regex::bytes::RegexSet::new(&owned).unwrap();
            let pre = prefilter(&owned).unwrap();
            let mut matched = 0;
            for v in &seeds {
                if set.is_match(v) {
                    matched += 1;
                    assert!(
                        pre.is_match(v),
                        "{subset:?} match {:?} hidden",
                        String::from_utf8_lossy(v)
                    );
                }
            }
            assert!(
                matched > 0,
                "{subset:?}: no value matched, the check proves nothing"
            );
        }
    }
}
