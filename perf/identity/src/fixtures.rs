//! What the gateways are configured with: a TLS certificate, an ES256 signing key with its JWKS,
//! tokens, the OpenAPI descriptions and the gateway configs, all written to the run's temp
//! directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::json;
use vigil_gateway::GatewayConfig;
use vigil_gateway::config::{AuditSink, PolicyConfig, RateLimitConfig, UpstreamConfig};

/// The path every request asks for: the description's one operation.
pub const PATH: &str = "/items";
const ISSUER: &str = "https://id.bench.test";
const AUDIENCE: &str = "bench-api";
/// Requests per second and burst of the rate-limit rule: far above what one box serves, so
/// nothing is refused and only the rule's cost shows.
pub const LIMIT: u32 = 100_000_000;

/// A self-signed ECDSA P-256 certificate for localhost (h2load does not verify it).
pub fn tls_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

/// The token issuer: an ES256 key whose public half is in `jwks.json`.
#[derive(Debug)]
pub struct Issuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Issuer {
    /// Generates the key and writes the JWKS next to the descriptions.
    pub fn new(dir: &Path) -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating the ES256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("loading the ES256 key: {e}"))?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = key.public_key().as_ref();
        let (x, y) = (
            point.get(1..33).context("public key too short")?,
            point.get(33..65).context("public key too short")?,
        );
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256",
            "use": "sig", "x": B64.encode(x), "y": B64.encode(y)}]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string())?;
        Ok(Self { key, rng })
    }

    /// A valid access token for `sub`, good for a day; about 300 bytes like a typical one.
    pub fn token(&self, sub: &str) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let head = B64.encode(json!({"alg": "ES256", "kid": "bench", "typ": "JWT"}).to_string());
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now,
            "nbf": now, "exp": now + 86_400, "scope": "items:read"});
        let input = format!("{head}.{}", B64.encode(claims.to_string()));
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing a token"))?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
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
pub fn rate_limit(shared: bool) -> RateLimitConfig {
    RateLimitConfig {
        name: "per-sub".to_owned(),
        key: "sub".to_owned(),
        rate: LIMIT,
        burst: LIMIT,
        shared,
        fallback_rate: None,
        fallback_burst: None,
    }
}

/// What differs between the gateways under test.
#[derive(Debug)]
pub struct Setup<'a> {
    pub name: &'a str,
    pub policy: Option<PathBuf>,
    pub rate_limit: Option<RateLimitConfig>,
}

/// Everything else is the same for every gateway: TLS key, upstream and its pool, audit log to
/// a file, limits raised so the load is never refused for them.
pub fn gateway_config(
    dir: &Path,
    tls: &(PathBuf, PathBuf),
    upstream: u16,
    setup: Setup<'_>,
) -> Result<PathBuf> {
    let mut cfg = GatewayConfig::default();
    cfg.listener.https = "127.0.0.1:0".parse()?;
    cfg.metrics.listen = "127.0.0.1:0".parse()?;
    cfg.listener.max_connections = 30_000;
    cfg.listener.max_requests_in_flight = 100_000;
    cfg.listener.header_timeout = Duration::from_secs(60);
    cfg.listener.idle_timeout = Duration::from_secs(75);
    cfg.tls.cert = tls.0.clone();
    cfg.tls.key = tls.1.clone();
    cfg.audit.sink = AuditSink::File;
    cfg.audit.path = dir.join(format!("audit-{}.log", setup.name));
    cfg.upstream.push(UpstreamConfig {
        name: "up".to_owned(),
        url: format!("http://127.0.0.1:{upstream}"),
        pool_size: 64,
        ..UpstreamConfig::default()
    });
    cfg.policy = setup.policy.map(|file| PolicyConfig {
        file,
        mode: Default::default(),
        strict_query: false,
        strict_objects: false,
        shadow_file: None,
    });
    cfg.rate_limit.extend(setup.rate_limit);
    let path = dir.join(format!("gateway-{}.json", setup.name));
    std::fs::write(&path, serde_json::to_vec(&cfg)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_validate_and_tokens_have_three_parts() {
        let dir = std::env::temp_dir().join(format!("vigil-perf-identity-f{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let tls = tls_cert(&dir).unwrap_or_else(|e| panic!("{e}"));
        let api = description(&dir, true).unwrap_or_else(|e| panic!("{e}"));
        let setup = Setup {
            name: "t",
            policy: Some(api),
            rate_limit: Some(rate_limit(true)),
        };
        let path = gateway_config(&dir, &tls, 1, setup).unwrap_or_else(|e| panic!("{e}"));
        let cfg: GatewayConfig = serde_json::from_slice(&std::fs::read(path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.validate(), Ok(()));
        let issuer = Issuer::new(&dir).unwrap_or_else(|e| panic!("{e}"));
        let token = issuer.token("alice").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.split('.').count(), 3);
        assert!(dir.join("jwks.json").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
