//! The control socket's framing: one JSON request per line, one JSON reply per line,
//! `{"ok":true,"data":{...}}` or `{"ok":false,"error":"...","code":"..."}`.

use serde::{Deserialize, Serialize};

use crate::{ControlError, ErrorCode, Reply, Request};

/// Longest request line accepted; anything longer is refused before parsing.
pub const MAX_LINE: usize = 64 * 1024;

/// A reply line that is not what this build expects.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("vigild sent a malformed reply: {0}")]
    Malformed(serde_json::Error),
    #[error(
        "vigild's reply to {cmd} is not what this vigilctl expects ({source}); check that \
         vigild and vigilctl come from the same release, or use --json"
    )]
    Unexpected {
        cmd: &'static str,
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct Out<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Reply>,
}

#[derive(Deserialize)]
struct In {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    data: serde_json::Value,
}

/// One request line, newline included.
pub fn encode_request(req: &Request) -> Vec<u8> {
    line(serde_json::to_vec(req))
}

/// Parses a request line; what is wrong with it is a `bad_request` error for the client.
pub fn decode_request(line: &[u8]) -> Result<Request, ControlError> {
    serde_json::from_slice(line)
        .map_err(|e| ControlError::new(ErrorCode::BadRequest, format!("malformed request: {e}")))
}

/// One reply line, newline included.
pub fn encode_reply(reply: &Result<Reply, ControlError>) -> Vec<u8> {
    let out = match reply {
        Ok(data) => Out {
            ok: true,
            error: None,
            code: None,
            data: Some(data),
        },
        Err(e) => Out {
            ok: false,
            error: Some(&e.message),
            code: Some(e.code),
            data: None,
        },
    };
    line(serde_json::to_vec(&out))
}

/// Parses the reply line to `req`: the typed reply, or vigild's refusal.
pub fn decode_reply(req: &Request, line: &[u8]) -> Result<Result<Reply, ControlError>, WireError> {
    let r: In = serde_json::from_slice(line).map_err(WireError::Malformed)?;
    if !r.ok {
        return Ok(Err(ControlError::new(
            r.code.unwrap_or(ErrorCode::Unknown),
            r.error
                .unwrap_or_else(|| "vigild refused the request".to_owned()),
        )));
    }
    Reply::decode(req.reply_kind(), r.data)
        .map(Ok)
        .map_err(|source| WireError::Unexpected {
            cmd: req.name(),
            source,
        })
}

fn line(encoded: serde_json::Result<Vec<u8>>) -> Vec<u8> {
    // Serializing these types cannot fail (string keys, no non-finite floats reach it); if it
    // ever did, the peer still gets a line it can parse.
    let mut out = encoded.unwrap_or_else(|_| b"{\"ok\":false,\"code\":\"failed\"}".to_vec());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{Detached, reply::Reloaded};

    #[test]
    fn replies_keep_their_envelope() {
        let ok = encode_reply(&Ok(Reply::Detached(Detached {
            detached: "eth0".into(),
        })));
        assert_eq!(ok, b"{\"ok\":true,\"data\":{\"detached\":\"eth0\"}}\n");
        let err = encode_reply(&Err(ControlError::new(ErrorCode::NotAttached, "no XDP")));
        assert_eq!(
            err,
            b"{\"ok\":false,\"error\":\"no XDP\",\"code\":\"not_attached\"}\n"
        );
        let back = decode_reply(&Request::XdpDetach, &ok).unwrap().unwrap();
        assert_eq!(back.kind(), crate::ReplyKind::Detached);
        let back = decode_reply(&Request::XdpDetach, &err)
            .unwrap()
            .unwrap_err();
        assert_eq!(back.code, ErrorCode::NotAttached);
    }

    #[test]
    fn an_older_daemon_without_codes_is_understood() {
        let e = decode_reply(
            &Request::Reload,
            b"{\"ok\":false,\"error\":\"reload refused\"}",
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.to_string(), "reload refused");
        let e = decode_reply(
            &Request::Reload,
            b"{\"ok\":false,\"code\":\"from_the_future\"}",
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.to_string(), "vigild refused the request");
        let r = decode_reply(
            &Request::Reload,
            b"{\"ok\":true,\"data\":{\"reloaded\":\"/x\"}}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            r,
            Reply::Reloaded(Reloaded {
                reloaded: "/x".into()
            })
        );
    }

    #[test]
    fn a_reply_of_the_wrong_shape_names_the_command() {
        let e = decode_reply(&Request::Stats, b"{\"ok\":true,\"data\":{\"x\":1}}").unwrap_err();
        assert!(e.to_string().starts_with("vigild's reply to stats"), "{e}");
        assert!(matches!(
            decode_reply(&Request::Stats, b"xx"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_bad_requests() {
        let line = encode_request(&Request::Status);
        assert_eq!(line, b"{\"cmd\":\"status\"}\n");
        assert_eq!(decode_request(&line).unwrap(), Request::Status);
        let e = decode_request(b"{\"cmd\":\"nope\"}").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.starts_with("malformed request: "), "{e}");
    }
}
