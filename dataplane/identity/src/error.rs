//! Errors: why a token was refused ([`JwtError`]) and why a key set could not be had
//! ([`JwksError`]).

use std::path::PathBuf;

/// Why a token was refused.
///
/// The messages name the check that failed and nothing from the token: no claim values, no
/// token text, no key material, so they can go to logs and response bodies as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token is not a well-formed compact JWS JWT; `what` says which part is wrong.
    #[error("malformed token: {what}")]
    Malformed {
        /// Which part of the token is wrong (a fixed text, never the token's content).
        what: &'static str,
    },
    /// The header's `alg` is not accepted: "none", an HMAC algorithm, one this gateway does not
    /// implement, one the configuration does not allow, or one the selected key cannot verify.
    #[error("token algorithm {alg:?} refused")]
    AlgorithmRefused {
        /// The header's `alg`, cut to 32 characters with control characters replaced.
        alg: String,
    },
    /// No key in the key set matches the token's `kid` (or, without a kid, its algorithm).
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify with the selected key(s).
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is missing or not one of the configured issuers.
    #[error("token issuer not accepted")]
    Issuer,
    /// `aud` is missing or names none of the configured audiences.
    #[error("token audience not accepted")]
    Audience,
    /// The token has no `exp` and the configuration requires one.
    #[error("token has no expiry (exp)")]
    MissingExp,
    /// The gateway has no key set to verify with (never fetched one successfully).
    #[error("signing keys unavailable: {reason}")]
    KeysUnavailable {
        /// Why the keys could not be had (from the last fetch).
        reason: String,
    },
}

impl JwtError {
    /// Stable reason code for the response body, audit log and metrics:
    /// "token_malformed", "token_alg_refused", "token_unknown_key", "token_bad_signature",
    /// "token_expired", "token_not_yet_valid", "token_iat_future", "token_issuer",
    /// "token_audience", "token_exp_missing", "jwks_unavailable".
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed { .. } => "token_malformed",
            JwtError::AlgorithmRefused { .. } => "token_alg_refused",
            JwtError::UnknownKey => "token_unknown_key",
            JwtError::BadSignature => "token_bad_signature",
            JwtError::Expired => "token_expired",
            JwtError::NotYetValid => "token_not_yet_valid",
            JwtError::IssuedInFuture => "token_iat_future",
            JwtError::Issuer => "token_issuer",
            JwtError::Audience => "token_audience",
            JwtError::MissingExp => "token_exp_missing",
            JwtError::KeysUnavailable { .. } => "jwks_unavailable",
        }
    }

    /// Whether the client is at fault (answer 401) or the gateway cannot verify right now
    /// (false: answer 503). Only [`JwtError::KeysUnavailable`] is false.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, JwtError::KeysUnavailable { .. })
    }

    /// `AlgorithmRefused` for a header value: the value comes from the client and ends up in
    /// logs, so it is cut short and stripped of control characters (no log injection).
    pub(crate) fn alg_refused(alg: &str) -> JwtError {
        let alg = alg
            .chars()
            .take(32)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        JwtError::AlgorithmRefused { alg }
    }
}

/// Why a key set could not be loaded or fetched. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// A file (the JWKS or a CA bundle) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// A file (the JWKS or a CA bundle) was refused before parsing: missing, unreadable, not a
    /// regular file, or over its size limit. The message names the file and what to do.
    #[error(transparent)]
    Unreadable {
        /// What is wrong with the file.
        #[from]
        source: vigil_files::FileError,
    },
    /// The JWKS file is unusable; `source` says why.
    #[error("JWKS file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<JwksError>,
    },
    /// The document is not a JWKS (`{"keys":[...]}`).
    #[error("not a JWKS document ({reason}); expected {{\"keys\":[...]}}")]
    Parse {
        /// What is wrong with the document.
        reason: String,
    },
    /// The document is over the 1 MiB limit.
    #[error("JWKS document larger than {} bytes", crate::MAX_JWKS_BYTES)]
    TooLarge,
    /// The document holds more than 256 keys.
    #[error("JWKS document holds more than {} keys", crate::MAX_KEYS)]
    TooManyKeys,
    /// The document holds no key this gateway can verify signatures with.
    #[error(
        "JWKS document holds no usable signing key (supported: RSA 2048..8192 bits, EC P-256 / \
         P-384, OKP Ed25519; keys with \"use\":\"enc\" and symmetric keys are skipped)"
    )]
    NoUsableKeys,
    /// The JWKS URL is not usable.
    #[error("JWKS URL: {reason}")]
    Url {
        /// What is wrong with the URL.
        reason: String,
    },
    /// Fetching the JWKS failed (connection, HTTP status, timeout).
    #[error("JWKS fetch failed: {reason}")]
    Fetch {
        /// What went wrong.
        reason: String,
    },
    /// The TLS setup or handshake failed (CA bundle, certificate verification).
    #[error("JWKS TLS: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable_and_only_unavailable_is_server_side() {
        let all = [
            (JwtError::Malformed { what: "x" }, "token_malformed"),
            (JwtError::alg_refused("HS256"), "token_alg_refused"),
            (JwtError::UnknownKey, "token_unknown_key"),
            (JwtError::BadSignature, "token_bad_signature"),
            (JwtError::Expired, "token_expired"),
            (JwtError::NotYetValid, "token_not_yet_valid"),
            (JwtError::IssuedInFuture, "token_iat_future"),
            (JwtError::Issuer, "token_issuer"),
            (JwtError::Audience, "token_audience"),
            (JwtError::MissingExp, "token_exp_missing"),
            (
                JwtError::KeysUnavailable {
                    reason: "down".into(),
                },
                "jwks_unavailable",
            ),
        ];
        for (e, code) in &all {
            assert_eq!(e.reason(), *code);
            assert_eq!(
                e.is_client_error(),
                !matches!(e, JwtError::KeysUnavailable { .. })
            );
        }
    }

    #[test]
    fn refused_alg_is_cut_and_stripped() {
        let long = format!("x\n\u{1b}[31m{}", "a".repeat(100));
        let JwtError::AlgorithmRefused { alg } = JwtError::alg_refused(&long) else {
            panic!("wrong variant");
        };
        assert_eq!(alg.chars().count(), 32);
        assert!(!alg.chars().any(char::is_control));
        assert!(alg.starts_with("x??[31m"));
    }
}
