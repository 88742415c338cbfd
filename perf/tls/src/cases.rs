//! What is measured: the servers (nginx as a TLS proxy, the gateway as a plain TLS proxy and the
//! gateway with full inspection), the requests (the same GET and POST for every server), and
//! the files they need: the OpenAPI description, the JWT issuer's JWKS, the wrk scripts.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use vigil_testkit::config::{Config, Upstream};
use vigil_testkit::jwt::{Alg, Key, jwks_json, now};
use vigil_testkit::pki::TlsFiles;

pub const ISSUER: &str = "https://id.bench.test";
pub const AUDIENCE: &str = "bench-api";
/// The subject of the token, and the owner of the objects every request asks for.
pub const SUBJECT: &str = "alice";
/// The GET: a path parameter bound to the token's subject and two checked query parameters.
pub const GET_PATH: &str = "/users/alice/items?limit=10&sort=asc";
/// The POST's target; its body is [`BODY`].
pub const POST_PATH: &str = "/users/alice/items";
/// A 300-byte JSON object, validated against the description's schema on the inspecting
/// gateway.
pub const BODY: &str = r#"{"name":"bench item 0001","description":"a typical item created by the benchmark client","price":1234,"currency":"EUR","quantity":3,"tags":["alpha","beta","gamma"],"owner":"alice","attributes":{"color":"blue","size":"m","weight_g":250},"active":true,"sku":"SKU-000-111-222-333-444-555"}"#;

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// nginx terminating TLS and proxying, no inspection.
    Nginx,
    /// The gateway as a TLS proxy without a policy.
    VigilPlain,
    /// The gateway with the OpenAPI policy, JWT, ownership, parameter and body checks.
    VigilFull,
    /// Envoy verifying the same JWT (`jwt_authn`, cached), nothing else inspected.
    Envoy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// One HTTP/1.1 case.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Case {
    pub name: &'static str,
    pub server: Server,
    pub method: Method,
    /// The case whose requests/s this one's ratio is taken against.
    pub compared_to: Option<&'static str>,
    pub what: &'static str,
}

/// Every HTTP/1.1 case, in the order of a round (a round starts at a different one each time).
pub const CASES: [Case; 6] = [
    Case {
        name: "nginx-get",
        server: Server::Nginx,
        method: Method::Get,
        compared_to: None,
        what: "nginx TLS proxy, no inspection, GET",
    },
    Case {
        name: "vigil-plain-get",
        server: Server::VigilPlain,
        method: Method::Get,
        compared_to: Some("nginx-get"),
        what: "gateway as a plain TLS proxy (no policy), GET",
    },
    Case {
        name: "vigil-full-get",
        server: Server::VigilFull,
        method: Method::Get,
        compared_to: Some("nginx-get"),
        what: "gateway, OpenAPI policy + cached JWT + ownership rule + query params, GET",
    },
    Case {
        name: "nginx-post",
        server: Server::Nginx,
        method: Method::Post,
        compared_to: None,
        what: "nginx TLS proxy, no inspection, POST with the 300-byte JSON body",
    },
    Case {
        name: "vigil-full-post",
        server: Server::VigilFull,
        method: Method::Post,
        compared_to: Some("nginx-post"),
        what: "gateway, full inspection + 300-byte JSON body validated, POST",
    },
    Case {
        name: "envoy-jwt-get",
        server: Server::Envoy,
        method: Method::Get,
        compared_to: Some("nginx-get"),
        what: "Envoy TLS proxy verifying the same JWT (jwt_authn, cached), GET",
    },
];

/// The token issuer: an ES256 key whose public half is in `jwks.json` beside the description.
pub fn token(dir: &Path) -> Result<String> {
    let key = Key::new(Alg::Es256, "bench")?;
    let mut jwk = key.jwk_with_alg();
    jwk["use"] = json!("sig");
    std::fs::write(dir.join("jwks.json"), jwks_json(&[jwk]))?;
    let t = now();
    Ok(key.token(
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": t,
        "nbf": t, "exp": t + 86_400, "scope": "items:read items:write"}),
    ))
}

