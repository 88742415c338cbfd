//! The virtual-patch stage: the daemon's patch set (config and run time) evaluated on every
//! request, after the route match (patches may name the OpenAPI route) and before identity, so
//! an exploit is refused for what it is whoever sends it. `block` and `ban` answer 403
//! `virtual_patch` naming the patch, never the matched value; `log` lets the request through
//! and names the patch in its audit line.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{StatusCode, request::Parts};
use tracing::{info, warn};
use vigil_patch::{Action, Request as PatchRequest};

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
use crate::services::Services;

/// Blocks a source in XDP for a `ban` patch: (source, patch id, ttl).
pub type PatchBan = Arc<dyn Fn(IpAddr, &str, Duration) + Send + Sync>;

#[derive(Debug)]
pub(crate) struct VirtualPatches {
    services: Arc<Services>,
    /// Whether this generation buffers the body for the stage (the set had body or JSON
    /// conditions when it was built).
    body: bool,
}

impl VirtualPatches {
    pub fn new(services: Arc<Services>) -> Self {
        let body = services.patches.load().needs_body();
        Self { services, body }
    }
}

/// A request as patches see it.
struct View<'a> {
    head: &'a Parts,
    route: Option<&'a str>,
    body: Option<&'a Bytes>,
    json: std::cell::OnceCell<Option<serde_json::Value>>,
    ja4: Option<&'a str>,
}

impl View<'_> {
    fn json_doc(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| {
                let ct = self.head.headers.get(http::header::CONTENT_TYPE)?;
                let ct = ct.to_str().ok()?.to_ascii_lowercase();
                if !(ct.starts_with("application/json") || ct.contains("+json")) {
                    return None;
                }
                serde_json::from_slice(self.body?).ok()
            })
            .as_ref()
    }
}

impl PatchRequest for View<'_> {
    fn method(&self) -> &str {
        self.head.method.as_str()
    }
    fn path(&self) -> &str {
        self.head.uri.path()
    }
    fn route(&self) -> Option<&str> {
        self.route
    }
    fn query(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        let Some(q) = self.head.uri.query() else {
            return;
        };
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if vigil_patch::http_file::percent_decode(k) == name.as_bytes() {
                each(&vigil_patch::http_file::percent_decode(v));
            }
        }
    }
    fn header(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        for v in self.head.headers.get_all(name) {
            each(v.as_bytes());
        }
    }
    fn cookie(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        for v in self.head.headers.get_all(http::header::COOKIE) {
            vigil_patch::http_file::cookie_values(v.as_bytes(), name, each);
        }
    }
    fn json(&self, pointer: &str, each: &mut dyn FnMut(&[u8])) {
        if let Some(v) = self.json_doc().and_then(|d| d.pointer(pointer)) {
            each(&vigil_patch::http_file::json_text(v));
        }
    }
    fn body(&self) -> Option<&[u8]> {
        self.body.map(|b| &b[..])
    }
    fn ja4(&self) -> Option<&str> {
        self.ja4
    }
}

impl SyncStage for VirtualPatches {
    fn name(&self) -> &'static str {
        "patch"
    }

    fn needs_body(&self) -> bool {
        self.body
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, body: Option<&Bytes>) -> Outcome {
        let set = self.services.patches.load();
        if set.is_empty() {
            return Outcome::Continue;
        }
        let view = View {
            head,
            route: ctx.route.as_deref(),
            body,
            json: std::cell::OnceCell::new(),
            ja4: ctx.conn.tls.as_ref().and_then(|t| t.ja4.as_deref()),
        };
        let mut refusal = None;
        for hit in set.evaluate(&view, false) {
            match hit.action {
                Action::Log => {
                    info!(request_id = %ctx.request_id, patch = %hit.id, "virtual patch matched (log only)");
                    ctx.patches.push(hit.id);
                }
                Action::Block | Action::Ban => {
                    if hit.action == Action::Ban {
                        match self.services.patch_ban.load().as_ref() {
                            Some(ban) => ban(ctx.conn.client.ip(), &hit.id, hit.ban_ttl),
                            None => {
                                warn!(patch = %hit.id, "ban patch matched, but no XDP ban path is set")
                            }
                        }
                    }
                    ctx.patches.push(hit.id.clone());
                    refusal.get_or_insert(hit.id);
                }
            }
        }
        match refusal {
            None => Outcome::Continue,
            Some(id) => Outcome::Respond(
                Rejection::new(StatusCode::FORBIDDEN, "virtual_patch")
                    .at(Some(format!("patch:{id}")), None),
            ),
        }
    }
}
