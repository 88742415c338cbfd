//! The compiled policy and the decisions the gateway asks of it: which route a request is
//! on, then whether its parameters and body are what that route describes.

use std::borrow::Cow;
use std::path::Path;

use serde_json::Value;
use vigil_schema::Dialect;

use crate::Method;
use crate::compile::{Ctx, Findings, base_paths, dialect_of, document_settings};
use crate::deny::{Deny, reason};
use crate::error::PolicyError;
use crate::load::{load_bundled, parse_text};
use crate::operations::{DocSecurity, compile_paths};
use crate::options::{OnDegrade, PolicyOptions, RouteSettings};
use crate::params::{ParamIn, parse_query};
use crate::route::Route;
use crate::router::{Router, path_params};
use crate::security::{Requirement, SecurityScheme, compile_requirements, compile_schemes};

/// Request headers, as the gateway holds them. Names are passed in lower case (header names
/// are case-insensitive).
///
/// A header parameter that is not an array must appear once, and a cookie once over all
/// `Cookie` lines (HTTP/2 may split them): implement `header_count` and `header_values` so the
/// policy sees every line. With only `header` it sees the first line of each name; with
/// `header_count` but not `header_values` it refuses repeats it cannot see.
pub trait Headers {
    /// The value of header `name`, if the request has it (the first, when it is repeated).
    fn header(&self, name: &str) -> Option<&[u8]>;

    /// How many field lines named `name` the request has.
    fn header_count(&self, name: &str) -> usize {
        self.header_values(name).len()
    }

    /// The values of every field line named `name`, in order.
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.header(name).into_iter().collect()
    }
}

impl Headers for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }

    fn header_count(&self, name: &str) -> usize {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .collect()
    }
}

/// The parts of a request the policy looks at (the body is passed separately, mutably).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'r, H: Headers + ?Sized> {
    /// The method as received (`GET`).
    pub method: &'r str,
    /// The path, still percent-encoded, without the query.
    pub path: &'r str,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'r str>,
    /// The request headers (`content-type` and `cookie` are read from here too).
    pub headers: &'r H,
}

/// A compiled OpenAPI description. Immutable and `Send + Sync`: compile once, swap atomically
/// on reload, share behind an `Arc`.
#[derive(Debug)]
pub struct Policy {
    router: Router,
    routes: Vec<Route>,
    schemes: Vec<SecurityScheme>,
    default_security: Option<Vec<Requirement>>,
    settings: RouteSettings,
    options: PolicyOptions,
    dialect: Dialect,
    warnings: Vec<String>,
}

impl Policy {
    /// Loads a description (JSON or YAML) and the sibling files it references.
    pub fn load(path: &Path, options: &PolicyOptions) -> Result<Policy, PolicyError> {
        Self::from_value(&load_bundled(path)?, options)
    }

    /// Compiles a description given as text (JSON or YAML); only `#/...` references resolve.
    pub fn from_text(text: &str, options: &PolicyOptions) -> Result<Policy, PolicyError> {
        Self::from_value(&parse_text(text, Path::new("<policy>"))?, options)
    }

    /// Compiles a description already parsed. Any problem fails the whole policy.
    pub fn from_value(doc: &Value, options: &PolicyOptions) -> Result<Policy, PolicyError> {
        let (policy, found) = Self::build(doc, options)?;
        if let Some(first) = found.problems.first() {
            return Err(PolicyError::Invalid {
                pointer: first.pointer.clone(),
                reason: first.reason.clone(),
                more: found.problems.len() - 1 + found.unsupported.len(),
            });
        }
        if let Some(first) = found.unsupported.first() {
            return Err(PolicyError::Unsupported {
                first: first.clone(),
                all: found.unsupported,
            });
        }
        Ok(policy)
    }

