//! Identity through vigild: bearer JWTs verified against a JWKS fetched over HTTPS (ES256 and
//! RS256; expiry, audience, issuer, forged signatures, `none` and HMAC algorithm confusion,
//! scopes), key rotation picked up on an unknown `kid` with bounded refetches, ownership rules
//! (BOLA) on path and body values, rate limits per token subject, and audit lines that name the
//! subject and never carry the token.
//!
//! Everything is real: vigild as a process, curl as the client over TLS, tokens signed by the
//! openssl CLI, and the JWKS served over HTTPS by `openssl s_server` behind a small counting TCP
//! relay (so the test sees every fetch vigild makes).

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use vigil_e2e::{daemon::Vigild, free_port, self_signed_cert, unique, upstream::Upstream};

const ISSUER: &str = "https://id.e2e.test";
const AUDIENCE: &str = "vigil-e2e-api";
/// The policy's `jwks_min_refresh_secs`.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Comfortably past `MIN_REFRESH`.
const PAST_MIN_REFRESH: Duration = Duration::from_millis(1_300);

// ---------------------------------------------------------------------------------------------
// Small helpers: errors, time, encodings, the openssl CLI.

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", p.display()))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// base64url without padding (RFC 7515).
fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    s.trim()
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .filter(|h| h.len() == 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| panic!("not hex: {s}"))
        })
        .collect()
}

