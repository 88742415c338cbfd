//! The scan against the parsers: on generated YAML it must find exactly the depth
//! serde_yaml_ng builds, whatever scalars, comments and styles hide brackets and quotes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::Value;

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fn scanned(text: &str) -> usize {
    nesting(text, usize::MAX).expect("no limit")
}

#[test]
fn the_limit_is_the_parsers_limit() {
    // serde_yaml_ng takes 128 levels and refuses 129; serde_json refuses 128 already.
    for n in [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1] {
        let within = n <= MAX_NESTING;
        let flow = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let maps = format!("{}1{}", "{a: ".repeat(n), "}".repeat(n));
        for text in [&flow, &maps] {
            assert_eq!(
                serde_yaml_ng::from_str::<Value>(text).is_ok(),
                within,
                "{n}"
            );
            assert_eq!(too_deep(text).is_none(), within, "{n}");
        }
        let json = format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n));
        assert_eq!(
            serde_json::from_str::<Value>(&json).is_ok(),
            n < MAX_NESTING
        );
        assert_eq!(too_deep(&json).is_none(), within, "{n}");
    }
    let block: String = (0..=MAX_NESTING)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let block = format!("{block}{}v\n", " ".repeat(200));
    assert!(serde_yaml_ng::from_str::<Value>(&block).is_err());
    assert_eq!(too_deep(&block), Some(MAX_NESTING + 1));
    assert_eq!(
        too_deep(&format!("{}x", "- ".repeat(MAX_NESTING + 1))),
        Some(1)
    );
    assert_eq!(too_deep(&format!("{}x", "- ".repeat(MAX_NESTING))), None);
}

#[test]
fn what_hides_brackets_is_skipped_and_nothing_else() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let hidden = [
        format!("a: '{deep}'\n"),
        format!("a: \"{deep} \\\" {deep}\"\n"),
        format!("a: 1 # {deep}\n"),
        format!("# {deep}\na: 1\n"),
        format!("a: |\n  {deep}\n  \"\n  '\n\n   {deep}\nb: 1\n"),
        format!("- >-\n {deep}\n- 2\n"),
        format!("a: x{deep}\n"),
        format!("a: it's {deep}\n"),
        format!("a: b\n  {deep}\n"),
        "a: b\n  \"c\n".to_string(),
        format!("a: [\"{deep}\", '{deep}']\n"),
        format!("{{\"a\": \"{deep}\", \"b\": [\"]]]\"]}}"),
    ];
    for text in &hidden {
        let value: Value = serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(scanned(text), depth_of(&value), "{text}");
        assert_eq!(too_deep(text), None, "{text}");
    }
    // Text that only looks hidden: a naive scanner would lose count here and let libyaml spend
    // minutes on the nesting that follows.
    let exposed = [
        // A plain scalar's continuation line may start with a quote; it opens nothing.
        format!("a: b\n  \"c\nd: {deep}\n"),
        format!("a: b\n \"c\nd: {deep}\n"),
        format!("x:\n  a: b\n   \"c\n  d: {deep}\n"),
        format!("a: b\n  'c\nd: {deep}\n"),
        // A block scalar ends at the first line indented less than its content.
        format!("a: |\n    text \"\nb: {deep}\n"),
        format!("a: |2\n   x\n  \"y\nc: {deep}\n"),
        format!("- |\n text '\n- {deep}\n"),
        format!("x:\n  a: |\n  b: {deep}\n"),
        format!("x:\n  - |\n  - {deep}\n"),
        // A quote inside a plain scalar or a tag is just a character.
        format!("a: it's\nb: {deep}\n"),
        format!("a: !t'x {deep}\n"),
        format!("a: x\"y\nb: {deep}\n"),
        // `#` opens a comment only after a blank.
        format!("a: [x#y, {deep}]\n"),
        format!("{{\"a\":\"#\", \"b\": {deep}}}"),
    ];
    for text in &exposed {
        assert!(too_deep(text).is_some(), "{text}");
    }
}

/// A random document: nested maps and sequences in block and flow styles, whose scalars hide
/// brackets, quotes and comment signs in every way YAML allows.
struct Gen(u64);

