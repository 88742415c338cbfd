//! Request bodies: the content type must be one the operation describes, and JSON bodies are
//! validated by vigil-schema on the caller's buffer (parsed in place, no copy).

use std::sync::Arc;

use vigil_schema::{Limits, Reason, Validator};

use crate::convert::Shape;
use crate::deny::{Deny, reason};
use crate::form::{FORM, form_value};

/// One media type (or range) of a request body.
#[derive(Debug)]
pub(crate) struct Media {
    /// As written in the description, lower-case (`application/json`, `application/*`).
    pub key: String,
    pub validator: Option<Arc<Validator>>,
    /// For form bodies with a schema: the shapes of its fields.
    pub form: Option<Vec<(String, Shape)>>,
}

/// A compiled Request Body Object.
#[derive(Debug)]
pub(crate) struct Body {
    pub required: bool,
    pub media: Vec<Media>,
}

/// `type/subtype` of a content type, lower-case, without parameters (`; charset=utf-8`).
fn essence(ct: &str) -> Option<(String, String)> {
    let ct = ct.split(';').next()?.trim().to_ascii_lowercase();
    let (t, s) = ct.split_once('/')?;
    let token = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    (token(t) && token(s)).then(|| (t.to_string(), s.to_string()))
}

/// Whether a request content type carries JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(t: &str, s: &str) -> bool {
    (t == "application" && s == "json") || s.ends_with("+json")
}

/// How well a described media range covers a request's type: higher is more specific.
fn score(range: &str, t: &str, s: &str) -> Option<u8> {
    let (rt, rs) = range.split_once('/')?;
    let rs = rs.split(';').next().unwrap_or(rs).trim();
    if rt == "*" && rs == "*" {
        return Some(1);
    }
    if rt != t {
        return None;
    }
    if rs == s {
        Some(4)
    } else if let Some(suffix) = rs.strip_prefix('*').filter(|x| x.starts_with('+')) {
        s.ends_with(suffix).then_some(3)
    } else if rs == "*" {
        Some(2)
    } else {
        None
    }
}

impl Body {
    /// The described media entry that best covers `content_type`.
    fn media_for(&self, t: &str, s: &str) -> Option<&Media> {
        self.media
            .iter()
            .filter_map(|m| Some((score(&m.key, t, s)?, m)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, m)| m)
    }
}

