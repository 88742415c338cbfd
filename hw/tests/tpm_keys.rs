//! TPM-sealed and TPM-resident keys against a private swtpm per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::tls::{client_config, client_fetch, openssl_fetch, serve, server_config};
use rustls::SignatureScheme;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;
use vigil_hw::keys::{
    self, CERT_FILE, KeyError, KeyMode, KeyProvider, RESIDENT_FILE, SEALED_FILE, SealPolicy,
    TpmResidentKeyProvider, TpmSealedKeyProvider,
};
use vigil_testkit::swtpm::Swtpm;

const NAME: &str = "gw.vigil.test";

fn leaf(dir: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join(CERT_FILE)).unwrap()
}

/// Signs with the loaded key and verifies with its public key (which load() matched against
/// the leaf certificate).
fn assert_signs(ck: &CertifiedKey) {
    let signer = ck
        .key
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    let msg = b"TLS 1.3, server CertificateVerify";
    let sig = signer.sign(msg).unwrap();
    let spki = ck.key.public_key().unwrap();
    // The SPKI of a P-256 key ends with the 65-byte uncompressed point.
    let point = &spki.as_ref()[spki.as_ref().len() - 65..];
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point);
    public.verify(msg, &sig).unwrap();
    assert!(public.verify(b"another message", &sig).is_err());
}

