//! Where each key of a config file is written: the document parsed once more with spans, so an
//! error found at any stage (a type error while parsing, a bad CIDR or a duplicate upstream
//! after it) names the line of its full key path. Searching the text for the last key name
//! would pick `xdp.mode` on line 3 for a bad `policy.mode` on line 37.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, SeqAccess, Visitor},
};
use toml::Spanned;

/// Key paths of one document and the byte offsets where they are written.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    root: Node,
    /// Byte offset of the start of every line after the first.
    breaks: Vec<usize>,
}

/// One value of the document: a table's keys (with where each key is written), an array's
/// elements (with where each starts), or anything else.
#[derive(Debug, Default)]
enum Node {
    Table(Vec<(String, usize, Node)>),
    Array(Vec<(usize, Node)>),
    #[default]
    Leaf,
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl Lines {
    /// Spans of `text`; an empty map when it does not parse (its parse error has a span) or
    /// holds a datetime (no key takes one, and toml's own span names that line).
    pub(crate) fn of(text: &str) -> Lines {
        let root = toml::from_str::<Node>(text).unwrap_or_default();
        let breaks = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        Lines { root, breaks }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        self.breaks.partition_point(|&b| b <= offset) + 1
    }

    /// The line where `path` (`policy.mode`, `upstream[1].url`, `xdp.allow[0]`) is written,
    /// and whether the whole path was found: when only a prefix is written (a key left at its
    /// default, a section check naming the section), the line of the deepest written part.
    pub(crate) fn find(&self, path: &str) -> Option<(usize, bool)> {
        let mut node = &self.root;
        let mut found = None;
        let steps = steps(path);
        let mut whole = true;
        for step in &steps {
            let next = match (node, step) {
                (Node::Table(entries), Step::Key(k)) => entries
                    .iter()
                    .find(|(name, _, _)| name == k)
                    .map(|(_, at, n)| (*at, n)),
                (Node::Array(items), Step::Index(i)) => items.get(*i).map(|(at, n)| (*at, n)),
                _ => None,
            };
            match next {
                Some((at, n)) => {
                    found = Some(at);
                    node = n;
                }
                None => {
                    whole = false;
                    break;
                }
            }
        }
        found.map(|at| (self.line_at(at), whole && !steps.is_empty()))
    }

    /// Whether `path` is written in the file (not merely defaulted).
    pub(crate) fn has(&self, path: &str) -> bool {
        self.find(path).is_some_and(|(_, whole)| whole)
    }
}

/// `upstream[1].url` as `[Key("upstream"), Index(1), Key("url")]`; serde_path_to_error writes
/// the top level as `.`, which has no steps.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((index, tail)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Step::Index(i)),
                Err(_) => return out,
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! leaf {
    ($($method:ident: $t:ty),*) => {
        $(fn $method<E>(self, _: $t) -> Result<Node, E> { Ok(Node::Leaf) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    leaf!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let at = key.span().start;
            entries.push((key.into_inner(), at, map.next_value::<Node>()?));
        }
        Ok(Node::Table(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            let at = item.span().start;
            items.push((at, item.into_inner()));
        }
        Ok(Node::Array(items))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DOC: &str = "\
[xdp]
interface = \"eth0\"
mode = \"native\"
allow = [
  \"198.18.0.0/24\",
  \"198.18.1.0/24\",
]

[xdp.rate_limit]
pps = 10

[[upstream]]
name = \"a\"

[[upstream]]
name = \"b\"
url = \"http://b:1\"

[policy]
file = \"/p.yaml\"
mode = \"enforce\"
inline = { deep = { key = 1 } }
";

    #[test]
    fn full_paths_resolve_to_their_own_line() {
        let l = Lines::of(DOC);
        assert_eq!(l.find("xdp.mode"), Some((3, true)));
        assert_eq!(l.find("policy.mode"), Some((21, true)));
        assert_eq!(l.find("xdp.allow[1]"), Some((6, true)));
        assert_eq!(l.find("xdp.rate_limit.pps"), Some((10, true)));
        assert_eq!(l.find("upstream[1].url"), Some((17, true)));
        assert_eq!(l.find("upstream[0].name"), Some((13, true)));
        assert_eq!(l.find("policy.inline.deep.key"), Some((22, true)));
    }

    #[test]
    fn unwritten_keys_point_at_the_deepest_written_part() {
        let l = Lines::of(DOC);
        assert_eq!(l.find("upstream[0].url"), Some((12, false)));
        assert_eq!(l.find("policy.strict_query"), Some((19, false)));
        assert_eq!(l.find("metrics.listen"), None);
        assert_eq!(l.find("."), None);
        assert!(l.has("upstream[1].url"));
        assert!(!l.has("upstream[0].url"));
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            steps("upstream[1].url"),
            vec![Step::Key("upstream"), Step::Index(1), Step::Key("url")]
        );
        assert_eq!(
            steps("a[0][2]"),
            vec![Step::Key("a"), Step::Index(0), Step::Index(2)]
        );
        assert_eq!(steps("."), vec![]);
        assert_eq!(steps("a[x].b"), vec![Step::Key("a")]);
    }

    #[test]
    fn an_unparsable_document_has_no_lines() {
        assert_eq!(Lines::of("w = 1979-05-27T07:32:00Z").find("w"), None);
        let l = Lines::of("[xdp\n");
        assert_eq!(l.find("xdp"), None);
        assert_eq!(l.line_at(5), 2);
        assert_eq!(l.line_at(0), 1);
    }
}
