//! Parameters: where they are read from, how their styles lay values out, and the check of
//! each against its schema. Denials name the parameter, never its value.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;
use vigil_schema::Validator;

use crate::convert::{Shape, array_readings, object_reading, readings};
use crate::deny::{Deny, reason};
use crate::path::decode_query;
use crate::policy::Headers;
pub(crate) use crate::style::{ParamIn, Style};

/// A compiled parameter.
#[derive(Debug)]
pub(crate) struct Param {
    /// As written; lower-case for headers (their names are case-insensitive).
    pub name: String,
    pub at: ParamIn,
    /// `query.limit`: the location in denials.
    pub label: String,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    pub shape: Shape,
    /// Described with `content` and a JSON media type: the value is JSON text.
    pub json: bool,
    pub validator: Option<Arc<Validator>>,
}

/// Decoded query pairs, in order.
pub(crate) type Query<'q> = Vec<(Cow<'q, str>, Cow<'q, str>)>;

/// Splits and decodes a query string (`a=1&b=x+y`).
pub(crate) fn parse_query(q: &str) -> Result<Query<'_>, Deny> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |e: crate::path::DecodeError| {
            Deny::new(400, reason::PARAM_INVALID, "query").with_keyword(e.keyword())
        };
        out.push((decode_query(k).map_err(bad)?, decode_query(v).map_err(bad)?));
    }
    Ok(out)
}

/// The value of query parameter `name`, decoded (`None` when absent). A name that appears
/// more than once is refused (400 `param_repeated` at `query.NAME`), as `check_params` refuses
/// it: a caller must never act on a different value than the one that was validated. A query
/// that cannot be decoded is 400 `param_invalid`.
pub fn query_value(q: &str, name: &str) -> Result<Option<String>, Deny> {
    let mut found = None;
    for (k, v) in parse_query(q)? {
        if k == name && found.replace(v).is_some() {
            return Err(Deny::new(
                400,
                reason::PARAM_REPEATED,
                format!("query.{name}"),
            ));
        }
    }
    Ok(found.map(Cow::into_owned))
}

