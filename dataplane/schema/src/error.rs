//! Compile errors (for the operator who wrote the policy) and rejections (for the client whose
//! request failed). A rejection never carries the submitted value: only locations, keyword names
//! and a stable reason code that the gateway puts in its 400 body, audit log and metrics.

use std::fmt;

use serde::Serialize;

/// A keyword the validator refuses to run, with where the document uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsupportedKeyword {
    /// The keyword as written (`unevaluatedProperties`, `$dynamicRef`, `$ref` for remote refs).
    pub keyword: String,
    /// JSON pointer to the keyword inside the schema document.
    pub location: String,
    /// Why it is refused, in a few words.
    pub why: &'static str,
}

impl fmt::Display for UnsupportedKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` at {} ({})",
            self.keyword,
            pointer_or_root(&self.location),
            self.why
        )
    }
}

/// Why a schema document cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The document uses keywords this validator does not implement; they are never silently
    /// ignored, because a gateway that skipped a constraint would pass what the API forbids.
    #[error(
        "schema uses {count} unsupported keyword(s), first {first}; remove them or express the \
         constraint with supported keywords (see docs/schema.md)",
        count = all.len()
    )]
    Unsupported {
        /// The first one found.
        first: UnsupportedKeyword,
        /// All of them, in document order.
        all: Vec<UnsupportedKeyword>,
    },
    /// A keyword's value has the wrong shape (e.g. `minLength: "3"`).
    #[error("invalid `{keyword}` at {location}: expected {expected}; fix the schema document")]
    InvalidKeyword {
        /// The keyword.
        keyword: String,
        /// JSON pointer to it.
        location: String,
        /// What the keyword's value must be.
        expected: &'static str,
    },
    /// A `pattern` or `patternProperties` regex the engine cannot compile (ECMA-262 features
    /// such as look-around or back-references are not linear-time and are refused).
    #[error(
        "pattern at {location} cannot be compiled ({detail}); rewrite it without look-around \
             or back-references"
    )]
    InvalidPattern {
        /// JSON pointer to the pattern.
        location: String,
        /// The engine's message.
        detail: String,
    },
    /// `format` names a format this validator cannot assert.
    #[error(
        "unknown format `{format}` at {location}; use a supported format or turn off \
             format assertion"
    )]
    UnknownFormat {
        /// The format name.
        format: String,
        /// JSON pointer to the keyword.
        location: String,
    },
    /// A `$ref` points at nothing in the document.
    #[error(
        "`$ref` `{reference}` at {location} does not resolve inside the document; fix the \
             reference"
    )]
    UnresolvedRef {
        /// The reference as written.
        reference: String,
        /// JSON pointer to the `$ref`.
        location: String,
    },
    /// References that loop without consuming any input (`{"$ref": "#"}`): validation would
    /// never end.
    #[error(
        "schema at {location} refers to itself without descending into the instance; \
             break the reference cycle"
    )]
    InfiniteRecursion {
        /// JSON pointer to a schema on the cycle.
        location: String,
    },
    /// The pointer given to [`crate::Validator::compile_at`] does not name a value.
    #[error("no schema at {pointer} in the document; check the pointer")]
    NoSuchPointer {
        /// The pointer.
        pointer: String,
    },
}

impl CompileError {
    /// Keywords this document uses that the validator refuses (empty for other errors), for
    /// `vigilctl policy check`.
    pub fn unsupported_keywords(&self) -> &[UnsupportedKeyword] {
        match self {
            CompileError::Unsupported { all, .. } => all,
            _ => &[],
        }
    }
}

/// Stable machine codes for why a request body was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The body is valid JSON but violates the schema.
    SchemaViolation,
    /// The body sets a property the schema marks `readOnly`.
    ReadOnlyProperty,
    /// The body is not JSON.
    MalformedJson,
    /// The body is not UTF-8.
    InvalidUtf8,
    /// An object repeats a key.
    DuplicateKey,
    /// Arrays and objects nest deeper than the limit.
    TooDeep,
    /// A number does not fit a 64-bit integer or a finite double.
    NumberOutOfRange,
    /// The body, a string, an array or an object exceeds its limit.
    TooLarge,
}

impl Reason {
    /// The code as it appears in responses, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SchemaViolation => "schema_violation",
            Reason::ReadOnlyProperty => "read_only_property",
            Reason::MalformedJson => "malformed_json",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::DuplicateKey => "duplicate_key",
            Reason::TooDeep => "too_deep",
            Reason::NumberOutOfRange => "number_out_of_range",
            Reason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a request. Carries locations, never the submitted value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Why, as a stable code.
    pub reason: Reason,
    /// JSON pointer into the request body (`""` is the whole body), cut to
    /// [`MAX_LOCATION_BYTES`] (ending in `…` when cut).
    pub instance_location: String,
    /// JSON pointer to the failing keyword in the schema document (empty for parse errors).
    pub keyword_location: String,
    /// The failing keyword (`maxLength`, `required`, ...) or what the parser refused.
    pub keyword: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: `{}`",
            self.reason,
            pointer_or_root(&self.instance_location),
            self.keyword
        )?;
        if !self.keyword_location.is_empty() {
            write!(f, " (schema {})", self.keyword_location)?;
        }
        Ok(())
    }
}

/// Why a request body was refused: the reason of the first violation, the first
/// [`crate::Limits::max_errors`] violations and whether validation stopped there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("request rejected: {reason} ({count} violation(s){more})",
    count = violations.len(), more = if *truncated { ", more not listed" } else { "" })]
pub struct Rejection {
    /// Stable code for the response body.
    pub reason: Reason,
    /// The violations found, in document order, at least one.
    pub violations: Vec<Violation>,
    /// True when validation stopped at [`crate::Limits::max_errors`] violations: there may be
    /// more than are listed.
    pub truncated: bool,
}

impl Rejection {
    /// A rejection with one violation that has no schema location (parser and limit errors).
    pub(crate) fn single(reason: Reason, instance_location: String, keyword: &'static str) -> Self {
        Self {
            reason,
            violations: vec![Violation {
                reason,
                instance_location,
                keyword_location: String::new(),
                keyword,
            }],
            truncated: false,
        }
    }
}

/// Longest instance location reported. Locations contain the client's own key names, which may
/// be up to `max_string_bytes` long: a rejection must not carry (and log) that much of it.
pub const MAX_LOCATION_BYTES: usize = 256;

/// Cuts a location to [`MAX_LOCATION_BYTES`] on a character boundary, marking the cut with `…`.
pub(crate) fn cap_location(mut p: String) -> String {
    if p.len() > MAX_LOCATION_BYTES {
        let mut end = MAX_LOCATION_BYTES;
        while !p.is_char_boundary(end) {
            end -= 1;
        }
        p.truncate(end);
        p.push('…');
    }
    p
}

fn pointer_or_root(p: &str) -> &str {
    if p.is_empty() { "the root" } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_stable() {
        assert_eq!(Reason::DuplicateKey.as_str(), "duplicate_key");
        assert_eq!(
            serde_json::to_string(&Reason::NumberOutOfRange)
                .ok()
                .as_deref(),
            Some("\"number_out_of_range\"")
        );
    }

    #[test]
    fn long_locations_are_cut() {
        assert_eq!(cap_location("/a/b".into()), "/a/b");
        let long = format!("/{}", "é".repeat(300));
        let cut = cap_location(long);
        assert!(cut.len() <= MAX_LOCATION_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn rejection_message_counts() {
        let r = Rejection::single(Reason::TooDeep, "/a/0".into(), "nesting");
        assert_eq!(r.to_string(), "request rejected: too_deep (1 violation(s))");
        assert_eq!(r.violations[0].to_string(), "too_deep at /a/0: `nesting`");
    }
}
