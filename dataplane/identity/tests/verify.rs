//! `verify` with real signatures: every algorithm, the claim checks, and the attacks.

mod common;

use std::time::Duration;

use common::{Key, TestResult, claims_now, key_set, now, test_key};
use serde_json::{Value, json};
use vigil_identity::{Algorithm, JwtError, KeySet, MAX_TOKEN_BYTES, Validation, verify};
use vigil_testkit::jwt::{Alg, b64, hs256_token};

fn strict() -> Validation {
    Validation {
        issuers: vec!["https://idp.example".into()],
        audiences: vec!["api".into()],
        ..Validation::default()
    }
}

fn single(key: &Key) -> KeySet {
    key_set(&[key.jwk()])
}

#[test]
fn every_algorithm_verifies() -> TestResult {
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        let key = test_key(alg, &format!("k{i}"), 0);
        for jwk in [key.jwk(), key.jwk_with_alg()] {
            let keys = key_set(&[jwk]);
            let token = key.token(&claims_now());
            let claims = verify(&token, &keys, &strict(), now())?;
            assert_eq!(claims.subject(), Some("user-1"), "{alg}");
            assert_eq!(claims.get("aud"), Some(&json!("api")));
        }
    }
    Ok(())
}

#[test]
fn exp_nbf_iat_with_leeway_on_both_sides() {
    let key = test_key(Algorithm::Es256, "k", 0);
    let keys = single(&key);
    let v = Validation {
        leeway: Duration::from_secs(30),
        ..Validation::default()
    };
    let t = now();
    let check = |claims: Value| verify(&key.token(&claims), &keys, &v, t);
    // exp: 20 s ago passes thanks to the leeway, 40 s ago does not.
    assert!(check(json!({"exp": t - 20})).is_ok());
    assert_eq!(check(json!({"exp": t - 40})), Err(JwtError::Expired));
    assert!(check(json!({"exp": t - 30})).is_ok());
    assert_eq!(check(json!({"exp": t - 31})), Err(JwtError::Expired));
    // nbf: 20 s ahead passes, 40 s ahead does not.
    assert!(check(json!({"exp": t + 60, "nbf": t + 20})).is_ok());
    assert_eq!(
        check(json!({"exp": t + 60, "nbf": t + 40})),
        Err(JwtError::NotYetValid)
    );
    // iat: likewise.
    assert!(check(json!({"exp": t + 60, "iat": t + 30})).is_ok());
    assert_eq!(
        check(json!({"exp": t + 60, "iat": t + 31})),
        Err(JwtError::IssuedInFuture)
    );
    // No leeway: exactly at exp still passes, one second later does not.
    let v0 = Validation {
        leeway: Duration::ZERO,
        ..Validation::default()
    };
    assert!(verify(&key.token(&json!({"exp": t})), &keys, &v0, t).is_ok());
    assert_eq!(
        verify(&key.token(&json!({"exp": t})), &keys, &v0, t + 1),
        Err(JwtError::Expired)
    );
    // A missing exp is refused unless the configuration says otherwise.
    assert_eq!(check(json!({"sub": "x"})), Err(JwtError::MissingExp));
    let lax = Validation {
        require_exp: false,
        ..Validation::default()
    };
    assert!(verify(&key.token(&json!({"sub": "x"})), &keys, &lax, t).is_ok());
}

#[test]
fn issuer_and_audience() {
    let key = test_key(Algorithm::EdDsa, "k", 0);
    let keys = single(&key);
    let t = now();
    let mut c = claims_now();
    c["aud"] = json!("other");
    assert_eq!(
        verify(&key.token(&c), &keys, &strict(), t),
        Err(JwtError::Audience)
    );
    c["aud"] = json!(["other", "api"]);
    assert!(verify(&key.token(&c), &keys, &strict(), t).is_ok());
    c["aud"] = json!([]);
    assert_eq!(
        verify(&key.token(&c), &keys, &strict(), t),
        Err(JwtError::Audience)
    );
    c["aud"] = json!("api");
    c["iss"] = json!("https://evil.example");
    assert_eq!(
        verify(&key.token(&c), &keys, &strict(), t),
        Err(JwtError::Issuer)
    );
    // Unchecked when the configuration lists none.
    assert!(verify(&key.token(&c), &keys, &Validation::default(), t).is_ok());
}

