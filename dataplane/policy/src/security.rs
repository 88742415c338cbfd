//! Security from the description: `components.securitySchemes`, the document's and each
//! operation's `security` requirements, and the `x-vigil-jwt` / `x-vigil-mtls` extensions that
//! say how the gateway verifies a scheme. This crate only reads them; the gateway verifies.
//!
//! A scheme Vigil can verify is a bearer JWT (`http`/`bearer`, `oauth2` or `openIdConnect`
//! with `x-vigil-jwt`) or `mutualTLS`. Any other scheme (API keys, basic, OAuth2 without
//! `x-vigil-jwt`) is left to the upstream and reported as a warning by `vigilctl policy check`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::compile::{Ctx, esc};

/// The JOSE algorithms the gateway verifies.
pub const JWT_ALGORITHMS: [&str; 6] = ["RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA"];

/// `x-vigil-jwt`: how bearer tokens of a scheme are verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Accepted `iss` values (required: a token from another issuer is refused).
    #[serde(deserialize_with = "one_or_many")]
    pub issuer: Vec<String>,
    /// Accepted `aud` values; the token must name one of them (required).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// A JWKS file (relative paths are relative to the description's directory).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS served over HTTPS.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM CA bundle for `jwks_url`; default the system's.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Accepted algorithms; default all of [`JWT_ALGORITHMS`].
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Seconds of clock skew allowed on `exp`, `nbf`, `iat`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Seconds a fetched JWKS is fresh (its Cache-Control max-age wins when present).
    #[serde(default = "default_cache_ttl")]
    pub jwks_cache_secs: u64,
    /// At most one JWKS fetch per this many seconds, however many unknown `kid`s arrive.
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_secs: u64,
}

fn default_leeway() -> u64 {
    30
}
fn default_cache_ttl() -> u64 {
    300
}
fn default_min_refresh() -> u64 {
    10
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Which part of a verified client certificate is the identity's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MtlsSubject {
    /// The subject's common name.
    #[default]
    #[serde(rename = "cn")]
    CommonName,
    /// The first DNS subject alternative name.
    #[serde(rename = "san:dns")]
    SanDns,
    /// The first URI subject alternative name (SPIFFE IDs).
    #[serde(rename = "san:uri")]
    SanUri,
    /// The first e-mail subject alternative name.
    #[serde(rename = "san:email")]
    SanEmail,
}

/// `x-vigil-mtls`: how a `mutualTLS` scheme names and authorises client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsSettings {
    /// Where the subject comes from (`cn`, `san:dns`, `san:uri`, `san:email`).
    #[serde(default)]
    pub subject: MtlsSubject,
    /// Subjects accepted; empty: any certificate the TLS layer verified.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Scopes granted per subject, for operations that require scopes.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
}

/// How a scheme is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeKind {
    /// Bearer JWT.
    Jwt(Box<JwtSettings>),
    /// Client certificate.
    Mtls(MtlsSettings),
    /// Not verified by the gateway (the upstream's job); the scheme's `type`.
    External(String),
}

/// One entry of `components.securitySchemes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityScheme {
    /// Its name in `securitySchemes`.
    pub name: String,
    /// How it is verified.
    pub kind: SchemeKind,
}

/// One alternative of a `security` list: every scheme in it must be satisfied, each with the
/// scopes it lists. An empty alternative (`{}`) lets anonymous requests through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    /// (index into [`crate::Policy::schemes`], required scopes).
    pub schemes: Vec<(usize, Vec<String>)>,
}

/// Reads `components.securitySchemes`.
pub(crate) fn compile_schemes(ctx: &mut Ctx<'_>) -> Vec<SecurityScheme> {
    let mut out = Vec::new();
    let doc = ctx.doc;
    let Some(schemes) = doc.pointer("/components/securitySchemes") else {
        return out;
    };
    let Some(schemes) = schemes.as_object() else {
        ctx.problem("/components/securitySchemes", "must be an object");
        return out;
    };
    for (name, s) in schemes {
        let at = format!("/components/securitySchemes/{}", esc(name));
        let Some((s, at)) = ctx.resolve(s, &at) else {
            continue;
        };
        let kind = scheme_kind(ctx, s, &at);
        out.push(SecurityScheme {
            name: name.clone(),
            kind,
        });
    }
    out
}

