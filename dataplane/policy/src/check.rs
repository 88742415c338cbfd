//! `vigilctl policy check FILE`: compile a description as far as possible and report what was
//! compiled, what was refused and why, without loading it into a gateway.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use vigil_schema::{Dialect, UnsupportedKeyword};

use crate::error::Problem;
use crate::load::load_bundled;
use crate::options::{Mode, OnDegrade, PolicyOptions};
use crate::policy::Policy;

/// One route in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSummary {
    /// `GET /users/{id}`.
    pub id: String,
    /// The `operationId`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Enforce or log only.
    pub mode: Mode,
    /// Degrade or shed under thermal pressure.
    pub on_degrade: OnDegrade,
    /// Whether the operation may be upgraded to a WebSocket.
    pub websocket: bool,
    /// Parameters checked.
    pub parameters: usize,
    /// Whether a request body is described.
    pub body: bool,
}

/// What `vigilctl policy check` prints (as JSON or a table).
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// True when the gateway would load this description.
    pub ok: bool,
    /// The `openapi` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// The schema dialect bodies and parameters are compiled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// Base paths from `servers`.
    pub base_paths: Vec<String>,
    /// Described paths that are routed.
    pub paths: usize,
    /// Operations (routes).
    pub operations: usize,
    /// Parameters checked, summed over operations (path-level ones count once per operation).
    pub parameters: usize,
    /// Request-body schemas compiled.
    pub body_schemas: usize,
    /// The routes.
    pub routes: Vec<RouteSummary>,
    /// Schema keywords the validator refuses, with their locations.
    pub unsupported: Vec<UnsupportedKeyword>,
    /// Problems that make the description fail to load.
    pub errors: Vec<Problem>,
    /// Things that load but deserve a look.
    pub warnings: Vec<String>,
}

impl CheckReport {
    fn failed(problem: Problem) -> Self {
        Self {
            ok: false,
            openapi: None,
            dialect: None,
            base_paths: Vec::new(),
            paths: 0,
            operations: 0,
            parameters: 0,
            body_schemas: 0,
            routes: Vec::new(),
            unsupported: Vec::new(),
            errors: vec![problem],
            warnings: Vec::new(),
        }
    }
}

/// Checks the description in `path` (and the sibling files it references).
pub fn check(path: &Path, options: &PolicyOptions) -> CheckReport {
    match load_bundled(path) {
        Ok(doc) => check_value(&doc, options),
        Err(e) => CheckReport::failed(Problem {
            pointer: String::new(),
            reason: e.to_string(),
        }),
    }
}

/// Checks a description already parsed.
pub fn check_value(doc: &Value, options: &PolicyOptions) -> CheckReport {
    let (policy, found) = match Policy::build(doc, options) {
        Ok(built) => built,
        Err(e) => {
            return CheckReport::failed(Problem {
                pointer: "/openapi".into(),
                reason: e.to_string(),
            });
        }
    };
    let routes: Vec<RouteSummary> = policy
        .routes()
        .iter()
        .map(|r| RouteSummary {
            id: r.id().to_string(),
            operation_id: r.operation_id().map(str::to_string),
            mode: r.settings().mode,
            on_degrade: r.on_degrade(),
            websocket: r.websocket(),
            parameters: r.parameter_count(),
            body: r.has_body(),
        })
        .collect();
    let mut templates: Vec<&str> = policy.routes().iter().map(|r| r.template()).collect();
    templates.sort_unstable();
    templates.dedup();
    CheckReport {
        ok: found.problems.is_empty() && found.unsupported.is_empty(),
        openapi: doc
            .get("openapi")
            .and_then(Value::as_str)
            .map(str::to_string),
        dialect: Some(policy.dialect()),
        base_paths: policy.base_paths().to_vec(),
        paths: templates.len(),
        operations: routes.len(),
        parameters: routes.iter().map(|r| r.parameters).sum(),
        body_schemas: found.body_schemas,
        routes,
        unsupported: found.unsupported,
        errors: found.problems,
        warnings: found.warnings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testutil::TempDir;
    use serde_json::json;

    #[test]
    fn report_lists_routes_and_every_refusal() {
        let doc = json!({"openapi": "3.1.0", "paths": {
            "/a": {"get": {"operationId": "getA", "x-vigil": {"mode": "log-only"},
                "parameters": [{"name": "q", "in": "query", "schema": {"type": "integer"}}]},
                   "post": {"requestBody": {"content": {"application/json": {"schema":
                       {"type": "object", "unevaluatedProperties": false,
                        "properties": {"b": {"$recursiveRef": "#"}}}}}}}},
            "/b": {"get": {"parameters": [{"name": "p", "in": "query", "style": "matrix"}]}}}});
        let r = check_value(&doc, &PolicyOptions::default());
        assert!(!r.ok);
        assert_eq!(
            (r.paths, r.operations, r.parameters, r.body_schemas),
            (2, 3, 1, 1)
        );
        assert_eq!(r.routes[0].id, "GET /a");
        assert_eq!(r.routes[0].mode, Mode::LogOnly);
        let kw: Vec<&str> = r.unsupported.iter().map(|u| u.keyword.as_str()).collect();
        // unevaluatedProperties is supported (draft 2020-12); the 2019-09 $recursiveRef is not.
        assert_eq!(kw, ["$recursiveRef"], "{kw:?}");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].pointer, "/paths/~1b/get/parameters/0/style");
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"mode\":\"log-only\""), "{text}");
    }

    #[test]
    fn unreadable_and_foreign_files_fail_with_a_reason() {
        let t = TempDir::new("check");
        let r = check(&t.path("missing.yaml"), &PolicyOptions::default());
        assert!(!r.ok && r.errors[0].reason.contains("cannot read"));
        t.write("swagger.yaml", "swagger: '2.0'\npaths: {}\n");
        let r = check(&t.path("swagger.yaml"), &PolicyOptions::default());
        assert!(
            !r.ok && r.errors[0].reason.contains("Swagger 2.0"),
            "{:?}",
            r.errors
        );
        t.write("ok.yaml", "openapi: 3.0.3\npaths:\n  /a:\n    get: {}\n");
        let r = check(&t.path("ok.yaml"), &PolicyOptions::default());
        assert!(r.ok, "{:?}", r.errors);
        assert_eq!(r.operations, 1);
    }
}
