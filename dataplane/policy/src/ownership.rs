//! `x-vigil-ownership`: object-level authorisation (BOLA) per operation. A rule binds a path,
//! query or header parameter, or a field of the JSON body, to a claim of the verified
//! identity: the request's value must equal the claim (a string) or be one of its members (an
//! array). Scopes listed in `exempt_scopes` (an admin's) skip the rules.
//!
//! ```yaml
//! x-vigil-ownership:
//!   exempt_scopes: [admin]
//!   rules:
//!     - { in: path, name: user_id, claim: sub }
//!     - { in: body, name: /org_id, claim: orgs }
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::compile::Ctx;

/// Where a rule reads the request's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerIn {
    /// A path template parameter.
    Path,
    /// A query parameter (a repeated one is refused, see [`crate::query_value`]).
    Query,
    /// A request header.
    Header,
    /// A JSON body member, named by a JSON pointer (`/owner/id`).
    Body,
}

/// One ownership rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRule {
    /// Where the value is.
    #[serde(rename = "in")]
    pub at: OwnerIn,
    /// The parameter's name, or the body member's JSON pointer.
    pub name: String,
    /// The identity claim it must match (`sub`, or a claim holding a list of ids).
    pub claim: String,
    /// Refuse requests that lack the value (default: only path values are always present;
    /// a query, header or body value that is absent is not checked).
    #[serde(default)]
    pub required: bool,
}

/// An operation's ownership rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ownership {
    /// All must hold.
    pub rules: Vec<OwnerRule>,
    /// An identity with any of these scopes is exempt.
    #[serde(default)]
    pub exempt_scopes: Vec<String>,
}

impl Ownership {
    /// Whether a rule reads the body (the gateway then buffers it).
    pub fn reads_body(&self) -> bool {
        self.rules.iter().any(|r| r.at == OwnerIn::Body)
    }
}

/// Reads an operation's `x-vigil-ownership`, checking names against the path template.
pub(crate) fn compile_ownership(
    ctx: &mut Ctx<'_>,
    op: &Value,
    at: &str,
    template_params: &[&str],
) -> Option<Ownership> {
    let v = op.get("x-vigil-ownership")?;
    let at = format!("{at}/x-vigil-ownership");
    let o = match Ownership::deserialize(v) {
        Ok(o) => o,
        Err(e) => {
            ctx.problem(
                &at,
                format!(
                    "{e} (keys: rules = [{{in: path|query|header|body, name, claim, \
                     required}}], exempt_scopes = [scopes])"
                ),
            );
            return None;
        }
    };
    if o.rules.is_empty() {
        ctx.problem(
            &at,
            "rules: give at least one rule, or remove x-vigil-ownership",
        );
        return None;
    }
    for (i, r) in o.rules.iter().enumerate() {
        let rule_at = format!("{at}/rules/{i}");
        let bad = match r.at {
            OwnerIn::Path if !template_params.contains(&r.name.as_str()) => Some(format!(
                "path parameter `{}` is not in the path template",
                r.name
            )),
            OwnerIn::Body if !r.name.starts_with('/') => Some(format!(
                "a body rule names a JSON pointer such as `/owner_id`, not `{}`",
                r.name
            )),
            _ if r.name.is_empty() => Some("name must not be empty".into()),
            _ => None,
        };
        if let Some(reason) = bad {
            ctx.problem(&rule_at, reason);
            return None;
        }
        if r.claim.is_empty() {
            ctx.problem(
                &format!("{rule_at}/claim"),
                "name the identity claim to match",
            );
            return None;
        }
    }
    Some(o)
}
