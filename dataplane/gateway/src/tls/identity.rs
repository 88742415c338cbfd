//! The identity a verified client certificate carries: subject DN and SANs.

use x509_parser::extensions::GeneralName;

use crate::pipeline::ClientIdentity;

/// Reads subject and SANs from a DER certificate (already verified by rustls).
pub fn from_der(der: &[u8]) -> Option<ClientIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) => sans.push(format!("dns:{s}")),
                GeneralName::URI(s) => sans.push(format!("uri:{s}")),
                GeneralName::RFC822Name(s) => sans.push(format!("email:{s}")),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(format!("ip:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    Some(ClientIdentity {
        subject: cert.subject().to_string(),
        sans,
    })
}
