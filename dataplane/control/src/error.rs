//! Why vigild refused a request: a code scripts can branch on and a message for the operator.

use serde::{Deserialize, Serialize};

/// A refused request. On the wire: `{"ok":false,"error":MESSAGE,"code":CODE}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: message.into(),
        }
    }
}

/// The kind of refusal. vigilctl's `--json` errors carry the same names, and its exit status
/// follows from them (docs/vigilctl.md#exit-codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a request: malformed JSON, an unknown command or field, a value out of range.
    BadRequest,
    /// vigild serves as many control connections as it allows; retry.
    Busy,
    /// XDP is not attached (no `[xdp]` section, or detached).
    NotAttached,
    /// The part that would answer is not running (the gateway without `[listener]`).
    NotRunning,
    /// `rule_del` of a rule that is not there.
    NoSuchRule,
    /// A value the request carries cannot be applied (a reason with control characters).
    Invalid,
    /// The new configuration or key was refused; the running one stays in place.
    Refused,
    /// Applying the request failed (a map operation, detaching).
    Failed,
    /// vigilctl only: the command line is wrong (an unknown flag, a CIDR that does not parse, a
    /// guard such as `--force` or `--yes` missing). Nothing was sent.
    Usage,
    /// vigilctl only: vigild does not answer and there is nothing pinned to fall back on.
    Unreachable,
    /// vigilctl only: the socket, the pins or the TPM need privileges this user lacks.
    PermissionDenied,
    /// A code this build does not know (a newer vigild).
    #[serde(other)]
    Unknown,
}
