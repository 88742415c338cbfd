//! A virtual patch as operators write it (`[[patch]]` in the config, `vigilctl patch add` with
//! a TOML or JSON file), and its validation. Nothing here matches requests: see `engine`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::PatchError;

/// Most patches one gateway holds.
pub const MAX_PATCHES: usize = 10_000;
/// Most conditions in one patch.
pub const MAX_CONDITIONS: usize = 16;
/// Longest pattern or literal, in bytes.
pub const MAX_PATTERN: usize = 4096;
/// Longest note.
pub const MAX_NOTE: usize = 1024;
/// Longest time a patch may be set to live: a temporary measure must come up for review.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// What a matching patch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// 403 with reason `virtual_patch` and the patch id; the matched value is never echoed.
    #[default]
    Block,
    /// Count and audit, let the request through.
    Log,
    /// Block, and drop the source in XDP for `ban_ttl` (the auto-ban path, fleet included).
    Ban,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Log => "log",
            Action::Ban => "ban",
        }
    }
}

/// How a patch's conditions combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    #[default]
    All,
    Any,
}

/// Where in the request a condition looks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Method,
    /// The OpenAPI operation the route stage matched (`GET /orders/{id}`).
    Route,
    /// The request path, as received (before any decoding).
    Path,
    /// Every value of a query parameter (percent-decoded).
    Query(String),
    /// Every value of a header (name case-insensitive).
    Header(String),
    Cookie(String),
    /// A value of the JSON body by JSON pointer (strings as they are, other scalars as JSON).
    Json(String),
    /// The raw body, as much of it as the gateway buffered.
    Body,
    /// The client's JA4 TLS fingerprint (`t13d3112h2_e8f1e7e78f70_b26ce05bbdd6`); plain-HTTP
    /// requests have none and match no condition on it.
    Ja4,
}

impl Field {
    pub fn parse(s: &str) -> Result<Field, String> {
        let named = |kind: &str, name: &str| {
            if name.is_empty() {
                Err(format!("`{kind}:` needs a name, e.g. `{kind}:id`"))
            } else {
                Ok(name.to_owned())
            }
        };
        Ok(match s.split_once(':') {
            None => match s {
                "method" => Field::Method,
                "route" => Field::Route,
                "path" => Field::Path,
                "body" => Field::Body,
                "ja4" => Field::Ja4,
                _ => {
                    return Err(format!(
                        "unknown field {s:?}: use method, route, path, body, ja4, query:NAME, \
                         header:NAME, cookie:NAME or json:/POINTER"
                    ));
                }
            },
            Some(("query", n)) => Field::Query(named("query", n)?),
            Some(("header", n)) => Field::Header(named("header", n)?.to_ascii_lowercase()),
            Some(("cookie", n)) => Field::Cookie(named("cookie", n)?),
            Some(("json", p)) => {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(format!(
                        "json:{p} is not a JSON pointer: it starts with / (json:/user/id), or is \
                         empty for the whole document"
                    ));
                }
                Field::Json(p.to_owned())
            }
            Some((k, _)) => {
                return Err(format!(
                    "unknown field kind {k:?}: use query:, header:, cookie: or json:"
                ));
            }
        })
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Method => f.write_str("method"),
            Field::Route => f.write_str("route"),
            Field::Path => f.write_str("path"),
            Field::Body => f.write_str("body"),
            Field::Ja4 => f.write_str("ja4"),
            Field::Query(n) => write!(f, "query:{n}"),
            Field::Header(n) => write!(f, "header:{n}"),
            Field::Cookie(n) => write!(f, "cookie:{n}"),
            Field::Json(p) => write!(f, "json:{p}"),
        }
    }
}

/// One condition: a field and exactly one test on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Rust `regex` syntax: linear time, no backreferences or lookaround.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `*` any run of characters but `/`, `**` anything, `?` one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<f64>,
    /// Length in bytes over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longer_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shorter_than: Option<u64>,
}

/// A condition's test, once validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// Matched by the field's multi-pattern set: the regex it compiles to.
    Pattern(String),
    Lt(f64),
    Gt(f64),
    Eq(f64),
    LongerThan(u64),
    ShorterThan(u64),
}

