//! Synthetic blocklists for set tests and benchmarks: reproducible from a seed and shaped like
//! published ones (mostly single hosts, some prefixes, both families).
//!
//! Of every ten entries: eight IPv4 hosts, one IPv6 host (in 2001:db8::/32), one prefix (IPv4
//! /16 to /31 or IPv6 /48 to /127, alternating), so that even a million entries cover only a
//! few per cent of the address space. Nothing falls in 198.18.0.0/15 or 2001:db8:18::/48, the
//! standard topology's own subnets, so traffic there is judged by the rules around the set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use xdpwall::AddrSet;

/// splitmix64: small, fast, and the same on every machine (the benchmarks' shuffles use it
/// too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next number of the stream.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn in_topology(net: &IpNet) -> bool {
    let topo4: IpNet = "198.18.0.0/15".parse().unwrap();
    let topo6: IpNet = "2001:db8:18::/48".parse().unwrap();
    topo4.contains(net) || net.contains(&topo4) || topo6.contains(net) || net.contains(&topo6)
}

/// The `i`-th candidate entry of the stream for `seed`.
fn entry(rng: &mut Rng, i: usize) -> IpNet {
    let r = rng.next();
    let (addr, len): (IpAddr, u8) = match i % 10 {
        0..=7 => (Ipv4Addr::from(r as u32).into(), 32),
        8 => (
            Ipv6Addr::from((0x2001_0db8u128 << 96) | (r as u128) << 32 | rng.next() as u128 >> 32)
                .into(),
            128,
        ),
        _ if i % 20 == 9 => (Ipv4Addr::from(r as u32).into(), 16 + (r >> 32) as u8 % 16),
        _ => (
            Ipv6Addr::from((0x2001_0db8u128 << 96) | (r as u128) << 32).into(),
            48 + (r >> 40) as u8 % 80,
        ),
    };
    IpNet::new(addr, len).unwrap().trunc()
}

/// A set of exactly `n` distinct entries.
pub fn blocklist(n: usize, seed: u64) -> AddrSet {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut nets = Vec::with_capacity(n);
    let mut i = 0;
    while nets.len() < n {
        let net = entry(&mut rng, i);
        i += 1;
        if !in_topology(&net) && seen.insert(net) {
            nets.push(net);
        }
    }
    AddrSet::new(nets)
}

/// Writes `set` as a set file (one entry per line) that a rule file can name.
pub fn write_set_file(set: &AddrSet, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "# synthetic blocklist, {} entries", set.nets.len())?;
    for n in &set.nets {
        writeln!(w, "{n}")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklists_are_reproducible_and_shaped_as_documented() {
        let a = blocklist(10_000, 7);
        assert_eq!(a, blocklist(10_000, 7));
        assert_ne!(a, blocklist(10_000, 8));
        assert_eq!(a.nets.len(), 10_000);
        let hosts = a
            .nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .count();
        let v6 = a.nets.iter().filter(|n| n.addr().is_ipv6()).count();
        assert!((8_800..=9_100).contains(&hosts), "{hosts}");
        assert!((1_400..=1_600).contains(&v6), "{v6}");
        assert!(a.nets.iter().all(|n| !in_topology(n)));
    }
}
