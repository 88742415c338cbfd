//! What vigilctl's exit status and its `--json` errors say, so scripts can branch on them
//! (docs/vigilctl.md#exit-codes). Every failure is classified once, here, by what caused it.

use std::process::ExitCode;

use vigil_control::{ControlError, ErrorCode, RangeError};
use vigil_xdp::XdpError;

/// The documented exit statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The operation was tried and failed (vigild refused it, a map operation failed).
    Failed = 1,
    /// The command line is wrong; nothing was done.
    Usage = 2,
    /// vigild does not answer and nothing is pinned to fall back on.
    Unreachable = 3,
    /// The socket, the pins or a file need privileges this user lacks.
    Permission = 4,
    /// `status` read the box and found it degraded (XDP detached or broken).
    Degraded = 5,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit status of a failure with this code.
    pub fn of(code: ErrorCode) -> Exit {
        match code {
            ErrorCode::Usage | ErrorCode::BadRequest | ErrorCode::Invalid => Exit::Usage,
            ErrorCode::Unreachable => Exit::Unreachable,
            ErrorCode::PermissionDenied => Exit::Permission,
            ErrorCode::Busy
            | ErrorCode::NotAttached
            | ErrorCode::NotRunning
            | ErrorCode::NoSuchRule
            | ErrorCode::Refused
            | ErrorCode::Failed
            | ErrorCode::Unknown => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// A failure vigilctl itself decided on, with the code it is reported under.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    pub code: ErrorCode,
    pub message: String,
    /// What failed is already on stdout (the report of `policy check`): `--json` adds no
    /// second document.
    pub reported: bool,
}

fn err(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CtlError {
        code,
        message: message.into(),
        reported: false,
    })
}

/// The command line is wrong (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    err(ErrorCode::Usage, message)
}

/// vigild does not answer and there is nothing to fall back on (exit 3).
pub fn unreachable(message: impl Into<String>) -> anyhow::Error {
    err(ErrorCode::Unreachable, message)
}

/// Privileges are missing (exit 4).
pub fn permission(message: impl Into<String>) -> anyhow::Error {
    err(ErrorCode::PermissionDenied, message)
}

/// The operation failed and its output already says why (exit 1).
pub fn reported(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CtlError {
        code: ErrorCode::Failed,
        message: message.into(),
        reported: true,
    })
}

/// The code of a failure: the first cause in its chain that says what kind it is.
pub fn code_of(e: &anyhow::Error) -> ErrorCode {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CtlError>() {
            return c.code;
        }
        if let Some(c) = cause.downcast_ref::<ControlError>() {
            return c.code;
        }
        if cause.downcast_ref::<RangeError>().is_some() {
            return ErrorCode::Usage;
        }
        if let Some(x) = cause.downcast_ref::<XdpError>() {
            match x {
                XdpError::PermissionDenied { .. } => return ErrorCode::PermissionDenied,
                XdpError::InvalidCidr { .. } | XdpError::ReasonTooLong { .. } => {
                    return ErrorCode::Usage;
                }
                XdpError::NotAttached { .. } => return ErrorCode::Unreachable,
                _ => {}
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return ErrorCode::PermissionDenied;
            }
        }
    }
    ErrorCode::Failed
}

/// `{"error": MESSAGE, "code": CODE, "exit": STATUS}` and a newline.
pub fn json_error(message: &str, code: ErrorCode) -> String {
    let v = serde_json::json!({
        "error": message,
        "code": code,
        "exit": Exit::of(code).code(),
    });
    format!("{v}\n")
}

/// Writes to stdout; a reader that went away (`vigilctl ... | head`) is not an error.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints a failure (stderr for people; stdout too with `--json`) and gives its exit status.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    let code = code_of(e);
    let message = format!("{e:#}");
    eprintln!("vigilctl: {message}");
    let already = e
        .chain()
        .any(|c| c.downcast_ref::<CtlError>().is_some_and(|c| c.reported));
    if json && !already {
        print(&json_error(&message, code));
    }
    Exit::of(code).into()
}

/// A command line clap refused: help and version print as usual and exit 0; anything else is
/// a usage error (exit 2), also as JSON with `--json`.
pub fn report_clap(e: &clap::Error, json: bool) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    if json {
        print(&json_error(&clap_message(e), ErrorCode::Usage));
    }
    Exit::Usage.into()
}

/// clap's first paragraph without its `error: ` prefix (the tips and usage follow it).
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or(&text);
    first.trim().trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use anyhow::Context;
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn every_failure_has_its_documented_status() {
        let daemon = |c| anyhow::Error::new(ControlError::new(c, "x"));
        for (e, want) in [
            (usage("x"), Exit::Usage),
            (unreachable("x"), Exit::Unreachable),
            (permission("x"), Exit::Permission),
            (reported("x"), Exit::Failed),
            (daemon(ErrorCode::NoSuchRule), Exit::Failed),
            (daemon(ErrorCode::Invalid), Exit::Usage),
            (daemon(ErrorCode::Unknown), Exit::Failed),
            (anyhow::anyhow!("plain"), Exit::Failed),
            (
                anyhow::Error::new(XdpError::PermissionDenied { what: "x".into() })
                    .context("opening the maps"),
                Exit::Permission,
            ),
            (
                anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
                Exit::Permission,
            ),
            (
                Err::<(), _>(RangeError::Ttl).context("--ttl").unwrap_err(),
                Exit::Usage,
            ),
        ] {
            assert_eq!(Exit::of(code_of(&e)), want, "{e:#}");
        }
    }

    #[test]
    fn json_errors_carry_message_code_and_status() {
        let v: serde_json::Value =
            serde_json::from_str(&json_error("10.0.0.0/33: no", ErrorCode::Usage)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "error": "10.0.0.0/33: no", "code": "usage", "exit": 2 })
        );
        let v: serde_json::Value =
            serde_json::from_str(&json_error("gone", ErrorCode::Unreachable)).unwrap();
        assert_eq!(v["code"], "unreachable");
        assert_eq!(v["exit"], 3);
    }

    #[test]
    fn clap_messages_lose_their_prefix_and_tips() {
        let e = Cli::try_parse_from(["vigilctl", "block", "add", "10.0.0.0/33"]).unwrap_err();
        let m = clap_message(&e);
        assert!(
            m.starts_with("invalid value '10.0.0.0/33' for '<CIDR>'"),
            "{m}"
        );
        assert!(m.contains("prefix length /33 is out of range"), "{m}");
        let e = Cli::try_parse_from(["vigilctl", "statsu"]).unwrap_err();
        let text = e.render().to_string();
        assert!(text.contains("'status'"), "{text}");
        assert!(
            text.contains("tip: some similar subcommands exist"),
            "{text}"
        );
        let e = Cli::try_parse_from(["vigilctl", "blcok", "list"]).unwrap_err();
        let text = e.render().to_string();
        assert!(
            text.contains("tip: a similar subcommand exists: 'block'"),
            "{text}"
        );
    }
}