impl Condition {
    pub fn checked(&self) -> Result<(Field, Test), String> {
        let field = Field::parse(&self.field)?;
        let mut tests = Vec::new();
        let literal = |s: &str| regex::escape(s);
        if let Some(s) = &self.equals {
            tests.push(Test::Pattern(format!("^{}$", literal(s))));
        }
        if let Some(s) = &self.prefix {
            tests.push(Test::Pattern(format!("^{}", literal(s))));
        }
        if let Some(s) = &self.contains {
            tests.push(Test::Pattern(literal(s)));
        }
        if let Some(s) = &self.regex {
            tests.push(Test::Pattern(s.clone()));
        }
        if let Some(s) = &self.glob {
            tests.push(Test::Pattern(glob_regex(s)));
        }
        for (v, t) in [
            (self.lt, Test::Lt as fn(f64) -> Test),
            (self.gt, Test::Gt),
            (self.eq, Test::Eq),
        ] {
            if let Some(x) = v {
                if !x.is_finite() {
                    return Err("numbers must be finite".into());
                }
                tests.push(t(x));
            }
        }
        if let Some(n) = self.longer_than {
            tests.push(Test::LongerThan(n));
        }
        if let Some(n) = self.shorter_than {
            tests.push(Test::ShorterThan(n));
        }
        let [test] = <[Test; 1]>::try_from(tests).map_err(|t| {
            format!(
                "needs exactly one test (equals, prefix, contains, regex, glob, lt, gt, eq, \
                 longer_than, shorter_than); {} given",
                t.len()
            )
        })?;
        for s in [
            &self.equals,
            &self.prefix,
            &self.contains,
            &self.regex,
            &self.glob,
        ]
        .into_iter()
        .flatten()
        {
            if s.len() > MAX_PATTERN {
                return Err(format!(
                    "a pattern is {} bytes; at most {MAX_PATTERN}",
                    s.len()
                ));
            }
        }
        if let Test::Pattern(p) = &test {
            // Checked alone here so the message names this condition; the set is built later.
            regex::bytes::RegexBuilder::new(p)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("the pattern does not compile within the limits: {e}"))?;
        }
        Ok((field, test))
    }
}

/// A glob over a path: `**` any run, `*` any run without `/`, `?` one character.
fn glob_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// One virtual patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// Letters, digits, `.`, `_`, `-`; 1 to 64 characters (an advisory id fits: `CVE-2026-1234`).
    pub id: String,
    /// Why: the advisory, the ticket, who to ask. Required.
    pub note: String,
    /// When it stops matching: RFC 3339 (`2027-01-31T00:00:00Z`). Required.
    pub expires: String,
    #[serde(default)]
    pub action: Action,
    /// How long a `ban` blocks the source in XDP (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_ttl: Option<String>,
    /// `all` (default) or `any` of the conditions.
    #[serde(default, rename = "match")]
    pub combine: Combine,
    pub when: Vec<Condition>,
    /// When it was added (seconds since the epoch); set by the gateway.
    #[serde(default)]
    pub created: u64,
}

/// A patch that passed validation.
#[derive(Clone, Debug)]
pub struct Checked {
    pub patch: Patch,
    pub expires_unix: u64,
    pub ban_ttl: Duration,
    pub conditions: Vec<(Field, Test)>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{s:?} is not a time: {e}; write it as RFC 3339, e.g. 2027-01-31T00:00:00Z")
    })?;
    Ok(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

pub fn format_time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

impl Patch {
    /// Validates the patch. `now` bounds the expiry: a new patch must expire in the future
    /// and within [`MAX_LIFETIME`]; `None` skips that (patches reloaded from disk may have
    /// expired meanwhile: they load, and are reported as expired).
    pub fn check(&self, now: Option<u64>) -> Result<Checked, PatchError> {
        let bad = |why: String| PatchError::Invalid {
            id: self.id.clone(),
            why,
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !id_ok {
            return Err(bad(
                "the id must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if self.note.trim().is_empty() || self.note.len() > MAX_NOTE {
            return Err(bad(format!(
                "note: say why the patch exists (advisory, ticket), at most {MAX_NOTE} bytes"
            )));
        }
        if self.note.chars().any(char::is_control) {
            return Err(bad("note: no control characters".into()));
        }
        let expires_unix = parse_time(&self.expires).map_err(|e| bad(format!("expires: {e}")))?;
        if let Some(now) = now {
            if expires_unix <= now {
                return Err(bad(format!(
                    "expires: {} is already past",
                    format_time(expires_unix)
                )));
            }
            if expires_unix - now > MAX_LIFETIME.as_secs() {
                return Err(bad(
                    "expires: at most 366 days ahead; a virtual patch is a stopgap, renew it \
                     if the fix is still not out"
                        .into(),
                ));
            }
        }
        let ban_ttl = match (&self.ban_ttl, self.action) {
            (None, _) => Duration::from_secs(3600),
            (Some(_), a) if a != Action::Ban => {
                return Err(bad("ban_ttl is only for action = \"ban\"".into()));
            }
            (Some(s), _) => humantime::parse_duration(s)
                .ok()
                .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(30 * 86400)).contains(d))
                .ok_or_else(|| bad(format!("ban_ttl: {s:?} is not a duration from 1s to 30d")))?,
        };
        if self.when.is_empty() || self.when.len() > MAX_CONDITIONS {
            return Err(bad(format!(
                "when: 1 to {MAX_CONDITIONS} conditions ({} given)",
                self.when.len()
            )));
        }
        let conditions = self
            .when
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.checked()
                    .map_err(|e| bad(format!("when[{i}] ({}): {e}", c.field)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Checked {
            patch: self.clone(),
            expires_unix,
            ban_ttl,
            conditions,
        })
    }
}
