//! Request bodies: the content type must be one the operation describes, and JSON bodies are
//! validated by vigil-schema on the caller's buffer (parsed in place, no copy).

use std::borrow::Cow;
use std::sync::Arc;

use vigil_schema::{Limits, Reason, Validator};

use crate::convert::Shape;
use crate::deny::{Deny, reason};
use crate::form::{FORM, form_value};

/// One media type (or range) of a request body.
#[derive(Debug)]
pub(crate) struct Media {
    /// As written in the description, lower-case (`application/json`, `application/*`).
    key: String,
    /// Where `key`'s type ends and its subtype (without parameters) starts and ends: split
    /// once here rather than for every request. `None` without a `/`.
    range: Option<(usize, usize, usize)>,
    pub validator: Option<Arc<Validator>>,
    /// For form bodies with a schema: the shapes of its fields.
    pub form: Option<Vec<(String, Shape)>>,
}

impl Media {
    pub(crate) fn new(
        key: String,
        validator: Option<Arc<Validator>>,
        form: Option<Vec<(String, Shape)>>,
    ) -> Self {
        let range = key.find('/').map(|slash| {
            let rest = &key[slash + 1..];
            let sub = rest.split(';').next().unwrap_or(rest);
            let start = slash + 1 + (sub.len() - sub.trim_start().len());
            (slash, start, slash + 1 + sub.trim_end().len())
        });
        Self {
            key,
            range,
            validator,
            form,
        }
    }

    /// The range's type and subtype (`application`, `*+json`). A subtype of only spaces has
    /// its start past its end: it is empty.
    fn range(&self) -> Option<(&str, &str)> {
        let (slash, start, end) = self.range?;
        Some((&self.key[..slash], self.key.get(start..end).unwrap_or("")))
    }
}

/// A compiled Request Body Object.
#[derive(Debug)]
pub(crate) struct Body {
    pub required: bool,
    pub media: Vec<Media>,
}

/// `type/subtype` of a content type, lower-case, without parameters (`; charset=utf-8`).
struct Essence<'a> {
    /// Borrowed from the header when it is lower-case already, as it nearly always is.
    text: Cow<'a, str>,
    slash: usize,
}

impl Essence<'_> {
    fn type_(&self) -> &str {
        &self.text[..self.slash]
    }

    fn subtype(&self) -> &str {
        &self.text[self.slash + 1..]
    }
}

fn essence(ct: &str) -> Option<Essence<'_>> {
    let ct = ct.split(';').next()?.trim();
    let text = if ct.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(ct.to_ascii_lowercase())
    } else {
        Cow::Borrowed(ct)
    };
    let slash = text.find('/')?;
    let token = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    let e = Essence { text, slash };
    (token(e.type_()) && token(e.subtype())).then_some(e)
}

/// Whether a request content type carries JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(t: &str, s: &str) -> bool {
    (t == "application" && s == "json") || s.ends_with("+json")
}

/// How well a described media range covers a request's type: higher is more specific.
fn score(range: &Media, t: &str, s: &str) -> Option<u8> {
    let (rt, rs) = range.range()?;
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
            .filter_map(|m| Some((score(m, t, s)?, m)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, m)| m)
    }
}

/// How a selected media type's body is checked.
enum Reading<'b> {
    /// Parsed and validated as JSON.
    Json(&'b Validator),
    /// Read as a form into an object with these fields, then validated.
    Form(&'b Validator, &'b [(String, Shape)]),
    /// Not read: accepted once the content type matches.
    Opaque,
}

