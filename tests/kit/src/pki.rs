//! Certificates and keys made per test or per run: a CA with server and client certificates
//! under it, self-signed certificates, P-256 keys (all ECDSA P-256, by rcgen), and RSA keys and
//! other conversions through the openssl CLI (ring cannot generate RSA keys).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;

/// Where a certificate and its key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and its private key (PKCS#8), as PEM.
#[derive(Debug, Clone)]
pub struct Cert {
    pub cert_pem: String,
    pub key_pem: String,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Self {
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// Writes the certificate to `cert` and the key to `key`.
    pub fn write(&self, cert: &Path, key: &Path) -> Result<TlsFiles> {
        write(cert, &self.cert_pem)?;
        write(key, &self.key_pem)?;
        Ok(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Writes `cert.pem` and `key.pem` in `dir`.
    pub fn write_in(&self, dir: &Path) -> Result<TlsFiles> {
        self.write(&dir.join("cert.pem"), &dir.join("key.pem"))
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A self-signed certificate for `names` (DNS names or IP addresses), which clients trust by
/// naming the certificate itself as their CA.
pub fn self_signed(names: &[&str]) -> Result<Cert> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(names)?.self_signed(&key)?;
    Ok(Cert::new(&cert, &key))
}

fn leaf_params(names: &[&str]) -> Result<CertificateParams> {
    let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut p = CertificateParams::new(sans)?;
    let cn = names.first().copied().unwrap_or("vigil-test");
    p.distinguished_name.push(DnType::CommonName, cn);
    Ok(p)
}

/// A certificate authority that issues server and client certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    pub fn new(common_name: &str) -> Result<Self> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// Writes the CA certificate (no key) to `path`.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        write(path, &self.pem())?;
        Ok(path.to_path_buf())
    }

    /// A server certificate for `names` (DNS names or IP addresses; the first is the CN).
    pub fn server(&self, names: &[&str]) -> Result<Cert> {
        let mut p = leaf_params(names)?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        Ok(Cert::new(&p.signed_by(&key, &self.cert, &self.key)?, &key))
    }

    /// A client certificate with CN `name` and the URI SAN `spiffe://vigil.test/<name>`.
    pub fn client(&self, name: &str) -> Result<Cert> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, name);
        let uri = format!("spiffe://vigil.test/{name}");
        p.subject_alt_names.push(SanType::URI(uri.try_into()?));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        Ok(Cert::new(&p.signed_by(&key, &self.cert, &self.key)?, &key))
    }
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, a client certificate from the same
/// CA (`svc-orders`) and one from a rogue CA (`intruder`), written to a directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

impl Pki {
    pub fn write(dir: &Path) -> Result<Self> {
        let ca = Ca::new("Vigil Test CA")?;
        let server = ca
            .server(&["localhost", "127.0.0.1"])?
            .write(&dir.join("server.pem"), &dir.join("server-key.pem"))?;
        let client = ca
            .client("svc-orders")?
            .write(&dir.join("client.pem"), &dir.join("client-key.pem"))?;
        let rogue = Ca::new("Rogue CA")?
            .client("intruder")?
            .write(&dir.join("rogue.pem"), &dir.join("rogue-key.pem"))?;
        Ok(Self {
            ca: ca.write(&dir.join("ca.pem"))?,
            server_cert: server.cert,
            server_key: server.key,
            client_cert: client.cert,
            client_key: client.key,
            rogue_cert: rogue.cert,
            rogue_key: rogue.key,
        })
    }
}

/// A fresh ECDSA P-256 private key as PKCS#8 PEM (what `openssl genpkey` writes).
pub fn ec_key_pem() -> Result<String> {
    Ok(KeyPair::generate()?.serialize_pem())
}

/// Runs the openssl CLI with `stdin` as its input; its stdout, or its stderr as the error.
pub fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    crate::procs::output(Command::new("openssl").args(args), stdin)
}

/// A 2048-bit RSA key from the openssl CLI, with its public key in the encodings a verifier
/// (or an attacker using it as an HMAC secret) might hold.
#[derive(Debug, Clone)]
pub struct RsaKey {
    /// PKCS#1 or PKCS#8 DER, as this openssl writes a DER private key.
    pub private_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub spki_pem: Vec<u8>,
}

impl RsaKey {
    pub fn generate() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("rsa.der");
        let key = path.to_string_lossy();
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
                "-out",
                &key,
            ],
            None,
        )?;
        let public = |form: &str| {
            openssl(
                &[
                    "pkey", "-in", &key, "-inform", "DER", "-pubout", "-outform", form,
                ],
                None,
            )
        };
        Ok(Self {
            private_der: std::fs::read(&path)?,
            spki_der: public("DER")?,
            spki_pem: public("PEM")?,
        })
    }
}

/// SHA-256 of a PEM certificate's SubjectPublicKeyInfo, as lowercase hex, computed by the
/// openssl CLI (an implementation independent of the one under test).
pub fn spki_sha256(cert_pem: &str) -> Result<String> {
    let pem = openssl(&["x509", "-noout", "-pubkey"], Some(cert_pem.as_bytes()))?;
    let der = openssl(&["pkey", "-pubin", "-outform", "DER"], Some(&pem))?;
    let digest = openssl(&["dgst", "-sha256", "-r"], Some(&der))?;
    let text = String::from_utf8_lossy(&digest);
    let hex = text
        .split_whitespace()
        .next()
        .context("no digest from openssl")?;
    Ok(hex.to_owned())
}

/// The certificate (PEM) a TLS listener at `addr` serves to a client asking for `name`, as
/// `openssl s_client` saw it.
pub fn served_cert_pem(addr: &str, name: &str) -> Result<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", name])
        .stdin(Stdio::null())
        .output()
        .context("running openssl s_client")?;
    let text = String::from_utf8_lossy(&out.stdout);
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!(
            "no certificate from {addr}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    Ok(format!("{}\n", &text[begin..end + END.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_issues_what_openssl_verifies() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pki = Pki::write(dir.path())?;
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let (ca, server, rogue) = (s(&pki.ca), s(&pki.server_cert), s(&pki.rogue_cert));
        openssl(&["verify", "-CAfile", &ca, &server], None)?;
        assert!(openssl(&["verify", "-CAfile", &ca, &rogue], None).is_err());
        let own = self_signed(&["127.0.0.1"])?.write_in(dir.path())?;
        let own = s(&own.cert);
        openssl(&["verify", "-CAfile", &own, &own], None)?;
        let fp = spki_sha256(&std::fs::read_to_string(&own)?)?;
        assert_eq!(fp.len(), 64, "{fp}");
        assert_ne!(fp, spki_sha256(&std::fs::read_to_string(&server)?)?);
        Ok(())
    }
}
