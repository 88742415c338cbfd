//! Compiles a bundled description into routes and validators. Problems are collected rather
//! than returned at the first one, so `vigilctl policy check` can list them all; loading a
//! policy fails if there is any.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use vigil_schema::{CompileError, CompileOptions, Dialect, UnsupportedKeyword, Validator};

use crate::error::Problem;
use crate::options::{PolicyOptions, RouteSettings, x_vigil};
use crate::path::decode_fragment;

/// Longest chain of `$ref`s followed for a Parameter, Request Body or Path Item.
const MAX_REF_HOPS: usize = 32;

/// `key` escaped as one JSON-pointer token.
pub(crate) fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// What compiling found, besides the routes.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    pub unsupported: Vec<UnsupportedKeyword>,
    pub warnings: Vec<String>,
    pub body_schemas: usize,
}

/// Shared state while compiling one document.
pub(crate) struct Ctx<'d> {
    pub doc: &'d Value,
    pub dialect: Dialect,
    compile_options: CompileOptions,
    cache: HashMap<String, Option<Arc<Validator>>>,
    seen_unsupported: HashSet<(String, String)>,
    pub found: Findings,
}

impl<'d> Ctx<'d> {
    pub(crate) fn new(doc: &'d Value, dialect: Dialect, options: &'d PolicyOptions) -> Self {
        Self {
            doc,
            dialect,
            compile_options: options.compile_options(),
            cache: HashMap::new(),
            seen_unsupported: HashSet::new(),
            found: Findings::default(),
        }
    }

    pub(crate) fn problem(&mut self, pointer: &str, reason: impl Into<String>) {
        self.found.problems.push(Problem {
            pointer: pointer.to_string(),
            reason: reason.into(),
        });
    }

    pub(crate) fn warn(&mut self, warning: String) {
        // Shared components (a `$ref`ed request body) would repeat the same warning.
        if !self.found.warnings.contains(&warning) {
            self.found.warnings.push(warning);
        }
    }

    /// Follows `$ref`s from `v` (at `at`) to the object they name, with its pointer.
    pub(crate) fn resolve(&mut self, v: &'d Value, at: &str) -> Option<(&'d Value, String)> {
        let mut cur = v;
        let mut ptr = at.to_string();
        for _ in 0..MAX_REF_HOPS {
            let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
                return Some((cur, ptr));
            };
            let target = r
                .strip_prefix('#')
                .and_then(decode_fragment)
                .and_then(|frag| Some((self.doc.pointer(&frag)?, frag.into_owned())));
            match target {
                Some((value, frag)) => (cur, ptr) = (value, frag),
                None => {
                    self.problem(
                        &ptr,
                        format!("`$ref` `{r}` does not resolve in the document"),
                    );
                    return None;
                }
            }
        }
        self.problem(
            &ptr,
            format!("more than {MAX_REF_HOPS} chained `$ref`s (a loop?)"),
        );
        None
    }

    /// The validator for a response body's schema at `pointer`: compiled without the
    /// request-only rules (`readOnly` properties are what responses carry; undeclared
    /// properties are the server's business) and never a reason to refuse the description:
    /// a schema that does not compile is named in a warning and not checked.
    pub(crate) fn response_validator(&mut self, pointer: &str) -> Option<Arc<Validator>> {
        let key = format!("response:{}", self.shared_key(pointer));
        if let Some(v) = self.cache.get(&key) {
            return v.clone();
        }
        let options = CompileOptions {
            strict_objects: false,
            reject_read_only: false,
            ..self.compile_options.clone()
        };
        let target = self.shared_key(pointer);
        let compiled = match Validator::compile_at(self.doc, &target, self.dialect, &options) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                self.warn(format!("{pointer}: response schema not checked: {e}"));
                None
            }
        };
        self.cache.insert(key, compiled.clone());
        compiled
    }

    /// The pointer a schema compiles from: a bare `$ref` compiles to the same validator as
    /// its target, so both share it.
    fn shared_key(&self, pointer: &str) -> String {
        match self.doc.pointer(pointer) {
            Some(Value::Object(m)) if m.len() == 1 => m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(decode_fragment)
                .filter(|f| self.doc.pointer(f).is_some())
                .map_or_else(|| pointer.to_string(), |f| f.into_owned()),
            _ => pointer.to_string(),
        }
    }

    /// The validator for the schema at `pointer`, compiled once per schema.
    pub(crate) fn validator(&mut self, pointer: &str) -> Option<Arc<Validator>> {
        let key = self.shared_key(pointer);
        if let Some(v) = self.cache.get(&key) {
            return v.clone();
        }
        let compiled =
            match Validator::compile_at(self.doc, &key, self.dialect, &self.compile_options) {
                Ok(v) => Some(Arc::new(v)),
                Err(CompileError::Unsupported { all, .. }) => {
                    for k in all {
                        if self
                            .seen_unsupported
                            .insert((k.keyword.clone(), k.location.clone()))
                        {
                            self.found.unsupported.push(k);
                        }
                    }
                    None
                }
                Err(e) => {
                    self.problem(pointer, e.to_string());
                    None
                }
            };
        self.cache.insert(key, compiled.clone());
        compiled
    }
}

