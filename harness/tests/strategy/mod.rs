//! Proptest strategies of the differential test: random rule sets (every matcher kind, both
//! families, overlapping networks, port ranges, all actions and policies) and random frames
//! drawn from a rule set's neighbourhood (hits, near misses at prefix and port boundaries) with
//! structural variations (VLAN/QinQ, IPv4 options and fragments, IPv6 extension headers) and
//! mutations (truncation at header boundaries, bad IHL and version, byte flips, random bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use pktgen::{
    frame::{ipproto, tcp_flags, Fragment},
    FrameSpec, IpSpec, Ipv6Ext, L4Spec,
};
use proptest::{collection::vec, prelude::*, sample::select};
use xdpwall::{Action, AddrMatch, AddrSet, PortRange, Rule, RuleSet};

/// IPv4 anchors: networks cluster around these so rules overlap and nest.
const V4_ANCHORS: [u32; 4] = [0x0a00_0000, 0x0a01_0200, 0xc0a8_0100, 0xc612_0000];
/// IPv6 anchors.
const V6_ANCHORS: [u128; 3] = [
    0x2001_0db8_0000_0000_0000_0000_0000_0000,
    0x2001_0db8_0001_0000_0000_0000_0000_0000,
    0xfe80_0000_0000_0000_0000_0000_0000_0000,
];
/// Port values near which ranges start and end.
const PORTS: [u16; 12] = [0, 1, 53, 79, 80, 443, 1023, 1024, 8080, 32768, 65534, 65535];
/// Protocols rules and frames use.
const PROTOS: [u8; 5] = [
    ipproto::TCP,
    ipproto::UDP,
    ipproto::ICMP,
    ipproto::ICMPV6,
    47,
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Pass), Just(Action::Drop)]
}

fn prefix_len(max: u8) -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(vec![0u8, 8, 16, 24, 32, 48, 64, 96, 112, 120, 127, 128]).prop_map(move |l| l.min(max)),
        2 => 0..=max,
    ]
}

fn net4() -> impl Strategy<Value = IpNet> {
    (select(V4_ANCHORS.to_vec()), any::<u16>(), prefix_len(32)).prop_map(|(a, jitter, len)| {
        let addr = Ipv4Addr::from(a ^ (jitter as u32 & 0x0fff));
        IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
    })
}

fn net6() -> impl Strategy<Value = IpNet> {
    (
        select(V6_ANCHORS.to_vec()),
        any::<u32>(),
        any::<bool>(),
        prefix_len(128),
    )
        .prop_map(|(a, jitter, high, len)| {
            let j = if high {
                (jitter as u128) << 64
            } else {
                jitter as u128
            };
            let addr = Ipv6Addr::from(a ^ j);
            IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
        })
}

fn port_range() -> impl Strategy<Value = PortRange> {
    let end = prop_oneof![3 => select(PORTS.to_vec()), 1 => any::<u16>()];
    (end.clone(), end).prop_map(|(a, b)| PortRange {
        lo: a.min(b),
        hi: a.max(b),
    })
}

/// One random rule.
pub fn rule() -> impl Strategy<Value = Rule> {
    let family_nets = prop_oneof![
        2 => (proptest::option::of(net4()), proptest::option::of(net4())),
        2 => (proptest::option::of(net6()), proptest::option::of(net6())),
        1 => Just((None, None)),
    ];
    (
        action(),
        family_nets,
        proptest::option::weighted(0.5, select(PROTOS.to_vec())),
        proptest::option::weighted(0.3, port_range()),
        proptest::option::weighted(0.3, port_range()),
    )
        .prop_map(|(action, (src, dst), proto, sport, dport)| {
            let mut r = Rule::new(action);
            r.src = src.map(AddrMatch::Net);
            r.dst = dst.map(AddrMatch::Net);
            r.proto = proto;
            if proto.is_none_or(|p| p == ipproto::TCP || p == ipproto::UDP) {
                r.sport = sport;
                r.dport = dport;
            }
            r
        })
}

