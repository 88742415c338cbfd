//! Object ownership (BOLA): the operation's `x-vigil-ownership` rules, enforced. Each rule
//! reads a value of the request (path, query or header parameter, or a JSON body member) and
//! requires the verified identity's claim to equal it or list it; 403 `bola_denied` otherwise.
//! Identities holding an exempt scope (an administrator's) skip the rules. Authorisation does
//! not degrade: this stage runs whatever the inspection depth.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::Value;
use vigil_policy::{OwnerIn, OwnerRule, Ownership, Policy, RouteMatch};

use super::stage::{Outcome, Part, Principal, Rejection, RequestCtx, SyncStage};

#[derive(Debug)]
pub struct OwnershipCheck {
    policy: Arc<Policy>,
    part: Part,
}

/// Why a rule did not hold.
enum Refusal {
    /// No verified identity to compare with.
    NoIdentity,
    /// The value the rule reads is absent (and required) or unreadable.
    Missing(String),
    /// The value is not the identity's.
    NotOwner(String),
}

/// Which stage checks a rule.
fn rule_part(r: &OwnerRule) -> Part {
    match r.at {
        OwnerIn::Body => Part::Body,
        OwnerIn::Path | OwnerIn::Query | OwnerIn::Header => Part::Head,
    }
}

fn location(r: &OwnerRule) -> String {
    match r.at {
        OwnerIn::Path => format!("path.{}", r.name),
        OwnerIn::Query => format!("query.{}", r.name),
        OwnerIn::Header => format!("header.{}", r.name),
        OwnerIn::Body => r.name.clone(),
    }
}

/// A body member as text: strings as they are, integers in decimal; other kinds never match.
fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

impl OwnershipCheck {
    /// The rules of `part`: those on the path, query and headers run before the body is read,
    /// those on body members once it is.
    pub fn new(policy: Arc<Policy>, part: Part) -> Self {
        Self { policy, part }
    }

    /// Whether any operation of the description has ownership rules on `part`.
    pub fn wanted(policy: &Policy, part: Part) -> bool {
        policy.routes().iter().any(|r| {
            r.ownership()
                .is_some_and(|o| o.rules.iter().any(|rule| rule_part(rule) == part))
        })
    }

    fn verify(
        part: Part,
        o: &Ownership,
        m: &RouteMatch<'_, '_>,
        who: Option<&Principal>,
        head: &Parts,
        body: Option<&Bytes>,
    ) -> Result<(), Refusal> {
        let who = who.ok_or(Refusal::NoIdentity)?;
        if o.exempt_scopes.iter().any(|s| who.claims.has_scope(s)) {
            return Ok(());
        }
        // Parsed once, and only when a rule reads the body.
        let mut parsed: Option<Option<Value>> = None;
        for r in o.rules.iter().filter(|r| rule_part(r) == part) {
            let value: Option<Cow<'_, str>> = match r.at {
                OwnerIn::Path => m.path_param(&r.name).map(Cow::Borrowed),
                OwnerIn::Query => match head.uri.query() {
                    Some(q) => vigil_policy::query_value(q, &r.name)
                        .map_err(|_| Refusal::Missing(location(r)))?
                        .map(Cow::Owned),
                    None => None,
                },
                OwnerIn::Header => {
                    let mut values = head.headers.get_all(r.name.as_str()).iter();
                    match (values.next(), values.next()) {
                        (Some(v), None) => Some(Cow::Borrowed(
                            v.to_str().map_err(|_| Refusal::Missing(location(r)))?,
                        )),
                        // Twice: which one the upstream reads is its choice, not ours.
                        (Some(_), Some(_)) => return Err(Refusal::Missing(location(r))),
                        (None, _) => None,
                    }
                }
                OwnerIn::Body => {
                    let doc = parsed.get_or_insert_with(|| {
                        body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    });
                    match doc.as_ref().and_then(|d| d.pointer(&r.name)) {
                        Some(v) => Some(Cow::Owned(
                            scalar(v)
                                .ok_or_else(|| Refusal::NotOwner(location(r)))?
                                .into_owned(),
                        )),
                        // A body that is not JSON cannot show whose object it names.
                        None if doc.is_none() && body.is_some_and(|b| !b.is_empty()) => {
                            return Err(Refusal::Missing(location(r)));
                        }
                        None => None,
                    }
                }
            };
            let Some(value) = value else {
                if r.required || r.at == OwnerIn::Path {
                    return Err(Refusal::Missing(location(r)));
                }
                continue;
            };
            if !who.claims.values(&r.claim).contains(&value) {
                return Err(Refusal::NotOwner(location(r)));
            }
        }
        Ok(())
    }
}

impl SyncStage for OwnershipCheck {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Head => "ownership",
            Part::Body => "ownership_body",
        }
    }

    fn needs_body(&self) -> bool {
        self.part == Part::Body
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, body: Option<&Bytes>) -> Outcome {
        let Some(m) = ctx.matched.as_ref().and_then(|m| self.policy.resume(m)) else {
            return Outcome::Continue;
        };
        let Some(o) = m.route().ownership() else {
            return Outcome::Continue;
        };
        match Self::verify(self.part, o, &m, ctx.principal.as_ref(), head, body) {
            Ok(()) => Outcome::Continue,
            // Locations name the parameter, never its value.
            Err(Refusal::NoIdentity) => {
                Outcome::Respond(Rejection::new(StatusCode::FORBIDDEN, "bola_no_identity"))
            }
            Err(Refusal::Missing(at)) => Outcome::Respond(
                Rejection::new(StatusCode::FORBIDDEN, "bola_owner_missing").at(Some(at), None),
            ),
            Err(Refusal::NotOwner(at)) => Outcome::Respond(
                Rejection::new(StatusCode::FORBIDDEN, "bola_denied").at(Some(at), None),
            ),
        }
    }
}