/// The dialect of a description, from its `openapi` field.
pub(crate) fn dialect_of(doc: &Value) -> Result<Dialect, String> {
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") => Ok(Dialect::OpenApi30),
        Some(v) if v.starts_with("3.1.") => Ok(Dialect::OpenApi31),
        Some(v) => Err(format!(
            "OpenAPI version {v} is not supported; use 3.0.x or 3.1.x"
        )),
        None if doc.get("swagger").is_some() => {
            Err("Swagger 2.0 is not supported; convert the description to OpenAPI 3".into())
        }
        None => Err("no `openapi` version field; is this an OpenAPI description?".into()),
    }
}

/// Document-level `x-vigil` settings.
pub(crate) fn document_settings(ctx: &mut Ctx<'_>) -> RouteSettings {
    match x_vigil(ctx.doc, "") {
        Ok(x) => RouteSettings::default().apply(x),
        Err(e) => {
            ctx.problem("/x-vigil", e);
            RouteSettings::default()
        }
    }
}

/// Base paths from `servers` (`https://api.example.com/v1` → `/v1`), with server variables
/// expanded to each of their `enum` values (or their default).
pub(crate) fn base_paths(ctx: &mut Ctx<'_>) -> Vec<String> {
    const MAX_BASES: usize = 64;
    let Some(servers) = ctx.doc.get("servers").and_then(Value::as_array) else {
        return vec![String::new()];
    };
    let mut out = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let at = format!("/servers/{i}");
        let Some(url) = server.get("url").and_then(Value::as_str) else {
            ctx.problem(&at, "a server needs a `url` string");
            continue;
        };
        let mut expanded = vec![url.to_string()];
        if let Some(vars) = server.get("variables").and_then(Value::as_object) {
            for (name, var) in vars {
                let mut values: Vec<&str> = var
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|e| e.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if values.is_empty() {
                    values.extend(var.get("default").and_then(Value::as_str));
                }
                let token = format!("{{{name}}}");
                let token = token.as_str();
                expanded = expanded
                    .iter()
                    .flat_map(|u| values.iter().map(move |v| u.replace(token, v)))
                    .take(MAX_BASES)
                    .collect();
            }
        }
        for u in expanded {
            let path = match u.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
                None if u.starts_with('/') => u.as_str(),
                None => "",
            };
            let path = path
                .split(['?', '#'])
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            if path.contains('{') {
                ctx.problem(
                    &at,
                    format!("server url `{u}` has a variable with no value"),
                );
                continue;
            }
            if !out.iter().any(|b: &String| b == path) {
                out.push(path.to_string());
            }
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_pick_dialects() {
        assert_eq!(
            dialect_of(&json!({"openapi": "3.0.3"})),
            Ok(Dialect::OpenApi30)
        );
        assert_eq!(
            dialect_of(&json!({"openapi": "3.1.0"})),
            Ok(Dialect::OpenApi31)
        );
        assert!(
            dialect_of(&json!({"swagger": "2.0"}))
                .unwrap_err()
                .contains("Swagger")
        );
        assert!(dialect_of(&json!({"openapi": "4.0"})).is_err());
    }

    #[test]
    fn servers_give_base_paths() {
        let doc = json!({"openapi": "3.0.0", "servers": [
            {"url": "https://api.example.com/v1/"},
            {"url": "/v1"},
            {"url": "http://{host}/api/{version}", "variables": {
                "host": {"default": "x"}, "version": {"default": "v2", "enum": ["v2", "v3"]}}},
            {"url": "https://example.com"},
        ]});
        let opts = PolicyOptions::default();
        let mut ctx = Ctx::new(&doc, Dialect::OpenApi30, &opts);
        assert_eq!(base_paths(&mut ctx), vec!["/v1", "/api/v2", "/api/v3", ""]);
        assert!(ctx.found.problems.is_empty());
    }

    #[test]
    fn refs_resolve_and_validators_are_shared() {
        let doc = json!({"openapi": "3.0.0", "components": {
            "parameters": {"A": {"$ref": "#/components/parameters/B"}, "B": {"name": "b"},
                           "L": {"$ref": "#/components/parameters/L"}},
            "schemas": {"S": {"type": "integer"}, "R": {"$ref": "#/components/schemas/S"},
                        "U": {"type": "string", "unevaluatedProperties": false},
                        "F": {"type": "string", "format": "no-such-format"}}}});
        let opts = PolicyOptions::default();
        let mut ctx = Ctx::new(&doc, Dialect::OpenApi30, &opts);
        let (v, at) = ctx
            .resolve(&doc["components"]["parameters"]["A"], "/x")
            .unwrap();
        assert_eq!(
            (v["name"].as_str(), at.as_str()),
            (Some("b"), "/components/parameters/B")
        );
        assert!(
            ctx.resolve(&doc["components"]["parameters"]["L"], "/l")
                .is_none()
        );
        assert!(ctx.found.problems[0].reason.contains("chained"));
        let a = ctx.validator("/components/schemas/S").unwrap();
        let b = ctx.validator("/components/schemas/R").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(ctx.validator("/components/schemas/U").is_none());
        assert!(ctx.validator("/components/schemas/U").is_none());
        assert_eq!(ctx.found.unsupported.len(), 1);
        assert_eq!(ctx.found.unsupported[0].keyword, "unevaluatedProperties");
        assert!(ctx.validator("/components/schemas/F").is_none());
        assert!(
            ctx.found
                .problems
                .iter()
                .any(|p| p.pointer == "/components/schemas/F")
        );
    }
}
