//! Identity: the matched operation's OpenAPI security requirements, enforced. Bearer JWTs are
//! verified with the scheme's JWKS (`x-vigil-jwt`), client certificates with the scheme's
//! `x-vigil-mtls`; required scopes are checked; the verified identity goes into the request's
//! context for rate limits by subject and ownership rules. It always runs, whatever the
//! inspection depth: a hot box inspects less, it never authenticates less.
//!
//! Answers: 401 with `WWW-Authenticate: Bearer` (missing, malformed, expired, badly signed
//! token), 403 (insufficient scope, client certificate not allowed), 503 when the keys cannot
//! be had at all (never fetched: fail closed, not open).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use vigil_identity::{
    Algorithm, Claims, JwksLocation, JwksOptions, JwtError, Validation, Verifier,
};
use vigil_policy::{MtlsSettings, MtlsSubject, Policy, Requirement, SchemeKind};

use crate::config::ConfigError;
use crate::services::Services;

use super::stage::{
    AuthMethod, ClientIdentity, Outcome, Principal, Rejection, RequestCtx, Stage, StageFuture,
};

/// Verified tokens remembered per JWT scheme.
const TOKEN_CACHE: usize = 50_000;

/// A scheme as the stage verifies it.
#[derive(Debug)]
pub(crate) enum Scheme {
    Jwt(Arc<Verifier>),
    Mtls(MtlsSettings),
    External,
}

#[derive(Debug)]
pub struct Identity {
    policy: Arc<Policy>,
    /// Per `policy.schemes()` index.
    schemes: Vec<Scheme>,
}

/// Why an alternative of the requirements was not met, in increasing precedence: the
/// response reports the most telling failure over all alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// No credentials of the kind asked for.
    Missing,
    /// A client certificate was needed and none was presented.
    MtlsMissing,
    /// A certificate was presented, its subject is not allowed.
    MtlsNotAllowed,
    /// Verified, but without the scopes the operation asks for.
    Scope(Vec<String>),
    /// A token was presented and is not valid.
    Invalid(JwtError),
    /// The keys to verify with cannot be had.
    Unavailable,
}

impl Failure {
    fn rank(&self) -> u8 {
        match self {
            Failure::MtlsMissing => 0,
            Failure::Missing => 1,
            Failure::MtlsNotAllowed => 2,
            Failure::Scope(_) => 3,
            Failure::Invalid(_) => 4,
            Failure::Unavailable => 5,
        }
    }
}

/// Builds the verifiers for the description's schemes. JWKS files are read now (a missing or
/// bad one refuses the config); URL key sets are fetched on first use and kept across reloads.
pub(crate) fn schemes(
    policy: &Policy,
    policy_dir: &Path,
    services: &Services,
) -> Result<Vec<Scheme>, ConfigError> {
    let mut out = Vec::new();
    for (i, s) in policy.schemes().iter().enumerate() {
        let scheme = match &s.kind {
            SchemeKind::Jwt(j) => {
                let at = || format!("policy.file: components.securitySchemes.{}", s.name);
                let location = match (&j.jwks_file, &j.jwks_url) {
                    (Some(f), _) => JwksLocation::File(policy_dir.join(f)),
                    (None, Some(url)) => JwksLocation::Url {
                        url: url.clone(),
                        ca_file: j.jwks_ca_file.as_ref().map(|f| policy_dir.join(f)),
                    },
                    (None, None) => {
                        return Err(ConfigError::new(at(), "x-vigil-jwt names no key set"));
                    }
                };
                let options = JwksOptions {
                    cache_ttl: Duration::from_secs(j.jwks_cache_secs),
                    min_refresh: Duration::from_secs(j.jwks_min_refresh_secs),
                    ..JwksOptions::default()
                };
                let jwks = services
                    .jwks(location, options)
                    .map_err(|e| ConfigError::new(at(), e.to_string()))?;
                let algorithms = j
                    .algorithms
                    .iter()
                    .map(|a| a.parse::<Algorithm>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::new(at(), e.to_string()))?;
                let validation = Validation {
                    issuers: j.issuer.clone(),
                    audiences: j.audience.clone(),
                    algorithms: if algorithms.is_empty() {
                        Algorithm::ALL.to_vec()
                    } else {
                        algorithms
                    },
                    leeway: Duration::from_secs(j.leeway_secs),
                    require_exp: true,
                };
                Scheme::Jwt(Arc::new(Verifier::new(jwks, validation, TOKEN_CACHE)))
            }
            SchemeKind::Mtls(m) => Scheme::Mtls(m.clone()),
            SchemeKind::External(_) => Scheme::External,
        };
        debug_assert_eq!(out.len(), i);
        out.push(scheme);
    }
    Ok(out)
}