/// How a rule's network becomes a set: which matcher (0 src, 1 dst, else none), and extra
/// entries of both families that nest with, overlap or miss the rule's own network.
type SetPlan = (u8, Vec<IpNet>, Vec<IpNet>);

fn set_plan() -> impl Strategy<Value = SetPlan> {
    (0u8..4, vec(net4(), 0..6), vec(net6(), 0..6))
}

/// A random rule set of 0 to `max_rules` rules with random policies; about half of the
/// rules' networks are turned into sets (the network plus random entries of both families).
pub fn rule_set(max_rules: usize) -> impl Strategy<Value = RuleSet> {
    (
        vec((rule(), set_plan()), 0..=max_rules),
        action(),
        action(),
        action(),
    )
        .prop_map(|(planned, default, malformed, non_ip)| {
            let mut set = RuleSet {
                default,
                malformed,
                non_ip,
                ..RuleSet::default()
            };
            for (i, (mut r, (which, extra4, extra6))) in planned.into_iter().enumerate() {
                let side = match which {
                    0 => Some(&mut r.src),
                    1 => Some(&mut r.dst),
                    _ => None,
                };
                if let Some(side) = side {
                    if let Some(AddrMatch::Net(n)) = *side {
                        let name = format!("s{i}");
                        let mut nets = vec![n];
                        nets.extend(extra4);
                        nets.extend(extra6);
                        set.sets.insert(name.clone(), AddrSet::new(nets));
                        *side = Some(AddrMatch::Set(name));
                    }
                }
                set.rules.push(r);
            }
            set
        })
}

/// How a frame's field relates to a rule's matcher.
#[derive(Clone, Copy, Debug)]
enum Near {
    Inside,
    First,
    Last,
    JustBelow,
    JustAbove,
    Random,
}

fn near() -> impl Strategy<Value = Near> {
    select(vec![
        Near::Inside,
        Near::First,
        Near::Last,
        Near::JustBelow,
        Near::JustAbove,
        Near::Random,
    ])
}

fn addr_near(net: Option<IpNet>, v6: bool, how: Near, noise: u128) -> IpAddr {
    let (first, last, bits): (u128, u128, u32) = match net {
        Some(IpNet::V4(n)) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
            32,
        ),
        Some(IpNet::V6(n)) => (u128::from(n.network()), u128::from(n.broadcast()), 128),
        None if v6 => (V6_ANCHORS[0], V6_ANCHORS[0] | 0xffff, 128),
        None => (V4_ANCHORS[0] as u128, V4_ANCHORS[0] as u128 | 0xffff, 32),
    };
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let v = match how {
        Near::Inside => first + noise % (last - first).saturating_add(1).max(1),
        Near::First => first,
        Near::Last => last,
        Near::JustBelow => first.wrapping_sub(1),
        Near::JustAbove => last.wrapping_add(1),
        Near::Random => noise,
    } & mask;
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn port_near(r: Option<PortRange>, how: Near, noise: u16) -> u16 {
    match r {
        None => noise,
        Some(r) => match how {
            Near::Inside => r.lo + noise % (r.hi - r.lo).saturating_add(1).max(1),
            Near::First => r.lo,
            Near::Last => r.hi,
            Near::JustBelow => r.lo.wrapping_sub(1),
            Near::JustAbove => r.hi.wrapping_add(1),
            Near::Random => noise,
        },
    }
}

/// Structural variations of a frame.
#[derive(Clone, Debug)]
pub struct Shape {
    vlans: Vec<u16>,
    v4_options: usize,
    frag_offset: u16,
    frag_more: bool,
    v6_ext: Vec<Ipv6Ext>,
    payload: usize,
}