    /// Compiles as far as possible, returning what was found on the way.
    pub(crate) fn build(
        doc: &Value,
        options: &PolicyOptions,
    ) -> Result<(Policy, Findings), PolicyError> {
        let dialect = dialect_of(doc).map_err(|reason| PolicyError::Invalid {
            pointer: "/openapi".into(),
            reason,
            more: 0,
        })?;
        let mut ctx = Ctx::new(doc, dialect, options);
        let settings = document_settings(&mut ctx);
        let mut router = Router::new(base_paths(&mut ctx));
        let schemes = compile_schemes(&mut ctx);
        let default_security =
            compile_requirements(&mut ctx, doc.get("security"), "/security", &schemes);
        let sec = DocSecurity {
            schemes: &schemes,
            default: default_security.clone(),
        };
        let routes = compile_paths(&mut ctx, settings, &sec, &mut router);
        if routes.is_empty() {
            ctx.warn("the description has no operations: every request will be refused".into());
        }
        let found = ctx.found;
        let policy = Policy {
            router,
            routes,
            schemes,
            default_security,
            settings,
            options: options.clone(),
            dialect,
            warnings: found.warnings.clone(),
        };
        Ok((policy, found))
    }

    /// Finds the route of a request: 400 `path_invalid` for paths that cannot be decoded
    /// safely, 404 `route_not_found` for undescribed paths, 405 `method_not_allowed` (with the
    /// `Allow` list) for undescribed methods. HEAD is served by GET when not described.
    pub fn match_route<'p, 'r>(
        &'p self,
        method: &str,
        path: &'r str,
    ) -> Result<RouteMatch<'p, 'r>, Deny> {
        let path = path.split('?').next().unwrap_or(path);
        let (item, segs) = match self.router.find(path) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Deny::new(404, reason::ROUTE_NOT_FOUND, "path")),
            Err(e) => {
                return Err(Deny::new(400, reason::PATH_INVALID, "path").with_keyword(e.keyword()));
            }
        };
        let Some(item) = self.router.items.get(item) else {
            return Err(Deny::new(404, reason::ROUTE_NOT_FOUND, "path"));
        };
        let op = Method::from_request(method).and_then(|m| {
            item.op(m).or_else(|| {
                if m == Method::Head {
                    item.op(Method::Get)
                } else {
                    None
                }
            })
        });
        let Some(route) = op.and_then(|i| self.routes.get(i)) else {
            let mut deny = Deny::new(405, reason::METHOD_NOT_ALLOWED, item.template.as_str());
            deny.allow = Some(item.allow());
            return Err(deny);
        };
        Ok(RouteMatch {
            policy: self,
            route,
            index: op.unwrap_or_default(),
            path_params: path_params(&item.segments, segs),
        })
    }

    /// All the checks for one request, in order: route, parameters, body. The body is left as
    /// it is.
    pub fn check<H: Headers + ?Sized>(
        &self,
        req: &RequestParts<'_, H>,
        body: &[u8],
    ) -> Result<&Route, Deny> {
        let m = self.match_route(req.method, req.path)?;
        m.check_params(req.query, req.headers)?;
        let ct = req
            .headers
            .header("content-type")
            .and_then(|v| std::str::from_utf8(v).ok());
        m.check_body(ct, body)?;
        Ok(m.route)
    }

    /// Every route (one per described operation).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route with id `id` (`GET /users/{id}`).
    pub fn route(&self, id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.id == id)
    }

    /// `components.securitySchemes`, by name; requirements index into it.
    pub fn schemes(&self) -> &[SecurityScheme] {
        &self.schemes
    }

    /// The document's own `security` (for requests no route matched, forwarded log-only).
    pub fn default_security(&self) -> Option<&[Requirement]> {
        self.default_security.as_deref()
    }

    /// Resumes a match kept between stages (see [`RouteMatch::to_matched`]).
    pub fn resume<'p>(&'p self, m: &'p Matched) -> Option<RouteMatch<'p, 'p>> {
        let route = self.routes.get(m.route)?;
        let names = route_param_names(route, &m.path_params)?;
        Some(RouteMatch {
            policy: self,
            route,
            index: m.route,
            path_params: names,
        })
    }

    /// Document-level `x-vigil` settings: they apply to 404s and 405s, which have no route.
    pub fn settings(&self) -> RouteSettings {
        self.settings
    }

    /// The `x-vigil` settings in force for a request: its route's, or the document's when no
    /// route matched (a 404 or 405 a log-only description let through).
    pub fn settings_for(&self, matched: Option<&Matched>) -> RouteSettings {
        matched
            .and_then(|m| self.resume(m))
            .map_or(self.settings, |m| m.route().settings())
    }

    /// Whether the document's settings or any route's satisfy `pred` (a stage the chain needs
    /// only when some request could use it).
    pub fn any_settings(&self, pred: impl Fn(&RouteSettings) -> bool) -> bool {
        pred(&self.settings) || self.routes.iter().any(|r| pred(&r.settings))
    }

    /// The options the policy was compiled with.
    pub fn options(&self) -> &PolicyOptions {
        &self.options
    }

    /// OpenAPI 3.0 or 3.1.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Base paths taken from `servers` (`""` is the root).
    pub fn base_paths(&self) -> &[String] {
        self.router.bases()
    }

    /// Things that compiled but deserve a look (see `vigilctl policy check`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A request matched to a route; borrows the policy and the request path.
