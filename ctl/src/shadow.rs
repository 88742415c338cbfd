//! `vigilctl shadow list|export`: requests to methods and paths the OpenAPI description does
//! not know, as a table with times and ages, or as an OpenAPI `paths` fragment an operator
//! reviews and merges into the description.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};
use vigil_control::{Shadow, duration::format_secs, reply::ShadowEntry};

/// Methods an OpenAPI path item can hold, as its keys spell them.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `2026-12-05T07:00:00Z`.
pub fn utc(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// `5s ago`, `3h20m ago`, `now` (also for a clock that runs behind vigild's).
pub fn age(unix: u64, now: u64) -> String {
    match now.saturating_sub(unix) {
        0 => "now".to_owned(),
        s => format!("{} ago", format_secs(s)),
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One line per undescribed method and path.
pub fn render_list(s: &Shadow, now: u64) -> String {
    if s.entries.is_empty() {
        return "no shadow API traffic seen\n".to_owned();
    }
    let mut out = format!(
        "{:<7} {:<40} {:>8}  {:<20}  {:<12} {:<12} CLIENTS\n",
        "METHOD", "PATH", "COUNT", "FIRST SEEN (UTC)", "LAST SEEN", "STATUSES"
    );
    for e in &s.entries {
        let statuses: Vec<String> = e.statuses.iter().map(u16::to_string).collect();
        let clients: Vec<String> = e.clients.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "{:<7} {:<40} {:>8}  {:<20}  {:<12} {:<12} {}{}\n",
            e.method,
            e.path,
            e.count,
            utc(e.first_seen),
            age(e.last_seen, now),
            statuses.join(","),
            clients.join(","),
            if e.more_clients { ",..." } else { "" }
        ));
    }
    out
}

/// The inventory as an OpenAPI document holding only `paths`: one operation per method and
/// path seen, its path parameters declared, the statuses seen as responses, and what the
/// gateway saw under `x-vigil-shadow`. Methods OpenAPI cannot describe are listed apart.
pub fn openapi_fragment(s: &Shadow, now: u64) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut other = Vec::new();
    for e in &s.entries {
        let method = e.method.to_ascii_lowercase();
        if !OPENAPI_METHODS.contains(&method.as_str()) {
            other.push(json!({ "method": e.method, "path": e.path, "count": e.count }));
            continue;
        }
        let (path, params) = templated(&e.path);
        let item = paths.entry(path).or_default();
        if !params.is_empty() {
            item.insert("parameters".to_owned(), Value::Array(params));
        }
        item.insert(method, operation(e));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Shadow API inventory",
            "version": utc(now),
            "description": "Requests the gateway saw to methods and paths its OpenAPI \
                            description does not have. Review each operation: describe it \
                            properly and merge it under `paths`, or leave it out so the \
                            gateway keeps refusing it.",
        },
        "paths": paths,
    });
    if !other.is_empty() {
        doc["x-vigil-shadow-other-methods"] = Value::Array(other);
    }
    doc
}

fn operation(e: &ShadowEntry) -> Value {
    let mut responses = Map::new();
    for s in &e.statuses {
        responses.insert(
            s.to_string(),
            json!({ "description": "seen by the gateway (not described yet)" }),
        );
    }
    if responses.is_empty() {
        responses.insert(
            "default".to_owned(),
            json!({ "description": "seen by the gateway (not described yet)" }),
        );
    }
    json!({
        "summary": format!("Undescribed {} seen by the gateway", e.method),
        "responses": responses,
        "x-vigil-shadow": {
            "count": e.count,
            "first_seen": utc(e.first_seen),
            "last_seen": utc(e.last_seen),
            "statuses": e.statuses,
            "clients": e.clients,
            "more_clients": e.more_clients,
        },
    })
}

/// The normalised path as an OpenAPI path template: each `{id}` the normaliser put in becomes
/// a declared path parameter (`id`, `id2`, ... so names stay unique); braces the client sent
/// are percent-encoded so they cannot read as templates.
fn templated(path: &str) -> (String, Vec<Value>) {
    let mut out = String::new();
    let mut params = Vec::new();
    for seg in path.split('/').skip(1) {
        out.push('/');
        if seg == "{id}" {
            let name = match params.len() {
                0 => "id".to_owned(),
                n => format!("id{}", n + 1),
            };
            out.push_str(&format!("{{{name}}}"));
            params.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string" },
            }));
        } else {
            out.push_str(&seg.replace('{', "%7B").replace('}', "%7D"));
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    (out, params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entry(method: &str, path: &str, statuses: Vec<u16>) -> ShadowEntry {
        ShadowEntry {
            method: method.into(),
            path: path.into(),
            count: 3,
            first_seen: 1_764_918_000,
            last_seen: 1_764_921_600,
            statuses,
            clients: vec!["198.18.0.7".parse().unwrap()],
            more_clients: false,
        }
    }

    #[test]
    fn the_list_shows_times_and_ages() {
        let s = Shadow {
            entries: vec![entry("GET", "/v2/orders/{id}", vec![404])],
        };
        let out = render_list(&s, 1_764_921_600 + 200);
        let line = out.lines().nth(1).unwrap();
        assert!(line.contains("2025-12-05T07:00:00Z"), "{out}");
        assert!(line.contains("3m20s ago"), "{out}");
        assert!(!out.contains("1764918000"), "{out}");
        assert!(out.lines().next().unwrap().contains("FIRST SEEN (UTC)"));
        assert_eq!(age(10, 10), "now");
        assert_eq!(age(20, 10), "now");
        assert_eq!(
            render_list(&Shadow { entries: vec![] }, 0),
            "no shadow API traffic seen\n"
        );
    }

    #[test]
    fn the_export_is_an_openapi_paths_fragment() {
        let s = Shadow {
            entries: vec![
                entry("GET", "/v2/orders/{id}/lines/{id}", vec![200, 404]),
                entry("DELETE", "/v2/orders/{id}/lines/{id}", vec![]),
                entry("OTHER", "/x", vec![405]),
                entry("GET", "/a/{weird}", vec![404]),
            ],
        };
        let doc = openapi_fragment(&s, 1_764_921_600);
        let item = &doc["paths"]["/v2/orders/{id}/lines/{id2}"];
        assert_eq!(item["parameters"][1]["name"], "id2", "{doc:#}");
        assert_eq!(item["parameters"][0]["in"], "path");
        assert_eq!(
            item["get"]["responses"]["404"]["description"],
            "seen by the gateway (not described yet)"
        );
        assert_eq!(
            item["get"]["x-vigil-shadow"]["first_seen"],
            "2025-12-05T07:00:00Z"
        );
        assert!(item["delete"]["responses"]["default"].is_object());
        assert!(doc["paths"]["/a/%7Bweird%7D"]["get"].is_object(), "{doc:#}");
        assert_eq!(doc["x-vigil-shadow-other-methods"][0]["method"], "OTHER");
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn the_exported_yaml_loads_as_a_description() {
        let s = Shadow {
            entries: vec![
                entry("GET", "/v2/orders/{id}/lines/{id}", vec![200, 404]),
                entry("POST", "/v2/orders", vec![]),
            ],
        };
        let yaml = serde_yaml_ng::to_string(&openapi_fragment(&s, 0)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shadow.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let report = vigil_policy::check(&file, &vigil_policy::PolicyOptions::default());
        assert!(report.ok, "{yaml}\n{report:#?}");
        assert_eq!(report.operations, 2, "{report:#?}");
    }
}