#[derive(Debug)]
enum Node {
    Scalar,
    Map(Vec<Node>),
    Seq(Vec<Node>),
}

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn tree(&mut self, depth: usize) -> Node {
        if depth == 0 || self.next(4) == 0 {
            return Node::Scalar;
        }
        let kids = (0..=self.next(3)).map(|_| self.tree(depth - 1)).collect();
        if self.next(2) == 0 {
            Node::Map(kids)
        } else {
            Node::Seq(kids)
        }
    }

    fn key(&mut self, i: usize) -> String {
        match self.next(4) {
            0 => format!("\"k{i} [{{ \\\" #\""),
            1 => format!("'k{i} ['' #'"),
            2 => format!("&a{i} k{i}"),
            _ => format!("k{i}"),
        }
    }

    /// A scalar in a block context whose collection is at column `parent`, then a newline.
    fn block_scalar(&mut self, parent: usize, out: &mut String) {
        let pad = " ".repeat(parent + 2);
        match self.next(11) {
            0 => out.push_str("a[b it's x\"y a#b c:d {e"),
            1 => out.push_str("'[ {{ '' \" # ]'"),
            2 => out.push_str("\"[ { \\\" ' # ]\\\\\""),
            3 => out.push_str(&format!(
                "|\n{pad}[[{{ \" '\n\n{pad}- x\n{pad} key: [\n{pad}# no"
            )),
            4 => out.push_str(&format!(">-\n{pad}\"[\n{pad}'{{")),
            5 => out.push_str(&format!("first\n{pad}\"second [\n{pad}'third {{")),
            6 => out.push_str("1 # [ { \" '"),
            7 => out.push_str(&format!("next\n{} \"line [", " ".repeat(parent))),
            8 => out.push_str("|-"),
            9 => out.push_str(&format!("|2\n{pad}  [\"\n{pad}'{{")),
            _ => out.push_str("-1"),
        }
        out.push('\n');
    }

    fn flow(&mut self, node: &Node, out: &mut String) {
        match node {
            Node::Scalar => out.push_str(match self.next(5) {
                0 => "a b",
                1 => "\"[,]{}:\\\" #\"",
                2 => "'x, [y'' }'",
                3 => "-1",
                _ => "it's",
            }),
            Node::Map(kids) => {
                out.push('{');
                for (i, kid) in kids.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if self.next(2) == 0 {
                        out.push_str(&format!("\"k{i}\":"));
                    } else {
                        out.push_str(&format!("k{i}: "));
                    }
                    self.flow(kid, out);
                }
                out.push('}');
            }
            Node::Seq(kids) => {
                out.push('[');
                for (i, kid) in kids.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.flow(kid, out);
                }
                out.push(']');
            }
        }
    }

    /// The value of a key written at column `col`.
    fn after_key(&mut self, node: &Node, col: usize, out: &mut String) {
        match node {
            Node::Scalar => {
                out.push(' ');
                self.block_scalar(col, out);
            }
            _ if self.next(3) == 0 => {
                out.push(' ');
                self.flow(node, out);
                out.push('\n');
            }
            Node::Map(kids) => {
                out.push_str(" # [ {\n");
                self.map(kids, col + 2, out);
            }
            Node::Seq(kids) => {
                out.push('\n');
                self.seq(kids, col + 2, out);
            }
        }
    }

    /// An entry after a `-` written at column `col`.
    fn after_dash(&mut self, node: &Node, col: usize, out: &mut String) {
        match node {
            Node::Scalar => {
                out.push(' ');
                self.block_scalar(col, out);
            }
            _ if self.next(3) == 0 => {
                out.push(' ');
                self.flow(node, out);
                out.push('\n');
            }
            Node::Map(kids) => {
                let key = self.key(0);
                out.push_str(&format!(" {key}:"));
                if let Some(first) = kids.first() {
                    self.after_key(first, col + 2, out);
                }
                self.entries(kids, 1, col + 2, out);
            }
            Node::Seq(kids) => {
                out.push_str(" -");
                if let Some(first) = kids.first() {
                    self.after_dash(first, col + 2, out);
                }
                for kid in kids.iter().skip(1) {
                    out.push_str(&format!("{}-", " ".repeat(col + 2)));
                    self.after_dash(kid, col + 2, out);
                }
            }
        }
    }

    fn map(&mut self, kids: &[Node], col: usize, out: &mut String) {
        self.entries(kids, 0, col, out);
    }

    fn entries(&mut self, kids: &[Node], from: usize, col: usize, out: &mut String) {
        for (i, kid) in kids.iter().enumerate().skip(from) {
            let key = self.key(i);
            out.push_str(&format!("{}{key}:", " ".repeat(col)));
            self.after_key(kid, col, out);
        }
    }

    fn seq(&mut self, kids: &[Node], col: usize, out: &mut String) {
        for kid in kids {
            out.push_str(&format!("{}-", " ".repeat(col)));
            self.after_dash(kid, col, out);
        }
    }
}

#[test]
fn generated_documents_scan_to_the_depth_the_parser_builds() {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let kids: Vec<Node> = (0..=g.next(3)).map(|_| g.tree(7)).collect();
        let mut text = String::new();
        match g.next(4) {
            0 => g.flow(&Node::Seq(kids), &mut text),
            1 => g.seq(&kids, 0, &mut text),
            _ => g.map(&kids, 0, &mut text),
        }
        let value: Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("generated:\n{text}\n{e}"));
        assert_eq!(scanned(&text), depth_of(&value), "\n{text}");
    }
}
