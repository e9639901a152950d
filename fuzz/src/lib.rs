//! Decoding fuzzer bytes into a rule set and a frame for the `verdict` target, and writing a
//! failing case out as rules.toml + frame.pcap so it can be replayed (`harness replay`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use arbitrary::{Result, Unstructured};
use ipnet::IpNet;
use pktgen::{frame::Fragment, FrameSpec, IpSpec, Ipv6Ext, L4Spec};
use xdpwall::{Action, AddrMatch, PortRange, Rule, RuleSet};

const V4: [u32; 3] = [0x0a00_0000, 0xc0a8_0100, 0xc612_0000];
const V6: [u128; 2] = [0x2001_0db8 << 96, 0xfe80 << 112];
const PROTOS: [u8; 5] = [6, 17, 1, 58, 47];

fn action(u: &mut Unstructured) -> Result<Action> {
    Ok(if u.arbitrary::<bool>()? {
        Action::Drop
    } else {
        Action::Pass
    })
}

fn net(u: &mut Unstructured, v6: bool) -> Result<IpNet> {
    Ok(if v6 {
        let a = V6[u.choose_index(V6.len())?] ^ u.arbitrary::<u32>()? as u128;
        IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), u.int_in_range(0..=128)?)
            .unwrap()
            .trunc()
    } else {
        let a = V4[u.choose_index(V4.len())?] ^ (u.arbitrary::<u16>()? as u32);
        IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), u.int_in_range(0..=32)?)
            .unwrap()
            .trunc()
    })
}

fn ports(u: &mut Unstructured) -> Result<Option<PortRange>> {
    if !u.arbitrary::<bool>()? {
        return Ok(None);
    }
    let (a, b): (u16, u16) = (u.arbitrary()?, u.arbitrary()?);
    Ok(Some(PortRange {
        lo: a.min(b),
        hi: a.max(b),
    }))
}

fn rule(u: &mut Unstructured) -> Result<Rule> {
    let mut r = Rule::new(action(u)?);
    let family = u.int_in_range(0..=2u8)?;
    if family > 0 {
        let v6 = family == 2;
        if u.arbitrary::<bool>()? {
            r.src = Some(AddrMatch::Net(net(u, v6)?));
        }
        if u.arbitrary::<bool>()? {
            r.dst = Some(AddrMatch::Net(net(u, v6)?));
        }
    }
    r.proto = match u.int_in_range(0..=6u8)? {
        0 | 1 => None,
        6 => Some(u.arbitrary()?),
        k => Some(PROTOS[k as usize - 2]),
    };
    if r.proto.is_none_or(|p| p == 6 || p == 17) {
        r.sport = ports(u)?;
        r.dport = ports(u)?;
    }
    Ok(r)
}

/// An address near `net` (or anywhere in the family): network, broadcast or inside it.
fn addr_near(u: &mut Unstructured, net: Option<IpNet>, v6: bool) -> Result<IpAddr> {
    let noise: u32 = u.arbitrary()?;
    Ok(match net {
        Some(IpNet::V4(n)) if !v6 => {
            let base = u32::from(n.network());
            let span = u32::from(n.broadcast()) - base;
            IpAddr::V4(Ipv4Addr::from(
                base.wrapping_add(noise % span.saturating_add(1).max(1)),
            ))
        }
        Some(IpNet::V6(n)) if v6 => {
            let base = u128::from(n.network());
            IpAddr::V6(Ipv6Addr::from(
                base | (noise as u128 & !u128::from(n.netmask())),
            ))
        }
        _ if v6 => IpAddr::V6(Ipv6Addr::from(V6[0] | noise as u128)),
        _ => IpAddr::V4(Ipv4Addr::from(V4[0] | (noise & 0xffff))),
    })
}