/// Checks a body against the operation's request body (`None`: the operation describes none).
pub(crate) fn check(
    spec: Option<&Body>,
    content_type: Option<&str>,
    body: &mut [u8],
    limits: &Limits,
) -> Result<(), Deny> {
    if body.is_empty() {
        return match spec {
            Some(b) if b.required => {
                Err(Deny::new(400, reason::BODY_MISSING, "").with_keyword("requestBody"))
            }
            _ => Ok(()),
        };
    }
    let unsupported = || Deny::new(415, reason::UNSUPPORTED_MEDIA_TYPE, "header.content-type");
    let Some(spec) = spec else {
        return Err(unsupported().with_keyword("requestBody"));
    };
    let Some((t, s)) = content_type.and_then(essence) else {
        return Err(unsupported().with_keyword("content-type"));
    };
    let Some(media) = spec.media_for(&t, &s) else {
        return Err(unsupported().with_keyword("content"));
    };
    let Some(validator) = media.validator.as_ref() else {
        return Ok(());
    };
    let result = match &media.form {
        Some(fields) if format!("{t}/{s}") == FORM => {
            if body.len() > limits.max_body_bytes {
                return Err(
                    Deny::new(413, Reason::TooLarge.as_str(), "").with_keyword("maxBodyBytes")
                );
            }
            validator.validate_value(&form_value(body, fields)?)
        }
        _ if is_json(&t, &s) => validator.validate_bytes(body, limits),
        _ => return Ok(()),
    };
    result.map_err(|rej| {
        let (location, keyword) = rej
            .violations
            .first()
            .map_or(("", ""), |v| (v.instance_location.as_str(), v.keyword));
        let status = if rej.reason == Reason::TooLarge && location.is_empty() {
            413
        } else {
            400
        };
        let code = match rej.reason {
            Reason::SchemaViolation => reason::BODY_INVALID,
            other => other.as_str(),
        };
        Deny::new(status, code, location).with_keyword(keyword)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use vigil_schema::{CompileOptions, Dialect};

    fn media(
        key: &str,
        validator: Option<Arc<Validator>>,
        form: Option<Vec<(String, Shape)>>,
    ) -> Media {
        Media {
            key: key.into(),
            validator,
            form,
        }
    }

    fn body(required: bool) -> Body {
        let schema = json!({"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "id": {"type": "integer", "readOnly": true}}});
        let v =
            Validator::compile(&schema, Dialect::OpenApi30, &CompileOptions::default()).unwrap();
        let v = Some(Arc::new(v));
        Body {
            required,
            media: vec![
                media("application/json", v.clone(), None),
                media("application/*+json", v.clone(), None),
                media("text/*", None, None),
                media(FORM, v, Some(Vec::new())),
            ],
        }
    }

    fn run(b: Option<&Body>, ct: Option<&str>, data: &str) -> Result<(), Deny> {
        check(b, ct, &mut data.as_bytes().to_vec(), &Limits::default())
    }

    #[test]
    fn content_types_match_ignoring_parameters() {
        let b = body(true);
        assert!(
            run(
                Some(&b),
                Some("application/json; charset=utf-8"),
                r#"{"name":"a"}"#
            )
            .is_ok()
        );
        assert!(run(Some(&b), Some("Application/JSON"), r#"{"name":"a"}"#).is_ok());
        assert!(run(Some(&b), Some("text/plain"), "anything").is_ok());
        let e = run(Some(&b), Some("application/merge-patch+json"), "{}").unwrap_err();
        assert_eq!(
            (e.status, e.reason, e.keyword.as_deref()),
            (400, "body_invalid", Some("required"))
        );
        for ct in [Some("application/xml"), Some("json"), None] {
            let e = run(Some(&b), ct, "<a/>").unwrap_err();
            assert_eq!((e.status, e.reason), (415, "unsupported_media_type"));
        }
        let e = run(None, Some("application/json"), "{}").unwrap_err();
        assert_eq!(e.status, 415);
    }

    #[test]
    fn form_bodies_are_validated_too() {
        let b = body(true);
        assert!(run(Some(&b), Some(FORM), "name=ann").is_ok());
        let e = run(Some(&b), Some(FORM), "nom=ann").unwrap_err();
        assert_eq!(
            (e.status, e.reason, e.keyword.as_deref()),
            (400, "body_invalid", Some("required"))
        );
        let e = run(Some(&b), Some(FORM), "name=ann&id=4").unwrap_err();
        assert_eq!(e.reason, "read_only_property");
    }

    #[test]
    fn empty_bodies_follow_required() {
        let e = run(Some(&body(true)), Some("application/json"), "").unwrap_err();
        assert_eq!((e.status, e.reason), (400, "body_missing"));
        assert!(run(Some(&body(false)), None, "").is_ok());
        assert!(run(None, None, "").is_ok());
    }

    #[test]
    fn body_errors_keep_schema_reason_codes() {
        let b = body(true);
        let cases = [
            (r#"{"name": 1}"#, "body_invalid", "/name"),
            (r#"{"name": "a", "id": 3}"#, "read_only_property", "/id"),
            (r#"{"name": "a""#, "malformed_json", ""),
            (r#"{"name": "a", "name": "b"}"#, "duplicate_key", "/name"),
        ];
        for (data, code, at) in cases {
            let e = run(Some(&b), Some("application/json"), data).unwrap_err();
            assert_eq!(
                (e.status, e.reason, e.location.as_str()),
                (400, code, at),
                "{data}"
            );
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let e = run(Some(&b), Some("application/json"), &deep).unwrap_err();
        assert_eq!(e.reason, "too_deep");
        let small = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let e = check(
            Some(&b),
            Some("application/json"),
            &mut b"{\"name\":\"a\"}".to_vec(),
            &small,
        )
        .unwrap_err();
        assert_eq!((e.status, e.reason), (413, "too_large"));
    }
}
