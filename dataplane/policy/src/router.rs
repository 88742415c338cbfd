//! The route table: server base paths, then a trie over path segments. Lookup tries a
//! segment's literal child before templated ones and backtracks, so the first full match is
//! the most specific template as OpenAPI defines it (`/users/me` beats `/users/{id}`, and
//! `/a/{x}/c` beats `/a/{x}/{y}`). Backtracking is bounded by the templates' depth.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::Method;
use crate::path::{DecodeError, Part, Segment, decode_segment, match_mixed};

/// Requests with more segments than this match nothing (no template is that deep).
const MAX_SEGMENTS: usize = 256;

/// A described path and the routes of its methods.
#[derive(Debug)]
pub(crate) struct PathItem {
    pub template: String,
    pub segments: Vec<Segment>,
    /// Index into the policy's routes, per [`Method::ALL`] position.
    pub ops: [Option<usize>; 8],
}

impl PathItem {
    pub(crate) fn op(&self, m: Method) -> Option<usize> {
        self.ops[m as usize]
    }

    /// The methods for `Allow`: those described, plus HEAD where GET is (HEAD is answered
    /// by the GET operation when not described itself).
    pub(crate) fn allow(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|&m| {
                self.op(m).is_some() || (m == Method::Head && self.op(Method::Get).is_some())
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Node {
    lit: HashMap<String, Node>,
    mixed: Vec<(Vec<Part>, Node)>,
    param: Option<Box<Node>>,
    item: Option<usize>,
}

/// Paths found for a request: the path item and the decoded segments after the base path.
pub(crate) type Found<'r> = (usize, Vec<Cow<'r, str>>);

#[derive(Debug)]
pub(crate) struct Router {
    /// Base paths without trailing `/`, longest first; `""` is the root.
    bases: Vec<String>,
    root: Node,
    pub items: Vec<PathItem>,
}

fn same_shape(a: &[Part], b: &[Part]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Part::Lit(l), Part::Lit(m)) => l == m,
            (Part::Param(_), Part::Param(_)) => true,
            _ => false,
        })
}

impl Router {
    pub(crate) fn new(mut bases: Vec<String>) -> Self {
        if bases.is_empty() {
            bases.push(String::new());
        }
        bases.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        bases.dedup();
        Self {
            bases,
            root: Node::default(),
            items: Vec::new(),
        }
    }

    pub(crate) fn bases(&self) -> &[String] {
        &self.bases
    }

    /// Adds a path item; `Err(existing)` when a template of the same shape is already there
    /// (`/a/{x}` and `/a/{y}` are the same path, which OpenAPI forbids).
    pub(crate) fn insert(&mut self, item: PathItem) -> Result<usize, usize> {
        let mut node = &mut self.root;
        for seg in &item.segments {
            node = match seg {
                Segment::Lit(l) => node.lit.entry(l.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Box::default),
                Segment::Mixed(parts) => {
                    let at = match node.mixed.iter().position(|(p, _)| same_shape(p, parts)) {
                        Some(at) => at,
                        None => {
                            node.mixed.push((parts.clone(), Node::default()));
                            // Longer literal text first: `{a}.tar.gz` before `{a}.gz`.
                            node.mixed
                                .sort_by_key(|(p, _)| std::cmp::Reverse(lit_len(p)));
                            node.mixed
                                .iter()
                                .position(|(p, _)| same_shape(p, parts))
                                .unwrap_or(0)
                        }
                    };
                    &mut node.mixed[at].1
                }
            };
        }
        if let Some(existing) = node.item {
            return Err(existing);
        }
        let index = self.items.len();
        node.item = Some(index);
        self.items.push(item);
        Ok(index)
    }

    /// The path item `path` falls in, trying each base path (longest first).
    pub(crate) fn find<'r>(&self, path: &'r str) -> Result<Option<Found<'r>>, DecodeError> {
        for base in &self.bases {
            let Some(rest) = path.strip_prefix(base.as_str()) else {
                continue;
            };
            let rest = match rest {
                "" => "/",
                r if r.starts_with('/') => r,
                _ => continue,
            };
            let raw = &rest[1..];
            if raw.split('/').nth(MAX_SEGMENTS).is_some() {
                continue;
            }
            let segs = raw
                .split('/')
                .map(decode_segment)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(item) = lookup(&self.root, &segs) {
                return Ok(Some((item, segs)));
            }
        }
        Ok(None)
    }
}

fn lit_len(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|p| if let Part::Lit(l) = p { l.len() } else { 0 })
        .sum()
}