fn frame(u: &mut Unstructured, rules: &[Rule]) -> Result<Vec<u8>> {
    if u.int_in_range(0..=3u8)? == 0 {
        // Raw bytes: whatever is left, at least an Ethernet header.
        let mut f = u.bytes(u.len())?.to_vec();
        f.resize(f.len().max(14), 0);
        return Ok(f);
    }
    let r = if rules.is_empty() {
        Rule::new(Action::Pass)
    } else {
        rules[u.choose_index(rules.len())?].clone()
    };
    // The fuzzed rules name networks, never sets.
    let net_of = |m: &Option<AddrMatch>| match m {
        Some(AddrMatch::Net(n)) => Some(*n),
        Some(AddrMatch::Set(_)) | None => None,
    };
    let (src_net, dst_net) = (net_of(&r.src), net_of(&r.dst));
    let v6 = match src_net.or(dst_net) {
        Some(n) => matches!(n, IpNet::V6(_)),
        None => u.arbitrary()?,
    };
    let src = addr_near(u, src_net, v6)?;
    let dst = addr_near(u, dst_net, v6)?;
    let proto = match r.proto {
        Some(p) if u.arbitrary::<bool>()? => p,
        _ => PROTOS[u.choose_index(PROTOS.len())?],
    };
    let sport = match r.sport {
        Some(p) => p.lo.wrapping_add(u.int_in_range(0..=2)?).wrapping_sub(1),
        None => u.arbitrary()?,
    };
    let dport = match r.dport {
        Some(p) => p.hi.wrapping_add(u.int_in_range(0..=2)?).wrapping_sub(1),
        None => u.arbitrary()?,
    };
    let l4 = match proto {
        6 => L4Spec::Tcp {
            sport,
            dport,
            flags: 2,
        },
        17 => L4Spec::Udp { sport, dport },
        1 => L4Spec::Icmp { ty: 8, code: 0 },
        58 => L4Spec::Icmpv6 { ty: 128, code: 0 },
        p => L4Spec::Other { proto: p },
    };
    let mut spec = FrameSpec::new(src, dst, l4);
    spec.payload_len = u.int_in_range(0..=64)?;
    for _ in 0..u.int_in_range(0..=3u8)? {
        spec = spec.vlan(if u.arbitrary()? { 0x8100 } else { 0x88a8 }, 1);
    }
    match &mut spec.ip {
        IpSpec::V4 { options, frag, .. } => {
            *options = vec![1; u.int_in_range(0..=40)?];
            if u.ratio(1, 4)? {
                *frag = Fragment {
                    offset: u.int_in_range(0..=300)?,
                    more: u.arbitrary()?,
                };
            }
        }
        IpSpec::V6 { ext, .. } => {
            for _ in 0..u.int_in_range(0..=9u8)? {
                ext.push(match u.int_in_range(0..=4u8)? {
                    0 => Ipv6Ext::HopByHop(u.int_in_range(0..=2)?),
                    1 => Ipv6Ext::Routing(u.int_in_range(0..=2)?),
                    2 => Ipv6Ext::DestOpts(u.int_in_range(0..=2)?),
                    3 => Ipv6Ext::Ah(u.int_in_range(1..=3)?),
                    _ => Ipv6Ext::Fragment {
                        offset: u.int_in_range(0..=3)?,
                        more: u.arbitrary()?,
                    },
                });
            }
        }
    }
    let mut f = spec.build();
    // Damage: a cut and a few overwritten bytes.
    if u.ratio(1, 3)? {
        let cut = u.int_in_range(14..=f.len())?;
        f.truncate(cut);
    }
    for _ in 0..u.int_in_range(0..=2u8)? {
        let at = u.choose_index(f.len())?;
        f[at] = u.arbitrary()?;
    }
    Ok(f)
}

/// A rule set (up to 8 rules, random policies) and a frame near it.
pub fn decode(data: &[u8]) -> Result<(RuleSet, Vec<u8>)> {
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(0..=8u8)?;
    let rules = (0..n).map(|_| rule(&mut u)).collect::<Result<Vec<_>>>()?;
    let set = RuleSet {
        rules,
        default: action(&mut u)?,
        malformed: action(&mut u)?,
        non_ip: action(&mut u)?,
        ..RuleSet::default()
    };
    let f = frame(&mut u, &set.rules)?;
    Ok((set, f))
}

/// Writes a failing verdict case next to libFuzzer's artifacts.
pub fn save_failure(set: &RuleSet, frame: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/verdict/last-failure");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("rules.toml"), set.to_toml());
    let _ = pktgen::pcap::write_frames(&dir.join("frame.pcap"), &[frame]);
    eprintln!(
        "failing case written to {} (rules.toml, frame.pcap)",
        dir.display()
    );
}
