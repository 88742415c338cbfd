//! Compiles `paths` into the route table: path items, their operations, parameters (path
//! level merged with operation level, the operation winning) and request bodies.

use serde_json::Value;

use crate::Method;
use crate::body::{Body, Media};
use crate::compile::{Ctx, esc};
use crate::convert::{Shape, Types};
use crate::form::FORM;
use crate::options::{RouteSettings, x_vigil};
use crate::ownership::compile_ownership;
use crate::params::{Param, ParamIn, Style};
use crate::path::{Part, Segment, parse_template};
use crate::responses::{Documented, Responses, StatusKey};
use crate::route::Route;
use crate::router::{PathItem, Router};
use crate::security::{Requirement, SecurityScheme, compile_requirements};
use crate::shapes::{form_fields, shape_of};

/// Header parameters OpenAPI says to ignore: they are described elsewhere.
const IGNORED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

/// The document's security, which operations inherit.
pub(crate) struct DocSecurity<'s> {
    pub schemes: &'s [SecurityScheme],
    pub default: Option<Vec<Requirement>>,
}

pub(crate) fn compile_paths(
    ctx: &mut Ctx<'_>,
    base: RouteSettings,
    sec: &DocSecurity<'_>,
    router: &mut Router,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let doc = ctx.doc;
    let Some(paths) = doc.get("paths") else {
        return routes;
    };
    let Some(paths) = paths.as_object() else {
        ctx.problem("/paths", "`paths` must be an object");
        return routes;
    };
    for (template, item) in paths {
        if template.starts_with("x-") {
            continue;
        }
        let at = format!("/paths/{}", esc(template));
        let segments = match parse_template(template) {
            Ok(s) => s,
            Err(e) => {
                ctx.problem(&at, format!("path template `{template}`: {e}"));
                continue;
            }
        };
        let Some((item, item_at)) = ctx.resolve(item, &at) else {
            continue;
        };
        let settings = match x_vigil(item, &item_at) {
            Ok(x) => base.apply(x),
            Err(e) => {
                ctx.problem(&item_at, e);
                base
            }
        };
        if item.get("servers").is_some() {
            ctx.warn(format!(
                "{item_at}/servers: path-level servers are ignored; the document's servers apply"
            ));
        }
        let shared = item.get("parameters");
        let mut ops = [None; 8];
        for m in Method::ALL {
            let Some(op) = item.get(m.openapi_key()) else {
                continue;
            };
            let path = PathCtx {
                template,
                segments: &segments,
                item_at: &item_at,
                shared,
                settings,
            };
            if let Some(route) = compile_operation(ctx, &path, m, op, sec) {
                ops[m as usize] = Some(routes.len());
                routes.push(route);
            }
        }
        let path_item = PathItem {
            template: template.clone(),
            segments,
            ops,
        };
        if let Err(existing) = router.insert(path_item) {
            let first = router
                .items
                .get(existing)
                .map_or("", |i| i.template.as_str())
                .to_string();
            ctx.warn(format!(
                "{at}: `{template}` is the same path as `{first}`; only `{first}` is routed"
            ));
        }
    }
    routes
}

/// What an operation inherits from its path item.
struct PathCtx<'a, 'd> {
    template: &'a str,
    segments: &'a [Segment],
    item_at: &'a str,
    /// The path item's own `parameters` (borrowed from the document).
    shared: Option<&'d Value>,
    settings: RouteSettings,
}

/// One operation of a path item as a route; `None` (with a problem noted) when it is not an
/// object.
fn compile_operation<'d>(
    ctx: &mut Ctx<'d>,
    path: &PathCtx<'_, 'd>,
    m: Method,
    op: &'d Value,
    sec: &DocSecurity<'_>,
) -> Option<Route> {
    let op_at = format!("{}/{}", path.item_at, m.openapi_key());
    if !op.is_object() {
        ctx.problem(&op_at, "an operation must be an object");
        return None;
    }
    let settings = match x_vigil(op, &op_at) {
        Ok(x) => path.settings.apply(x),
        Err(e) => {
            ctx.problem(&op_at, e);
            path.settings
        }
    };
    let params = operation_params(ctx, path, op, &op_at);
    let body = match op.get("requestBody") {
        Some(b) => compile_body(ctx, b, &format!("{op_at}/requestBody")),
        None => None,
    };
    let responses = compile_responses(ctx, op.get("responses"), &op_at);
    let security = compile_requirements(
        ctx,
        op.get("security"),
        &format!("{op_at}/security"),
        sec.schemes,
    )
    .or_else(|| sec.default.clone());
    let ownership = compile_ownership(ctx, op, &op_at, &template_params(path.segments));
    let anonymous = security
        .as_ref()
        .is_none_or(|s| s.is_empty() || s.iter().any(|r| r.schemes.is_empty()));
    if ownership.is_some() && anonymous {
        ctx.warn(format!(
            "{op_at}: x-vigil-ownership on an operation open to anonymous requests: \
             those are refused (403), describe `security` to ask for an identity"
        ));
    }
    Some(Route {
        id: format!("{} {}", m.as_str(), path.template),
        method: m,
        template: path.template.to_owned(),
        operation_id: op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_string),
        settings,
        params,
        body,
        security,
        ownership,
        responses,
    })
}

