//! The claims of a verified token, and the type checks of the registered ones.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::JwtError;

/// The claims of a verified token (or of an identity from a client certificate).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    map: Map<String, Value>,
    /// From `scope` and `scp`, deduplicated, computed once at verification.
    scopes: Vec<String>,
}

impl Claims {
    /// Type-checks the registered claims (RFC 7519 section 4.1) and the scope claims and keeps
    /// the object. Wrong types are [`JwtError::Malformed`]: a token whose `exp` is a string
    /// must not pass as a token without `exp`.
    pub(crate) fn from_map(map: Map<String, Value>) -> Result<Claims, JwtError> {
        for name in ["exp", "nbf", "iat"] {
            if let Some(v) = map.get(name) {
                if numeric_date(v).is_none() {
                    return Err(JwtError::Malformed {
                        what: "exp, nbf or iat is not a number >= 0",
                    });
                }
            }
        }
        for name in ["iss", "sub"] {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(JwtError::Malformed {
                    what: "iss or sub is not a string",
                });
            }
        }
        match map.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
            Some(_) => {
                return Err(JwtError::Malformed {
                    what: "aud is not a string or array of strings",
                });
            }
        }
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            for word in s.split(' ').filter(|w| !w.is_empty()) {
                if !scopes.iter().any(|x| x == word) {
                    scopes.push(word.to_owned());
                }
            }
        };
        match map.get("scope") {
            None => {}
            Some(Value::String(s)) => add(s),
            Some(_) => {
                return Err(JwtError::Malformed {
                    what: "scope is not a string",
                });
            }
        }
        match map.get("scp") {
            None => {}
            Some(Value::String(s)) => add(s),
            Some(Value::Array(a)) => {
                for item in a {
                    add(item.as_str().ok_or(JwtError::Malformed {
                        what: "scp is not a string or array of strings",
                    })?);
                }
            }
            Some(_) => {
                return Err(JwtError::Malformed {
                    what: "scp is not a string or array of strings",
                });
            }
        }
        Ok(Claims { map, scopes })
    }

    /// Claims for an identity that did not come from a JWT (an mTLS client certificate):
    /// `sub` = `subject`, `scope` = the scopes joined with spaces. [`Claims::scopes`] returns
    /// `scopes` without empty and repeated entries.
    pub fn from_subject(subject: &str, scopes: &[String]) -> Claims {
        let mut uniq: Vec<String> = Vec::new();
        for s in scopes.iter().filter(|s| !s.is_empty()) {
            if !uniq.contains(s) {
                uniq.push(s.clone());
            }
        }
        let mut map = Map::new();
        map.insert("sub".into(), Value::String(subject.to_owned()));
        map.insert("scope".into(), Value::String(uniq.join(" ")));
        Claims { map, scopes: uniq }
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.map.get("sub").and_then(Value::as_str)
    }

    /// `exp` in seconds since the epoch (a fractional value rounded down).
    pub fn expires_at(&self) -> Option<u64> {
        self.map.get("exp").and_then(numeric_date).map(|d| d.floor)
    }

    /// The scopes, from `scope` (a space-separated string) and `scp` (an array of strings or a
    /// space-separated string), each once, in order of appearance.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether `s` is one of [`Claims::scopes`].
    pub fn has_scope(&self, s: &str) -> bool {
        self.scopes.iter().any(|x| x == s)
    }

    /// A claim as parsed from the token.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// The claim's values as strings: a string -> `[it]`; an array -> its string and integer
    /// members; an integer -> its decimal text; anything else (missing, bool, float, object,
    /// null) -> empty. Used by ownership rules.
    pub fn values(&self, name: &str) -> Vec<Cow<'_, str>> {
        fn one(v: &Value) -> Option<Cow<'_, str>> {
            match v {
                Value::String(s) => Some(Cow::Borrowed(s)),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
                _ => None,
            }
        }
        match self.map.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
            Some(v) => one(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// The `iss` claim.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.map.get("iss").and_then(Value::as_str)
    }

    /// The `aud` claim's members (one for a string).
    pub(crate) fn audiences(&self) -> impl Iterator<Item = &str> {
        let list = match self.map.get("aud") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(v @ Value::String(_)) => std::slice::from_ref(v),
            _ => &[],
        };
        list.iter().filter_map(Value::as_str)
    }

    /// `exp`, `nbf` and `iat` as numeric dates.
    pub(crate) fn date(&self, name: &str) -> Option<NumericDate> {
        self.map.get(name).and_then(numeric_date)
    }
}