/// Runs the openssl CLI with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = ok(
        Command::new("openssl")
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn(),
        "running openssl",
    );
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        ok(stdin.write_all(data), "writing to openssl");
    }
    let out = ok(child.wait_with_output(), "waiting for openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A DER ECDSA-Sig-Value (what openssl writes) as the fixed-size r || s of JWS ES256.
fn ecdsa_der_to_jws(der: &[u8]) -> Vec<u8> {
    let bad = || -> ! { panic!("not a DER ECDSA P-256 signature: {der:02x?}") };
    if der.len() < 8 || der[0] != 0x30 || usize::from(der[1]) != der.len() - 2 {
        bad();
    }
    let mut out = Vec::with_capacity(64);
    let mut at = 2;
    for _ in 0..2 {
        if der.get(at) != Some(&0x02) {
            bad();
        }
        let len = usize::from(*der.get(at + 1).unwrap_or_else(|| bad()));
        let int = der.get(at + 2..at + 2 + len).unwrap_or_else(|| bad());
        let first = int.iter().position(|b| *b != 0).unwrap_or(int.len());
        let int = &int[first..];
        if int.len() > 32 {
            bad();
        }
        out.resize(out.len() + 32 - int.len(), 0);
        out.extend_from_slice(int);
        at += 2 + len;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Signing keys and tokens.

/// A signing key made by the openssl CLI, with its public JWK.
struct Key {
    kid: String,
    alg: &'static str,
    pem: PathBuf,
    jwk: Value,
}

impl Key {
    /// A P-256 key for ES256, written to `dir/<file>.pem`.
    fn ec(dir: &Path, file: &str, kid: &str) -> Key {
        let pem = dir.join(format!("{file}.pem"));
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                path_str(&pem),
            ],
            None,
        );
        let spki = openssl(
            &["pkey", "-in", path_str(&pem), "-pubout", "-outform", "DER"],
            None,
        );
        // A P-256 SubjectPublicKeyInfo ends with the uncompressed point 04 || x || y.
        let point = spki
            .len()
            .checked_sub(65)
            .and_then(|at| spki.get(at..))
            .filter(|p| p[0] == 4)
            .unwrap_or_else(|| panic!("unexpected P-256 SPKI: {spki:02x?}"));
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64url(&point[1..33]), "y": b64url(&point[33..65])});
        Key {
            kid: kid.to_owned(),
            alg: "ES256",
            pem,
            jwk,
        }
    }

    /// A 2048-bit RSA key for RS256, written to `dir/<file>.pem`.
    fn rsa(dir: &Path, file: &str, kid: &str) -> Key {
        let pem = dir.join(format!("{file}.pem"));
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-pkeyopt",
                "rsa_keygen_pubexp:65537",
                "-out",
                path_str(&pem),
            ],
            None,
        );
        let modulus = String::from_utf8_lossy(&openssl(
            &["rsa", "-in", path_str(&pem), "-noout", "-modulus"],
            None,
        ))
        .into_owned();
        let n = unhex(
            modulus
                .trim()
                .strip_prefix("Modulus=")
                .unwrap_or_else(|| panic!("openssl rsa -modulus: {modulus}")),
        );
        let first = n.iter().position(|b| *b != 0).unwrap_or(0);
        let jwk = json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": b64url(&n[first..]), "e": b64url(&[1, 0, 1])});
        Key {
            kid: kid.to_owned(),
            alg: "RS256",
            pem,
            jwk,
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as a JWKS consumer might store it.
    fn public_pem(&self) -> Vec<u8> {
        openssl(&["pkey", "-in", path_str(&self.pem), "-pubout"], None)
    }

    /// A compact JWS with the usual header (`alg`, `kid`, `typ`).
    fn token(&self, claims: &Value) -> String {
        self.token_with(
            &json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A compact JWS with this header, signed with this key's algorithm (SHA-256).
    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig = openssl(
            &["dgst", "-sha256", "-binary", "-sign", path_str(&self.pem)],
            Some(input.as_bytes()),
        );
        let sig = if self.alg == "ES256" {
            ecdsa_der_to_jws(&sig)
        } else {
            sig
        };
        format!("{input}.{}", b64url(&sig))
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An HS256 token whose secret is `secret` (the algorithm-confusion attack: an RSA public key
/// used as an HMAC secret).
fn hs256_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let macopt = format!("hexkey:{}", hex(secret));
    let mac = openssl(
        &[
            "dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt", &macopt,
        ],
        Some(input.as_bytes()),
    );
    format!("{input}.{}", b64url(&mac))
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
// The identity provider's JWKS endpoint over HTTPS.

/// `openssl s_server -HTTP` serving `jwks.json` (a complete HTTP response, rewritten to rotate
/// keys) with a certificate from a private CA, behind a TCP relay that counts connections: each
/// is one fetch by vigild. The server is killed (by PID) and the relay stopped on drop.
struct JwksServer {
    dir: PathBuf,
    www: PathBuf,
    /// The CA certificate vigild verifies the server with (`jwks_ca_file`).
    ca: PathBuf,
    /// The relay's port: the one in the URL.
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    child: Option<Child>,
}

impl JwksServer {
    fn start(tag: &str) -> JwksServer {
        let dir = std::env::temp_dir().join(format!("vigil-e2e-jwks-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        let www = dir.join("www");
        ok(
            fs::create_dir_all(&www),
            "creating the JWKS server directory",
        );
        let at = |f: &str| dir.join(f).to_string_lossy().into_owned();
        // A CA and a leaf for IP 127.0.0.1 signed by it (a self-signed CA:TRUE certificate
        // cannot be an end entity for a webpki client).
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend(["-subj", "/CN=vigil-e2e-idp-ca", "-days", "1"]);
        let (ca_key, ca) = (at("ca.key"), at("ca.pem"));
        args.extend(["-keyout", &ca_key, "-out", &ca]);
        openssl(&args, None);
        let (leaf_key, csr, leaf, ext) =
            (at("leaf.key"), at("leaf.csr"), at("leaf.pem"), at("ext"));
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        args.extend([
            "-subj",
            "/CN=vigil-e2e-idp",
            "-keyout",
            &leaf_key,
            "-out",
            &csr,
        ]);
        openssl(&args, None);
        ok(
            fs::write(
                &ext,
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
            ),
            "writing the extensions file",
        );
        let serial = at("ca.srl");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAserial",
                &serial,
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &leaf,
            ],
            None,
        );

        let backend = free_port();
        let stderr = ok(
            fs::File::create(dir.join("s_server.err")),
            "creating the s_server log",
        );
        let child = ok(
            Command::new("openssl")
                .args(["s_server", "-HTTP", "-accept"])
                .arg(format!("127.0.0.1:{backend}"))
                .args(["-cert", &leaf, "-key", &leaf_key])
                .current_dir(&www)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn(),
            "starting openssl s_server",
        );
        let listener = ok(TcpListener::bind("127.0.0.1:0"), "binding the JWKS relay");
        let port = ok(listener.local_addr(), "relay address").port();
        let mut server = JwksServer {
            dir: dir.clone(),
            www,
            ca: PathBuf::from(ca),
            port,
            hits: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            child: Some(child),
        };
        // Until keys are published the identity provider answers 503.
        server.serve_raw("503 Service Unavailable", "{}");
        server.wait_ready();
        let (hits, stop) = (server.hits.clone(), server.stop.clone());
        let backend = SocketAddr::from(([127, 0, 0, 1], backend));
        thread::spawn(move || relay(&listener, backend, &hits, &stop));
        server
    }

    /// Waits for s_server's `ACCEPT` (it is listening), then keeps draining its stdout.
    fn wait_ready(&mut self) {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take());
        let Some(stdout) = stdout else {
            panic!("s_server has no stdout")
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ACCEPT") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let status = self.child.as_mut().map(|c| c.try_wait());
            panic!(
                "openssl s_server did not start ({status:?}): {}",
                fs::read_to_string(self.dir.join("s_server.err")).unwrap_or_default()
            );
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/jwks.json", self.port)
    }

    /// Connections vigild made so far (one per fetch).
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Publishes these keys.
    fn serve(&self, keys: &[&Key]) {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        self.serve_raw("200 OK", &doc.to_string());
    }

    /// Replaces the response, atomically (s_server opens the file per request).
    fn serve_raw(&self, status: &str, body: &str) {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        let tmp = self.www.join("jwks.json.tmp");
        ok(fs::write(&tmp, response), "writing the JWKS response");
        ok(
            fs::rename(&tmp, self.www.join("jwks.json")),
            "publishing the JWKS response",
        );
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Child::kill signals this child's PID only.
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the relay's accept so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Accepts on `listener`, counts each connection and splices it to `backend`.
fn relay(listener: &TcpListener, backend: SocketAddr, hits: &AtomicUsize, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        hits.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect_timeout(&backend, Duration::from_secs(2)) else {
            continue;
        };
        for s in [&client, &server] {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let _ = s.set_nodelay(true);
        }
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        thread::spawn(move || splice(client, server));
        thread::spawn(move || splice(server2, client2));
    }
}

fn splice(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
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
    /// Where keys and curl's output go (inside vigild's directory).
    scratch: PathBuf,
    batches: AtomicUsize,
}

impl Env {
    /// vigild with the policy, an audit file and `extra` config sections. Not started.
    fn new(slot: u8, extra: &str) -> Env {
        let tag = unique(slot);
        let jwks = JwksServer::start(&tag);
        let up = ok(Upstream::start(), "starting the upstream");
        let port = free_port();
        let body = format!(
            "[listener]\nhttps = \"127.0.0.1:{port}\"\n[tls]\ncert = \"@DIR@/cert.pem\"\n\
             key = \"@DIR@/key.pem\"\n[[upstream]]\nname = \"api\"\nurl = \"http://{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\
             [audit]\nsink = \"file\"\npath = \"@DIR@/audit.log\"\n\
             headers = [\"user-agent\", \"authorization\"]\n\
             [policy]\nfile = \"@DIR@/openapi.yaml\"\n{extra}\n",
            up.addr
        );
        let d = ok(
            Vigild::without_xdp(&tag, &body),
            "writing the vigild config",
        );
        ok(
            fs::write(d.dir.join("openapi.yaml"), policy(&jwks.url(), &jwks.ca)),
            "writing the policy",
        );
        self_signed_cert(&d.dir, "127.0.0.1");
        let scratch = d.dir.join("scratch");
        ok(
            fs::create_dir_all(&scratch),
            "creating the scratch directory",
        );
        Env {
            ca: d.dir.join("cert.pem"),
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

    fn keys_dir(&self) -> PathBuf {
        let dir = self.scratch.join("keys");
        ok(fs::create_dir_all(&dir), "creating the keys directory");
        dir
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
    let mut env = Env::new(21, "");
    let keys = env.keys_dir();
    let ec = Key::ec(&keys, "ec", "ec-1");
    let rsa = Key::rsa(&keys, "rsa", "rsa-1");
    // Other keys claiming the published kids: forged signatures.
    let ec_forger = Key::ec(&keys, "ec-forger", "ec-1");
    let rsa_forger = Key::rsa(&keys, "rsa-forger", "rsa-1");
    env.jwks.serve(&[&ec, &rsa]);
    env.start();

    let good = claims("alice", "items:read");
    let t = now();
    let rsa_pem = rsa.public_pem();
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
                Some(&ec.token_with(&json!({"alg": "ES256", "kid": "rsa-1"}), &good)),
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
    assert!(env.jwks.hits() >= 1, "the JWKS was never fetched");
}

#[test]
fn key_rotation_is_picked_up_on_an_unknown_kid_with_bounded_fetches() {
    let mut env = Env::new(22, "");
    let keys = env.keys_dir();
    let old = Key::ec(&keys, "old", "ec-old");
    let new = Key::ec(&keys, "new", "ec-new");
    let ghost = Key::ec(&keys, "ghost", "ec-ghost");
    env.start();
    let old_token = old.token(&claims("alice", "items:read"));
    let new_token = new.token(&claims("alice", "items:read"));

    // The identity provider is down and no key set was ever fetched: fail closed.
    let r = env.send(get("/items", Some(&old_token)));
    assert_eq!(r.outcome(), (503, "jwks_unavailable".into()), "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert!(env.jwks.hits() >= 1, "no fetch was attempted");

    // Keys published; after a failed fetch the next one waits for the min-refresh interval.
    env.jwks.serve(&[&old]);
    thread::sleep(PAST_MIN_REFRESH);
    let r = env.send(get("/items", Some(&old_token)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}\n{}", env.d.log());

    // A token from a key not published yet.
    let r = env.send(get("/items", Some(&new_token)));
    assert_eq!(r.outcome(), (401, "token_unknown_key".into()), "{r:?}");

    // The provider rotates: the new key is added. Once the min-refresh interval has passed,
    // the same token makes vigild fetch again and find it.
    env.jwks.serve(&[&old, &new]);
    thread::sleep(PAST_MIN_REFRESH);
    let before = env.jwks.hits();
    let r = env.send(get("/items", Some(&new_token)));
    assert_eq!(r.outcome(), (200, "ok".into()), "{r:?}\n{}", env.d.log());
    let after = env.jwks.hits();
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
    let before = env.jwks.hits();
    let started = Instant::now();
    let resps = env.send_all(&burst);
    let took = started.elapsed();
    let fetches = env.jwks.hits() - before;
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
    let mut env = Env::new(23, "");
    let keys = env.keys_dir();
    let key = Key::ec(&keys, "ec", "ec-1");
    env.jwks.serve(&[&key]);
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
    let mut env = Env::new(
        24,
        "[[rate_limit]]\nname = \"per-user\"\nkey = \"sub\"\nrate = 1\nburst = 5\n",
    );
    let keys = env.keys_dir();
    let key = Key::ec(&keys, "ec", "ec-1");
    env.jwks.serve(&[&key]);
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
    let mut env = Env::new(25, "");
    let keys = env.keys_dir();
    let key = Key::ec(&keys, "ec", "ec-1");
    env.jwks.serve(&[&key]);
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
    let audit = env.d.dir.join("audit.log");
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