fn ext() -> impl Strategy<Value = Ipv6Ext> {
    prop_oneof![
        (0u8..3).prop_map(Ipv6Ext::HopByHop),
        (0u8..3).prop_map(Ipv6Ext::Routing),
        (0u8..3).prop_map(Ipv6Ext::DestOpts),
        (1u8..4).prop_map(Ipv6Ext::Ah),
        (prop_oneof![3 => Just(0u16), 1 => 1u16..200], any::<bool>())
            .prop_map(|(offset, more)| Ipv6Ext::Fragment { offset, more }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![6 => Just(vec![]), 2 => vec(select(vec![0x8100u16, 0x88a8]), 1..=2), 1 => vec(Just(0x8100u16), 3..=3)],
        prop_oneof![4 => Just(0usize), 1 => 1usize..=40],
        prop_oneof![4 => Just(0u16), 1 => 1u16..400],
        any::<bool>(),
        prop_oneof![4 => Just(vec![]), 2 => vec(ext(), 1..=3), 1 => vec(ext(), 8..=9)],
        prop_oneof![3 => Just(0usize), 1 => 1usize..64],
    )
        .prop_map(|(vlans, v4_options, frag_offset, frag_more, v6_ext, payload)| Shape {
            vlans,
            v4_options,
            frag_offset,
            frag_more,
            v6_ext,
            payload,
        })
}

/// What is done to a well-formed frame.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Nothing.
    None,
    /// Cut at this fraction (per mille) of the frame, or at a header boundary.
    Truncate(u16, bool),
    /// Overwrite one byte (offset per mille of the frame).
    SetByte(u16, u8),
    /// Replace the first IP header byte (version/IHL).
    IpFirstByte(u8),
    /// A frame of random bytes (with an IP EtherType half of the time).
    Random(Vec<u8>, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        14 => Just(Mutation::None),
        3 => (0u16..1000, any::<bool>()).prop_map(|(p, b)| Mutation::Truncate(p, b)),
        2 => (0u16..1000, any::<u8>()).prop_map(|(p, v)| Mutation::SetByte(p, v)),
        1 => select(vec![0x44u8, 0x40, 0x4f, 0x55, 0x65, 0x60, 0x00]).prop_map(Mutation::IpFirstByte),
        1 => (vec(any::<u8>(), 14..120), any::<bool>()).prop_map(|(v, ip)| Mutation::Random(v, ip)),
    ]
}

/// A frame description: the built frame is [`FrameCase::bytes`].
#[derive(Clone, Debug)]
pub struct FrameCase {
    /// The well-formed frame.
    pub spec: FrameSpec,
    /// What is done to it.
    pub mutation: Mutation,
}

impl FrameCase {
    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = self.spec.build();
        match &self.mutation {
            Mutation::None => {}
            Mutation::Truncate(p, at_boundary) => {
                let cut = if *at_boundary {
                    let l3 = self.spec.l3_offset();
                    let l4 = l3 + self.spec.l3_len();
                    let b = [
                        14,
                        l3,
                        l3 + 1,
                        l3 + 19,
                        l3 + 20,
                        l4 - 1,
                        l4,
                        l4 + 4,
                        l4 + 7,
                        l4 + 8,
                        l4 + 19,
                    ];
                    b[*p as usize % b.len()]
                } else {
                    f.len() * *p as usize / 1000
                };
                f.truncate(cut.max(14));
            }
            Mutation::SetByte(p, v) => {
                let at = f.len() * *p as usize / 1000;
                f[at] = *v;
            }
            Mutation::IpFirstByte(v) => {
                let l3 = self.spec.l3_offset();
                f[l3] = *v;
            }
            Mutation::Random(bytes, ip) => {
                f = bytes.clone();
                if *ip {
                    f[12..14].copy_from_slice(if bytes[0] & 1 == 0 {
                        &[0x08, 0x00]
                    } else {
                        &[0x86, 0xdd]
                    });
                }
            }
        }
        f
    }
}