/// The operation's Responses Object: each status key and, when it describes a JSON body with a
/// schema, that schema. Problems here never refuse the description: a response schema that
/// does not compile is named in a warning and not checked.
fn compile_responses<'d>(
    ctx: &mut Ctx<'d>,
    responses: Option<&'d Value>,
    op_at: &str,
) -> Option<Responses> {
    let responses = responses?.as_object()?;
    let mut entries = Vec::new();
    for (code, r) in responses {
        let at = format!("{op_at}/responses/{}", esc(code));
        let Some(key) = StatusKey::parse(code) else {
            ctx.warn(format!(
                "{at}: not a status (`200`, `4XX`, `default`): not checked"
            ));
            continue;
        };
        let Some((r, at)) = ctx.resolve(r, &at) else {
            continue;
        };
        let json = r
            .get("content")
            .and_then(Value::as_object)
            .and_then(|content| {
                content.iter().find(|(mt, m)| {
                    mt.to_ascii_lowercase().contains("json") && m.get("schema").is_some()
                })
            })
            .and_then(|(mt, _)| {
                ctx.response_validator(&format!("{at}/content/{}/schema", esc(mt)))
            });
        entries.push(Documented { key, json });
    }
    Some(Responses { entries })
}

/// The operation's parameters, with those of its path item it does not override; path
/// parameters checked against the template.
fn operation_params<'d>(
    ctx: &mut Ctx<'d>,
    path: &PathCtx<'_, 'd>,
    op: &'d Value,
    op_at: &str,
) -> Vec<Param> {
    let mut params = Vec::new();
    collect_params(
        ctx,
        op.get("parameters"),
        &format!("{op_at}/parameters"),
        &mut params,
    );
    let mut inherited = Vec::new();
    let shared_at = format!("{}/parameters", path.item_at);
    collect_params(ctx, path.shared, &shared_at, &mut inherited);
    for p in inherited {
        if !params
            .iter()
            .any(|q: &Param| q.name == p.name && q.at == p.at)
        {
            params.push(p);
        }
    }
    // A path parameter the template does not have could never be present: enforcing it would
    // refuse every request, so it is dropped with a warning.
    let template = path.template;
    let in_template = template_params(path.segments);
    params.retain(|p| {
        let stray = p.at == ParamIn::Path && !in_template.contains(&p.name.as_str());
        if stray {
            ctx.warn(format!(
                "{op_at}: path parameter `{}` is not in the template `{template}`; \
                 it is not checked",
                p.name
            ));
        }
        !stray
    });
    for name in in_template {
        if !params
            .iter()
            .any(|p| p.at == ParamIn::Path && p.name == name)
        {
            ctx.warn(format!(
                "{op_at}: path parameter `{name}` is not described; any value passes"
            ));
        }
    }
    params
}

fn template_params(segments: &[Segment]) -> Vec<&str> {
    let mut out = Vec::new();
    for s in segments {
        match s {
            Segment::Param(n) => out.push(n.as_str()),
            Segment::Mixed(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Param(n) => Some(n.as_str()),
                Part::Lit(_) => None,
            })),
            Segment::Lit(_) => {}
        }
    }
    out
}

fn collect_params<'d>(ctx: &mut Ctx<'d>, list: Option<&'d Value>, at: &str, out: &mut Vec<Param>) {
    let Some(list) = list else {
        return;
    };
    let Some(list) = list.as_array() else {
        ctx.problem(at, "`parameters` must be an array");
        return;
    };
    for (i, p) in list.iter().enumerate() {
        if let Some(param) = compile_param(ctx, p, &format!("{at}/{i}")) {
            if !out.iter().any(|q| q.name == param.name && q.at == param.at) {
                out.push(param);
            }
        }
    }
}

fn compile_param<'d>(ctx: &mut Ctx<'d>, p: &'d Value, at: &str) -> Option<Param> {
    let (p, at) = ctx.resolve(p, at)?;
    let (Some(name), Some(loc)) = (
        p.get("name").and_then(Value::as_str),
        p.get("in").and_then(Value::as_str),
    ) else {
        ctx.problem(&at, "a parameter needs `name` and `in` strings");
        return None;
    };
    let Some(loc) = ParamIn::parse(loc) else {
        ctx.problem(
            &format!("{at}/in"),
            format!("`in: {loc}` is not path, query, header or cookie"),
        );
        return None;
    };
    let name = if loc == ParamIn::Header {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    };
    if loc == ParamIn::Header && IGNORED_HEADERS.contains(&name.as_str()) {
        return None;
    }
    let style = match p.get("style").and_then(Value::as_str) {
        None => Style::default_for(loc),
        Some(s) => match Style::parse(s, loc) {
            Some(style) => style,
            None => {
                ctx.problem(
                    &format!("{at}/style"),
                    format!("style `{s}` is not allowed for {} parameters", loc.as_str()),
                );
                return None;
            }
        },
    };
    let explode = p
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(style == Style::Form);
    let (schema_at, json) = if p.get("schema").is_some() {
        (Some(format!("{at}/schema")), false)
    } else if let Some((key, _)) = p
        .get("content")
        .and_then(Value::as_object)
        .and_then(|c| c.iter().next())
    {
        let k = key.to_ascii_lowercase();
        (
            Some(format!("{at}/content/{}/schema", esc(key))),
            k.contains("json"),
        )
    } else {
        (None, false)
    };
    let (shape, validator) = match &schema_at {
        Some(s) if ctx.doc.pointer(s).is_some() => (shape_of(ctx, s), ctx.validator(s)),
        _ => (Shape::Scalar(Types::ANY), None),
    };
    Some(Param {
        label: format!("{}.{name}", loc.as_str()),
        required: loc == ParamIn::Path
            || p.get("required").and_then(Value::as_bool).unwrap_or(false),
        name,
        at: loc,
        style,
        explode,
        shape,
        json,
        validator,
    })
}

