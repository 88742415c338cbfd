//! Regenerates `fixtures/jwks.json` and the `jwt` and `jwks` seed corpora: fresh keys (RSA by
//! the openssl CLI, which ring cannot generate; EC and Ed25519 by ring), their public JWKS, and
//! tokens signed with them, valid at `vigil_fuzz::JWT_NOW`, plus broken variants. The private
//! keys are thrown away. Run from `tests/fuzz`: `cargo run --example jwt_seeds`.

use std::fs;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct Key {
    kid: &'static str,
    alg: &'static str,
    pair: Pair,
}

impl Key {
    fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(kp) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Pair::Ec(kp) => {
                let point = kp.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "kid": self.kid, "alg": self.alg, "crv": crv,
                       "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
            }
            Pair::Ed(kp) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519",
                       "x": b64(kp.public_key().as_ref())})
            }
        }
    }

    fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(kp) => {
                let pad: &dyn signature::RsaEncoding = match alg {
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(pad, &rng, msg, &mut sig)
                    .unwrap_or_else(|e| panic!("sign: {e}"));
                sig
            }
            Pair::Ec(kp) => kp
                .sign(&rng, msg)
                .unwrap_or_else(|e| panic!("sign: {e}"))
                .as_ref()
                .to_vec(),
            Pair::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
        }
    }

    fn token(&self, alg: &str, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }
}

fn rsa_key() -> RsaKeyPair {
    let path = std::env::temp_dir().join(format!("vigil-fuzz-rsa-{}.der", std::process::id()));
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-outform", "DER", "-out"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(out.status.success(), "openssl genpkey failed");
    let der = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = fs::remove_file(&path);
    RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .unwrap_or_else(|e| panic!("RSA key: {e}"))
}

fn ec_key(alg: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap_or_else(|e| panic!("{e}"));
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let rng = SystemRandom::new();
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap_or_else(|e| panic!("{e}"));
    let keys = [
        Key {
            kid: "rsa-1",
            alg: "RS256",
            pair: Pair::Rsa(rsa_key()),
        },
        Key {
            kid: "p256-1",
            alg: "ES256",
            pair: Pair::Ec(ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)),
        },
        Key {
            kid: "p384-1",
            alg: "ES384",
            pair: Pair::Ec(ec_key(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)),
        },
        Key {
            kid: "ed-1",
            alg: "EdDSA",
            pair: Pair::Ed(
                Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap_or_else(|e| panic!("{e}")),
            ),
        },
    ];
    let jwks = json!({"keys": keys.iter().map(Key::jwk).collect::<Vec<_>>()});
    let jwks_text = serde_json::to_string_pretty(&jwks).unwrap_or_default() + "\n";
    fs::write("fixtures/jwks.json", &jwks_text).unwrap_or_else(|e| panic!("jwks.json: {e}"));

    let now = vigil_fuzz::JWT_NOW;
    let claims = json!({"iss": "https://idp.example", "aud": "api", "sub": "user-1",
        "exp": now + 3600, "iat": now - 10, "nbf": now - 10,
        "scope": "orders:read orders:write", "roles": ["admin", "ops"]});
    let dir = Path::new("corpus/jwt");
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, token: &str| {
        fs::write(dir.join(name), token).unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    for k in &keys {
        let algs: &[&str] = if k.kid == "rsa-1" {
            &["RS256", "PS256"]
        } else {
            &[k.alg]
        };
        for alg in algs {
            let header = json!({"alg": alg, "typ": "JWT", "kid": k.kid});
            write(
                &format!("valid-{}", alg.to_lowercase()),
                &k.token(alg, &header, &claims),
            );
        }
    }
    let es = &keys[1];
    // No kid: the verifier tries the keys that fit the algorithm.
    write(
        "valid-es256-no-kid",
        &es.token("ES256", &json!({"alg": "ES256"}), &claims),
    );
    let expired = json!({"iss": "https://idp.example", "aud": ["api", "other"], "exp": now - 100});
    write(
        "expired",
        &es.token("ES256", &json!({"alg": "ES256", "kid": "p256-1"}), &expired),
    );
    let wrong_aud = json!({"iss": "https://idp.example", "aud": "web", "exp": now + 60});
    write(
        "wrong-aud",
        &es.token(
            "ES256",
            &json!({"alg": "ES256", "kid": "p256-1"}),
            &wrong_aud,
        ),
    );
    write(
        "alg-none",
        &format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims.to_string())),
    );
    write(
        "hs256-confusion",
        &format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","kid":"rsa-1"}"#),
            b64(claims.to_string()),
            b64([7u8; 32])
        ),
    );
    write(
        "crit",
        &es.token("ES256", &json!({"alg": "ES256", "crit": ["exp"]}), &claims),
    );
    write("two-parts", "eyJhbGciOiJFUzI1NiJ9.e30");
    write("junk", "not a token");

    let jdir = Path::new("corpus/jwks");
    fs::create_dir_all(jdir).unwrap_or_else(|e| panic!("{e}"));
    let jwrite = |name: &str, text: &str| {
        fs::write(jdir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    jwrite("fixture.json", &jwks_text);
    jwrite("empty.json", r#"{"keys": []}"#);
    jwrite(
        "unusable.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}, {"kty": "OKP", "crv": "X25519", "x": "AA"}]}"#,
    );
    jwrite("not-jwks.json", r#"[1, 2, {"keys": null}]"#);
}