fn lookup(node: &Node, segs: &[Cow<'_, str>]) -> Option<usize> {
    let Some((seg, rest)) = segs.split_first() else {
        return node.item;
    };
    if let Some(found) = node.lit.get(seg.as_ref()).and_then(|n| lookup(n, rest)) {
        return Some(found);
    }
    for (parts, child) in &node.mixed {
        if match_mixed(parts, seg).is_some() {
            if let Some(found) = lookup(child, rest) {
                return Some(found);
            }
        }
    }
    match &node.param {
        Some(child) if !seg.is_empty() => lookup(child, rest),
        _ => None,
    }
}

/// The path parameters of `segments` (a found template) given the request's decoded segments.
pub(crate) fn path_params<'p, 'r>(
    segments: &'p [Segment],
    segs: Vec<Cow<'r, str>>,
) -> Vec<(&'p str, Cow<'r, str>)> {
    let mut out = Vec::new();
    for (seg, value) in segments.iter().zip(segs) {
        match seg {
            Segment::Lit(_) => {}
            Segment::Param(name) => out.push((name.as_str(), value)),
            Segment::Mixed(parts) => {
                for (i, v) in match_mixed(parts, &value).unwrap_or_default() {
                    if let Some(Part::Param(name)) = parts.get(i) {
                        out.push((name.as_str(), Cow::Owned(v.to_string())));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::path::parse_template;

    fn router(bases: &[&str], templates: &[&str]) -> Router {
        let mut r = Router::new(bases.iter().map(|b| b.to_string()).collect());
        for t in templates {
            let item = PathItem {
                template: t.to_string(),
                segments: parse_template(t).unwrap(),
                ops: [None; 8],
            };
            r.insert(item).unwrap();
        }
        r
    }

    fn find<'a>(r: &'a Router, path: &str) -> Option<&'a str> {
        r.find(path)
            .unwrap()
            .map(|(i, _)| r.items[i].template.as_str())
    }

    #[test]
    fn concrete_beats_templated() {
        let r = router(
            &[],
            &[
                "/users/{id}",
                "/users/me",
                "/users/{id}/posts",
                "/a/{x}/c",
                "/a/b/{y}",
                "/",
            ],
        );
        assert_eq!(find(&r, "/users/me"), Some("/users/me"));
        assert_eq!(find(&r, "/users/42"), Some("/users/{id}"));
        assert_eq!(find(&r, "/users/me/posts"), Some("/users/{id}/posts"));
        assert_eq!(find(&r, "/a/b/c"), Some("/a/b/{y}"));
        assert_eq!(find(&r, "/a/z/c"), Some("/a/{x}/c"));
        assert_eq!(find(&r, "/"), Some("/"));
        assert_eq!(find(&r, "/users"), None);
        assert_eq!(find(&r, "/users/"), None);
        assert_eq!(find(&r, "/users/1/2"), None);
        assert_eq!(find(&r, "*"), None);
    }

    #[test]
    fn base_paths_are_stripped() {
        let r = router(&["/v1", "/api/v2"], &["/pets", "/pets/{id}"]);
        assert_eq!(find(&r, "/v1/pets"), Some("/pets"));
        assert_eq!(find(&r, "/api/v2/pets/3"), Some("/pets/{id}"));
        assert_eq!(find(&r, "/pets"), None);
        assert_eq!(find(&r, "/v1pets"), None);
    }

    #[test]
    fn params_are_decoded_and_dangerous_paths_refused() {
        let r = router(&[], &["/files/{name}", "/f/{base}.{ext}"]);
        let (i, segs) = r.find("/files/a%20b").unwrap().unwrap();
        let params = path_params(&r.items[i].segments, segs);
        assert_eq!(params, vec![("name", Cow::Borrowed("a b"))]);
        let (i, segs) = r.find("/f/x.tar.gz").unwrap().unwrap();
        let params = path_params(&r.items[i].segments, segs);
        assert_eq!(params[0], ("base", Cow::Borrowed("x.tar")));
        assert_eq!(params[1], ("ext", Cow::Borrowed("gz")));
        assert_eq!(
            r.find("/files/a%2Fb").unwrap_err(),
            DecodeError::EncodedSlash
        );
        assert_eq!(
            r.find("/files/../etc").unwrap_err(),
            DecodeError::DotSegment
        );
        assert_eq!(r.find("/files/%00").unwrap_err(), DecodeError::Nul);
        assert!(r.find(&"/x".repeat(1000)).unwrap().is_none());
    }

    #[test]
    fn same_shape_templates_conflict() {
        let mut r = router(&[], &["/a/{x}"]);
        let dup = PathItem {
            template: "/a/{y}".into(),
            segments: parse_template("/a/{y}").unwrap(),
            ops: [None; 8],
        };
        assert_eq!(r.insert(dup), Err(0));
    }
}