#[derive(Debug)]
pub struct RouteMatch<'p, 'r> {
    policy: &'p Policy,
    route: &'p Route,
    index: usize,
    path_params: Vec<(&'p str, Cow<'r, str>)>,
}

impl<'p> RouteMatch<'p, '_> {
    /// The matched route.
    pub fn route(&self) -> &'p Route {
        self.route
    }

    /// `GET /users/{id}`.
    pub fn route_id(&self) -> &'p str {
        &self.route.id
    }

    /// Whether denials on this route are only logged.
    pub fn log_only(&self) -> bool {
        self.route.log_only()
    }

    /// Degrade or shed under thermal pressure.
    pub fn on_degrade(&self) -> OnDegrade {
        self.route.on_degrade()
    }

    /// Whether the operation may be upgraded to a WebSocket; refuse `Upgrade: websocket`
    /// otherwise.
    pub fn websocket(&self) -> bool {
        self.route.websocket()
    }

    /// An owned copy to keep in a request's context between stages.
    pub fn to_matched(&self) -> Matched {
        Matched {
            route: self.index,
            path_params: self
                .path_params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_ref().to_owned()))
                .collect(),
        }
    }

    /// A path parameter's decoded value (`id` in `/users/{id}`).
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Checks path, query, header and cookie parameters. `query` is the raw query string. A
    /// parameter that appears more than once where its style reads one value is 400
    /// `param_repeated` (only exploded `form` query arrays and header arrays may repeat).
    pub fn check_params<H: Headers + ?Sized>(
        &self,
        query: Option<&str>,
        headers: &H,
    ) -> Result<(), Deny> {
        let strict = self.policy.options.strict_query;
        let needs_query = strict || self.route.params.iter().any(|p| p.at == ParamIn::Query);
        let parsed = match query {
            Some(q) if needs_query => parse_query(q)?,
            _ => Vec::new(),
        };
        for p in &self.route.params {
            match p.at {
                ParamIn::Path => p.check_raw(self.path_param(&p.name))?,
                ParamIn::Query => p.check_query(&parsed)?,
                ParamIn::Header => p.check_header(headers)?,
                ParamIn::Cookie => p.check_cookie(headers)?,
            }
        }
        if strict {
            let known = |k: &str| {
                self.route
                    .params
                    .iter()
                    .any(|p| p.at == ParamIn::Query && p.owns_query_key(k))
            };
            if parsed.iter().any(|(k, _)| !known(k)) {
                return Err(
                    Deny::new(400, reason::PARAM_UNKNOWN, "query").with_keyword("strict_query")
                );
            }
        }
        Ok(())
    }

    /// Decides what can be decided before any body byte is read, so the gateway can answer
    /// early: 415 `unsupported_media_type` when the operation describes no request body, or
    /// not this content type (a body without `Content-Type` passes only where the description
    /// takes any bytes unchecked, such as `*/*` without a schema); 400 `body_missing` when a
    /// required body is absent. `body_present`: the request has a body, or may have one
    /// (`Content-Length` above zero, or `Transfer-Encoding`). `check_body` decides the same
    /// on its own; this is the same answer, earlier.
    pub fn check_content_type(
        &self,
        content_type: Option<&str>,
        body_present: bool,
    ) -> Result<(), Deny> {
        crate::body::check_content_type(self.route.body.as_ref(), content_type, body_present)
    }

    /// Whether `check_body` reads the body for this content type: JSON or a form with a
    /// schema. When false, `check_content_type` is the whole body check and the body need not
    /// be buffered for it (ownership rules may still need it: `Ownership::reads_body`); a body
    /// announced but empty is then not checked against `required`.
    pub fn needs_body(&self, content_type: Option<&str>) -> bool {
        crate::body::reads_body(self.route.body.as_ref(), content_type)
    }

    /// Whether the response status is one the operation documents (always, when it has no
    /// `responses` object).
    pub fn check_response_status(&self, status: u16) -> Result<(), crate::ResponseViolation> {
        self.route
            .responses
            .as_ref()
            .map_or(Ok(()), |r| r.check_status(status))
    }

    /// Whether a response with this status and content type has a documented JSON schema.
    pub fn response_wants_body(&self, status: u16, content_type: Option<&str>) -> bool {
        self.route
            .responses
            .as_ref()
            .is_some_and(|r| r.wants_body(status, content_type))
    }

    /// Checks a response body against the schema its status documents (parsed in place; no
    /// size limit of its own: the caller decides how much it holds).
    pub fn check_response_body(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &mut Vec<u8>,
    ) -> Result<(), crate::ResponseViolation> {
        let Some(r) = self.route.responses.as_ref() else {
            return Ok(());
        };
        // The request limits guard against hostile clients; a response is bounded by what
        // the caller holds, so only the nesting bound (the parser's stack) stays.
        let limits = vigil_schema::Limits {
            max_body_bytes: body.len().max(1),
            max_string_bytes: body.len().max(1),
            max_array_len: body.len().max(1),
            max_object_members: body.len().max(1),
            ..self.policy.options.limits.clone()
        };
        r.check_body(status, content_type, body, &limits)
    }

    /// Checks the body against the operation's request body; `body` is left as it is.
    pub fn check_body(&self, content_type: Option<&str>, body: &[u8]) -> Result<(), Deny> {
        crate::body::check(
            self.route.body.as_ref(),
            content_type,
            body,
            &self.policy.options.limits,
        )
    }
}

/// A matched route, owned, kept between stages; resumed with [`Policy::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    route: usize,
    path_params: Vec<(String, String)>,
}

impl Matched {
    /// A path parameter's decoded value.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The kept parameters with their names borrowed again (names must be the route's own).
fn route_param_names<'p>(
    route: &'p Route,
    kept: &'p [(String, String)],
) -> Option<Vec<(&'p str, Cow<'p, str>)>> {
    kept.iter()
        .map(|(n, v)| {
            names_param(&route.template, n).then_some((n.as_str(), Cow::Borrowed(v.as_str())))
        })
        .collect()
}

/// Whether `template` has the parameter `{name}`; looked up without building the pattern,
/// since every stage after the route match resumes it.
fn names_param(template: &str, name: &str) -> bool {
    template.match_indices('{').any(|(i, _)| {
        template[i + 1..]
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('}'))
    })
}

#[cfg(test)]
mod tests;
