//! JSON Schema validation for request bodies.
//!
//! A schema (JSON Schema draft 4, draft 7, 2020-12, or an OpenAPI 3.0/3.1 Schema Object) is
//! compiled once into a [`Validator`]; each request body is then parsed with simd-json into a
//! flat tape and walked by the compiled tree, without building `serde_json` values. Hostile
//! bodies (bad UTF-8, duplicate keys, deep nesting, huge numbers, oversized strings/arrays/
//! objects) are refused with distinct [`Reason`] codes. Keywords the validator does not
//! implement make compilation fail with their names and locations; nothing is ignored
//! silently. See `docs/schema.md`.

mod bytes;
mod compile;
mod error;
mod evaluated;
mod format;
mod index;
mod keyword_values;
mod keywords;
mod metaschemas;
mod node;
mod number;
mod object_keywords;
mod options;
mod pattern;
mod pattern_shape;
mod prepass;
mod shortcut;
mod stream;
mod tree;
mod unique;
mod uri;
mod walk;
mod walk_applicators;
mod walk_object;

use std::fmt;

pub use error::{
    CompileError, MAX_LOCATION_BYTES, Reason, Rejection, UnsupportedKeyword, Violation,
};
pub use options::{CompileOptions, Dialect, Limits, MAX_DEPTH_CEILING};

/// Spare capacity [`Validator::validate_vec`] needs after a body to parse it where it is.
pub const BODY_PADDING: usize = simd_json::INPUT_PADDING;

use node::TapeNode;
use tree::Tree;
use walk::Walker;

/// A compiled schema. Immutable, `Send + Sync`: compile once, share behind an `Arc`.
pub struct Validator {
    tree: Tree,
    dialect: Dialect,
    /// How the fused pass checks this tree, when it can (see `stream`).
    fused: Option<stream::Plan>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("dialect", &self.dialect)
            .field("schemas", &self.tree.schemas.len())
            .finish()
    }
}

impl Validator {
    /// Compiles a whole schema document.
    pub fn compile(
        schema: &serde_json::Value,
        dialect: Dialect,
        options: &CompileOptions,
    ) -> Result<Validator, CompileError> {
        Self::compile_at(schema, "", dialect, options)
    }

    /// Compiles the schema at a JSON pointer inside a larger document (an OpenAPI description:
    /// `"/components/schemas/Pet"`), so that `$ref`s like `#/components/schemas/Tag` resolve
    /// against the whole document.
    pub fn compile_at(
        document: &serde_json::Value,
        pointer: &str,
        dialect: Dialect,
        options: &CompileOptions,
    ) -> Result<Validator, CompileError> {
        let tree = compile::compile_tree(document, pointer, dialect, options, &[])?;
        Ok(Self::new(tree, dialect))
    }

    /// Compiles a schema whose `$ref`s may point into other documents, given as (absolute
    /// URI, document) pairs. Nothing is fetched: a reference to a URI not listed is refused as
    /// unsupported. Violations inside a resource carry `uri#pointer` keyword locations.
    pub fn compile_with_resources(
        schema: &serde_json::Value,
        dialect: Dialect,
        options: &CompileOptions,
        resources: &[(&str, &serde_json::Value)],
    ) -> Result<Validator, CompileError> {
        let tree = compile::compile_tree(schema, "", dialect, options, resources)?;
        Ok(Self::new(tree, dialect))
    }

    fn new(tree: Tree, dialect: Dialect) -> Self {
        let fused = stream::plan(&tree);
        Validator {
            tree,
            dialect,
            fused,
        }
    }

    /// The dialect this validator was compiled for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Validates a request body. simd-json unescapes strings in place, so the buffer is
    /// scratch afterwards.
    pub fn validate_bytes(&self, body: &mut [u8], limits: &Limits) -> Result<(), Rejection> {
        if let Some(done) = self.validate_fused(body, limits) {
            return done;
        }
        self.validate_bytes_by_tape(body, limits)
    }

    /// The fused pass alone (see `stream`): `None` when this schema or this body needs the
    /// tape walk. For tests and benchmarks that compare the two paths.
    #[doc(hidden)]
    pub fn validate_fused(&self, body: &[u8], limits: &Limits) -> Option<Result<(), Rejection>> {
        let plan = self.fused.as_ref()?;
        if body.len() > limits.max_body_bytes {
            return None;
        }
        match stream::validate(&self.tree, plan, body, limits) {
            stream::Outcome::Done(r) => Some(r),
            stream::Outcome::Fallback => None,
        }
    }