/// The request's bearer token: `None` without an `Authorization: Bearer` header.
fn bearer(head: &Parts) -> Result<Option<&str>, Failure> {
    let mut values = head.headers.get_all(AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Two Authorization headers: which one counts is ambiguous between us and the upstream.
        return Err(Failure::Invalid(JwtError::Malformed {
            what: "more than one Authorization header",
        }));
    }
    let v = v.to_str().map_err(|_| {
        Failure::Invalid(JwtError::Malformed {
            what: "Authorization header is not ASCII",
        })
    })?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(Failure::Invalid(JwtError::Malformed {
                    what: "empty bearer token",
                }))
            } else {
                Ok(Some(token))
            }
        }
        // Another scheme (Basic, an API's own): not a bearer token.
        _ => Ok(None),
    }
}

/// The subject a certificate stands for, per the scheme's `subject` setting.
fn mtls_subject(id: &ClientIdentity, from: MtlsSubject) -> Option<String> {
    let san = |prefix: &str| {
        id.sans
            .iter()
            .find_map(|s| s.strip_prefix(prefix))
            .map(str::to_owned)
    };
    match from {
        MtlsSubject::CommonName => id
            .subject
            .split(", ")
            .find_map(|rdn| rdn.strip_prefix("CN="))
            .map(str::to_owned),
        MtlsSubject::SanDns => san("dns:"),
        MtlsSubject::SanUri => san("uri:"),
        MtlsSubject::SanEmail => san("email:"),
    }
}

/// A JWT's subject: `sub`, else the OAuth client (`client_id`, `azp`) of a client-credentials
/// token.
fn jwt_subject(c: &Claims) -> Option<String> {
    c.subject()
        .map(str::to_owned)
        .or_else(|| c.values("client_id").first().map(|v| v.to_string()))
        .or_else(|| c.values("azp").first().map(|v| v.to_string()))
}

impl Identity {
    pub(crate) fn new(policy: Arc<Policy>, schemes: Vec<Scheme>) -> Self {
        Self { policy, schemes }
    }

    /// Verifies the token once per scheme and request, whatever the number of alternatives.
    async fn verify_jwt(
        &self,
        idx: usize,
        token: Option<&str>,
        seen: &mut Vec<(usize, Result<Arc<Claims>, Failure>)>,
    ) -> Result<Arc<Claims>, Failure> {
        if let Some((_, r)) = seen.iter().find(|(i, _)| *i == idx) {
            return r.clone();
        }
        let r = match (self.schemes.get(idx), token) {
            (_, None) => Err(Failure::Missing),
            (Some(Scheme::Jwt(v)), Some(t)) => v.verify(t).await.map_err(|e| {
                if e.is_client_error() {
                    Failure::Invalid(e)
                } else {
                    Failure::Unavailable
                }
            }),
            _ => Err(Failure::Missing),
        };
        seen.push((idx, r.clone()));
        r
    }

