//! One small trait over "a JSON node", so the same validator walks a simd-json tape (request
//! bodies, no allocation per value) and a `serde_json::Value` (parameters already converted).

use simd_json::{Node as TapeItem, StaticNode};

use crate::number::Num;

/// What a node is, with its scalar payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    /// An array with this many elements.
    Array(usize),
    /// An object with this many members.
    Object(usize),
}

pub(crate) trait JsonNode<'a>: Copy + 'a {
    type Items: Iterator<Item = Self>;
    type Members: Iterator<Item = (&'a str, Self)>;
    fn kind(self) -> Kind<'a>;
    /// Elements of an array (nothing for other kinds).
    fn items(self) -> Self::Items;
    /// Members of an object in document order (nothing for other kinds).
    fn members(self) -> Self::Members;
}

impl<'a> JsonNode<'a> for &'a serde_json::Value {
    type Items = std::slice::Iter<'a, serde_json::Value>;
    type Members = ValueMembers<'a>;

    fn kind(self) -> Kind<'a> {
        use serde_json::Value;
        match self {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            // serde_json only holds finite numbers unless built by hand; treat the impossible
            // case as null rather than panic.
            Value::Number(n) => Num::from_json(n).map_or(Kind::Null, Kind::Num),
            Value::String(s) => Kind::Str(s),
            Value::Array(a) => Kind::Array(a.len()),
            Value::Object(o) => Kind::Object(o.len()),
        }
    }

    fn items(self) -> Self::Items {
        match self {
            serde_json::Value::Array(a) => a.iter(),
            _ => [].iter(),
        }
    }

    fn members(self) -> Self::Members {
        match self {
            serde_json::Value::Object(o) => ValueMembers(Some(o.iter())),
            _ => ValueMembers(None),
        }
    }
}

/// Members of a `serde_json` object as `(&str, &Value)`.
pub(crate) struct ValueMembers<'a>(Option<serde_json::map::Iter<'a>>);

impl<'a> Iterator for ValueMembers<'a> {
    type Item = (&'a str, &'a serde_json::Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.as_mut()?.next().map(|(k, v)| (k.as_str(), v))
    }
}

/// A node of a simd-json tape: the slice starts at the node and spans its whole subtree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TapeNode<'a>(pub(crate) &'a [TapeItem<'a>]);

/// Number of tape slots a node and its subtree occupy.
pub(crate) fn span(item: &TapeItem<'_>) -> usize {
    match item {
        TapeItem::Object { count, .. } | TapeItem::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'a> TapeNode<'a> {
    /// Splits the next whole subtree off the front of a tape slice.
    fn split(rest: &mut &'a [TapeItem<'a>]) -> Option<TapeNode<'a>> {
        let n = span(rest.first()?).min(rest.len());
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(TapeNode(head))
    }

    fn children(self) -> &'a [TapeItem<'a>] {
        self.0.get(1..).unwrap_or(&[])
    }
}

impl<'a> JsonNode<'a> for TapeNode<'a> {
    type Items = TapeItems<'a>;
    type Members = TapeMembers<'a>;

    fn kind(self) -> Kind<'a> {
        match self.0.first() {
            Some(TapeItem::String(s)) => Kind::Str(s),
            Some(TapeItem::Array { len, .. }) => Kind::Array(*len),
            Some(TapeItem::Object { len, .. }) => Kind::Object(*len),
            Some(TapeItem::Static(s)) => match *s {
                StaticNode::Null => Kind::Null,
                StaticNode::Bool(b) => Kind::Bool(b),
                StaticNode::I64(i) => Kind::Num(Num::I(i)),
                StaticNode::U64(u) => Kind::Num(Num::U(u)),
                StaticNode::F64(f) => Kind::Num(Num::F(f)),
            },
            None => Kind::Null,
        }
    }

    fn items(self) -> Self::Items {
        match self.0.first() {
            Some(TapeItem::Array { .. }) => TapeItems(self.children()),
            _ => TapeItems(&[]),
        }
    }

    fn members(self) -> Self::Members {
        match self.0.first() {
            Some(TapeItem::Object { .. }) => TapeMembers(self.children()),
            _ => TapeMembers(&[]),
        }
    }
}

pub(crate) struct TapeItems<'a>(&'a [TapeItem<'a>]);

impl<'a> Iterator for TapeItems<'a> {
    type Item = TapeNode<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        TapeNode::split(&mut self.0)
    }
}

pub(crate) struct TapeMembers<'a>(&'a [TapeItem<'a>]);

impl<'a> Iterator for TapeMembers<'a> {
    type Item = (&'a str, TapeNode<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let (key, rest) = self.0.split_first()?;
        self.0 = rest;
        let value = TapeNode::split(&mut self.0)?;
        match key {
            TapeItem::String(k) => Some((k, value)),
            _ => None,
        }
    }
}

/// A bare string as a node: what `propertyNames` validates object keys as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StrNode<'a>(pub(crate) &'a str);

impl<'a> JsonNode<'a> for StrNode<'a> {
    type Items = std::iter::Empty<Self>;
    type Members = std::iter::Empty<(&'a str, Self)>;
    fn kind(self) -> Kind<'a> {
        Kind::Str(self.0)
    }
    fn items(self) -> Self::Items {
        std::iter::empty()
    }
    fn members(self) -> Self::Members {
        std::iter::empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn shape<'a, J: JsonNode<'a>>(j: J) -> String {
        match j.kind() {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Num(n) => format!("{}", n.as_f64()),
            Kind::Str(s) => format!("{s:?}"),
            Kind::Array(n) => {
                let inner: Vec<String> = j.items().map(shape).collect();
                assert_eq!(inner.len(), n);
                format!("[{}]", inner.join(","))
            }
            Kind::Object(n) => {
                let inner: Vec<String> = j
                    .members()
                    .map(|(k, v)| format!("{k:?}:{}", shape(v)))
                    .collect();
                assert_eq!(inner.len(), n);
                format!("{{{}}}", inner.join(","))
            }
        }
    }

    #[test]
    fn tape_and_value_walk_alike() {
        let text = r#"{"a":[1,{"b":null,"c":[true,"x"]},[]],"d":{},"e":-2.5}"#;
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut bytes = text.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let expected = r#"{"a":[1,{"b":null,"c":[true,"x"]},[]],"d":{},"e":-2.5}"#;
        assert_eq!(shape(TapeNode(&tape.0)), expected);
        assert_eq!(shape(&value), expected);
    }
}