    /// The tape walk alone: parse into a simd-json tape, check limits and duplicate keys, walk
    /// the tape. For tests and benchmarks that compare the two paths.
    #[doc(hidden)]
    pub fn validate_bytes_by_tape(
        &self,
        body: &mut [u8],
        limits: &Limits,
    ) -> Result<(), Rejection> {
        bytes::with_tape(body, limits, |tape| {
            Walker::new(&self.tree, limits.max_errors, limits.depth()).run(TapeNode(tape))
        })
    }

    /// Validates a request body the caller owns, parsing it in place: no copy of the body
    /// is made when the vector has [`BODY_PADDING`] bytes of spare capacity (otherwise it grows
    /// once). Same answers as [`Validator::validate_bytes`]; afterwards the vector has its
    /// original length and scratch content.
    pub fn validate_vec(&self, body: &mut Vec<u8>, limits: &Limits) -> Result<(), Rejection> {
        if let Some(done) = self.validate_fused(body, limits) {
            return done;
        }
        bytes::with_owned_tape(body, limits, |tape| {
            Walker::new(&self.tree, limits.max_errors, limits.depth()).run(TapeNode(tape))
        })
    }

    /// Validates a body the caller keeps as it is (a gateway forwards the body it checked): the
    /// fused pass reads it in place; only a body left to the tape walk is copied, since the
    /// tape parser writes into its input.
    pub fn validate_slice(&self, body: &[u8], limits: &Limits) -> Result<(), Rejection> {
        if let Some(done) = self.validate_fused(body, limits) {
            return done;
        }
        if body.len() > limits.max_body_bytes {
            return Err(Rejection::single(Reason::TooLarge, String::new(), "body"));
        }
        let mut owned = Vec::with_capacity(body.len() + BODY_PADDING);
        owned.extend_from_slice(body);
        bytes::with_owned_tape(&mut owned, limits, |tape| {
            Walker::new(&self.tree, limits.max_errors, limits.depth()).run(TapeNode(tape))
        })
    }

    /// Validates a value that is already parsed (query or path parameters after conversion),
    /// with the default [`Limits`] for error count and depth.
    pub fn validate_value(&self, value: &serde_json::Value) -> Result<(), Rejection> {
        let limits = Limits::default();
        Walker::new(&self.tree, limits.max_errors, limits.depth()).run(value)
    }
}

/// Keywords in `schema` that [`Validator::compile`] would refuse, for `vigilctl policy check`
/// (empty when the document compiles or fails for another reason).
pub fn unsupported_keywords(
    schema: &serde_json::Value,
    dialect: Dialect,
    options: &CompileOptions,
) -> Vec<UnsupportedKeyword> {
    match Validator::compile(schema, dialect, options) {
        Err(e) => e.unsupported_keywords().to_vec(),
        Ok(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn validator_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Validator>();
        let schema = serde_json::json!({"type": "object", "required": ["n"]});
        let v = Arc::new(
            Validator::compile(&schema, Dialect::Draft7, &CompileOptions::default()).unwrap(),
        );
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let v = Arc::clone(&v);
                std::thread::spawn(move || {
                    let mut good = format!("{{\"n\": {i}}}").into_bytes();
                    let mut bad = b"{}".to_vec();
                    (
                        v.validate_bytes(&mut good, &Limits::default()).is_ok(),
                        v.validate_bytes(&mut bad, &Limits::default()).is_err(),
                    )
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), (true, true));
        }
    }

    #[test]
    fn scratch_buffers_follow_the_depth_limit() {
        let v = Validator::compile(
            &serde_json::json!({}),
            Dialect::Draft7,
            &CompileOptions::default(),
        )
        .unwrap();
        let body = format!("{}{}", "[".repeat(10), "]".repeat(10));
        let shallow = Limits {
            max_depth: 5,
            ..Limits::default()
        };
        assert_eq!(
            v.validate_bytes(&mut body.clone().into_bytes(), &shallow)
                .unwrap_err()
                .reason,
            Reason::TooDeep
        );
        assert!(
            v.validate_bytes(&mut body.clone().into_bytes(), &Limits::default())
                .is_ok()
        );
        assert!(v.validate_bytes(&mut body.into_bytes(), &shallow).is_err());
    }
}
