//! The injection-detection stage (`[detection]`, a route's `x-vigil: {detection: ...}`; see
//! docs/detection.md): SQL injection, XSS, command injection and path traversal in the values a
//! request carries (path segments, query parameter names and values, cookies, the configured
//! headers, the strings and keys of a JSON body, the fields of a form body) through
//! `vigil-detect`, which undoes the usual encodings first. It runs after the description has let
//! the request through: a payload inside a value the description allows is what it is for.
//!
//! `block` answers 403 `injection_detected` naming where (`query.q`, a JSON pointer) and the
//! kind; `log` lets the request on. Either way the audit line lists each finding as
//! `signature@location` (`sqli:s&sos@query.q`) and the finding is counted by kind. Never the
//! value: a location built from names the client chose is reduced to its part (`query`) when a
//! name is not a plain identifier.

use std::{fmt::Write as _, sync::Arc};

use bytes::Bytes;
use http::{HeaderName, StatusCode, request::Parts};
use vigil_detect::{Detector, Finding};
use vigil_hw::thermal::Level;
use vigil_policy::{DetectionMode, Policy};

use super::stage::{DetectionHit, Outcome, Rejection, RequestCtx, SyncStage};
use crate::config::DetectionConfig;

/// Findings kept per request for the audit line; a request past this is refused or logged on
/// the first ones all the same.
const MAX_FINDINGS: usize = 8;
/// Longest name kept in a location (`query.NAME`, `cookie.NAME`, a JSON pointer).
const MAX_NAME: usize = 64;

#[derive(Debug)]
pub(crate) struct Detection {
    mode: DetectionMode,
    detector: Detector,
    headers: Vec<HeaderName>,
    max_body_values: usize,
    policy: Option<Arc<Policy>>,
}

impl Detection {
    /// Whether any request can be inspected: `[detection] mode` is on or a route turns it on.
    pub fn wanted(cfg: &DetectionConfig, policy: Option<&Policy>) -> bool {
        cfg.mode != DetectionMode::Off
            || policy.is_some_and(|p| {
                p.any_settings(|s| s.detection.is_some_and(|m| m != DetectionMode::Off))
            })
    }

    pub fn new(cfg: &DetectionConfig, policy: Option<Arc<Policy>>) -> Self {
        Self {
            mode: cfg.mode,
            detector: cfg.detector(),
            headers: cfg
                .headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            max_body_values: cfg.max_body_values,
            policy,
        }
    }

    /// The mode for this request: its route's, else the document's, else `[detection]`'s.
    fn mode_for(&self, ctx: &RequestCtx) -> DetectionMode {
        self.policy
            .as_ref()
            .and_then(|p| p.settings_for(ctx.matched.as_ref()).detection)
            .unwrap_or(self.mode)
    }
}

/// Collects findings with their locations.
struct Scan<'a> {
    detector: &'a Detector,
    hits: Vec<DetectionHit>,
    /// The first finding's location and kind, for the refusal.
    first: Option<(String, &'static str)>,
}