    /// Tries one alternative: every scheme in it must be satisfied.
    async fn satisfy(
        &self,
        alt: &Requirement,
        ctx: &RequestCtx,
        token: Option<&str>,
        seen: &mut Vec<(usize, Result<Arc<Claims>, Failure>)>,
    ) -> Result<Option<Principal>, Failure> {
        let mut principal: Option<Principal> = None;
        for (idx, scopes) in &alt.schemes {
            let (claims, via) = match self.schemes.get(*idx) {
                Some(Scheme::Jwt(_)) => {
                    (self.verify_jwt(*idx, token, seen).await?, AuthMethod::Jwt)
                }
                Some(Scheme::Mtls(m)) => (Arc::new(self.mtls(ctx, m)?), AuthMethod::Mtls),
                // Verified by the upstream: nothing to establish here.
                Some(Scheme::External) | None => continue,
            };
            let missing: Vec<String> = scopes
                .iter()
                .filter(|s| !claims.has_scope(s))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Failure::Scope(missing));
            }
            // A JWT names the subject over a certificate when an alternative asks for both.
            let subject = match via {
                AuthMethod::Jwt => {
                    jwt_subject(&claims).ok_or(Failure::Invalid(JwtError::Malformed {
                        what: "no sub, client_id or azp claim",
                    }))?
                }
                AuthMethod::Mtls => claims.subject().unwrap_or_default().to_owned(),
            };
            if principal.as_ref().is_none_or(|p| p.via == AuthMethod::Mtls) {
                principal = Some(Principal {
                    subject,
                    via,
                    claims,
                });
            }
        }
        Ok(principal)
    }

    fn mtls(&self, ctx: &RequestCtx, m: &MtlsSettings) -> Result<Claims, Failure> {
        let id = ctx
            .conn
            .tls
            .as_ref()
            .and_then(|t| t.identity.as_ref())
            .ok_or(Failure::MtlsMissing)?;
        let subject = mtls_subject(id, m.subject).ok_or(Failure::MtlsNotAllowed)?;
        if !m.allow.is_empty() && !m.allow.contains(&subject) {
            return Err(Failure::MtlsNotAllowed);
        }
        let scopes = m.scopes.get(&subject).cloned().unwrap_or_default();
        Ok(Claims::from_subject(&subject, &scopes))
    }

    async fn decide(&self, ctx: &mut RequestCtx, head: &Parts) -> Outcome {
        let route = ctx.matched.as_ref().and_then(|m| self.policy.resume(m));
        let reqs = match &route {
            Some(m) => m.route().security(),
            // Forwarded without a route (log-only): the document's own requirement applies.
            None => self.policy.default_security(),
        }
        .unwrap_or_default();
        let token = match bearer(head) {
            Ok(t) => t,
            Err(f) => return refuse(&f),
        };
        let mut seen = Vec::new();
        let mut worst: Option<Failure> = None;
        let mut open = reqs.is_empty();
        let mut upstream_decides = false;
        for alt in reqs {
            if alt.schemes.is_empty() {
                open = true;
                continue;
            }
            if alt
                .schemes
                .iter()
                .any(|(i, _)| matches!(self.schemes.get(*i), Some(Scheme::External) | None))
            {
                upstream_decides = true;
            }
            match self.satisfy(alt, ctx, token, &mut seen).await {
                Ok(p) => {
                    ctx.principal = p;
                    return Outcome::Continue;
                }
                Err(f) => {
                    if worst.as_ref().is_none_or(|w| f.rank() > w.rank()) {
                        worst = Some(f);
                    }
                }
            }
        }
        if open && token.is_some() {
            // Nothing required, yet a token came: read it (limits by subject, ownership).
            let jwt = self
                .schemes
                .iter()
                .position(|s| matches!(s, Scheme::Jwt(_)));
            if let Some(idx) = jwt {
                match self.verify_jwt(idx, token, &mut seen).await {
                    Ok(claims) => {
                        if let Some(subject) = jwt_subject(&claims) {
                            ctx.principal = Some(Principal {
                                subject,
                                via: AuthMethod::Jwt,
                                claims,
                            });
                        }
                        return Outcome::Continue;
                    }
                    Err(f) => worst = Some(f),
                }
            }
        }
        if open || upstream_decides {
            // Anonymous access, or an alternative only the upstream can check. A token that
            // was presented and is bad is still refused: a client must learn its token failed.
            return match worst {
                Some(f @ (Failure::Invalid(_) | Failure::Unavailable)) if token.is_some() => {
                    refuse(&f)
                }
                _ => Outcome::Continue,
            };
        }
        refuse(&worst.unwrap_or(Failure::Missing))
    }
}

/// A fixed description of a token failure for `WWW-Authenticate`.
fn describe(e: &JwtError) -> &'static str {
    match e {
        JwtError::Malformed { .. } => "malformed token",
        JwtError::AlgorithmRefused { .. } => "token algorithm refused",
        JwtError::UnknownKey => "token signed with an unknown key",
        JwtError::BadSignature => "token signature does not verify",
        JwtError::Expired => "token expired",
        JwtError::NotYetValid => "token not yet valid",
        JwtError::IssuedInFuture => "token issued in the future",
        JwtError::Issuer => "token issuer not accepted",
        JwtError::Audience => "token audience not accepted",
        JwtError::MissingExp => "token has no expiry",
        JwtError::KeysUnavailable { .. } => "signing keys unavailable",
    }
}

fn challenge(v: String) -> HeaderValue {
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"vigil\""))
}

fn refuse(f: &Failure) -> Outcome {
    let rej = match f {
        Failure::Missing => Rejection::new(StatusCode::UNAUTHORIZED, "token_missing").with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vigil\""),
        ),
        Failure::Invalid(e) => Rejection::new(StatusCode::UNAUTHORIZED, e.reason()).with_header(
            WWW_AUTHENTICATE,
            // The description names the failed check only, never the token's content (an
            // `alg` echoed here could close the quoted string and add parameters).
            challenge(format!(
                "Bearer realm=\"vigil\", error=\"invalid_token\", error_description=\"{}\"",
                describe(e)
            )),
        ),
        Failure::Scope(missing) => Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
            .with_header(
                WWW_AUTHENTICATE,
                challenge(format!(
                    "Bearer realm=\"vigil\", error=\"insufficient_scope\", scope=\"{}\"",
                    missing.join(" ")
                )),
            ),
        Failure::MtlsMissing => Rejection::new(StatusCode::UNAUTHORIZED, "mtls_missing"),
        Failure::MtlsNotAllowed => Rejection::new(StatusCode::FORBIDDEN, "mtls_not_allowed"),
        Failure::Unavailable => Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "jwks_unavailable")
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5")),
    };
    Outcome::Respond(rej)
}

impl Stage for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        Box::pin(self.decide(ctx, head))
    }
}

#[cfg(test)]
mod tests;
