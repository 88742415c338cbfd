//! The compiled patch set and its evaluation.
//!
//! Every pattern condition (equals, prefix, contains, regex, glob) of every patch is compiled,
//! per field, into one `regex::bytes::RegexSet`: each value of a field is scanned once,
//! whatever the number of patches, in time linear in the value (the regex crate has no
//! backtracking), within bounded memory (a set over the limits is refused at load). Only the
//! patches one of whose conditions matched are then looked at, so a request that matches
//! nothing costs one pass per field present in some patch, plus the patches made only of
//! numeric or length tests.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::{
    PatchError,
    rule::{Action, Checked, Combine, Field, Test, unix_now},
};

/// Memory a field's compiled set may take (NFA and lazy DFA cache each).
const SET_SIZE_LIMIT: usize = 64 << 20;

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
            fields.push(FieldSet { field, set, owners });
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
                // The common case, no pattern matches, without building the match list.
                if !fs.set.is_match(v) {
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
