//! What the gateways are configured with: a TLS certificate, an ES256 signing key with its JWKS,
//! tokens, the OpenAPI descriptions and the gateway configs, all written to the run's temp
//! directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;
use vigil_testkit::config::{Config, RateLimit, Upstream};
use vigil_testkit::jwt::{Alg, Key, jwks_json, now};
use vigil_testkit::pki::{TlsFiles, self_signed};

/// The path every request asks for: the description's one operation.
pub const PATH: &str = "/items";
const ISSUER: &str = "https://id.bench.test";
const AUDIENCE: &str = "bench-api";
/// Requests per second and burst of the rate-limit rule: far above what one box serves, so
/// nothing is refused and only the rule's cost shows.
pub const LIMIT: u32 = 100_000_000;

/// A self-signed ECDSA P-256 certificate for localhost (h2load does not verify it).
pub fn tls_cert(dir: &Path) -> Result<TlsFiles> {
    self_signed(&["localhost", "127.0.0.1"])?.write_in(dir)
}

/// The token issuer: an ES256 key whose public half is in `jwks.json`.
#[derive(Debug)]
pub struct Issuer {
    key: Key,
}

impl Issuer {
    /// Generates the key and writes the JWKS next to the descriptions.
    pub fn new(dir: &Path) -> Result<Self> {
        let key = Key::new(Alg::Es256, "bench")?;
        let mut jwk = key.jwk_with_alg();
        jwk["use"] = json!("sig");
        std::fs::write(dir.join("jwks.json"), jwks_json(&[jwk]))?;
        Ok(Self { key })
    }

    /// A valid access token for `sub`, good for a day; about 300 bytes like a typical one.
    pub fn token(&self, sub: &str) -> String {
        let t = now();
        self.key.token(
            &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": t,
            "nbf": t, "exp": t + 86_400, "scope": "items:read"}),
        )
    }
}

/// The OpenAPI description: one GET operation, with or without a bearer JWT requirement.
pub fn description(dir: &Path, jwt: bool) -> Result<PathBuf> {
    let (schemes, security) = if jwt {
        (
            format!(
                "components:\n  securitySchemes:\n    bearer:\n      type: http\n      \
                 scheme: bearer\n      x-vigil-jwt:\n        issuer: \"{ISSUER}\"\n        \
                 audience: {AUDIENCE}\n        jwks_file: jwks.json\n        \
                 algorithms: [ES256]\n"
            ),
            "      security: [{bearer: []}]\n",
        )
    } else {
        (String::new(), "")
    };
    let doc = format!(
        "openapi: 3.1.0\ninfo: {{title: bench, version: \"1\"}}\n{schemes}paths:\n  {PATH}:\n    \
         get:\n{security}      responses: {{\"200\": {{description: ok}}}}\n"
    );
    let path = dir.join(if jwt { "api-jwt.yaml" } else { "api.yaml" });
    std::fs::write(&path, doc)?;
    Ok(path)
}

/// The rate-limit rule of the `limit` configurations: per subject, far above the load.
pub fn rate_limit(shared: bool) -> RateLimit {
    let rule = RateLimit::new("per-sub", "sub", LIMIT, LIMIT);
    if shared { rule.shared() } else { rule }
}

/// What differs between the gateways under test.
#[derive(Debug)]
pub struct Setup<'a> {
    pub name: &'a str,
    pub policy: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
}

/// Everything else is the same for every gateway: TLS key, upstream and its pool, audit log to
/// a file, limits raised so the load is never refused for them.
pub fn gateway_config(
    dir: &Path,
    tls: &TlsFiles,
    upstream: u16,
    setup: Setup<'_>,
) -> Result<PathBuf> {
    let mut cfg = Config::gateway("127.0.0.1:0", tls)
        .set("listener.max_connections", 30_000)
        .set("listener.max_requests_in_flight", 100_000)
        .set("listener.header_timeout", "60s")
        .set("listener.idle_timeout", "75s")
        .audit_file(&dir.join(format!("audit-{}.log", setup.name)))
        .upstream(Upstream::new("up", format!("http://127.0.0.1:{upstream}")).pool_size(64));
    if let Some(file) = &setup.policy {
        cfg = cfg.policy(file);
    }
    if let Some(rule) = setup.rate_limit {
        cfg = cfg.rate_limit(rule);
    }
    let path = dir.join(format!("gateway-{}.toml", setup.name));
    cfg.write(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use vigil_gateway::GatewayConfig;

    use super::*;

    #[test]
    fn configs_validate_and_tokens_have_three_parts() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let dir = dir.path();
        let tls = tls_cert(dir)?;
        let api = description(dir, true)?;
        let setup = Setup {
            name: "t",
            policy: Some(api),
            rate_limit: Some(rate_limit(true)),
        };
        let path = gateway_config(dir, &tls, 1, setup)?;
        let cfg: GatewayConfig = toml::from_str(&std::fs::read_to_string(path)?)?;
        assert_eq!(cfg.validate(), Ok(()));
        assert!(cfg.rate_limit[0].shared);
        assert_eq!(cfg.upstream[0].pool_size, 64);
        let token = Issuer::new(dir)?.token("alice");
        assert_eq!(token.split('.').count(), 3);
        assert!(dir.join("jwks.json").exists());
        Ok(())
    }
}
