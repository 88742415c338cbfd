//! Virtual patches: when a vulnerability is found in an API, a rule at the gateway refuses the
//! exploit until the fix ships. Each patch says why (`note`), until when (`expires`: a stopgap
//! must not live forever unnoticed) and what to do (`block`, `log`, `ban`); it matches on the
//! method, route, path, query parameters, headers, cookies, JSON body values by pointer and the
//! raw body, with literal, prefix, regex, glob, numeric and length tests combined with all/any.
//!
//! [`rule`] is the operator's format and its validation, [`engine`] the compiled set (one
//! multi-pattern pass per field), [`store`] the copy kept across restarts, [`http_file`] the
//! request files `vigilctl patch test` reads.

pub mod engine;
pub mod http_file;
pub mod rule;
pub mod store;

pub use engine::{Hit, Hits, PatchSet, Request};
pub use rule::{Action, Checked, Combine, Condition, Patch};

/// Why a patch or a set of them was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("patch {id}: {why}")]
    Invalid { id: String, why: String },
    #[error("at most {max} patches")]
    TooMany { max: usize },
    #[error(
        "the {patterns} patterns on {field} do not compile within the memory limit together \
         ({why}); simplify or split the patterns"
    )]
    TooBig {
        field: String,
        patterns: usize,
        why: String,
    },
    #[error("patch {id} already exists (delete it first, or use another id)")]
    Exists { id: String },
    #[error("no patch {id} (`vigilctl patch list` shows them)")]
    NoSuch { id: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    File {
        path: std::path::PathBuf,
        why: String,
    },
}
