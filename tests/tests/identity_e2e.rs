//! Identity through vigild: bearer JWTs verified against a JWKS fetched over HTTPS (ES256 and
//! RS256; expiry, audience, issuer, forged signatures, `none` and HMAC algorithm confusion,
//! scopes), key rotation picked up on an unknown `kid` with bounded refetches, ownership rules
//! (BOLA) on path and body values, rate limits per token subject, and audit lines that name the
//! subject and never carry the token.
//!
//! Everything is real: vigild as a process, curl as the client over TLS, tokens signed with the
//! test kit's keys, and the JWKS served over HTTPS by the kit's server, which counts the requests
//! (so the test sees every fetch vigild makes).

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use vigil_e2e::upstream::Upstream;
use vigil_testkit::config::{Config, RateLimit};
use vigil_testkit::jwt::{Alg, JwksServer, Key, Mode, hs256_token, jwks_json, now, signing_input};
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

const ISSUER: &str = "https://id.e2e.test";
const AUDIENCE: &str = "vigil-e2e-api";
/// The policy's `jwks_min_refresh_secs`.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Comfortably past `MIN_REFRESH`.
const PAST_MIN_REFRESH: Duration = Duration::from_millis(1_300);

// ---------------------------------------------------------------------------------------------
// Tokens and the identity provider's JWKS endpoint.

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A fresh key (RSA: `variant` 0 or 1 of the process's two keys).
fn signing_key(alg: Alg, kid: &str, variant: usize) -> Key {
    ok(Key::variant(alg, kid, variant), "making a signing key")
}

/// Publishes these keys (with `alg`, as identity providers do).
fn publish(server: &JwksServer, keys: &[&Key]) {
    let jwks: Vec<Value> = keys.iter().map(|k| k.jwk_with_alg()).collect();
    server.serve(jwks_json(&jwks));
}

/// Good claims for `sub` with `scope`, valid for ten minutes.
fn claims(sub: &str, scope: &str) -> Value {
    let t = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope, "iat": t,
        "exp": t + 600})
}