/// The described media type a request's content type selects, and how its body is read:
/// 415 `unsupported_media_type` when none does. The body itself is not looked at.
fn select<'b>(spec: Option<&'b Body>, content_type: Option<&str>) -> Result<Reading<'b>, Deny> {
    let unsupported = || Deny::new(415, reason::UNSUPPORTED_MEDIA_TYPE, "header.content-type");
    let Some(spec) = spec else {
        return Err(unsupported().with_keyword("requestBody"));
    };
    let Some(ct) = content_type else {
        // RFC 9110 §8.3: without a Content-Type the recipient may assume
        // application/octet-stream. A description that takes any bytes unchecked there (`*/*`,
        // `application/*`, the type itself, without a schema) accepts the body; one with a
        // schema to enforce cannot be applied to bytes of unknown type, and upstreams that
        // sniff would parse what was never validated.
        return match spec.media_for("application", "octet-stream") {
            Some(m) if m.validator.is_none() => Ok(Reading::Opaque),
            _ => Err(unsupported().with_keyword("content-type")),
        };
    };
    let Some(e) = essence(ct) else {
        return Err(unsupported().with_keyword("content-type"));
    };
    let (t, s) = (e.type_(), e.subtype());
    let Some(media) = spec.media_for(t, s) else {
        return Err(unsupported().with_keyword("content"));
    };
    Ok(match (media.validator.as_deref(), &media.form) {
        (Some(v), Some(fields)) if FORM.split_once('/') == Some((t, s)) => Reading::Form(v, fields),
        (Some(v), _) if is_json(t, s) => Reading::Json(v),
        _ => Reading::Opaque,
    })
}

/// The answer for a request without a body.
fn empty(spec: Option<&Body>) -> Result<(), Deny> {
    match spec {
        Some(b) if b.required => {
            Err(Deny::new(400, reason::BODY_MISSING, "").with_keyword("requestBody"))
        }
        _ => Ok(()),
    }
}

/// Decides what can be decided before the body is read: 400 `body_missing` for a required
/// body that is absent, 415 for a content type the operation does not take.
pub(crate) fn check_content_type(
    spec: Option<&Body>,
    content_type: Option<&str>,
    body_present: bool,
) -> Result<(), Deny> {
    if !body_present {
        return empty(spec);
    }
    select(spec, content_type).map(|_| ())
}

/// Whether [`check`] reads the body for this content type (JSON or form with a schema).
pub(crate) fn reads_body(spec: Option<&Body>, content_type: Option<&str>) -> bool {
    matches!(
        select(spec, content_type),
        Ok(Reading::Json(_) | Reading::Form(..))
    )
}