fn compile_body<'d>(ctx: &mut Ctx<'d>, b: &'d Value, at: &str) -> Option<Body> {
    let (b, at) = ctx.resolve(b, at)?;
    let Some(content) = b.get("content").and_then(Value::as_object) else {
        ctx.problem(&at, "a request body needs a `content` object");
        return None;
    };
    let mut media = Vec::new();
    for (key, m) in content {
        let k = key.to_ascii_lowercase();
        let schema_at = format!("{at}/content/{}/schema", esc(key));
        let jsonish = k.contains("json") || k.starts_with("*/") || k.ends_with("/*");
        let form = k == FORM && m.get("schema").is_some();
        let validator = if m.get("schema").is_some() && (jsonish || form) {
            ctx.found.body_schemas += 1;
            ctx.validator(&schema_at)
        } else {
            if m.get("schema").is_some() {
                ctx.warn(format!(
                    "{schema_at}: `{key}` bodies are accepted without validation"
                ));
            }
            None
        };
        let form = if form {
            Some(form_fields(ctx, &schema_at))
        } else {
            None
        };
        media.push(Media::new(k, validator, form));
    }
    Some(Body {
        required: b.get("required").and_then(Value::as_bool).unwrap_or(false),
        media,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{PolicyOptions, check_value};
    use serde_json::json;

    #[test]
    fn operation_parameters_override_path_parameters() {
        let doc = json!({"openapi": "3.0.3", "paths": {"/a/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
                {"name": "q", "in": "query", "required": true, "schema": {"type": "string"}}],
            "get": {"parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}},
                {"name": "Accept", "in": "header", "required": true, "schema": {"type": "string"}}]},
            "put": {}}}});
        let p = crate::Policy::from_value(&doc, &PolicyOptions::default()).unwrap();
        let get = p.match_route("GET", "/a/1").unwrap();
        assert!(
            get.check_params(None, &[][..]).is_ok(),
            "q optional, Accept ignored"
        );
        let put = p.match_route("PUT", "/a/1").unwrap();
        assert_eq!(
            put.check_params(None, &[][..]).unwrap_err().location,
            "query.q"
        );
        assert_eq!(
            p.match_route("PUT", "/a/x")
                .unwrap()
                .check_params(Some("q=1"), &[][..])
                .unwrap_err()
                .location,
            "path.id"
        );
    }

    #[test]
    fn dubious_but_loadable_things_are_warnings() {
        let doc = json!({"openapi": "3.1.0", "paths": {
            "/a/{x}": {"get": {}},
            "/a/{y}": {"get": {}},
            "/c/{id}": {"get": {"parameters": [{"name": "ID", "in": "path", "required": true}]}},
            "/b": {"servers": [{"url": "/other"}], "post": {"requestBody": {"content": {
                "application/xml": {"schema": {"type": "object"}}}}}}}});
        let r = check_value(&doc, &PolicyOptions::default());
        assert!(r.ok, "{:?}", r.errors);
        let w = r.warnings.join("\n");
        assert!(w.contains("path parameter `x` is not described"), "{w}");
        assert!(w.contains("is the same path as `/a/{x}`"), "{w}");
        assert!(w.contains("`ID` is not in the template `/c/{id}`"), "{w}");
        assert!(w.contains("path-level servers are ignored"), "{w}");
        assert!(
            w.contains("`application/xml` bodies are accepted without validation"),
            "{w}"
        );
    }

    #[test]
    fn malformed_structure_is_a_problem_with_a_pointer() {
        let doc = json!({"openapi": "3.0.3", "paths": {
            "/a": {"get": 5, "post": {"parameters": [{"in": "query"}, {"name": "n", "in": "body"}],
                   "requestBody": {"required": true}}},
            "no-slash": {"get": {}}}});
        let r = check_value(&doc, &PolicyOptions::default());
        let pointers: Vec<&str> = r.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/paths/~1a/get",
                "/paths/~1a/post/parameters/0",
                "/paths/~1a/post/parameters/1/in",
                "/paths/~1a/post/requestBody",
                "/paths/no-slash"
            ]
        );
    }
}
