//! `application/x-www-form-urlencoded` bodies: read into an object (each field converted by
//! its property's type, as OpenAPI says for form fields) and validated like a JSON body, so a
//! form is not a way around the schema.

use serde_json::{Map, Value};

use crate::convert::{Shape, Types, readings};
use crate::deny::{Deny, reason};
use crate::path::decode_query;

/// The form media type.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Builds the object a form body stands for. `fields` are the schema's properties.
pub(crate) fn form_value(body: &[u8], fields: &[(String, Shape)]) -> Result<Value, Deny> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Deny::new(400, "invalid_utf8", "").with_keyword("utf8"))?;
    let mut map = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |e: crate::path::DecodeError| {
            Deny::new(400, reason::BODY_INVALID, "").with_keyword(e.keyword())
        };
        let (k, v) = (decode_query(k).map_err(bad)?, decode_query(v).map_err(bad)?);
        let shape = fields.iter().find(|(name, _)| *name == k).map(|(_, s)| s);
        let (types, array) = match shape {
            Some(Shape::Array(t)) => (*t, true),
            Some(Shape::Scalar(t)) if *t != Types::ANY => (*t, false),
            // Objects in forms need an `encoding`; undeclared fields stay strings.
            _ => (Types::STRING, false),
        };
        let Some(value) = readings(&v, types).into_iter().next() else {
            return Err(Deny::new(400, reason::BODY_INVALID, pointer(&k)).with_keyword("type"));
        };
        match map.get_mut(k.as_ref()) {
            Some(Value::Array(items)) if array => items.push(value),
            Some(_) => {
                return Err(Deny::new(400, "duplicate_key", pointer(&k)).with_keyword("key"));
            }
            None if array => {
                map.insert(k.into_owned(), Value::Array(vec![value]));
            }
            None => {
                map.insert(k.into_owned(), value);
            }
        }
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<(String, Shape)> {
        vec![
            ("age".into(), Shape::Scalar(Types::INTEGER)),
            ("tags".into(), Shape::Array(Types::STRING)),
        ]
    }

    #[test]
    fn fields_follow_their_types() {
        let v = form_value(b"name=a+b&age=3&tags=x&tags=y%2Fz", &fields()).unwrap();
        assert_eq!(v, json!({"name": "a b", "age": 3, "tags": ["x", "y/z"]}));
    }

    #[test]
    fn bad_forms_are_refused_without_echo() {
        let e = form_value(b"age=old", &fields()).unwrap_err();
        assert_eq!(
            (e.reason, e.location.as_str(), e.keyword.as_deref()),
            ("body_invalid", "/age", Some("type"))
        );
        let e = form_value(b"name=a&name=b", &fields()).unwrap_err();
        assert_eq!((e.reason, e.location.as_str()), ("duplicate_key", "/name"));
        let e = form_value(b"name=%zz", &fields()).unwrap_err();
        assert_eq!(e.reason, "body_invalid");
        let e = form_value(b"name=\xff", &fields()).unwrap_err();
        assert_eq!(e.reason, "invalid_utf8");
    }
}