fn spki_sha256(ck: &CertifiedKey) -> String {
    let spki = ck.key.public_key().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A full TLS 1.3 handshake with a rustls client, then one with openssl s_client.
fn assert_handshakes(provider: &dyn KeyProvider, dir: &Path) {
    let ck = provider.load().unwrap();
    let (port, server) = serve(server_config(ck), 2);
    let client = client_config(&leaf(dir));
    assert_eq!(client_fetch(&client, port, NAME).unwrap(), "hello\n");
    let (ok, text) = openssl_fetch(port, &dir.join(CERT_FILE), NAME);
    assert!(ok, "openssl s_client failed:\n{text}");
    assert!(text.contains("TLSv1.3"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn file_key_serves_tls13_to_rustls_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let info = keys::init(KeyMode::File, dir.path(), "unused", NAME).unwrap();
    assert_eq!(keys::show(dir.path()).unwrap(), info);
    let provider = keys::provider(dir.path(), "unused").unwrap();
    assert_eq!(provider.mode(), KeyMode::File);
    assert_handshakes(provider.as_ref(), dir.path());
}

#[test]
fn sealed_key_round_trips_and_serves_tls13() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let info = keys::init(KeyMode::TpmSealed, dir.path(), &tpm.tcti(), NAME).unwrap();
    assert_eq!(info.pcrs, keys::DEFAULT_PCRS);
    assert_eq!(keys::show(dir.path()).unwrap(), info);
    assert!(
        !dir.path().join(keys::KEY_FILE).exists(),
        "plaintext key left on disk"
    );
    let provider = TpmSealedKeyProvider::new(
        dir.path().join(CERT_FILE),
        dir.path().join(SEALED_FILE),
        tpm.tcti(),
    );
    let ck = provider.load().unwrap();
    assert_eq!(info.spki_sha256, spki_sha256(&ck));
    assert_signs(&ck);
    assert_handshakes(&provider, dir.path());
}

#[test]
fn existing_pem_key_is_sealed_and_refused_after_a_pcr_extend() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An operator's existing key and certificate (Ed25519 here, to cover another algorithm).
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec![NAME.to_owned()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    let pem = dir.path().join("old.key");
    std::fs::write(&pem, kp.serialize_pem()).unwrap();
    let keydir = dir.path().join("keys");
    let info = keys::seal(&pem, &keydir, &tpm.tcti(), &SealPolicy::Pcrs(vec![7, 16])).unwrap();
    assert_eq!(info.pcrs, vec![7, 16]);
    std::fs::write(keydir.join(CERT_FILE), cert.pem()).unwrap();
    let provider = keys::provider(&keydir, &tpm.tcti()).unwrap();
    let ck = provider.load().unwrap();
    assert!(ck.key.choose_scheme(&[SignatureScheme::ED25519]).is_some());

    tpm.pcr_extend(16).unwrap();
    let err = provider.load().unwrap_err();
    match &err {
        KeyError::PcrMismatch { pcrs, .. } => assert_eq!(pcrs, &vec![16]),
        other => panic!("expected a PCR mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("PCR 16 changed"), "{text}");
    // Re-sealing the same key under the new values makes it usable again...
    keys::seal(&pem, &keydir, &tpm.tcti(), &SealPolicy::Pcrs(vec![7, 16])).unwrap();
    provider.load().unwrap();
    // ...but sealing a different key over it is refused.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&pem, other.serialize_pem()).unwrap();
    let err = keys::seal(&pem, &keydir, &tpm.tcti(), &SealPolicy::Pcrs(vec![7])).unwrap_err();
    assert!(err.to_string().contains("different key"), "{err}");
    provider.load().unwrap();
}

#[test]
fn resident_key_signs_verifies_and_serves_tls13() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let info = keys::init(KeyMode::TpmResident, dir.path(), &tpm.tcti(), NAME).unwrap();
    let csr = std::fs::read_to_string(dir.path().join(keys::CSR_FILE)).unwrap();
    assert!(csr.contains("BEGIN CERTIFICATE REQUEST"));
    let provider = TpmResidentKeyProvider::new(
        dir.path().join(CERT_FILE),
        dir.path().join(RESIDENT_FILE),
        &tpm.tcti(),
    )
    .unwrap();
    let ck = provider.load().unwrap();
    // load() checked the TPM key against the certificate; key.json names the same key.
    assert_eq!(info.spki_sha256, spki_sha256(&ck));
    assert!(KeyMode::TpmResident.signs_blocking());
    assert_signs(&ck);
    assert_handshakes(&provider, dir.path());
    let stats = provider.stats();
    assert!(stats.signatures >= 4, "{stats:?}");
    assert_eq!((stats.failures, stats.connections), (0, 1));
}

#[test]
fn keys_survive_a_swtpm_restart_on_the_same_state() {
    let mut tpm = Swtpm::start().unwrap();
    let sealed_dir = tempfile::tempdir().unwrap();
    let resident_dir = tempfile::tempdir().unwrap();
    keys::init(KeyMode::TpmSealed, sealed_dir.path(), &tpm.tcti(), NAME).unwrap();
    keys::init(KeyMode::TpmResident, resident_dir.path(), &tpm.tcti(), NAME).unwrap();
    let resident = keys::provider(resident_dir.path(), &tpm.tcti()).unwrap();
    let ck = resident.load().unwrap();
    assert_signs(&ck);

    tpm.restart().unwrap();
    // The live resident provider reconnects by itself and reloads its key from the blob.
    assert_signs(&ck);
    // Fresh loads work too: the primary key is re-derived from the unchanged owner seed.
    assert_signs(&resident.load().unwrap());
    drop((ck, resident));
    let sealed = keys::provider(sealed_dir.path(), &tpm.tcti()).unwrap();
    assert_signs(&sealed.load().unwrap());
}

#[test]
fn two_hundred_signatures_do_not_exhaust_object_slots() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    keys::init(KeyMode::TpmResident, dir.path(), &tpm.tcti(), NAME).unwrap();
    let provider = TpmResidentKeyProvider::new(
        dir.path().join(CERT_FILE),
        dir.path().join(RESIDENT_FILE),
        &tpm.tcti(),
    )
    .unwrap();
    let ck = provider.load().unwrap();
    let signer = ck
        .key
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    for i in 0..200u32 {
        signer.sign(&i.to_be_bytes()).unwrap();
    }
    // Reloads (rotation checks) must not leak objects either.
    for _ in 0..5 {
        provider.load().unwrap();
    }
    let stats = provider.stats();
    assert_eq!(stats.failures, 0);
    assert!(stats.signatures >= 205, "{stats:?}");
    drop((signer, ck, provider));
    // Sealed loads flush everything they load: many in a row still work.
    let sealed_dir = tempfile::tempdir().unwrap();
    keys::init(KeyMode::TpmSealed, sealed_dir.path(), &tpm.tcti(), NAME).unwrap();
    let sealed = keys::provider(sealed_dir.path(), &tpm.tcti()).unwrap();
    for _ in 0..20 {
        sealed.load().unwrap();
    }
}

#[test]
fn concurrent_handshake_threads_share_one_tpm_connection() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    keys::init(KeyMode::TpmResident, dir.path(), &tpm.tcti(), NAME).unwrap();
    let provider = keys::provider(dir.path(), &tpm.tcti()).unwrap();
    let ck = provider.load().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    assert_signs(&ck);
                }
            });
        }
    });
    let provider = TpmResidentKeyProvider::new(
        dir.path().join(CERT_FILE),
        dir.path().join(RESIDENT_FILE),
        &tpm.tcti(),
    )
    .unwrap();
    let ck = provider.load().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| assert_signs(&ck));
        }
    });
    let stats = provider.stats();
    // One probe at load plus three signatures, over a single connection.
    assert_eq!(
        (stats.signatures, stats.failures, stats.connections),
        (4, 0, 1)
    );
}