impl Scan<'_> {
    fn value(&mut self, v: &[u8], location: impl FnOnce() -> String) {
        if self.hits.len() >= MAX_FINDINGS || v.is_empty() {
            return;
        }
        if let Some(f) = self.detector.detect(v) {
            self.hit(f, location());
        }
    }

    fn hit(&mut self, f: Finding, location: String) {
        let kind = f.kind.code();
        self.hits.push(DetectionHit {
            kind,
            entry: format!("{}@{location}", f.signature()),
        });
        self.first.get_or_insert((location, kind));
    }

    fn full(&self) -> bool {
        self.hits.len() >= MAX_FINDINGS
    }

    /// `name=value&...` pairs (a query string or a form body): names and values. A query
    /// value is at `query.NAME`, a form field at `/NAME` (the body's convention).
    fn pairs(&mut self, text: &[u8], form: bool) {
        let (part, sep) = if form { ("", '/') } else { ("query", '.') };
        for pair in text.split(|&b| b == b'&') {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let name = kv.next().unwrap_or_default();
            let value = kv.next().unwrap_or_default();
            self.value(name, || part.to_owned());
            self.value(value, || located(part, sep, name));
        }
    }

    /// The strings of a JSON document, keys included, depth first, at most `budget` of them.
    fn json(&mut self, v: &serde_json::Value, pointer: &mut String, budget: &mut usize) {
        if *budget == 0 || self.full() {
            return;
        }
        match v {
            serde_json::Value::String(s) => {
                *budget -= 1;
                self.value(s.as_bytes(), || body_location(pointer));
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    let _ = write!(pointer, "/{i}");
                    self.json(item, pointer, budget);
                    pointer.truncate(len);
                }
            }
            serde_json::Value::Object(members) => {
                for (k, item) in members {
                    if *budget == 0 {
                        return;
                    }
                    *budget -= 1;
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    self.value(k.as_bytes(), || body_location(&pointer[..len]));
                    self.json(item, pointer, budget);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// `part.name` when `name` is a plain identifier, `part` otherwise: a location never carries
/// text the client chose beyond a short, harmless name.
fn located(part: &str, sep: char, name: &[u8]) -> String {
    if plain(name) {
        // `plain` admits ASCII only.
        format!("{part}{sep}{}", String::from_utf8_lossy(name))
    } else {
        part.to_owned()
    }
}

fn plain(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(b))
}

/// A JSON pointer as a location (`/items/0/name`, as the body schema names places), or `""`
/// (the body as a whole) when a key is not plain.
fn body_location(pointer: &str) -> String {
    let plain_keys = pointer.len() <= MAX_NAME
        && pointer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]/~".contains(&b));
    if plain_keys {
        pointer.to_owned()
    } else {
        String::new()
    }
}

/// Whether the media type is JSON (`application/json`, `application/problem+json`, ...) or a
/// form, by the request's Content-Type.
enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(head: &Parts) -> BodyKind {
    let Some(ct) = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return BodyKind::Other;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

impl SyncStage for Detection {
    fn name(&self) -> &'static str {
        "detection"
    }

    fn needs_body(&self) -> bool {
        true
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, body: Option<&Bytes>) -> Outcome {
        let mode = self.mode_for(ctx);
        // Under heat the costly stages skip their work (docs/gateway.md, `on_degrade`): this
        // one first, with the body schema.
        if mode == DetectionMode::Off || ctx.depth >= Level::Reduced {
            return Outcome::Continue;
        }
        let mut scan = Scan {
            detector: &self.detector,
            hits: Vec::new(),
            first: None,
        };
        for seg in head.uri.path().split('/') {
            scan.value(seg.as_bytes(), || "path".to_owned());
        }
        if let Some(q) = head.uri.query() {
            scan.pairs(q.as_bytes(), false);
        }
        for v in head.headers.get_all(http::header::COOKIE) {
            for c in v.as_bytes().split(|&b| b == b';') {
                let mut kv = c.splitn(2, |&b| b == b'=');
                let name = kv.next().unwrap_or_default().trim_ascii();
                let value = kv.next().unwrap_or_default();
                scan.value(value, || located("cookie", '.', name));
            }
        }
        for name in &self.headers {
            for v in head.headers.get_all(name) {
                scan.value(v.as_bytes(), || format!("header.{name}"));
            }
        }
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            let mut budget = self.max_body_values;
            match body_kind(head) {
                BodyKind::Json => {
                    // Refused by the body schema already when the description has one; a body
                    // that does not parse has no values to inspect.
                    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) {
                        scan.json(&doc, &mut String::new(), &mut budget);
                    }
                }
                BodyKind::Form => scan.pairs(body, true),
                BodyKind::Other => {}
            }
        }
        let Scan { hits, first, .. } = scan;
        if hits.is_empty() {
            return Outcome::Continue;
        }
        ctx.detections.extend(hits);
        match (mode, first) {
            (DetectionMode::Block, Some((location, kind))) => Outcome::Respond(
                Rejection::new(StatusCode::FORBIDDEN, "injection_detected")
                    .at(Some(location), Some(kind.to_owned())),
            ),
            _ => Outcome::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stage(mode: DetectionMode) -> Detection {
        Detection::new(
            &DetectionConfig {
                mode,
                ..DetectionConfig::default()
            },
            None,
        )
    }

    fn run(d: &Detection, req: http::Request<()>, body: &[u8]) -> (Outcome, Vec<String>) {
        let (mut head, ()) = req.into_parts();
        let mut ctx = super::super::test_ctx("198.18.0.1:1000".parse().unwrap());
        let body = Bytes::copy_from_slice(body);
        let out = d.check(&mut ctx, &mut head, Some(&body));
        (out, ctx.detections.into_iter().map(|h| h.entry).collect())
    }

    fn get(uri: &str) -> http::Request<()> {
        http::Request::get(uri).body(()).unwrap()
    }

    fn refused_at(out: &Outcome) -> Option<(&str, &str)> {
        match out {
            Outcome::Respond(r) if r.reason == "injection_detected" => Some((
                r.location.as_deref().unwrap_or(""),
                r.keyword.as_deref().unwrap_or(""),
            )),
            _ => None,
        }
    }

    #[test]
    fn each_place_a_value_can_hide_is_inspected() {
        let d = stage(DetectionMode::Block);
        let cases: [(http::Request<()>, &[u8], &str, &str); 7] = [
            (
                get("/orders?id=1%27%20OR%20%271%27%3D%271"),
                b"",
                "query.id",
                "sqli",
            ),
            (
                get("/files/..%2F..%2F..%2Fetc%2Fpasswd"),
                b"",
                "path",
                "path_traversal",
            ),
            (
                http::Request::get("/")
                    .header("cookie", "a=1; theme=<script>alert(1)</script>")
                    .body(())
                    .unwrap(),
                b"",
                "cookie.theme",
                "xss",
            ),
            (
                http::Request::get("/")
                    .header("user-agent", "() { :; }; /bin/cat /etc/passwd")
                    .body(())
                    .unwrap(),
                b"",
                "header.user-agent",
                "command_injection",
            ),
            (
                http::Request::post("/notes")
                    .header("content-type", "application/json")
                    .body(())
                    .unwrap(),
                br#"{"items":[{"text":"fine"},{"text":"<img src=x onerror=alert(1)>"}]}"#,
                "/items/1/text",
                "xss",
            ),
            (
                http::Request::post("/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(())
                    .unwrap(),
                b"user=admin%27--&pass=x",
                "/user",
                "sqli",
            ),
            (
                get("/search?%3Cscript%3Ealert(1)%3C%2Fscript%3E=1"),
                b"",
                "query",
                "xss",
            ),
        ];
        for (req, body, location, kind) in cases {
            let uri = req.uri().to_string();
            let (out, hits) = run(&d, req, body);
            assert_eq!(refused_at(&out), Some((location, kind)), "{uri}: {hits:?}");
            assert!(hits[0].ends_with(&format!("@{location}")), "{hits:?}");
        }
    }

    #[test]
    fn ordinary_values_pass_and_nothing_is_recorded() {
        let d = stage(DetectionMode::Block);
        let req = http::Request::post("/orders/A-1?sort=-created&q=O%27Brien")
            .header("content-type", "application/json")
            .header("user-agent", "curl/8.5.0")
            .header("cookie", "session=abc.def.ghi")
            .body(())
            .unwrap();
        let body = br#"{"name":"Renee O'Hara","email":"r@example.com","note":"2 < 3 & 5 > 4"}"#;
        let (out, hits) = run(&d, req, body);
        assert_eq!(out, Outcome::Continue);
        assert!(hits.is_empty(), "{hits:?}");
    }

    #[test]
    fn log_mode_records_without_refusing_and_off_does_nothing() {
        let (out, hits) = run(
            &stage(DetectionMode::Log),
            get("/x?q=1%20UNION%20SELECT%20password%20FROM%20users"),
            b"",
        );
        assert_eq!(out, Outcome::Continue);
        assert_eq!(hits.len(), 1);
        assert!(hits[0].starts_with("sqli:") && hits[0].ends_with("@query.q"));
        let (out, hits) = run(
            &stage(DetectionMode::Off),
            get("/x?q=1%20UNION%20SELECT%20password%20FROM%20users"),
            b"",
        );
        assert_eq!(out, Outcome::Continue);
        assert!(hits.is_empty());
    }

    #[test]
    fn locations_never_carry_the_clients_text_and_findings_are_bounded() {
        let d = stage(DetectionMode::Log);
        let body = br#"{"<script>alert(1)</script>": "x"}"#;
        let req = http::Request::post("/")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (_, hits) = run(&d, req, body);
        assert_eq!(hits.len(), 1);
        assert!(hits[0].ends_with('@'), "the body as a whole: {hits:?}");
        let q: Vec<String> = (0..50)
            .map(|i| format!("p{i}=%27%20OR%201%3D1--"))
            .collect();
        let (_, hits) = run(&d, get(&format!("/?{}", q.join("&"))), b"");
        assert_eq!(hits.len(), MAX_FINDINGS);
    }

    #[test]
    fn a_body_is_inspected_up_to_its_value_budget() {
        let d = Detection::new(
            &DetectionConfig {
                mode: DetectionMode::Block,
                max_body_values: 3,
                ..DetectionConfig::default()
            },
            None,
        );
        let req = || {
            http::Request::post("/")
                .header("content-type", "application/json")
                .body(())
                .unwrap()
        };
        let (out, _) = run(&d, req(), br#"["a", "b", "' OR 1=1--"]"#);
        assert!(refused_at(&out).is_some());
        let (out, _) = run(&d, req(), br#"["a", "b", "c", "' OR 1=1--"]"#);
        assert_eq!(out, Outcome::Continue, "past the budget");
    }
}
