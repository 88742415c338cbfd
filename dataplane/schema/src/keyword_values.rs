//! Readers of keyword values shared by the keyword compilers (`keywords`, `object_keywords`):
//! each turns a JSON value into what the keyword needs, or an error naming the keyword and what
//! it should have been.

use serde_json::Value;

use crate::error::CompileError;
use crate::number::Num;
use crate::pattern::Pattern;

pub(crate) fn invalid(keyword: &str, location: &str, expected: &'static str) -> CompileError {
    CompileError::InvalidKeyword {
        keyword: keyword.to_string(),
        location: location.to_string(),
        expected,
    }
}

pub(crate) fn count(v: &Value, key: &str, loc: &str) -> Result<usize, CompileError> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(key, loc, "a non-negative integer"))
}

pub(crate) fn number(v: &Value, key: &str, loc: &str) -> Result<Num, CompileError> {
    match v {
        Value::Number(n) => Num::from_json(n),
        _ => None,
    }
    .ok_or_else(|| invalid(key, loc, "a number"))
}

pub(crate) fn regex(p: &Value, key: &str, loc: &str) -> Result<Pattern, CompileError> {
    let Value::String(p) = p else {
        return Err(invalid(key, loc, "a regular expression string"));
    };
    Pattern::new(p).map_err(|e| CompileError::InvalidPattern {
        location: loc.to_string(),
        detail: e.to_string(),
    })
}

pub(crate) fn names(v: &Value, key: &str, loc: &str) -> Result<Vec<String>, CompileError> {
    let Value::Array(a) = v else {
        return Err(invalid(key, loc, "an array of strings"));
    };
    a.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(key, loc, "an array of strings"))
        })
        .collect()
}
