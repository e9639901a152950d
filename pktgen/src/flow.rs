//! Flows: how the fields of generated frames vary. Each field is fixed, a range walked in order
//! (incrementing, wrapping), or random within a range from a seed, so the same description
//! always gives the same frames.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{FrameSpec, IpSpec, L4Spec};

/// How one numeric field varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vary {
    /// Always the template's value.
    Fixed,
    /// `base + (n % count)` for frame number `n`.
    Range {
        /// Number of distinct values.
        count: u32,
    },
    /// `base + random % count`.
    Random {
        /// Number of distinct values.
        count: u32,
    },
    /// `spread(base + (n % count))`: `count` distinct values scattered over the field's whole
    /// range ([`xdpwall_common::spread`], a bijection), e.g. sources all over the address
    /// space.
    Spread {
        /// Number of distinct values.
        count: u32,
    },
}

impl Vary {
    /// Number of distinct values.
    pub fn span(&self) -> u32 {
        match *self {
            Vary::Fixed => 1,
            Vary::Range { count } | Vary::Random { count } | Vary::Spread { count } => count.max(1),
        }
    }

    /// Parses `fixed`, `N` (a range of N values), `random:N` or `spread:N`.
    pub fn parse(s: &str) -> Result<Vary, String> {
        if s == "fixed" {
            return Ok(Vary::Fixed);
        }
        let (kind, n) = match s.split_once(':') {
            Some((k @ ("random" | "spread"), n)) => (k, n),
            _ => ("range", s),
        };
        let count: u32 = n.parse().map_err(|_| {
            format!("'{s}': expected fixed, a count (e.g. 256), random:COUNT or spread:COUNT")
        })?;
        if count == 0 {
            return Err(format!("'{s}': the count must be at least 1"));
        }
        Ok(match kind {
            "random" => Vary::Random { count },
            "spread" => Vary::Spread { count },
            _ => Vary::Range { count },
        })
    }
}

/// The variation of every flow field; the template frame gives the base values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flows {
    /// Source address (IPv4, or the low 32 bits of IPv6).
    pub src: Vary,
    /// Destination address.
    pub dst: Vary,
    /// Source port.
    pub sport: Vary,
    /// Destination port.
    pub dport: Vary,
    /// Seed for the random fields.
    pub seed: u64,
}

impl Default for Flows {
    fn default() -> Self {
        Flows {
            src: Vary::Fixed,
            dst: Vary::Fixed,
            sport: Vary::Fixed,
            dport: Vary::Fixed,
            seed: 1,
        }
    }
}

/// The low 32 bits of an address (all of IPv4).
pub fn low32(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => u128::from(v) as u32,
    }
}

fn with_low32(a: IpAddr, v: u32) -> IpAddr {
    match a {
        IpAddr::V4(_) => IpAddr::V4(v.into()),
        IpAddr::V6(x) => IpAddr::V6((u128::from(x) & !0xffff_ffff | v as u128).into()),
    }
}

/// A small deterministic generator (xorshift64*), seeded per flow description.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next value.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

impl Flows {
    /// The value of one field for frame `n`.
    fn pick(v: Vary, base: u32, n: u64, rng: &mut Rng) -> u32 {
        match v {
            Vary::Fixed => base,
            Vary::Range { count } => base.wrapping_add((n % count as u64) as u32),
            Vary::Random { count } => base.wrapping_add(rng.next_u32() % count),
            Vary::Spread { count } => {
                xdpwall_common::spread(base.wrapping_add((n % count as u64) as u32))
            }
        }
    }

    /// Frame `n` of the sequence that starts from `template` (user-space engines).
    pub fn frame(&self, template: &FrameSpec, n: u64, rng: &mut Rng) -> FrameSpec {
        let mut f = template.clone();
        let (src, dst) = match &f.ip {
            IpSpec::V4 { src, dst, .. } => (IpAddr::V4(*src), IpAddr::V4(*dst)),
            IpSpec::V6 { src, dst, .. } => (IpAddr::V6(*src), IpAddr::V6(*dst)),
        };
        let s = with_low32(src, Self::pick(self.src, low32(src), n, rng));
        let d = with_low32(dst, Self::pick(self.dst, low32(dst), n, rng));
        match (&mut f.ip, s, d) {
            (IpSpec::V4 { src, dst, .. }, IpAddr::V4(s), IpAddr::V4(d)) => {
                *src = s;
                *dst = d;
            }
            (IpSpec::V6 { src, dst, .. }, IpAddr::V6(s), IpAddr::V6(d)) => {
                *src = s;
                *dst = d;
            }
            _ => unreachable!("with_low32 keeps the family"),
        }
        match &mut f.l4 {
            L4Spec::Tcp { sport, dport, .. } | L4Spec::Udp { sport, dport } => {
                *sport = Self::pick(self.sport, *sport as u32, n, rng) as u16;
                *dport = Self::pick(self.dport, *dport as u32, n, rng) as u16;
            }
            _ => {}
        }
        f
    }

    /// The distinct frames a user-space engine cycles through: one per step of the ranges
    /// (up to `limit`), so sending needs no per-frame building.
    pub fn frames(&self, template: &FrameSpec, limit: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(self.seed);
        let period = [self.src, self.dst, self.sport, self.dport]
            .iter()
            .map(|v| v.span() as u64)
            .max()
            .unwrap_or(1)
            .max(if self.has_random() { limit as u64 } else { 1 });
        (0..period.min(limit as u64))
            .map(|n| self.frame(template, n, &mut rng).build())
            .collect()
    }

    fn has_random(&self) -> bool {
        [self.src, self.dst, self.sport, self.dport]
            .iter()
            .any(|v| matches!(v, Vary::Random { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_walk_and_wrap_and_seeds_repeat() {
        let t = FrameSpec::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.1.1".parse().unwrap(),
            1000,
            53,
        );
        let f = Flows {
            src: Vary::Range { count: 4 },
            sport: Vary::Random { count: 100 },
            ..Flows::default()
        };
        let a = f.frames(&t, 16);
        assert_eq!(a.len(), 16);
        assert_eq!(&a[0][26..30], &[10, 0, 0, 1]);
        assert_eq!(&a[3][26..30], &[10, 0, 0, 4]);
        assert_eq!(&a[4][26..30], &[10, 0, 0, 1]);
        assert_eq!(a, f.frames(&t, 16), "same seed, same frames");
        let other = Flows { seed: 2, ..f };
        assert_ne!(a, other.frames(&t, 16));
        for fr in &a {
            let sport = u16::from_be_bytes([fr[34], fr[35]]);
            assert!((1000..1100).contains(&sport));
        }
    }

    #[test]
    fn vary_parses() {
        assert_eq!(Vary::parse("fixed").unwrap(), Vary::Fixed);
        assert_eq!(Vary::parse("256").unwrap(), Vary::Range { count: 256 });
        assert_eq!(Vary::parse("random:9").unwrap(), Vary::Random { count: 9 });
        assert_eq!(Vary::parse("spread:5").unwrap(), Vary::Spread { count: 5 });
        assert!(Vary::parse("other:5").is_err());
        assert!(Vary::parse("0").is_err());
        assert!(Vary::parse("lots").is_err());
    }
}