fn scheme_kind(ctx: &mut Ctx<'_>, s: &Value, at: &str) -> SchemeKind {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let bearer = ty == "http"
        && s.get("scheme")
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case("bearer"));
    match (ty, s.get("x-vigil-jwt"), s.get("x-vigil-mtls")) {
        (_, Some(j), _) if bearer || ty == "oauth2" || ty == "openIdConnect" => {
            match jwt_settings(j) {
                Ok(j) => SchemeKind::Jwt(Box::new(j)),
                Err(e) => {
                    ctx.problem(&format!("{at}/x-vigil-jwt"), e);
                    SchemeKind::External(ty.to_owned())
                }
            }
        }
        (_, Some(_), _) => {
            ctx.problem(
                &format!("{at}/x-vigil-jwt"),
                "x-vigil-jwt belongs on an http bearer, oauth2 or openIdConnect scheme",
            );
            SchemeKind::External(ty.to_owned())
        }
        ("mutualTLS", None, m) => {
            let parsed = m.map_or(Ok(MtlsSettings::default()), |m| {
                MtlsSettings::deserialize(m).map_err(|e| {
                    format!(
                        "{e} (keys: subject = cn | san:dns | san:uri | san:email, allow = \
                         [subjects], scopes = {{subject: [scopes]}})"
                    )
                })
            });
            match parsed {
                Ok(m) => SchemeKind::Mtls(m),
                Err(e) => {
                    ctx.problem(&format!("{at}/x-vigil-mtls"), e);
                    SchemeKind::External(ty.to_owned())
                }
            }
        }
        (_, None, Some(_)) => {
            ctx.problem(
                &format!("{at}/x-vigil-mtls"),
                "x-vigil-mtls belongs on a mutualTLS scheme",
            );
            SchemeKind::External(ty.to_owned())
        }
        _ => {
            let hint = if bearer || ty == "oauth2" || ty == "openIdConnect" {
                " (add x-vigil-jwt with issuer, audience and jwks_file or jwks_url to verify it)"
            } else {
                ""
            };
            ctx.warn(format!(
                "{at}: `{ty}` scheme is not verified by the gateway; the upstream must{hint}"
            ));
            SchemeKind::External(ty.to_owned())
        }
    }
}

fn jwt_settings(v: &Value) -> Result<JwtSettings, String> {
    let j = JwtSettings::deserialize(v).map_err(|e| {
        format!(
            "{e} (keys: issuer, audience, jwks_file | jwks_url, jwks_ca_file, algorithms, \
             leeway_secs, jwks_cache_secs, jwks_min_refresh_secs)"
        )
    })?;
    if j.issuer.is_empty() || j.issuer.iter().any(String::is_empty) {
        return Err("issuer: name the accepted issuer(s)".into());
    }
    if j.audience.is_empty() || j.audience.iter().any(String::is_empty) {
        return Err("audience: name the accepted audience(s)".into());
    }
    match (&j.jwks_file, &j.jwks_url) {
        (Some(_), Some(_)) => return Err("give jwks_file or jwks_url, not both".into()),
        (None, None) => return Err("give jwks_file or jwks_url: where the keys are".into()),
        (None, Some(u)) if !u.starts_with("https://") => {
            return Err(format!("jwks_url {u:?} must be an https:// URL"));
        }
        _ => {}
    }
    if let Some(a) = j
        .algorithms
        .iter()
        .find(|a| !JWT_ALGORITHMS.contains(&a.as_str()))
    {
        return Err(format!(
            "algorithms: {a:?} is not accepted; use some of {}",
            JWT_ALGORITHMS.join(", ")
        ));
    }
    if j.jwks_min_refresh_secs == 0 {
        return Err("jwks_min_refresh_secs must be at least 1".into());
    }
    Ok(j)
}

/// Reads a `security` list (at `at`) against the compiled schemes. `None` when absent.
pub(crate) fn compile_requirements(
    ctx: &mut Ctx<'_>,
    v: Option<&Value>,
    at: &str,
    schemes: &[SecurityScheme],
) -> Option<Vec<Requirement>> {
    let v = v?;
    let Some(list) = v.as_array() else {
        ctx.problem(at, "`security` must be an array of requirement objects");
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for (i, req) in list.iter().enumerate() {
        let Some(req) = req.as_object() else {
            ctx.problem(
                &format!("{at}/{i}"),
                "a security requirement must be an object",
            );
            continue;
        };
        let mut r = Requirement::default();
        for (name, scopes) in req {
            let Some(idx) = schemes.iter().position(|s| &s.name == name) else {
                ctx.problem(
                    &format!("{at}/{i}/{}", esc(name)),
                    format!("`{name}` is not in components.securitySchemes"),
                );
                continue;
            };
            let scopes: Option<Vec<String>> = scopes
                .as_array()
                .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect());
            let Some(scopes) = scopes else {
                ctx.problem(
                    &format!("{at}/{i}/{}", esc(name)),
                    "scopes must be an array of strings",
                );
                continue;
            };
            r.schemes.push((idx, scopes));
        }
        out.push(r);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
