//! Certificates generated per test: a CA, a server certificate for `localhost`/127.0.0.1, a
//! client certificate from the same CA and one from a rogue CA (all ECDSA P-256).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::TempDir;

pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

fn client(ca: &rcgen::Certificate, ca_key: &KeyPair, cn: &str) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names.push(SanType::URI(
        format!("spiffe://vigil.test/{cn}").try_into().unwrap(),
    ));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca, ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new(dir: &TempDir) -> Self {
        let (ca_cert, ca_key) = ca("Vigil Test CA");
        let mut p =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let (client_pem, client_key) = client(&ca_cert, &ca_key, "svc-orders");
        let (rogue_ca, rogue_ca_key) = ca("Rogue CA");
        let (rogue_pem, rogue_key) = client(&rogue_ca, &rogue_ca_key, "intruder");
        let write = |name: &str, text: &str| {
            let path = dir.path(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &cert.pem()),
            server_key: write("server-key.pem", &key.serialize_pem()),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client-key.pem", &client_key),
            rogue_cert: write("rogue.pem", &rogue_pem),
            rogue_key: write("rogue-key.pem", &rogue_key),
        }
    }
}