/// `base` with the members of `extra` set (a null removes one).
fn with(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(extra)) = (out.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                o.remove(&k);
            } else {
                o.insert(k, v);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// vigild with a policy whose bearer scheme uses that JWKS, and curl as the client.

/// The API: `/items` needs `items:read` (the document's default), `/reports` needs
/// `reports:admin`; `/users/{user_id}` and `POST /documents` carry ownership rules;
/// `/public/users/{user_id}` needs no token but still has an ownership rule.
fn policy(jwks_url: &str, jwks_ca: &Path) -> String {
    format!(
        r#"openapi: 3.0.3
info: {{title: identity-e2e, version: "1"}}
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      x-vigil-jwt:
        issuer: "{ISSUER}"
        audience: "{AUDIENCE}"
        jwks_url: "{jwks_url}"
        jwks_ca_file: "{ca}"
        leeway_secs: 5
        jwks_min_refresh_secs: {min_refresh}
security: [{{bearer: [items:read]}}]
paths:
  /items:
    get:
      responses: {{"200": {{description: ok}}}}
  /reports:
    get:
      security: [{{bearer: [reports:admin]}}]
      responses: {{"200": {{description: ok}}}}
  /users/{{user_id}}:
    parameters: [{{name: user_id, in: path, required: true, schema: {{type: string, maxLength: 32}}}}]
    get:
      security: [{{bearer: []}}]
      x-vigil-ownership:
        exempt_scopes: [admin]
        rules: [{{in: path, name: user_id, claim: sub}}]
      responses: {{"200": {{description: ok}}}}
  /documents:
    post:
      security: [{{bearer: []}}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                owner: {{type: string}}
                title: {{type: string}}
      x-vigil-ownership:
        rules: [{{in: body, name: /owner, claim: sub, required: true}}]
      responses: {{"200": {{description: ok}}}}
  /public/users/{{user_id}}:
    parameters: [{{name: user_id, in: path, required: true, schema: {{type: string, maxLength: 32}}}}]
    get:
      security: []
      x-vigil-ownership:
        rules: [{{in: path, name: user_id, claim: sub}}]
      responses: {{"200": {{description: ok}}}}
"#,
        ca = jwks_ca.display(),
        min_refresh = MIN_REFRESH.as_secs(),
    )
}

/// One test's world. Fields drop in order: vigild first, then the JWKS server and upstream.
struct Env {
    d: Vigild,
    jwks: JwksServer,
    _up: Upstream,
    port: u16,
    /// The gateway's certificate, for curl.
    ca: PathBuf,
    /// Where curl's output goes (inside vigild's directory).
    scratch: PathBuf,
    batches: AtomicUsize,
}

impl Env {
    /// vigild with the policy, an audit file and `extra` applied to its config; the identity
    /// provider answers 503 until keys are published. Not started.
    fn new(extra: impl FnOnce(Config) -> Config) -> Env {
        let jwks = ok(
            JwksServer::start_with(Mode::Status(503)),
            "starting the JWKS server",
        );
        let up = ok(Upstream::start(), "starting the upstream");
        let port = ok(free_port(), "picking a port");
        let d = ok(Vigild::new("identity"), "making vigild's directory");
        let cfg = ok(
            d.gateway_config("127.0.0.1", port, up.url()),
            "making the gateway's certificate",
        )
        .audit_file(&d.path("audit.log"))
        .set("audit.headers", vec!["user-agent", "authorization"])
        .policy(&d.path("openapi.yaml"));
        ok(d.configure(extra(cfg)), "writing the vigild config");
        ok(
            fs::write(d.path("openapi.yaml"), policy(&jwks.url(), &jwks.ca_file)),
            "writing the policy",
        );
        let scratch = d.path("scratch");
        ok(
            fs::create_dir_all(&scratch),
            "creating the scratch directory",
        );
        Env {
            ca: d.ca(),
            d,
            jwks,
            _up: up,
            port,
            scratch,
            batches: AtomicUsize::new(0),
        }
    }

    fn start(&mut self) {
        ok(self.d.start(), "starting vigild");
    }

    /// Sends every request at once (curl in parallel mode, one connection each) and returns
    /// the responses in order.
    fn send_all(&self, reqs: &[Req]) -> Vec<Resp> {
        let n = self.batches.fetch_add(1, Ordering::SeqCst);
        let dir = self.scratch.join(format!("batch-{n}"));
        ok(fs::create_dir_all(&dir), "creating a batch directory");
        let mut args: Vec<OsString> =
            ["--parallel", "--parallel-immediate", "--parallel-max", "64"]
                .map(OsString::from)
                .to_vec();
        for (i, r) in reqs.iter().enumerate() {
            if i > 0 {
                args.push("--next".into());
            }
            for a in ["-sS", "--http1.1", "--max-time", "10", "-X", r.method] {
                args.push(a.into());
            }
            args.push("--cacert".into());
            args.push(self.ca.clone().into());
            if let Some(t) = &r.token {
                args.push("-H".into());
                args.push(format!("authorization: Bearer {t}").into());
            }
            if let Some(b) = &r.body {
                for a in ["-H", "content-type: application/json", "--data-binary"] {
                    args.push(a.into());
                }
                args.push(b.into());
            }
            args.push("-D".into());
            args.push(dir.join(format!("h{i}")).into());
            args.push("-o".into());
            args.push(dir.join(format!("b{i}")).into());
            args.push(format!("https://127.0.0.1:{}{}", self.port, r.path).into());
        }
        let out = ok(Command::new("curl").args(&args).output(), "running curl");
        let curl_err = String::from_utf8_lossy(&out.stderr).into_owned();
        (0..reqs.len())
            .map(|i| {
                Resp::read(
                    &dir.join(format!("h{i}")),
                    &dir.join(format!("b{i}")),
                    &curl_err,
                )
            })
            .collect()
    }

    fn send(&self, req: Req) -> Resp {
        self.send_all(std::slice::from_ref(&req))
            .pop()
            .unwrap_or_else(|| panic!("no response"))
    }
}

#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    token: Option<String>,
    body: Option<String>,
}

fn get(path: &str, token: Option<&str>) -> Req {
    Req {
        method: "GET",
        path: path.to_owned(),
        token: token.map(str::to_owned),
        body: None,
    }
}

fn post(path: &str, token: Option<&str>, body: &Value) -> Req {
    Req {
        method: "POST",
        path: path.to_owned(),
        token: token.map(str::to_owned),
        body: Some(body.to_string()),
    }
}

#[derive(Debug)]
struct Resp {
    /// 0 when curl got no response.
    status: u16,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: String,
}

impl Resp {
    fn read(head: &Path, body: &Path, curl_err: &str) -> Resp {
        let head = fs::read_to_string(head).unwrap_or_default();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = fs::read_to_string(body).unwrap_or_default();
        if status == 0 {
            body = format!("(no response; curl: {curl_err})");
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `reason` of a gateway rejection; `ok` for an upstream answer.
    fn reason(&self) -> String {
        let v = self.json();
        if v["upstream"] == "e2e" {
            return "ok".into();
        }
        v["reason"].as_str().unwrap_or("?").to_owned()
    }

    fn outcome(&self) -> (u16, String) {
        (self.status, self.reason())
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn tokens_from_an_https_jwks_are_verified_es256_and_rs256() {
    let mut env = Env::new(|c| c);
    let ec = signing_key(Alg::Es256, "ec-1", 0);
    let rsa = signing_key(Alg::Rs256, "rsa-1", 0);
    // Other keys claiming the published kids: forged signatures.
    let ec_forger = signing_key(Alg::Es256, "ec-1", 0);
    let rsa_forger = signing_key(Alg::Rs256, "rsa-1", 1);
    publish(&env.jwks, &[&ec, &rsa]);
    env.start();

    let good = claims("alice", "items:read");
    let t = now();
    let rsa_pem = ok(rsa.rsa().ok_or("no RSA key material"), "RSA key")
        .spki_pem
        .clone();
    let none_header = json!({"alg": "none", "kid": "ec-1", "typ": "JWT"});
    let hs_header = json!({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"});
    // (label, request, expected status, expected reason)
    let cases: Vec<(&str, Req, u16, &str)> = vec![
        (
            "ES256 valid",
            get("/items", Some(&ec.token(&good))),
            200,
            "ok",
        ),
        (
            "RS256 valid",
            get("/items", Some(&rsa.token(&good))),
            200,
            "ok",
        ),
        (
            "ES256 expired",
            get(
                "/items",
                Some(&ec.token(&with(&good, json!({"iat": t - 1200, "exp": t - 600})))),
            ),
            401,
            "token_expired",
        ),
        (
            "RS256 expired",
            get(
                "/items",
                Some(&rsa.token(&with(&good, json!({"iat": t - 1200, "exp": t - 600})))),
            ),
            401,
            "token_expired",
        ),
        (
            "not yet valid",
            get(
                "/items",
                Some(&ec.token(&with(&good, json!({"nbf": t + 600, "exp": t + 1200})))),
            ),
            401,
            "token_not_yet_valid",
        ),
        (
            "wrong audience",
            get(
                "/items",
                Some(&ec.token(&with(&good, json!({"aud": "another-api"})))),
            ),
            401,
            "token_audience",
        ),
        (
            "wrong issuer",
            get(
                "/items",
                Some(&rsa.token(&with(&good, json!({"iss": "https://evil.e2e.test"})))),
            ),
            401,
            "token_issuer",
        ),
        (
            "ES256 forged with the same kid",
            get("/items", Some(&ec_forger.token(&good))),
            401,
            "token_bad_signature",
        ),
        (
            "RS256 forged with the same kid",
            get("/items", Some(&rsa_forger.token(&good))),
            401,
            "token_bad_signature",
        ),
        (
            "alg none",
            get(
                "/items",
                Some(&format!("{}.", signing_input(&none_header, &good))),
            ),
            401,
            "token_alg_refused",
        ),
        (
            "HS256 keyed with the RSA public key PEM",
            get("/items", Some(&hs256_token(&hs_header, &good, &rsa_pem))),
            401,
            "token_alg_refused",
        ),
        (
            "ES256 naming the RSA key's kid",
            get(
                "/items",
                Some(&ec.token_with_header(&json!({"alg": "ES256", "kid": "rsa-1"}), &good)),
            ),
            401,
            "token_alg_refused",
        ),
        (
            "not a JWT",
            get("/items", Some("not-a-token")),
            401,
            "token_malformed",
        ),
        ("missing token", get("/items", None), 401, "token_missing"),
        (
            "lacking the operation's scope",
            get("/reports", Some(&ec.token(&good))),
            403,
            "insufficient_scope",
        ),
        (
            "holding the operation's scope",
            get(
                "/reports",
                Some(&rsa.token(&claims("alice", "items:read reports:admin"))),
            ),
            200,
            "ok",
        ),
    ];
    let reqs: Vec<Req> = cases.iter().map(|c| c.1.clone()).collect();
    let resps = env.send_all(&reqs);
    let mut failures = Vec::new();
    for ((label, req, status, reason), r) in cases.iter().zip(&resps) {
        if r.outcome() != (*status, (*reason).to_owned()) {
            failures.push(format!("{label}: expected {status} {reason}, got {r:?}"));
            continue;
        }
        let www = r.header("www-authenticate").unwrap_or("");
        if *status == 401 && !www.starts_with("Bearer") {
            failures.push(format!("{label}: 401 without a Bearer challenge: {r:?}"));
        }
        let token = req.token.as_deref().unwrap_or("");
        match *reason {
            "token_missing" => {
                if www != "Bearer realm=\"vigil\"" {
                    failures.push(format!("{label}: challenge {www:?}"));
                }
            }
            "insufficient_scope" => {
                if !www.contains("error=\"insufficient_scope\"")
                    || !www.contains("scope=\"reports:admin\"")
                {
                    failures.push(format!("{label}: challenge {www:?}"));
                }
            }
            "ok" => {}
            _ => {
                if !www.contains("error=\"invalid_token\"") {
                    failures.push(format!("{label}: challenge {www:?}"));
                }
            }
        }
        if !token.is_empty() && (www.contains(token) || r.body.contains(token)) {
            failures.push(format!("{label}: the token was echoed: {r:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nvigild log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        env.d.log()
    );
    assert!(env.jwks.requests() >= 1, "the JWKS was never fetched");
}

#[test]
fn key_rotation_is_picked_up_on_an_unknown_kid_with_bounded_fetches() {
    let mut env = Env::new(|c| c);
    let old = signing_key(Alg::Es256, "ec-old", 0);
    let new = signing_key(Alg::Es256, "ec-new", 0);
    let ghost = signing_key(Alg::Es256, "ec-ghost", 0);
    env.start();
    let old_token = old.token(&claims("alice", "items:read"));
    let new_token = new.token(&claims("alice", "items:read"));

    // The identity provider is down and no key set was ever fetched: fail closed.
    let r = env.send(get("/items", Some(&old_token)));
    assert_eq!(r.outcome(), (503, "jwks_unavailable".into()), "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert!(env.jwks.requests() >= 1, "no fetch was attempted");

    // Keys published; after a failed fetch the next one waits for the min-refresh interval.
    publish(&env.jwks, &[&old]);
    thread::sleep(PAST_MIN_REFRESH);
    let r = env.send(get("/items", Some(&old_token)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}\n{}", env.d.log());

    // A token from a key not published yet.
    let r = env.send(get("/items", Some(&new_token)));
    assert_eq!(r.outcome(), (401, "token_unknown_key".into()), "{r:?}");

    // The provider rotates: the new key is added. Once the min-refresh interval has passed,
    // the same token makes vigild fetch again and find it.
    publish(&env.jwks, &[&old, &new]);
    thread::sleep(PAST_MIN_REFRESH);
    let before = env.jwks.requests();
    let r = env.send(get("/items", Some(&new_token)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}\n{}", env.d.log());
    let after = env.jwks.requests();
    assert!(
        after > before,
        "the rotated key was accepted without a fetch"
    );
    assert_eq!(
        env.send(get("/items", Some(&old_token))).outcome(),
        (200, "ok".into()),
        "the old key must keep working after the rotation"
    );

    // A burst of tokens naming a kid nobody publishes (each token distinct, so no cache
    // helps), starting after the interval: at most one fetch per interval.
    thread::sleep(PAST_MIN_REFRESH);
    let burst: Vec<Req> = (0..30)
        .map(|i| {
            let c = with(
                &claims("mallory", "items:read"),
                json!({"jti": format!("j{i}")}),
            );
            get("/items", Some(&ghost.token(&c)))
        })
        .collect();
    let before = env.jwks.requests();
    let started = Instant::now();
    let resps = env.send_all(&burst);
    let took = started.elapsed();
    let fetches = env.jwks.requests() - before;
    for r in &resps {
        assert_eq!(r.outcome(), (401, "token_unknown_key".into()), "{r:?}");
    }
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} JWKS fetches for 30 unknown-kid requests in {took:?} (min refresh \
         {MIN_REFRESH:?})"
    );
}

#[test]
fn ownership_rules_bind_objects_to_the_token_subject() {
    let mut env = Env::new(|c| c);
    let key = signing_key(Alg::Es256, "ec-1", 0);
    publish(&env.jwks, &[&key]);
    env.start();
    let alice = key.token(&claims("alice", "items:read"));
    let admin = key.token(&claims("carol", "items:read admin"));

    let cases: Vec<(&str, Req, u16, &str, Option<&str>)> = vec![
        (
            "own user",
            get("/users/alice", Some(&alice)),
            200,
            "ok",
            None,
        ),
        (
            "another user",
            get("/users/bob", Some(&alice)),
            403,
            "bola_denied",
            Some("path.user_id"),
        ),
        (
            "another user, admin scope",
            get("/users/bob", Some(&admin)),
            200,
            "ok",
            None,
        ),
        (
            "no token",
            get("/users/alice", None),
            401,
            "token_missing",
            None,
        ),
        (
            "own document",
            post(
                "/documents",
                Some(&alice),
                &json!({"owner": "alice", "title": "t"}),
            ),
            200,
            "ok",
            None,
        ),
        (
            "someone else's document",
            post(
                "/documents",
                Some(&alice),
                &json!({"owner": "bob", "title": "t"}),
            ),
            403,
            "bola_denied",
            Some("/owner"),
        ),
        (
            "document without an owner",
            post("/documents", Some(&alice), &json!({"title": "t"})),
            403,
            "bola_owner_missing",
            Some("/owner"),
        ),
        (
            "open operation, no identity",
            get("/public/users/alice", None),
            403,
            "bola_no_identity",
            None,
        ),
        (
            "open operation, own id",
            get("/public/users/alice", Some(&alice)),
            200,
            "ok",
            None,
        ),
        (
            "open operation, another id",
            get("/public/users/bob", Some(&alice)),
            403,
            "bola_denied",
            Some("path.user_id"),
        ),
    ];
    let reqs: Vec<Req> = cases.iter().map(|c| c.1.clone()).collect();
    let resps = env.send_all(&reqs);
    let mut failures = Vec::new();
    for ((label, _, status, reason, location), r) in cases.iter().zip(&resps) {
        if r.outcome() != (*status, (*reason).to_owned()) {
            failures.push(format!("{label}: expected {status} {reason}, got {r:?}"));
        } else if let Some(loc) = location {
            if r.json()["location"] != *loc {
                failures.push(format!("{label}: expected location {loc}, got {r:?}"));
            }
        }
        if *status == 403 && r.body.contains("bob") {
            failures.push(format!("{label}: the refused value was echoed: {r:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nvigild log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        env.d.log()
    );
}

#[test]
fn rate_limits_apply_per_token_subject() {
    let mut env = Env::new(|c| c.rate_limit(RateLimit::new("per-user", "sub", 1, 5)));
    let key = signing_key(Alg::Es256, "ec-1", 0);
    publish(&env.jwks, &[&key]);
    env.start();
    let alice = key.token(&claims("alice", "items:read"));
    let bob = key.token(&claims("bob", "items:read"));

    // Bob first: the key set is fetched and his token verified before the burst.
    let r = env.send(get("/items", Some(&bob)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}\n{}", env.d.log());

    // 15 requests at once with alice's token, each on its own connection.
    let burst: Vec<Req> = (0..15).map(|_| get("/items", Some(&alice))).collect();
    let started = Instant::now();
    let resps = env.send_all(&burst);
    let took = started.elapsed();
    let passed = resps.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Resp> = resps.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        (passed, limited.len()),
        (5, 10),
        "burst of 15 in {took:?}: {resps:#?}"
    );
    for r in resps.iter().filter(|r| r.status == 200) {
        assert_eq!(r.reason(), "ok", "{r:?}");
    }
    for r in &limited {
        assert_eq!(r.reason(), "rate_limited", "{r:?}");
        let retry = r
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(retry >= 1, "429 without a usable Retry-After: {r:?}");
    }

    // Bob's bucket is his own.
    let r = env.send(get("/items", Some(&bob)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}");
}

#[test]
fn audit_lines_name_the_subject_and_never_hold_the_token() {
    let mut env = Env::new(|c| c);
    let key = signing_key(Alg::Es256, "ec-1", 0);
    publish(&env.jwks, &[&key]);
    env.start();
    let good = key.token(&claims("alice", "items:read"));
    let t = now();
    let expired = key.token(&with(
        &claims("alice", "items:read"),
        json!({"iat": t - 1200, "exp": t - 600}),
    ));

    let resps = env.send_all(&[get("/items", Some(&good)), get("/items", Some(&expired))]);
    assert_eq!(resps[0].outcome(), (200, "ok".into()), "{:?}", resps[0]);
    assert_eq!(
        resps[1].outcome(),
        (401, "token_expired".into()),
        "{:?}",
        resps[1]
    );
    let ids: Vec<String> = resps
        .iter()
        .map(|r| {
            r.header("x-request-id")
                .unwrap_or_else(|| panic!("no x-request-id: {r:?}"))
                .to_owned()
        })
        .collect();

    // The audit writer is asynchronous: wait (bounded) for both lines.
    let audit = env.d.path("audit.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, lines) = loop {
        let text = fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<Value> = ids
            .iter()
            .filter_map(|id| {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| v["request_id"] == id.as_str())
            })
            .collect();
        if lines.len() == ids.len() {
            break (text, lines);
        }
        assert!(
            Instant::now() < deadline,
            "audit lines for {ids:?} not written within 10 s:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let (accepted, refused) = (&lines[0], &lines[1]);
    assert_eq!(accepted["status"], 200, "{accepted}");
    assert_eq!(accepted["reason"], "ok", "{accepted}");
    assert_eq!(accepted["subject"], "alice", "{accepted}");
    assert_eq!(accepted["auth"], "jwt", "{accepted}");
    assert_eq!(
        accepted["headers"]["authorization"], "[redacted]",
        "{accepted}"
    );
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["reason"], "token_expired", "{refused}");
    assert!(
        refused.get("subject").is_none() && refused.get("auth").is_none(),
        "a refused token gave the request an identity: {refused}"
    );
    // Neither token, nor its signature alone, anywhere in the audit log or vigild's own log.
    let log = env.d.log();
    for token in [&good, &expired] {
        let sig = token.rsplit('.').next().unwrap_or(token.as_str());
        assert!(
            !text.contains(sig) && !text.contains(token.as_str()),
            "a token reached the audit log:\n{text}"
        );
        assert!(
            !log.contains(sig) && !log.contains(token.as_str()),
            "a token reached vigild's log:\n{log}"
        );
    }
}