/// Checks a body against the operation's request body (`None`: the operation describes none).
pub(crate) fn check(
    spec: Option<&Body>,
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<(), Deny> {
    if body.is_empty() {
        return empty(spec);
    }
    let result = match select(spec, content_type)? {
        Reading::Opaque => return Ok(()),
        Reading::Form(validator, fields) => {
            if body.len() > limits.max_body_bytes {
                return Err(
                    Deny::new(413, Reason::TooLarge.as_str(), "").with_keyword("maxBodyBytes")
                );
            }
            validator.validate_value(&form_value(body, fields)?)
        }
        Reading::Json(validator) => validator.validate_slice(body, limits),
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
        Media::new(key.into(), validator, form)
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
        check(b, ct, data.as_bytes(), &Limits::default())
    }

    #[test]
    fn a_described_range_selects_by_its_type_and_subtype_without_its_parameters() {
        let selects = |key: &str, ct: &str| {
            let b = Body {
                required: true,
                media: vec![media(key, None, None)],
            };
            run(Some(&b), Some(ct), "{}").is_ok()
        };
        assert!(selects(
            "application/json ; charset=utf-8",
            "application/json"
        ));
        assert!(!selects("application/json ; charset=utf-8", "text/json"));
        assert!(selects("application/ *+json;q=1", "application/vnd.x+json"));
        assert!(!selects("application/ *+json;q=1", "application/xml"));
        assert!(selects("*/*", "image/png"));
        // A range without a subtype, or without a slash, selects nothing.
        assert!(!selects("text/ ;x", "text/plain"));
        assert!(!selects("json", "application/json"));
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
    fn a_body_without_content_type_is_refused_unless_any_bytes_are_taken() {
        let json_only = Body {
            required: false,
            media: vec![media(
                "application/json",
                body(true).media[0].validator.clone(),
                None,
            )],
        };
        let e = run(Some(&json_only), None, r#"{"name": "a"}"#).unwrap_err();
        assert_eq!(
            (
                e.status,
                e.reason,
                e.location.as_str(),
                e.keyword.as_deref()
            ),
            (
                415,
                "unsupported_media_type",
                "header.content-type",
                Some("content-type")
            )
        );
        // `*/*` (or `application/*`, `application/octet-stream`) without a schema: any bytes.
        for key in ["*/*", "application/*", "application/octet-stream"] {
            let any = Body {
                required: false,
                media: vec![
                    media("application/json", None, None),
                    media(key, None, None),
                ],
            };
            assert!(run(Some(&any), None, "anything").is_ok(), "{key}");
        }
        // A schema there could not be applied to bytes of unknown type.
        let schema = body(true).media[0].validator.clone();
        let checked = Body {
            required: false,
            media: vec![media("*/*", schema, None)],
        };
        assert_eq!(run(Some(&checked), None, "{}").unwrap_err().status, 415);
        assert!(run(Some(&checked), Some("text/plain"), "{}").is_ok());
    }

    #[test]
    fn content_type_is_decided_without_the_body() {
        let b = body(true);
        let ct = |spec, ct, present| check_content_type(spec, ct, present);
        assert!(ct(Some(&b), Some("application/json"), true).is_ok());
        assert!(ct(Some(&b), Some("text/csv"), true).is_ok());
        for (spec, c, keyword) in [
            (Some(&b), None, "content-type"),
            (Some(&b), Some("json"), "content-type"),
            (Some(&b), Some("application/xml"), "content"),
            (None, Some("application/json"), "requestBody"),
        ] {
            let e = ct(spec, c, true).unwrap_err();
            assert_eq!(
                (e.status, e.reason, e.keyword.as_deref()),
                (415, "unsupported_media_type", Some(keyword)),
                "{c:?}"
            );
        }
        let e = ct(Some(&b), None, false).unwrap_err();
        assert_eq!((e.status, e.reason), (400, "body_missing"));
        let optional = body(false);
        assert!(ct(Some(&optional), Some("application/xml"), false).is_ok());
        assert!(ct(None, None, false).is_ok());
        // Whether the body is read at all: JSON and forms with a schema.
        let reads = |c| reads_body(Some(&b), c);
        assert!(reads(Some("application/json; charset=utf-8")));
        assert!(reads(Some("application/merge-patch+json")));
        assert!(reads(Some(FORM)));
        assert!(!reads(Some("text/plain")));
        assert!(!reads(Some("application/xml")));
        assert!(!reads(None));
        assert!(!reads_body(None, Some("application/json")));
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

    /// Anything that is not JSON is `malformed_json`; only a real number that does not fit is
    /// `number_out_of_range`.
    #[test]
    fn bodies_that_are_not_json_are_malformed() {
        let b = body(true);
        let cases = [
            ("abc", "malformed_json"),
            ("-", "malformed_json"),
            ("{", "malformed_json"),
            ("tru", "malformed_json"),
            ("\"x", "malformed_json"),
            ("12abc", "malformed_json"),
            ("0x1F", "malformed_json"),
            ("1/2", "malformed_json"),
            ("{\"name\": 5e5x}", "malformed_json"),
            ("1e999999", "number_out_of_range"),
            ("{\"name\": \"a\", \"n\": -1e999}", "number_out_of_range"),
        ];
        for (data, code) in cases {
            let e = run(Some(&b), Some("application/json"), data).unwrap_err();
            assert_eq!(
                (e.status, e.reason, e.location.as_str()),
                (400, code, ""),
                "{data}"
            );
        }
        let mut seed: u64 = 0x0123_4567_89AB_CDEF;
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..16 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push((seed >> 32) as u8);
            }
            let e = check(
                Some(&b),
                Some("application/json"),
                &data,
                &Limits::default(),
            );
            let reason = e.unwrap_err().reason;
            assert!(
                ["malformed_json", "invalid_utf8"].contains(&reason),
                "{data:?}: {reason}"
            );
        }
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
            b"{\"name\":\"a\"}",
            &small,
        )
        .unwrap_err();
        assert_eq!((e.status, e.reason), (413, "too_large"));
    }
}
