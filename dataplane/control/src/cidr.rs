//! The one parsed CIDR: validated once where it enters (the command line, the control socket,
//! the config file) and carried as [`Cidr`] down to the map.

use std::{fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A network with no host bits below its prefix (`198.18.0.0/24`, `2001:db8::/48`), or a
/// single address as a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

impl Cidr {
    /// The network.
    pub fn net(self) -> IpNet {
        self.0
    }
}

impl FromStr for Cidr {
    type Err = vigil_xdp::XdpError;

    /// Refuses host bits with the network the operator probably meant
    /// (`invalid CIDR "198.18.0.9/24": ... did you mean 198.18.0.0/24?`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(why) = prefix_out_of_range(s) {
            return Err(vigil_xdp::XdpError::InvalidCidr {
                input: s.to_owned(),
                why,
            });
        }
        vigil_xdp::parse_cidr(s).map(Cidr)
    }
}

/// `10.0.0.0/33`: the address is fine and the prefix is a number, only too long for the family.
/// Said plainly, where the address parser would only say "invalid IP address syntax".
fn prefix_out_of_range(s: &str) -> Option<String> {
    let (addr, len) = s.trim().rsplit_once('/')?;
    let len: u32 = len.parse().ok()?;
    let (family, max) = match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => ("IPv4", 32),
        std::net::IpAddr::V6(_) => ("IPv6", 128),
    };
    (len > max).then(|| {
        format!("prefix length /{len} is out of range: an {family} prefix is /0 to /{max}")
    })
}

impl From<std::net::IpAddr> for Cidr {
    fn from(ip: std::net::IpAddr) -> Self {
        Cidr(IpNet::from(ip))
    }
}

impl TryFrom<IpNet> for Cidr {
    type Error = vigil_xdp::XdpError;

    /// Networks read back from the maps are already truncated; anything else is refused as
    /// text would be.
    fn try_from(net: IpNet) -> Result<Self, Self::Error> {
        if net.trunc() == net {
            Ok(Cidr(net))
        } else {
            net.to_string().parse()
        }
    }
}

impl fmt::Display for Cidr {
    /// Honours width and alignment, for tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0.to_string())
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_once_with_the_operator_messages() {
        let c: Cidr = "198.18.0.7".parse().unwrap();
        assert_eq!(c.to_string(), "198.18.0.7/32");
        assert_eq!(c.net().prefix_len(), 32);
        assert_eq!(format!("{c:<16}|"), "198.18.0.7/32   |");
        let e = "198.18.0.0/33".parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid CIDR \"198.18.0.0/33\": prefix length /33 is out of range: an IPv4 prefix \
             is /0 to /32"
        );
        let e = "2001:db8::/129".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.ends_with("an IPv6 prefix is /0 to /128"), "{e}");
        let e = "198.18.0.0/x".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.starts_with("invalid CIDR \"198.18.0.0/x\""), "{e}");
        let e = "198.18.0.9/24".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains("did you mean 198.18.0.0/24"), "{e}");
    }

    #[test]
    fn travels_as_a_string() {
        let c: Cidr = "2001:db8::/48".parse().unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"2001:db8::/48\"");
        assert_eq!(
            serde_json::from_str::<Cidr>("\"2001:db8::/48\"").unwrap(),
            c
        );
        let e = serde_json::from_str::<Cidr>("\"198.18.0.9/24\"").unwrap_err();
        assert!(e.to_string().contains("did you mean 198.18.0.0/24"), "{e}");
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(Cidr::try_from(net).unwrap().net(), net);
        assert!(Cidr::try_from("10.0.0.1/8".parse::<IpNet>().unwrap()).is_err());
    }
}
