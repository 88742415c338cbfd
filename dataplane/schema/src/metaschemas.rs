//! The dialects' own metaschemas, embedded so that `$ref` to them resolves without fetching
//! anything, and the vocabularies a custom metaschema (`$schema` naming a supplied document)
//! turns on or off.

use std::sync::OnceLock;

use serde_json::Value;

use crate::options::Dialect;
use crate::uri;

/// (absolute URI without fragment, document) of every embedded metaschema. The files are the
/// published specification documents, unmodified.
const SOURCES: &[(&str, &str)] = &[
    (
        "http://json-schema.org/draft-04/schema",
        include_str!("../metaschemas/draft4.json"),
    ),
    (
        "http://json-schema.org/draft-07/schema",
        include_str!("../metaschemas/draft7.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/schema",
        include_str!("../metaschemas/draft2020-12/schema.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/core",
        include_str!("../metaschemas/draft2020-12/meta/core.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/applicator",
        include_str!("../metaschemas/draft2020-12/meta/applicator.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/unevaluated",
        include_str!("../metaschemas/draft2020-12/meta/unevaluated.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/validation",
        include_str!("../metaschemas/draft2020-12/meta/validation.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/meta-data",
        include_str!("../metaschemas/draft2020-12/meta/meta-data.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/format-annotation",
        include_str!("../metaschemas/draft2020-12/meta/format-annotation.json"),
    ),
    (
        "https://json-schema.org/draft/2020-12/meta/content",
        include_str!("../metaschemas/draft2020-12/meta/content.json"),
    ),
];

fn parsed() -> &'static [(&'static str, Value)] {
    static DOCS: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|(u, text)| Some((*u, serde_json::from_str(text).ok()?)))
            .collect()
    })
}

/// Whether an absolute URI (no fragment) belongs to the metaschema family of dialect `d`: a
/// 2020-12 schema may reference the 2020-12 documents, a draft 7 schema the draft 7 one.
fn family(u: &str, d: Dialect) -> bool {
    match d {
        Dialect::Draft4 => u == "http://json-schema.org/draft-04/schema",
        Dialect::Draft7 => u == "http://json-schema.org/draft-07/schema",
        Dialect::Draft2020_12 | Dialect::OpenApi31 => {
            u.starts_with("https://json-schema.org/draft/2020-12/")
        }
        Dialect::OpenApi30 => false,
    }
}

/// The embedded metaschema with this absolute URI (fragment ignored), if dialect `d` may use it.
pub(crate) fn builtin(u: &str, d: Dialect) -> Option<(&'static str, &'static Value)> {
    let (u, _) = uri::split_fragment(u);
    if !family(u, d) {
        return None;
    }
    parsed().iter().find(|(k, _)| *k == u).map(|(k, v)| (*k, v))
}

/// Keyword families a metaschema's `$vocabulary` can leave out, as bits.
pub(crate) mod vocab {
    pub(crate) const APPLICATOR: u8 = 1;
    pub(crate) const UNEVALUATED: u8 = 2;
    pub(crate) const VALIDATION: u8 = 4;
}

const VOCAB_PREFIX: &str = "https://json-schema.org/draft/2020-12/vocab/";

/// The keyword families a 2020-12 custom metaschema turns off (bits of [`vocab`]), or the URI of
/// a required vocabulary this validator does not know (which must not be ignored).
pub(crate) fn vocabularies_off(meta: &Value) -> Result<u8, String> {
    let Some(Value::Object(vocabs)) = meta.get("$vocabulary") else {
        return Ok(0);
    };
    let mut on = 0u8;
    for (u, required) in vocabs {
        on |= match u.strip_prefix(VOCAB_PREFIX) {
            Some("applicator") => vocab::APPLICATOR,
            Some("unevaluated") => vocab::UNEVALUATED,
            Some("validation") => vocab::VALIDATION,
            Some("core" | "meta-data" | "format-annotation" | "content") => 0,
            _ if *required == Value::Bool(true) => return Err(u.clone()),
            _ => 0,
        };
    }
    Ok(!on & (vocab::APPLICATOR | vocab::UNEVALUATED | vocab::VALIDATION))
}

/// The family (bit of [`vocab`]) a 2020-12 keyword belongs to, 0 for core and annotations.
pub(crate) fn family_of(key: &str) -> u8 {
    match key {
        "prefixItems"
        | "items"
        | "contains"
        | "additionalProperties"
        | "properties"
        | "patternProperties"
        | "dependentSchemas"
        | "propertyNames"
        | "if"
        | "then"
        | "else"
        | "allOf"
        | "anyOf"
        | "oneOf"
        | "not" => vocab::APPLICATOR,
        "unevaluatedItems" | "unevaluatedProperties" => vocab::UNEVALUATED,
        "type" | "const" | "enum" | "multipleOf" | "maximum" | "exclusiveMaximum" | "minimum"
        | "exclusiveMinimum" | "maxLength" | "minLength" | "pattern" | "maxItems" | "minItems"
        | "uniqueItems" | "maxContains" | "minContains" | "maxProperties" | "minProperties"
        | "required" | "dependentRequired" => vocab::VALIDATION,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_document_parses_and_names_itself() {
        assert_eq!(parsed().len(), SOURCES.len());
        for (u, doc) in parsed() {
            let id = doc
                .get("$id")
                .or_else(|| doc.get("id"))
                .and_then(Value::as_str);
            assert_eq!(id.map(|i| uri::split_fragment(i).0), Some(*u));
        }
    }

    #[test]
    fn metaschemas_are_offered_to_their_own_dialect_only() {
        let u = "https://json-schema.org/draft/2020-12/meta/core#";
        assert!(builtin(u, Dialect::Draft2020_12).is_some());
        assert!(builtin(u, Dialect::Draft7).is_none());
        assert!(builtin("http://json-schema.org/draft-07/schema#", Dialect::Draft7).is_some());
        assert!(builtin("http://json-schema.org/draft-06/schema#", Dialect::Draft7).is_none());
    }

    #[test]
    fn vocabularies() {
        let no_validation = json!({"$vocabulary": {
            "https://json-schema.org/draft/2020-12/vocab/core": true,
            "https://json-schema.org/draft/2020-12/vocab/applicator": true}});
        assert_eq!(
            vocabularies_off(&no_validation),
            Ok(vocab::UNEVALUATED | vocab::VALIDATION)
        );
        let optional = json!({"$vocabulary": {"http://example.com/vocab/x": false}});
        assert_eq!(
            vocabularies_off(&optional).map(|v| v & vocab::APPLICATOR),
            Ok(1)
        );
        let required = json!({"$vocabulary": {"http://example.com/vocab/x": true}});
        assert_eq!(
            vocabularies_off(&required),
            Err("http://example.com/vocab/x".to_string())
        );
        assert_eq!(vocabularies_off(&json!({})), Ok(0));
        assert_eq!(family_of("minimum"), vocab::VALIDATION);
        assert_eq!(family_of("$ref"), 0);
    }

    #[test]
    fn schemas_validate_against_the_embedded_metaschema() {
        use crate::{CompileOptions, Limits, Validator};
        let meta = json!({"$ref": "https://json-schema.org/draft/2020-12/schema"});
        let v =
            Validator::compile(&meta, Dialect::Draft2020_12, &CompileOptions::default()).unwrap();
        let good = br#"{"type": "object", "properties": {"a": {"minimum": 1}}}"#;
        assert!(
            v.validate_bytes(&mut good.to_vec(), &Limits::default())
                .is_ok()
        );
        let bad = br#"{"type": "object", "properties": {"a": {"minimum": "one"}}}"#;
        let r = v
            .validate_bytes(&mut bad.to_vec(), &Limits::default())
            .unwrap_err();
        assert_eq!(r.violations[0].instance_location, "/properties/a/minimum");
        // Draft 7 has its own metaschema, and cannot reach 2020-12's.
        let e = Validator::compile(&meta, Dialect::Draft7, &CompileOptions::default());
        assert!(e.is_err());
    }
}
