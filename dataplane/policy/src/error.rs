//! Why a policy document cannot be loaded. Each error names the file or the JSON pointer at
//! fault and what to change: the reader is the operator who wrote the description.

use std::path::PathBuf;

use vigil_schema::UnsupportedKeyword;

/// A policy that cannot be loaded. The running policy (if any) stays in place.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file (or a file a `$ref` names) cannot be read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is neither valid JSON nor valid YAML.
    #[error("cannot parse {path} as {format}: {detail}; fix the syntax")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `JSON` or `YAML`.
        format: &'static str,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// The file is larger than a policy document may be.
    #[error(
        "{path} is {size} bytes, over the {limit}-byte limit for a policy document; split it \
         into files beside it, referenced with `$ref` (each has its own limit)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this much, when it grew while being read).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The path names something other than a regular file (a FIFO would block the load, a
    /// device such as `/dev/zero` never ends); it is not read.
    #[error("{path} is a {kind}, not a regular file; point the policy at the description file")]
    NotAFile {
        /// The path as given (or as a `$ref` resolved it).
        path: PathBuf,
        /// What it is: `FIFO`, `character device`, `directory`, ...
        kind: &'static str,
    },
    /// The document nests collections deeper than any description needs.
    #[error(
        "{path} nests more than {limit} levels deep at line {line}; no OpenAPI description \
         needs that many: check that this is the right file"
    )]
    TooDeep {
        /// The file (`<policy>` for text).
        path: PathBuf,
        /// The line where the limit is passed.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// A `$ref` that the loader refuses or cannot follow.
    #[error("`$ref` `{reference}` at {pointer} in {file}: {reason}")]
    Ref {
        /// The file holding the reference.
        file: PathBuf,
        /// JSON pointer to the `$ref` in that file.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it is refused, and what to do.
        reason: String,
    },
    /// The document is not an OpenAPI description this gateway can enforce.
    #[error("invalid policy at {pointer}: {reason}")]
    Invalid {
        /// JSON pointer to the offending value (`""` for the document itself).
        pointer: String,
        /// What is wrong and what to change.
        reason: String,
        /// How many further problems were found (`vigilctl policy check` lists them all).
        more: usize,
    },
    /// Schemas use keywords the validator does not implement; they are never skipped.
    #[error(
        "policy uses {count} unsupported schema keyword(s), first {first}; remove them or \
         express the constraint with supported keywords (`vigilctl policy check` lists all)",
        count = all.len()
    )]
    Unsupported {
        /// The first one, in document order.
        first: UnsupportedKeyword,
        /// All of them, each once.
        all: Vec<UnsupportedKeyword>,
    },
}

/// One problem found while compiling, kept for the check report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// JSON pointer into the bundled document.
    pub pointer: String,
    /// What is wrong.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let e = PolicyError::Invalid {
            pointer: "/paths/~1pets/get".into(),
            reason: "operation is not an object".into(),
            more: 0,
        };
        assert_eq!(
            e.to_string(),
            "invalid policy at /paths/~1pets/get: operation is not an object"
        );
        let e = PolicyError::Ref {
            file: "api.yaml".into(),
            pointer: "/paths/~1a".into(),
            reference: "../x.yaml".into(),
            reason: "escapes the document's directory".into(),
        };
        assert!(
            e.to_string()
                .contains("`../x.yaml` at /paths/~1a in api.yaml")
        );
    }
}