fn l4_for(proto: u8, sport: u16, dport: u16, flags: u8) -> L4Spec {
    match proto {
        ipproto::TCP => L4Spec::Tcp {
            sport,
            dport,
            flags,
        },
        ipproto::UDP => L4Spec::Udp { sport, dport },
        ipproto::ICMP => L4Spec::Icmp { ty: 8, code: 0 },
        ipproto::ICMPV6 => L4Spec::Icmpv6 { ty: 128, code: 0 },
        p => L4Spec::Other { proto: p },
    }
}

/// A frame in the neighbourhood of one of `set`'s rules (or anywhere, for an empty set).
pub fn frame_near(set: &RuleSet) -> impl Strategy<Value = FrameCase> {
    let rules = set.rules.clone();
    let sets = set.sets.clone();
    let pick = if rules.is_empty() {
        0..1usize
    } else {
        0..rules.len()
    };
    (
        pick,
        (near(), near(), near(), near()),
        (any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>()),
        (
            any::<bool>(),
            proptest::option::weighted(0.8, Just(())),
            select(PROTOS.to_vec()),
        ),
        shape(),
        mutation(),
    )
        .prop_map(
            move |(i, hows, noise, (v6_pick, keep_proto, other_proto), shape, mutation)| {
                let r = rules
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Rule::new(Action::Pass));
                // A set matcher: aim at one of its entries.
                let aim = |m: &Option<AddrMatch>, noise: u128| match m {
                    Some(AddrMatch::Net(n)) => Some(*n),
                    Some(AddrMatch::Set(name)) => {
                        let nets = &sets[name].nets;
                        Some(nets[(noise >> 64) as usize % nets.len()])
                    }
                    None => None,
                };
                let src_net = aim(&r.src, noise.0);
                let dst_net = aim(&r.dst, noise.1);
                let v6 = match (src_net, dst_net) {
                    (Some(n), _) | (None, Some(n)) => matches!(n, IpNet::V6(_)),
                    (None, None) => v6_pick,
                };
                let src = addr_near(
                    src_net.filter(|n| matches!(n, IpNet::V6(_)) == v6),
                    v6,
                    hows.0,
                    noise.0,
                );
                let dst = addr_near(
                    dst_net.filter(|n| matches!(n, IpNet::V6(_)) == v6),
                    v6,
                    hows.1,
                    noise.1,
                );
                let proto = match (r.proto, keep_proto) {
                    (Some(p), Some(())) => p,
                    _ if r.sport.is_some() || r.dport.is_some() => {
                        if v6_pick {
                            ipproto::TCP
                        } else {
                            ipproto::UDP
                        }
                    }
                    _ => other_proto,
                };
                let sport = port_near(r.sport, hows.2, noise.2);
                let dport = port_near(r.dport, hows.3, noise.3);
                let mut spec =
                    FrameSpec::new(src, dst, l4_for(proto, sport, dport, tcp_flags::SYN));
                spec.payload_len = shape.payload;
                for (k, tpid) in shape.vlans.iter().enumerate() {
                    spec = spec.vlan(*tpid, 10 + k as u16);
                }
                match &mut spec.ip {
                    IpSpec::V4 { options, frag, .. } => {
                        *options = vec![1; shape.v4_options];
                        *frag = Fragment {
                            offset: shape.frag_offset,
                            more: shape.frag_more,
                        };
                    }
                    IpSpec::V6 { ext, .. } => *ext = shape.v6_ext.clone(),
                }
                FrameCase { spec, mutation }
            },
        )
}

/// A rule set with `frames` frames from its neighbourhood on average (1 to `2 * frames - 1`,
/// so that a failing batch shrinks down to a single frame).
pub fn case(max_rules: usize, frames: usize) -> impl Strategy<Value = (RuleSet, Vec<FrameCase>)> {
    let max = (2 * frames).max(2) - 1;
    rule_set(max_rules).prop_flat_map(move |set| {
        let f = vec(frame_near(&set), 1..=max);
        (Just(set), f)
    })
}
