//! Traffic profiles: what to send, as a TOML file or built from command-line flags. A profile
//! is a template frame (addresses, protocol, ports, VLAN tags), how its fields vary
//! ([`Flows`]), and a frame-size mix.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{flow::Vary, Flows, FrameSpec, L4Spec};

/// Frame sizes with weights: each frame size is sent in proportion to its weight.
pub type SizeMix = Vec<(usize, u32)>;

/// The simple IMIX: 64, 594 and 1518 bytes on the wire in proportion 7:4:1. Sizes here are
/// frame bytes without the 4-byte FCS, so 60, 590 and 1514.
pub fn imix() -> SizeMix {
    vec![(60, 7), (590, 4), (1514, 1)]
}

/// A traffic profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// `udp`, `tcp` or `icmp` (ICMPv6 for IPv6 addresses).
    #[serde(default = "default_proto")]
    pub proto: String,
    /// Source port (TCP/UDP).
    #[serde(default = "default_sport")]
    pub sport: u16,
    /// Destination port (TCP/UDP).
    #[serde(default = "default_dport")]
    pub dport: u16,
    /// VLAN ids, outermost first (802.1Q tags).
    #[serde(default)]
    pub vlans: Vec<u16>,
    /// Frame sizes in bytes without FCS, with weights: `[[64, 1]]`; `imix` in the CLI.
    #[serde(default = "default_sizes")]
    pub sizes: SizeMix,
    /// How fields vary.
    #[serde(default)]
    pub vary: VaryProfile,
}

/// The `[vary]` table: `fixed`, a count (range) or `random:COUNT` per field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaryProfile {
    /// Source address.
    pub src: Option<String>,
    /// Destination address.
    pub dst: Option<String>,
    /// Source port.
    pub sport: Option<String>,
    /// Destination port.
    pub dport: Option<String>,
    /// Seed of the random fields.
    pub seed: Option<u64>,
}

fn default_proto() -> String {
    "udp".into()
}
fn default_sport() -> u16 {
    1024
}
fn default_dport() -> u16 {
    9
}
fn default_sizes() -> SizeMix {
    vec![(64, 1)]
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// TOML syntax or an unknown key.
    #[error("{0}")]
    Toml(String),
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl Profile {
    /// Parses a TOML profile.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        p.flows()?;
        p.templates()?;
        Ok(p)
    }

    /// The flows described by `[vary]`.
    pub fn flows(&self) -> Result<Flows, ProfileError> {
        let v = |s: &Option<String>| -> Result<Vary, ProfileError> {
            s.as_deref()
                .map(Vary::parse)
                .transpose()
                .map(|o| o.unwrap_or(Vary::Fixed))
                .map_err(ProfileError::Invalid)
        };
        Ok(Flows {
            src: v(&self.vary.src)?,
            dst: v(&self.vary.dst)?,
            sport: v(&self.vary.sport)?,
            dport: v(&self.vary.dport)?,
            seed: self.vary.seed.unwrap_or(1),
        })
    }

    /// One template frame per size of the mix, with its weight.
    pub fn templates(&self) -> Result<Vec<(FrameSpec, u32)>, ProfileError> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(ProfileError::Invalid(format!(
                "src {} and dst {} are of different address families",
                self.src, self.dst
            )));
        }
        let l4 = match self.proto.as_str() {
            "udp" => L4Spec::Udp {
                sport: self.sport,
                dport: self.dport,
            },
            "tcp" => L4Spec::Tcp {
                sport: self.sport,
                dport: self.dport,
                flags: crate::frame::tcp_flags::SYN,
            },
            "icmp" if self.src.is_ipv4() => L4Spec::Icmp { ty: 8, code: 0 },
            "icmp" => L4Spec::Icmpv6 { ty: 128, code: 0 },
            other => {
                return Err(ProfileError::Invalid(format!(
                    "unknown protocol '{other}' (udp, tcp or icmp)"
                )))
            }
        };
        if self.sizes.is_empty() || self.sizes.iter().all(|&(_, w)| w == 0) {
            return Err(ProfileError::Invalid("the size mix is empty".into()));
        }
        self.sizes
            .iter()
            .map(|&(size, weight)| {
                let mut spec = FrameSpec::new(self.src, self.dst, l4);
                for &vid in &self.vlans {
                    spec = spec.vlan(0x8100, vid);
                }
                let headers = spec.len();
                if size < headers || size > 9000 {
                    return Err(ProfileError::Invalid(format!(
                        "frame size {size} is outside {headers} (the headers) to 9000"
                    )));
                }
                spec.payload_len = size - headers;
                Ok((spec, weight))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let p = Profile::parse(
            "src = \"192.168.1.1\"\ndst = \"192.168.1.2\"\nproto = \"tcp\"\ndport = 80\nsizes = [[64, 7], [594, 4], [1514, 1]]\nvlans = [5]\n[vary]\nsport = \"random:1000\"\nsrc = \"16\"\n",
        )
        .unwrap();
        let t = p.templates().unwrap();
        assert_eq!(
            t.iter().map(|(s, _)| s.len()).collect::<Vec<_>>(),
            vec![64, 594, 1514]
        );
        assert_eq!(p.flows().unwrap().src, Vary::Range { count: 16 });
        assert!(Profile::parse("src = \"1.1.1.1\"\ndst = \"::1\"\n").is_err());
        assert!(
            Profile::parse("src = \"1.1.1.1\"\ndst = \"2.2.2.2\"\nsizes = [[20, 1]]\n").is_err()
        );
        assert!(Profile::parse("src = \"1.1.1.1\"\ndst = \"2.2.2.2\"\nspeed = 3\n").is_err());
        assert!(
            Profile::parse("src = \"1.1.1.1\"\ndst = \"2.2.2.2\"\n[vary]\ndst = \"x\"\n").is_err()
        );
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_profile_parses() {
        let text = include_str!("../../examples/traffic-imix.toml");
        let p = super::Profile::parse(text).unwrap();
        assert_eq!(p.templates().unwrap().len(), 3);
    }
}