/// The values of cookie `name` in one `Cookie` line.
fn cookies<'h>(line: &'h str, name: &str) -> impl Iterator<Item = &'h str> {
    line.split(';')
        .filter_map(|c| c.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether two pairs share a key (`color[R]=1&color[R]=2`).
fn has_repeated_keys(pairs: &[(&str, &str)]) -> bool {
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

impl Param {
    fn missing(&self) -> Result<(), Deny> {
        if self.required {
            Err(Deny::new(400, reason::PARAM_MISSING, self.label.as_str()).with_keyword("required"))
        } else {
            Ok(())
        }
    }

    fn invalid(&self, keyword: &str) -> Deny {
        Deny::new(400, reason::PARAM_INVALID, self.label.as_str()).with_keyword(keyword)
    }

    fn repeated(&self) -> Deny {
        Deny::new(400, reason::PARAM_REPEATED, self.label.as_str())
    }

    fn utf8<'v>(&self, v: &'v [u8]) -> Result<&'v str, Deny> {
        std::str::from_utf8(v)
            .map(str::trim)
            .map_err(|_| self.invalid("utf8"))
    }

    /// Whether the parameter is a JSON-free array: the only shape whose values a repeated
    /// query key or header line add to.
    fn is_array(&self) -> bool {
        !self.json && matches!(self.shape, Shape::Array(_))
    }

    /// Passes when one reading validates; otherwise denies with the first reading's keyword.
    fn validate(&self, readings: Vec<Value>) -> Result<(), Deny> {
        if readings.is_empty() {
            return Err(self.invalid("type"));
        }
        let Some(v) = &self.validator else {
            return Ok(());
        };
        let mut first_err = None;
        for r in &readings {
            match v.validate_value(r) {
                Ok(()) => return Ok(()),
                Err(e) if first_err.is_none() => first_err = Some(e),
                Err(_) => {}
            }
        }
        let keyword = first_err
            .as_ref()
            .and_then(|e| e.violations.first())
            .map_or("schema", |v| v.keyword);
        Err(self.invalid(keyword))
    }

    fn json(&self, raw: &str) -> Result<(), Deny> {
        match serde_json::from_str::<Value>(raw) {
            Ok(v) => self.validate(vec![v]),
            Err(_) => Err(self.invalid("json")),
        }
    }

    /// Checks a path, header or cookie parameter (`raw` is its value, if present).
    pub(crate) fn check_raw(&self, raw: Option<&str>) -> Result<(), Deny> {
        let Some(raw) = raw else {
            return self.missing();
        };
        if self.json {
            return self.json(raw);
        }
        // Only matrix values carry the name (`;id=5`); other styles must not pay for it.
        let prefix = if self.style == Style::Matrix {
            format!(";{}=", self.name)
        } else {
            String::new()
        };
        let raw = match self.style {
            Style::Label => raw.strip_prefix('.').ok_or_else(|| self.invalid("style"))?,
            Style::Matrix if !(self.explode && matches!(self.shape, Shape::Array(_))) => raw
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| self.invalid("style"))?,
            _ => raw,
        };
        let sep = if self.style == Style::Label && self.explode {
            '.'
        } else {
            ','
        };
        let readings = match &self.shape {
            Shape::Scalar(t) => readings(raw, *t),
            Shape::Array(t) => {
                let items: Vec<&str> = if self.style == Style::Matrix && self.explode {
                    let mut items = Vec::new();
                    for part in raw.split(';').skip(1) {
                        let Some(v) = part.strip_prefix(prefix.get(1..).unwrap_or("")) else {
                            return Err(self.invalid("style"));
                        };
                        items.push(v);
                    }
                    items
                } else if raw.is_empty() {
                    Vec::new()
                } else {
                    raw.split(sep).map(str::trim).collect()
                };
                array_readings(&items, *t)
            }
            Shape::Object(props) => {
                let pairs: Vec<(&str, &str)> = if self.explode {
                    raw.split(sep).filter_map(|p| p.split_once('=')).collect()
                } else {
                    flat_pairs(raw, ',').ok_or_else(|| self.invalid("style"))?
                };
                if has_repeated_keys(&pairs) {
                    return Err(self.repeated());
                }
                object_reading(&pairs, props).into_iter().collect()
            }
        };
        self.validate(readings)
    }

    /// Checks a header parameter. Field lines of one name are one comma-separated list (RFC
    /// 9110 §5.3), so only an array may be repeated, and only when every line is visible: a
    /// value repeated in another line would otherwise reach the upstream unchecked.
    pub(crate) fn check_header<H: Headers + ?Sized>(&self, headers: &H) -> Result<(), Deny> {
        let values = headers.header_values(&self.name);
        let count = headers.header_count(&self.name).max(values.len());
        match values.as_slice() {
            [] if count == 0 => self.check_raw(None),
            [one] if count == 1 => self.check_raw(Some(self.utf8(one)?)),
            lines if count == lines.len() && self.is_array() => {
                let mut joined = String::new();
                for line in lines {
                    if !joined.is_empty() {
                        joined.push(',');
                    }
                    joined.push_str(self.utf8(line)?);
                }
                self.check_raw(Some(&joined))
            }
            _ => Err(self.repeated()),
        }
    }

    /// Checks a cookie parameter: at most one cookie of its name over every `Cookie` line.
    pub(crate) fn check_cookie<H: Headers + ?Sized>(&self, headers: &H) -> Result<(), Deny> {
        let lines = headers.header_values("cookie");
        if headers.header_count("cookie") > lines.len() {
            // Lines the policy cannot see may hold another value of this cookie.
            return Err(self.repeated());
        }
        let mut found = None;
        for line in lines {
            for value in cookies(self.utf8(line)?, &self.name) {
                if found.replace(value).is_some() {
                    return Err(self.repeated());
                }
            }
        }
        self.check_raw(found)
    }

    /// Checks a query parameter against the decoded query. Only an exploded `form` array reads
    /// every occurrence of its name (`?id=1&id=2`); any other parameter, or object member,
    /// that appears twice is refused: frameworks disagree on which of two values they read.
    pub(crate) fn check_query(&self, q: &Query<'_>) -> Result<(), Deny> {
        let named = || q.iter().filter(|(k, _)| k.as_ref() == self.name.as_str());
        let repeats = self.is_array() && self.explode && self.style == Style::Form;
        if !repeats && named().nth(1).is_some() {
            return Err(self.repeated());
        }
        let first = named().next().map(|(_, v)| v.as_ref());
        if self.json {
            return first.map_or_else(|| self.missing(), |raw| self.json(raw));
        }
        let readings = match &self.shape {
            Shape::Scalar(t) => match first {
                None => return self.missing(),
                Some(raw) => readings(raw, *t),
            },
            Shape::Array(t) => {
                let items: Vec<&str> = if self.explode && self.style == Style::Form {
                    named().map(|(_, v)| v.as_ref()).collect()
                } else {
                    let sep = self.delimiter();
                    first
                        .map(|raw| raw.split(sep).collect())
                        .unwrap_or_default()
                };
                if items.is_empty() && first.is_none() {
                    return self.missing();
                }
                array_readings(&items, *t)
            }
            Shape::Object(props) => {
                let pairs: Vec<(&str, &str)> = match self.style {
                    Style::DeepObject => q
                        .iter()
                        .filter_map(|(k, v)| Some((deep_key(k, &self.name)?, v.as_ref())))
                        .collect(),
                    _ if self.explode => q
                        .iter()
                        .filter(|(k, _)| props.iter().any(|(p, _)| p == k))
                        .map(|(k, v)| (k.as_ref(), v.as_ref()))
                        .collect(),
                    _ => match first {
                        None => Vec::new(),
                        Some(raw) => flat_pairs(raw, self.delimiter())
                            .ok_or_else(|| self.invalid("style"))?,
                    },
                };
                if pairs.is_empty() {
                    return self.missing();
                }
                if has_repeated_keys(&pairs) {
                    return Err(self.repeated());
                }
                object_reading(&pairs, props).into_iter().collect()
            }
        };
        self.validate(readings)
    }

    /// The separator of non-exploded query arrays and objects.
    fn delimiter(&self) -> char {
        match self.style {
            Style::SpaceDelimited => ' ',
            Style::PipeDelimited => '|',
            _ => ',',
        }
    }

    /// Whether query key `key` belongs to this parameter (for `strict_query`).
    pub(crate) fn owns_query_key(&self, key: &str) -> bool {
        match (&self.shape, self.style) {
            (Shape::Object(_), Style::DeepObject) => deep_key(key, &self.name).is_some(),
            (Shape::Object(props), Style::Form) if self.explode && !self.json => {
                props.iter().any(|(p, _)| p == key)
            }
            _ => key == self.name,
        }
    }
}