/// The OpenAPI description of the inspecting gateway.
pub fn description(dir: &Path) -> Result<PathBuf> {
    let doc = format!(
        r#"openapi: 3.1.0
info: {{title: bench, version: "1"}}
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      x-vigil-jwt: {{issuer: "{ISSUER}", audience: {AUDIENCE}, jwks_file: jwks.json, algorithms: [ES256]}}
security: [{{bearer: []}}]
paths:
  /users/{{user}}/items:
    get:
      parameters:
        - {{name: user, in: path, required: true, schema: {{type: string, maxLength: 64}}}}
        - {{name: limit, in: query, schema: {{type: integer, minimum: 1, maximum: 100}}}}
        - {{name: sort, in: query, schema: {{type: string, enum: [asc, desc]}}}}
      x-vigil-ownership:
        rules: [{{in: path, name: user, claim: sub}}]
      responses: {{"200": {{description: ok}}}}
    post:
      parameters:
        - {{name: user, in: path, required: true, schema: {{type: string, maxLength: 64}}}}
      x-vigil-ownership:
        rules: [{{in: path, name: user, claim: sub}}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [name, price, currency, quantity, owner]
              properties:
                name: {{type: string, minLength: 1, maxLength: 100}}
                description: {{type: string, maxLength: 1000}}
                price: {{type: integer, minimum: 0}}
                currency: {{type: string, enum: [EUR, USD, GBP]}}
                quantity: {{type: integer, minimum: 1, maximum: 1000}}
                tags: {{type: array, maxItems: 10, items: {{type: string, maxLength: 32}}}}
                owner: {{type: string, maxLength: 64}}
                attributes:
                  type: object
                  properties:
                    color: {{type: string}}
                    size: {{type: string, enum: [s, m, l]}}
                    weight_g: {{type: integer, minimum: 0}}
                active: {{type: boolean}}
                sku: {{type: string, pattern: "^SKU-[0-9-]+$"}}
      responses: {{"200": {{description: ok}}}}
"#
    );
    let path = dir.join("api.yaml");
    std::fs::write(&path, doc)?;
    Ok(path)
}

/// The gateway's config: limits raised so the load is never refused for them, header timeout
/// equal to nginx's client_header_timeout so idle connections survive the measurement, an
/// audit line per request to a file like nginx's access log.
pub fn gateway_config(
    dir: &Path,
    tls: &TlsFiles,
    upstream: u16,
    keepalive: usize,
    policy: Option<&Path>,
) -> Result<PathBuf> {
    let tag = if policy.is_some() { "full" } else { "plain" };
    let path = dir.join(format!("gateway-{tag}.toml"));
    let mut cfg = Config::gateway("127.0.0.1:0", tls)
        .set("listener.max_connections", 61_000)
        .set("listener.max_requests_in_flight", 100_000)
        .set("listener.header_timeout", "60s")
        .set("listener.idle_timeout", "75s")
        .audit_file(&dir.join(format!("audit-{tag}.log")))
        .upstream(
            Upstream::new("up", format!("http://127.0.0.1:{upstream}"))
                .pool_size(u32::try_from(keepalive)?),
        );
    if let Some(p) = policy {
        cfg = cfg.policy(p);
    }
    cfg.write(&path)?;
    Ok(path)
}

/// A wrk script sending `method` with the bearer token (and the JSON body for a POST).
pub fn wrk_script(dir: &Path, method: Method, token: &str) -> Result<PathBuf> {
    let lua_str = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut s = format!(
        "wrk.headers[\"Authorization\"] = {}\n",
        lua_str(&format!("Bearer {token}"))
    );
    let name = match method {
        Method::Get => {
            s.push_str(&format!(
                "wrk.method = \"GET\"\nwrk.path = {}\n",
                lua_str(GET_PATH)
            ));
            "get.lua"
        }
        Method::Post => {
            s.push_str(&format!(
                "wrk.method = \"POST\"\nwrk.path = {}\nwrk.body = {}\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n",
                lua_str(POST_PATH),
                lua_str(BODY)
            ));
            "post.lua"
        }
    };
    let path = dir.join(name);
    std::fs::write(&path, s)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_validate_and_the_body_is_about_300_bytes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let tls = vigil_testkit::pki::self_signed(&["localhost"])?.write_in(dir.path())?;
        let api = description(dir.path())?;
        for policy in [None, Some(api.as_path())] {
            let path = gateway_config(dir.path(), &tls, 9, 64, policy)?;
            let cfg: vigil_gateway::GatewayConfig =
                toml::from_str(&std::fs::read_to_string(path)?)?;
            assert_eq!(cfg.validate(), Ok(()));
            assert_eq!(cfg.upstream[0].pool_size, 64);
        }
        assert!((280..=320).contains(&BODY.len()), "{}", BODY.len());
        let v: serde_json::Value = serde_json::from_str(BODY)?;
        assert_eq!(v["owner"], SUBJECT);
        let tok = token(dir.path())?;
        let post = std::fs::read_to_string(wrk_script(dir.path(), Method::Post, &tok)?)?;
        assert!(post.contains("wrk.method = \"POST\"") && post.contains("\\\"owner\\\""));
        for c in CASES {
            if let Some(peer) = c.compared_to {
                assert!(
                    CASES
                        .iter()
                        .any(|p| p.name == peer && p.server == Server::Nginx)
                );
            }
        }
        Ok(())
    }
}
