//! The identity and ownership stages over a compiled description, with tokens signed here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::*;
use crate::pipeline::ownership::OwnershipCheck;
use crate::pipeline::stage::Part;
use crate::pipeline::{ConnInfo, TlsInfo, TlsVersion, test_ctx};

struct Fixture {
    dir: PathBuf,
    key: EcdsaKeyPair,
    identity: Identity,
    ownership: OwnershipCheck,
    ownership_body: OwnershipCheck,
    policy: Arc<Policy>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const DOC: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      x-vigil-jwt: {issuer: "https://id.test", audience: api, jwks_file: jwks.json, leeway_secs: 0}
    mtls:
      type: mutualTLS
      x-vigil-mtls: {subject: "san:dns", allow: [svc-a.test, svc-b.test],
                     scopes: {svc-a.test: [users:read]}}
    key: {type: apiKey, in: header, name: x-key}
security: [{bearer: [users:read]}]
paths:
  /users/{user_id}:
    parameters: [{name: user_id, in: path, required: true, schema: {type: string}}]
    get:
      security: [{bearer: [users:read]}, {mtls: [users:read]}]
      x-vigil-ownership:
        exempt_scopes: [admin]
        rules: [{in: path, name: user_id, claim: sub}]
      responses: {"200": {description: ok}}
  /orgs/{org}/items:
    parameters: [{name: org, in: path, required: true, schema: {type: string}}]
    post:
      x-vigil-ownership:
        rules:
          - {in: path, name: org, claim: orgs}
          - {in: body, name: /owner, claim: sub, required: true}
      responses: {"200": {description: ok}}
  /open:
    get:
      security: []
      responses: {"200": {description: ok}}
  /partner:
    get:
      security: [{key: []}]
      responses: {"200": {description: ok}}
"#;

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("vigil-gw-id-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let point = key.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("api.yaml");
    std::fs::write(&file, DOC).unwrap_or_else(|e| panic!("{e}"));
    let policy = Arc::new(
        Policy::load(&file, &vigil_policy::PolicyOptions::default())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let services = Services::new(Arc::default());
    let schemes = schemes(&policy, &dir, &services).unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        dir,
        key,
        identity: Identity::new(policy.clone(), schemes),
        ownership: OwnershipCheck::new(policy.clone(), Part::Head),
        ownership_body: OwnershipCheck::new(policy.clone(), Part::Body),
        policy,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Fixture {
    fn token(&self, claims: Value) -> String {
        let mut c = json!({"iss": "https://id.test", "aud": "api", "sub": "alice",
            "exp": now() + 300, "iat": now(), "scope": "users:read"});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        let head = B64.encode(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}).to_string());
        let input = format!("{head}.{}", B64.encode(c.to_string()));
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// Runs route match, identity and ownership as the chain does.
    async fn run(
        &self,
        method: &str,
        uri: &str,
        auth: &[&str],
        body: Option<&str>,
        cert_uri: Option<&str>,
    ) -> (Outcome, RequestCtx) {
        let mut b = http::Request::builder().method(method).uri(uri);
        for a in auth {
            b = b.header(AUTHORIZATION, *a);
        }
        let (mut head, ()) = b.body(()).unwrap_or_else(|e| panic!("{e}")).into_parts();
        let mut ctx = test_ctx(SocketAddr::from(([198, 18, 0, 1], 1)));
        if let Some(u) = cert_uri {
            ctx.conn = Arc::new(ConnInfo::new(
                ctx.conn.client,
                Some(TlsInfo {
                    version: TlsVersion::Tls13,
                    alpn: None,
                    ja4: None,
                    identity: Some(ClientIdentity {
                        subject: "CN=svc".into(),
                        sans: vec![format!("dns:{u}")],
                    }),
                }),
            ));
        }
        match self
            .policy
            .match_route(method, uri.split('?').next().unwrap_or(uri))
        {
            Ok(m) => ctx.matched = Some(m.to_matched()),
            Err(d) => panic!("{uri}: {d}"),
        }
        let body = body.map(|b| Bytes::from(b.to_owned()));
        let o = self
            .identity
            .on_request(&mut ctx, &mut head, body.as_ref())
            .await;
        if o != Outcome::Continue {
            return (o, ctx);
        }
        let o = self.ownership.on_request(&mut ctx, &mut head, None).await;
        if o != Outcome::Continue {
            return (o, ctx);
        }
        let o = self
            .ownership_body
            .on_request(&mut ctx, &mut head, body.as_ref())
            .await;
        (o, ctx)
    }
}

fn refused(o: &Outcome) -> (u16, &'static str, Option<String>) {
    match o {
        Outcome::Respond(r) => (
            r.status.as_u16(),
            r.reason,
            r.headers
                .iter()
                .find(|(n, _)| n == WWW_AUTHENTICATE)
                .and_then(|(_, v)| v.to_str().ok())
                .map(str::to_owned),
        ),
        Outcome::Continue => (200, "ok", None),
    }
}

#[tokio::test]
async fn tokens_are_verified_against_the_operation() {
    let f = fixture("jwt");
    let bearer = |t: &str| format!("Bearer {t}");
    let good = f.token(json!({}));
    let (o, ctx) = f
        .run("GET", "/users/alice", &[&bearer(&good)], None, None)
        .await;
    assert_eq!(o, Outcome::Continue);
    let p = ctx.principal.unwrap_or_else(|| panic!("no principal"));
    assert_eq!((p.subject.as_str(), p.via), ("alice", AuthMethod::Jwt));

    let (o, _) = f.run("GET", "/users/alice", &[], None, None).await;
    let (status, reason, www) = refused(&o);
    assert_eq!((status, reason), (401, "token_missing"));
    assert_eq!(www.as_deref(), Some("Bearer realm=\"vigil\""));

    let expired = f.token(json!({"exp": now() - 10}));
    let (o, _) = f
        .run("GET", "/users/alice", &[&bearer(&expired)], None, None)
        .await;
    let (status, reason, www) = refused(&o);
    assert_eq!((status, reason), (401, "token_expired"));
    let www = www.unwrap_or_default();
    assert!(
        www.contains("error=\"invalid_token\"") && !www.contains(&expired),
        "{www}"
    );

    let other_aud = f.token(json!({"aud": "another-api"}));
    let (o, _) = f
        .run("GET", "/users/alice", &[&bearer(&other_aud)], None, None)
        .await;
    assert_eq!(refused(&o).1, "token_audience");

    let no_scope = f.token(json!({"scope": "orders:read"}));
    let (o, _) = f
        .run("GET", "/users/alice", &[&bearer(&no_scope)], None, None)
        .await;
    let (status, reason, www) = refused(&o);
    assert_eq!((status, reason), (403, "insufficient_scope"));
    assert!(www.unwrap_or_default().contains("scope=\"users:read\""));

    let two = [bearer(&good), bearer(&good)];
    let (o, _) = f
        .run("GET", "/users/alice", &[&two[0], &two[1]], None, None)
        .await;
    assert_eq!(
        refused(&o).0,
        401,
        "two Authorization headers are ambiguous"
    );

    // A token made of the header and claims of a good one with no signature.
    let unsigned = good
        .rsplit_once('.')
        .map(|(a, _)| format!("{a}."))
        .unwrap_or_default();
    let (o, _) = f
        .run("GET", "/users/alice", &[&bearer(&unsigned)], None, None)
        .await;
    assert_eq!(refused(&o).0, 401);
}

#[tokio::test]
async fn open_and_upstream_verified_operations() {
    let f = fixture("open");
    let (o, ctx) = f.run("GET", "/open", &[], None, None).await;
    assert_eq!((o, ctx.principal.is_none()), (Outcome::Continue, true));
    // A bad token is refused even where none is needed: its client must learn it failed.
    let bad = format!("Bearer {}", f.token(json!({"iss": "https://evil.test"})));
    let (o, _) = f.run("GET", "/open", &[&bad], None, None).await;
    assert_eq!(refused(&o).1, "token_issuer");
    // A good one is still read, for limits by subject.
    let good = format!("Bearer {}", f.token(json!({"sub": "bob"})));
    let (_, ctx) = f.run("GET", "/open", &[&good], None, None).await;
    assert_eq!(ctx.principal.map(|p| p.subject), Some("bob".to_owned()));
    // An apiKey scheme is the upstream's to check.
    let (o, _) = f.run("GET", "/partner", &["x"], None, None).await;
    assert_eq!(o, Outcome::Continue);
}

#[tokio::test]
async fn client_certificates_satisfy_the_mtls_alternative() {
    let f = fixture("mtls");
    let (o, ctx) = f
        .run("GET", "/users/svc-a.test", &[], None, Some("svc-a.test"))
        .await;
    // The certificate's own id is the owner, with the scope the scheme grants it.
    assert_eq!(o, Outcome::Continue, "{:?}", refused(&o));
    let p = ctx.principal.unwrap_or_else(|| panic!("no principal"));
    assert_eq!(
        (p.subject.as_str(), p.via),
        ("svc-a.test", AuthMethod::Mtls)
    );
    // Allowed but without the scope the operation needs.
    let (o, _) = f
        .run("GET", "/users/x", &[], None, Some("svc-b.test"))
        .await;
    assert_eq!(refused(&o).1, "insufficient_scope");
    let (o, _) = f
        .run("GET", "/users/x", &[], None, Some("intruder.test"))
        .await;
    // The token alternative is missing too; the certificate's refusal is the telling one.
    assert_eq!(refused(&o).0, 403);
    assert_eq!(refused(&o).1, "mtls_not_allowed");
}

#[tokio::test]
async fn ownership_binds_objects_to_the_identity() {
    let f = fixture("bola");
    let alice = format!("Bearer {}", f.token(json!({})));
    let (o, _) = f.run("GET", "/users/alice", &[&alice], None, None).await;
    assert_eq!(o, Outcome::Continue);
    let (o, _) = f.run("GET", "/users/bob", &[&alice], None, None).await;
    let Outcome::Respond(r) = &o else {
        panic!("alice read bob's user")
    };
    assert_eq!((r.status.as_u16(), r.reason), (403, "bola_denied"));
    assert_eq!(r.location.as_deref(), Some("path.user_id"));
    let admin = format!("Bearer {}", f.token(json!({"scope": "users:read admin"})));
    let (o, _) = f.run("GET", "/users/bob", &[&admin], None, None).await;
    assert_eq!(o, Outcome::Continue, "admin scope is exempt");

    // A claim listing the caller's organisations, and a body member naming the owner.
    let member = format!("Bearer {}", f.token(json!({"orgs": ["o1", "o2"]})));
    let post = |org: &'static str, body: &'static str| {
        let member = member.clone();
        let f = &f;
        async move { f.run("POST", org, &[&member], Some(body), None).await.0 }
    };
    assert_eq!(
        post("/orgs/o2/items", r#"{"owner":"alice"}"#).await,
        Outcome::Continue
    );
    assert_eq!(
        refused(&post("/orgs/o3/items", r#"{"owner":"alice"}"#).await).1,
        "bola_denied"
    );
    assert_eq!(
        refused(&post("/orgs/o1/items", r#"{"owner":"bob"}"#).await).1,
        "bola_denied"
    );
    assert_eq!(
        refused(&post("/orgs/o1/items", r#"{"x":1}"#).await).1,
        "bola_owner_missing"
    );
    assert_eq!(
        refused(&post("/orgs/o1/items", "not json").await).1,
        "bola_owner_missing"
    );
    assert_eq!(
        refused(&post("/orgs/o1/items", r#"{"owner":["alice"]}"#).await).1,
        "bola_denied"
    );
}