#[test]
fn exhausted_object_slots_are_explained() {
    let tpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Another TPM client that never flushes: without a resource manager, each primary it
    // creates stays loaded. swtpm has three transient object slots.
    let ctx = dir.path().join("leak.ctx");
    let ctx = ctx.to_str().unwrap();
    for _ in 0..3 {
        tpm.tool("tpm2_createprimary", &["-C", "o", "-G", "ecc", "-c", ctx])
            .unwrap();
    }
    let err = keys::init(
        KeyMode::TpmResident,
        &dir.path().join("k"),
        &tpm.tcti(),
        NAME,
    )
    .unwrap_err();
    assert!(
        matches!(err, KeyError::ObjectSlotsExhausted { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("0x902"), "{err}");
    // The remedy the message gives works.
    tpm.tool("tpm2_flushcontext", &["-t"]).unwrap();
    keys::init(
        KeyMode::TpmResident,
        &dir.path().join("k"),
        &tpm.tcti(),
        NAME,
    )
    .unwrap();
}

#[test]
fn blobs_from_another_tpm_are_refused_in_words() {
    let first = Swtpm::start().unwrap();
    let second = Swtpm::start().unwrap();
    let sealed = tempfile::tempdir().unwrap();
    let resident = tempfile::tempdir().unwrap();
    keys::init(KeyMode::TpmSealed, sealed.path(), &first.tcti(), NAME).unwrap();
    keys::init(KeyMode::TpmResident, resident.path(), &first.tcti(), NAME).unwrap();
    for dir in [sealed.path(), resident.path()] {
        let err = keys::provider(dir, &second.tcti())
            .unwrap()
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("created by another TPM"), "{err}");
        keys::provider(dir, &first.tcti()).unwrap().load().unwrap();
    }
}

#[test]
fn unreachable_tpm_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    let err = keys::init(KeyMode::TpmResident, dir.path(), &tcti, NAME).unwrap_err();
    assert!(matches!(err, KeyError::TpmUnreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&tcti), "{err}");
}

#[test]
fn init_refuses_to_overwrite_and_show_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = keys::show(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::NotInitialized { .. }), "{err:?}");
    keys::init(KeyMode::File, dir.path(), "", NAME).unwrap();
    let err = keys::init(KeyMode::File, dir.path(), "", NAME).unwrap_err();
    assert!(err.to_string().contains("already holds a key"), "{err}");
    let err = keys::init(KeyMode::File, &dir.path().join("x"), "", "bad name").unwrap_err();
    assert!(matches!(err, KeyError::Invalid { .. }), "{err:?}");
}