/// A NumericDate rounded both ways, so that integer comparisons against the (integer) clock
/// give the same answer as comparing against the exact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumericDate {
    pub(crate) floor: u64,
    pub(crate) ceil: u64,
}

fn numeric_date(v: &Value) -> Option<NumericDate> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(NumericDate { floor: u, ceil: u });
    }
    let f = n.as_f64()?;
    if f < 0.0 {
        return None;
    }
    // `as` saturates at u64::MAX for dates beyond any clock, which is what a date that far out
    // means here.
    Some(NumericDate {
        floor: f.floor() as u64,
        ceil: f.ceil() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Result<Claims, JwtError> {
        match v {
            Value::Object(m) => Claims::from_map(m),
            _ => Err(JwtError::Malformed { what: "test" }),
        }
    }

    #[test]
    fn scopes_merge_scope_and_scp() -> Result<(), JwtError> {
        let c = claims(json!({"scope":"read  write read","scp":["write","admin","a b"]}))?;
        assert_eq!(c.scopes(), ["read", "write", "admin", "a", "b"]);
        assert!(c.has_scope("admin"));
        assert!(!c.has_scope("rea"));
        let c = claims(json!({"scp":"x y"}))?;
        assert_eq!(c.scopes(), ["x", "y"]);
        assert!(claims(json!({}))?.scopes().is_empty());
        Ok(())
    }

    #[test]
    fn wrong_types_are_malformed() {
        for bad in [
            json!({"exp":"1"}),
            json!({"nbf":-1}),
            json!({"iat":-0.5}),
            json!({"exp":null}),
            json!({"iss":1}),
            json!({"sub":["a"]}),
            json!({"aud":1}),
            json!({"aud":["a",1]}),
            json!({"scope":["a"]}),
            json!({"scp":[1]}),
            json!({"scp":{}}),
        ] {
            assert!(
                matches!(claims(bad.clone()), Err(JwtError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn numeric_dates_accept_floats() -> Result<(), JwtError> {
        let c = claims(json!({"exp":1700000000.7,"nbf":1e3,"iat":5}))?;
        assert_eq!(c.expires_at(), Some(1_700_000_000));
        assert_eq!(c.date("exp").map(|d| d.ceil), Some(1_700_000_001));
        assert_eq!(
            c.date("nbf"),
            Some(NumericDate {
                floor: 1000,
                ceil: 1000
            })
        );
        assert_eq!(c.date("iat"), Some(NumericDate { floor: 5, ceil: 5 }));
        let far = claims(json!({"exp":1e300}))?;
        assert_eq!(far.expires_at(), Some(u64::MAX));
        Ok(())
    }

    #[test]
    fn values_semantics() -> Result<(), JwtError> {
        let c = claims(json!({
            "s":"one","a":["x",7,-3,1.5,true,null,{"k":1},["y"]],"i":42,"neg":-1,
            "f":2.5,"b":true,"o":{"k":"v"},"n":null
        }))?;
        assert_eq!(c.values("s"), ["one"]);
        assert_eq!(c.values("a"), ["x", "7", "-3"]);
        assert_eq!(c.values("i"), ["42"]);
        assert_eq!(c.values("neg"), ["-1"]);
        for empty in ["f", "b", "o", "n", "missing"] {
            assert!(c.values(empty).is_empty(), "{empty}");
        }
        assert!(matches!(c.values("s")[0], Cow::Borrowed(_)));
        assert_eq!(c.get("i"), Some(&json!(42)));
        Ok(())
    }

    #[test]
    fn from_subject() {
        let c = Claims::from_subject("CN=svc", &["a".into(), "b".into(), "a".into(), "".into()]);
        assert_eq!(c.subject(), Some("CN=svc"));
        assert_eq!(c.scopes(), ["a", "b"]);
        assert_eq!(c.get("scope"), Some(&json!("a b")));
        assert_eq!(c.expires_at(), None);
    }

    #[test]
    fn audiences_and_issuer() -> Result<(), JwtError> {
        let c = claims(json!({"aud":["a","b"],"iss":"i"}))?;
        assert_eq!(c.audiences().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.issuer(), Some("i"));
        let c = claims(json!({"aud":"a"}))?;
        assert_eq!(c.audiences().collect::<Vec<_>>(), ["a"]);
        assert_eq!(claims(json!({}))?.audiences().count(), 0);
        Ok(())
    }
}
