//! Dialects, compile options and request limits.
//!
//! Option structs are deserialized from the gateway's policy file, so they reject unknown keys:
//! a typo must be an error naming the key, never a silent default.

use serde::{Deserialize, Serialize};

/// The schema language a document is written in. It decides which keywords exist and how the
/// ones that changed between drafts (`items`, `exclusiveMaximum`, `$ref` siblings) behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dialect {
    /// JSON Schema draft 4: boolean `exclusiveMinimum`/`exclusiveMaximum`, `id`, `dependencies`.
    Draft4,
    /// JSON Schema draft 7: `const`, `contains`, `if`/`then`/`else`, boolean schemas.
    Draft7,
    /// JSON Schema 2020-12: `prefixItems`, `$defs`, `$anchor`, `dependentRequired`.
    #[serde(rename = "draft2020-12")]
    Draft2020_12,
    /// OpenAPI 3.0 Schema Object: draft-4-like plus `nullable`, `readOnly`, `writeOnly`,
    /// `discriminator`, `xml`, `externalDocs`, `example` and `x-` extensions.
    OpenApi30,
    /// OpenAPI 3.1: JSON Schema 2020-12 plus the OpenAPI vocabulary and `x-` extensions.
    OpenApi31,
}

impl Dialect {
    /// Draft 4 semantics for `exclusiveMinimum`/`exclusiveMaximum` (booleans modifying
    /// `minimum`/`maximum`).
    pub(crate) fn boolean_exclusive(self) -> bool {
        matches!(self, Dialect::Draft4 | Dialect::OpenApi30)
    }

    /// `$ref` replaces every sibling keyword (draft 4, draft 7, OpenAPI 3.0).
    pub(crate) fn ref_overrides_siblings(self) -> bool {
        matches!(self, Dialect::Draft4 | Dialect::Draft7 | Dialect::OpenApi30)
    }

    /// 2020-12 vocabulary (`prefixItems`, `$defs`, `$anchor`, `dependentRequired`, ...).
    pub(crate) fn is_2020(self) -> bool {
        matches!(self, Dialect::Draft2020_12 | Dialect::OpenApi31)
    }

    /// Whether `true` / `false` are schemas.
    pub(crate) fn boolean_schemas(self) -> bool {
        !matches!(self, Dialect::Draft4 | Dialect::OpenApi30)
    }

    /// OpenAPI dialects allow `x-` extensions and a few annotation keywords.
    pub(crate) fn is_openapi(self) -> bool {
        matches!(self, Dialect::OpenApi30 | Dialect::OpenApi31)
    }

    /// The identifier keyword (`id` in draft 4, `$id` later; OpenAPI 3.0 has none).
    pub(crate) fn id_keyword(self) -> Option<&'static str> {
        match self {
            Dialect::Draft4 => Some("id"),
            Dialect::OpenApi30 => None,
            _ => Some("$id"),
        }
    }
}

/// How a schema document is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompileOptions {
    /// Every object schema (one with `properties`, `patternProperties` or `type: object`) rejects
    /// properties it does not declare, unless it says `additionalProperties` itself.
    pub strict_objects: bool,
    /// A request that carries a property whose schema says `readOnly: true` is rejected
    /// (`read_only_property`): clients must not set server-owned fields (mass assignment).
    pub reject_read_only: bool,
    /// `format` is asserted (a gateway must). When false it is an annotation, as JSON Schema
    /// 2020-12 specifies by default, and unknown format names are accepted.
    pub assert_formats: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            strict_objects: false,
            reject_read_only: true,
            assert_formats: true,
        }
    }
}

/// Bounds on a request body, checked before and while it is validated. Each bound turns a
/// hostile body into a rejection with its own reason instead of unbounded work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest body in bytes (`too_large`).
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects (`too_deep`). The validator recurses once per
    /// level the schema descends, so this also bounds its stack use; at most 1024.
    pub max_depth: usize,
    /// Longest string (key or value) in bytes after unescaping (`too_large`).
    pub max_string_bytes: usize,
    /// Most elements in one array (`too_large`).
    pub max_array_len: usize,
    /// Most members in one object (`too_large`).
    pub max_object_members: usize,
    /// Most violations reported for one request (the rest are counted, not listed).
    pub max_errors: usize,
}

/// Hard ceiling for [`Limits::max_depth`]: deeper limits could exhaust a worker's stack.
pub const MAX_DEPTH_CEILING: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_string_bytes: 1024 * 1024,
            max_array_len: 1_000_000,
            max_object_members: 10_000,
            max_errors: 16,
        }
    }
}

impl Limits {
    /// The depth actually enforced: the configured one, capped at [`MAX_DEPTH_CEILING`].
    pub(crate) fn depth(&self) -> usize {
        self.max_depth.clamp(1, MAX_DEPTH_CEILING)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn limits_reject_unknown_keys() {
        let err = serde_json::from_str::<Limits>(r#"{"max_dept": 3}"#).unwrap_err();
        assert!(err.to_string().contains("max_dept"), "{err}");
    }

    #[test]
    fn options_fill_defaults() {
        let o: CompileOptions = serde_json::from_str(r#"{"strict_objects": true}"#).unwrap();
        assert!(o.strict_objects);
        assert!(o.reject_read_only);
        assert!(o.assert_formats);
    }

    #[test]
    fn dialect_names() {
        let d: Dialect = serde_json::from_str(r#""draft2020-12""#).unwrap();
        assert_eq!(d, Dialect::Draft2020_12);
        assert!(Dialect::OpenApi30.boolean_exclusive());
        assert!(!Dialect::OpenApi31.boolean_exclusive());
    }

    #[test]
    fn depth_is_capped() {
        let l = Limits {
            max_depth: 1_000_000,
            ..Limits::default()
        };
        assert_eq!(l.depth(), MAX_DEPTH_CEILING);
    }
}