/// `color[R]` → `R` for parameter `color`.
fn deep_key<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    key.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')
}

/// `R,100,G,200` → pairs; `None` when the count is odd.
fn flat_pairs(raw: &str, sep: char) -> Option<Vec<(&str, &str)>> {
    let items: Vec<&str> = raw.split(sep).collect();
    if !items.len().is_multiple_of(2) {
        return None;
    }
    Some(items.chunks(2).map(|c| (c[0], c[1])).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::convert::Types;

    fn param(at: ParamIn, shape: Shape, style: Style, explode: bool) -> Param {
        Param {
            name: "p".into(),
            at,
            label: format!("{}.p", at.as_str()),
            required: true,
            style,
            explode,
            shape,
            json: false,
            validator: None,
        }
    }

    #[test]
    fn query_strings_decode() {
        let q = parse_query("a=1&b=x+y&&c&d=%2F").unwrap();
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "x y"), ("c", ""), ("d", "/")]);
        let e = parse_query("a=%zz").unwrap_err();
        assert_eq!(
            (e.status, e.reason, e.location.as_str()),
            (400, "param_invalid", "query")
        );
    }

    #[test]
    fn cookies_and_keys() {
        let all: Vec<&str> = cookies("a=1; session=xyz; b=2; session=q", "session").collect();
        assert_eq!(all, ["xyz", "q"]);
        assert_eq!(cookies("a=1", "session").next(), None);
        assert!(has_repeated_keys(&[("R", "1"), ("G", "2"), ("R", "3")]));
        assert!(!has_repeated_keys(&[("R", "1"), ("G", "2")]));
        assert_eq!(deep_key("color[R]", "color"), Some("R"));
        assert_eq!(deep_key("colors[R]", "color"), None);
        assert_eq!(
            flat_pairs("R,1,G,2", ','),
            Some(vec![("R", "1"), ("G", "2")])
        );
        assert_eq!(flat_pairs("R|1|G", '|'), None);
    }

    #[test]
    fn styles_lay_out_values() {
        let arr = Shape::Array(Types::INTEGER);
        assert!(
            param(ParamIn::Path, arr.clone(), Style::Simple, false)
                .check_raw(Some("1,2"))
                .is_ok()
        );
        let e = param(ParamIn::Path, arr.clone(), Style::Simple, false).check_raw(Some("1,x"));
        assert_eq!(e.unwrap_err().keyword.as_deref(), Some("type"));
        assert!(
            param(ParamIn::Path, arr.clone(), Style::Label, true)
                .check_raw(Some(".1.2"))
                .is_ok()
        );
        assert!(
            param(ParamIn::Path, arr.clone(), Style::Label, false)
                .check_raw(Some("1,2"))
                .is_err()
        );
        let m = param(ParamIn::Path, arr.clone(), Style::Matrix, true);
        assert!(m.check_raw(Some(";p=1;p=2")).is_ok());
        assert!(m.check_raw(Some(";q=1")).is_err());
        let m = param(
            ParamIn::Path,
            Shape::Scalar(Types::INTEGER),
            Style::Matrix,
            false,
        );
        assert!(m.check_raw(Some(";p=5")).is_ok());
        let q = parse_query("p=1&p=2&x=y").unwrap();
        assert!(
            param(ParamIn::Query, arr.clone(), Style::Form, true)
                .check_query(&q)
                .is_ok()
        );
        let q = parse_query("p=1|2").unwrap();
        assert!(
            param(ParamIn::Query, arr.clone(), Style::PipeDelimited, false)
                .check_query(&q)
                .is_ok()
        );
        let q = parse_query("p=1%202").unwrap();
        assert!(
            param(ParamIn::Query, arr, Style::SpaceDelimited, false)
                .check_query(&q)
                .is_ok()
        );
        let obj = Shape::Object(vec![("R".into(), Types::INTEGER)]);
        let q = parse_query("p[R]=100&p[G]=x").unwrap();
        assert!(
            param(ParamIn::Query, obj.clone(), Style::DeepObject, true)
                .check_query(&q)
                .is_ok()
        );
        let q = parse_query("p[R]=red").unwrap();
        assert!(
            param(ParamIn::Query, obj.clone(), Style::DeepObject, true)
                .check_query(&q)
                .is_err()
        );
        let q = parse_query("R=1&other=2").unwrap();
        let form = param(ParamIn::Query, obj.clone(), Style::Form, true);
        assert!(form.check_query(&q).is_ok());
        assert!(form.owns_query_key("R") && !form.owns_query_key("other"));
        assert!(
            param(ParamIn::Header, obj.clone(), Style::Simple, true)
                .check_raw(Some("R=1,G=2"))
                .is_ok()
        );
        assert!(
            param(ParamIn::Header, obj, Style::Simple, false)
                .check_raw(Some("R,1,G"))
                .is_err()
        );
    }

    #[test]
    fn missing_parameters_follow_required() {
        let mut p = param(ParamIn::Query, Shape::Scalar(Types::ANY), Style::Form, true);
        let e = p.check_query(&Vec::new()).unwrap_err();
        assert_eq!(
            (e.status, e.reason, e.location.as_str()),
            (400, "param_missing", "query.p")
        );
        p.required = false;
        assert!(p.check_query(&Vec::new()).is_ok());
        assert!(p.check_raw(None).is_ok());
    }
}