#[test]
fn a_different_key_with_the_same_kid_is_a_bad_signature() {
    for alg in Algorithm::ALL {
        let signer = test_key(alg, "shared", 1);
        let published = test_key(alg, "shared", 0);
        let token = signer.token(&claims_now());
        assert_eq!(
            verify(&token, &single(&published), &Validation::default(), now()),
            Err(JwtError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn tampering_is_a_bad_signature() {
    let key = test_key(Algorithm::Rs256, "k", 0);
    let keys = single(&key);
    let token = key.token(&claims_now());
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims_now();
    c["sub"] = json!("admin");
    let forged = format!("{}.{}.{}", parts[0], b64(c.to_string()), parts[2]);
    assert_eq!(
        verify(&forged, &keys, &Validation::default(), now()),
        Err(JwtError::BadSignature)
    );
    // An ECDSA signature in ASN.1 DER instead of JWS's fixed r||s does not verify.
    let ec = test_key(Algorithm::Es256, "e", 0);
    let token = ec.token(&claims_now());
    let (input, sig) = token.rsplit_once('.').unwrap_or_default();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
        .unwrap_or_default();
    let mut der = vec![0x30, 68, 0x02, 32];
    der.extend_from_slice(&raw[..32]);
    der.extend_from_slice(&[0x02, 32]);
    der.extend_from_slice(&raw[32..]);
    let asn1 = format!("{input}.{}", b64(der));
    assert_eq!(
        verify(&asn1, &single(&ec), &Validation::default(), now()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn alg_none_is_refused() {
    let key = test_key(Algorithm::Rs256, "k", 0);
    let keys = single(&key);
    for alg in ["none", "NONE", "nOnE"] {
        for header in [json!({"alg": alg}), json!({"alg": alg, "kid": "k"})] {
            let token = format!(
                "{}.{}.",
                b64(header.to_string()),
                b64(claims_now().to_string())
            );
            assert_eq!(
                verify(&token, &keys, &Validation::default(), now()),
                Err(JwtError::AlgorithmRefused { alg: alg.into() })
            );
        }
    }
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // The algorithm-confusion attack: an HS256 token whose HMAC secret is the RSA public key,
    // in every encoding a confused verifier might use as the secret.
    let key = test_key(Algorithm::Rs256, "k", 0);
    let rsa = key.rsa().unwrap_or_else(|| panic!("RSA key"));
    let jwk = key.jwk();
    let n_text = jwk["n"].as_str().unwrap_or_default().to_owned();
    let n_raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &n_text)
        .unwrap_or_default();
    let jwk_text = jwk.to_string();
    let secrets: [&[u8]; 5] = [
        &rsa.spki_der,
        &rsa.spki_pem,
        n_text.as_bytes(),
        &n_raw,
        jwk_text.as_bytes(),
    ];
    for keys in [key_set(&[key.jwk()]), key_set(&[key.jwk_with_alg()])] {
        for secret in secrets {
            for alg in ["HS256", "HS384", "HS512"] {
                for header in [json!({"alg": alg, "kid": "k"}), json!({"alg": alg})] {
                    let token = hs256_token(&header, &claims_now(), secret);
                    let v = Validation::default();
                    assert_eq!(
                        verify(&token, &keys, &v, now()),
                        Err(JwtError::AlgorithmRefused { alg: alg.into() })
                    );
                }
            }
        }
    }
}

#[test]
fn key_type_and_pinned_alg_must_fit() {
    // An RS256 token naming an EC key's kid.
    let rsa = test_key(Algorithm::Rs256, "shared", 0);
    let ec = test_key(Algorithm::Es256, "shared", 0);
    let token = rsa.token(&claims_now());
    let r = verify(&token, &single(&ec), &Validation::default(), now());
    assert_eq!(
        r,
        Err(JwtError::AlgorithmRefused {
            alg: "RS256".into()
        })
    );
    // An ES384 token for a P-256 key.
    let p384 = test_key(Algorithm::Es384, "shared", 0);
    let r = verify(
        &p384.token(&claims_now()),
        &single(&ec),
        &Validation::default(),
        now(),
    );
    assert_eq!(
        r,
        Err(JwtError::AlgorithmRefused {
            alg: "ES384".into()
        })
    );
    // PS256 signed by the right RSA key, but the JWK pins RS256.
    let pinned = key_set(&[rsa.jwk_with_alg()]);
    let ps = rsa.token_with_header(&json!({"alg":"PS256","kid":"shared"}), &claims_now());
    assert_eq!(
        verify(&ps, &pinned, &Validation::default(), now()),
        Err(JwtError::AlgorithmRefused {
            alg: "PS256".into()
        })
    );
    // Without the pin, the same token verifies (the key is the right one).
    assert!(verify(&ps, &single(&rsa), &Validation::default(), now()).is_ok());
    // An RS256 signature presented as PS256 does not verify.
    let rs_as_ps = {
        let t = rsa.token(&claims_now());
        let (_, sig) = t.rsplit_once('.').unwrap_or_default();
        let header = b64(json!({"alg":"PS256","kid":"shared"}).to_string());
        format!("{header}.{}.{sig}", b64(claims_now().to_string()))
    };
    let r = verify(&rs_as_ps, &single(&rsa), &Validation::default(), now());
    assert_eq!(r, Err(JwtError::BadSignature));
}

#[test]
fn algorithms_outside_the_configuration_are_refused() {
    let key = test_key(Algorithm::Rs256, "k", 0);
    let v = Validation {
        algorithms: vec![Algorithm::Es256, Algorithm::EdDsa],
        ..Validation::default()
    };
    assert_eq!(
        verify(&key.token(&claims_now()), &single(&key), &v, now()),
        Err(JwtError::AlgorithmRefused {
            alg: "RS256".into()
        })
    );
}

#[test]
fn kid_selects_and_no_kid_tries_fitting_keys() -> TestResult {
    let a = test_key(Algorithm::Es256, "a", 0);
    let b = test_key(Algorithm::Es256, "b", 0);
    let ed = test_key(Algorithm::EdDsa, "ed", 0);
    let keys = key_set(&[a.jwk(), ed.jwk(), b.jwk()]);
    let v = Validation::default();
    assert!(verify(&b.token(&claims_now()), &keys, &v, now()).is_ok());
    let no_kid = b.token_with_header(&json!({"alg":"ES256"}), &claims_now());
    assert_eq!(verify(&no_kid, &keys, &v, now())?.subject(), Some("user-1"));
    let unknown = test_key(Algorithm::Es256, "zzz", 0);
    assert_eq!(
        verify(&unknown.token(&claims_now()), &keys, &v, now()),
        Err(JwtError::UnknownKey)
    );
    let no_kid = unknown.token_with_header(&json!({"alg":"ES256"}), &claims_now());
    assert_eq!(
        verify(&no_kid, &keys, &v, now()),
        Err(JwtError::BadSignature)
    );
    // No kid and no key of the algorithm's type at all.
    let rsa = test_key(Algorithm::Rs256, "r", 0);
    let no_kid = rsa.token_with_header(&json!({"alg":"RS256"}), &claims_now());
    assert_eq!(verify(&no_kid, &keys, &v, now()), Err(JwtError::UnknownKey));
    Ok(())
}

#[test]
fn at_most_eight_keys_are_tried_without_kid() {
    let target = test_key(Algorithm::EdDsa, "target", 0);
    let mut jwks: Vec<Value> = (0..8)
        .map(|i| test_key(Algorithm::EdDsa, &format!("d{i}"), 0).jwk())
        .collect();
    jwks.push(target.jwk());
    let keys = key_set(&jwks);
    let no_kid = target.token_with_header(&json!({"alg":"EdDSA"}), &claims_now());
    assert_eq!(
        verify(&no_kid, &keys, &Validation::default(), now()),
        Err(JwtError::BadSignature)
    );
    // With the kid it is found.
    assert!(
        verify(
            &target.token(&claims_now()),
            &keys,
            &Validation::default(),
            now()
        )
        .is_ok()
    );
}

#[test]
fn malformed_tokens_never_panic() {
    let key = test_key(Algorithm::Es256, "k", 0);
    let keys = single(&key);
    let v = Validation::default();
    let token = key.token(&claims_now());
    let parts: Vec<&str> = token.split('.').collect();
    let malformed =
        |t: &str| matches!(verify(t, &keys, &v, now()), Err(JwtError::Malformed { .. }));
    assert!(malformed(&format!("{}.{}", parts[0], parts[1])));
    assert!(malformed(&format!("{token}.{}", parts[2])));
    assert!(malformed(&format!(
        "{}.{}!.{}",
        parts[0], parts[1], parts[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}+",
        parts[0], parts[1], parts[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}/",
        parts[0], parts[1], parts[2]
    )));
    assert!(malformed(&format!(
        "{}=.{}.{}",
        parts[0], parts[1], parts[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}==",
        parts[0], parts[1], parts[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}",
        b64("{not json"),
        parts[1],
        parts[2]
    )));
    assert!(malformed(&format!(
        "{}.{}.{}",
        b64("\"alg\""),
        parts[1],
        parts[2]
    )));
    let mut big = claims_now();
    big["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    assert!(malformed(&key.token(&big)));
    // A signed payload that is not a JSON object.
    for payload in ["[1,2]", "null", "\"s\"", "{\"exp\":"] {
        let t = key.token_with_header(&json!({"alg":"ES256","kid":"k"}), &json!(null));
        let (h, _) = t.split_once('.').unwrap_or_default();
        let input = format!("{h}.{}", b64(payload));
        let sig = key
            .sign(Alg::Es256, input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(malformed(&format!("{input}.{}", b64(sig))), "{payload}");
    }
    // Every prefix and a byte flip at every position: an error, never a panic, never Ok.
    for i in 0..token.len() {
        assert!(verify(&token[..i], &keys, &v, now()).is_err());
        let mut flipped = token.clone().into_bytes();
        flipped[i] ^= 0x01;
        if let Ok(t) = String::from_utf8(flipped) {
            assert!(verify(&t, &keys, &v, now()).is_err(), "flip at {i}");
        }
    }
}

#[test]
fn crit_header_is_refused() {
    let key = test_key(Algorithm::EdDsa, "k", 0);
    let t = key.token_with_header(
        &json!({"alg":"EdDSA","kid":"k","crit":["exp"],"exp":1}),
        &claims_now(),
    );
    assert!(matches!(
        verify(&t, &single(&key), &Validation::default(), now()),
        Err(JwtError::Malformed { .. })
    ));
}

#[test]
fn wrong_claim_types_are_malformed() {
    let key = test_key(Algorithm::EdDsa, "k", 0);
    let keys = single(&key);
    let t = now();
    for (name, value) in [
        ("exp", json!("9999999999")),
        ("exp", json!(-1)),
        ("nbf", json!(true)),
        ("iat", json!({"t": 1})),
        ("aud", json!(7)),
        ("aud", json!(["api", 7])),
        ("iss", json!(["https://idp.example"])),
        ("sub", json!(12)),
        ("scope", json!(["a"])),
        ("scp", json!([1])),
    ] {
        let mut c = claims_now();
        c[name] = value;
        let r = verify(&key.token(&c), &keys, &Validation::default(), t);
        assert!(
            matches!(r, Err(JwtError::Malformed { .. })),
            "{name}: {r:?}"
        );
    }
    // Fractional dates are numbers, and accepted.
    let c = json!({"exp": (t + 60) as f64 + 0.5, "iat": t as f64 - 0.25});
    assert!(verify(&key.token(&c), &keys, &Validation::default(), t).is_ok());
}

#[test]
fn scopes_and_values_from_a_token() -> TestResult {
    let key = test_key(Algorithm::Ps256, "k", 0);
    let mut c = claims_now();
    c["scope"] = json!("orders:read orders:write");
    c["scp"] = json!(["orders:read", "admin"]);
    c["tenant"] = json!(["t1", 42, 1.5, false]);
    c["account"] = json!(1234);
    let claims = verify(&key.token(&c), &single(&key), &Validation::default(), now())?;
    assert_eq!(claims.scopes(), ["orders:read", "orders:write", "admin"]);
    assert!(claims.has_scope("admin"));
    assert!(!claims.has_scope("orders"));
    assert_eq!(claims.values("tenant"), ["t1", "42"]);
    assert_eq!(claims.values("account"), ["1234"]);
    assert_eq!(claims.values("sub"), ["user-1"]);
    assert!(claims.values("exp").len() == 1 && claims.values("nope").is_empty());
    assert_eq!(claims.expires_at(), c["exp"].as_u64());
    Ok(())
}

#[test]
fn error_messages_carry_nothing_from_the_token() {
    let key = test_key(Algorithm::Es256, "k", 0);
    let keys = single(&key);
    let secret_sub = "sub-SECRET-4711";
    let t = now();
    let cases = [
        json!({"sub": secret_sub, "exp": t - 100}),
        json!({"sub": secret_sub, "exp": t + 100, "nbf": t + 100}),
        json!({"sub": secret_sub, "exp": t + 100, "iss": "iss-SECRET"}),
        json!({"sub": secret_sub, "exp": "SECRET"}),
    ];
    for c in cases {
        let token = key.token(&c);
        let e = verify(&token, &keys, &strict(), t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.is_empty());
        assert!(!e.contains("SECRET") && !e.contains(&token[..20]), "{e}");
    }
}
