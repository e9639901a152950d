//! The regression corpus: named cases of a rule set and frames (every matcher in both
//! families, the client/server example, structure and malformation). The same builders feed
//! the BPF test_run tests; `harness corpus --write DIR` turns them into the committed
//! rules.toml + frames.pcap files under harness/corpus/, whose golden verdicts
//! `harness replay --bless` records.

use std::net::IpAddr;

use pktgen::{frame::Fragment, FrameSpec, IpSpec, Ipv6Ext, L4Spec};
use xdpwall::RuleSet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rules(text: &str) -> RuleSet {
    RuleSet::parse(text, "corpus").expect("corpus rules are valid")
}

/// Rule sets exercising every matcher, both families, overlapping prefixes and port ranges.
pub fn feature_sets() -> Vec<RuleSet> {
    vec![
        rules(
            "default = \"drop\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"10.0.0.0/8\"\ndst = \"10.1.2.3\"\n\
             [[rule]]\naction = \"drop\"\nsrc = \"10.1.0.0/16\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"10.0.0.0/8\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"2001:db8::/32\"\nproto = \"tcp\"\ndport = \"1000-2000\"\n\
             [[rule]]\naction = \"drop\"\ndst = \"2001:db8:1::/48\"\n\
             [[rule]]\naction = \"pass\"\nproto = \"icmpv6\"\n",
        ),
        rules(
            "default = \"pass\"\nmalformed = \"pass\"\nnon_ip = \"drop\"\n\
             [[rule]]\naction = \"drop\"\nproto = \"udp\"\nsport = 53\n\
             [[rule]]\naction = \"drop\"\nproto = \"tcp\"\nsport = \"0-1023\"\ndport = \"1024-65535\"\n\
             [[rule]]\naction = \"drop\"\ndport = 65535\n\
             [[rule]]\naction = \"pass\"\nproto = 47\n\
             [[rule]]\naction = \"drop\"\nproto = \"icmp\"\nsrc = \"192.168.0.0/24\"\n\
             [[rule]]\naction = \"drop\"\ndst = \"0.0.0.0/0\"\nproto = 47\n\
             [[rule]]\naction = \"drop\"\nsrc = \"::/0\"\nproto = \"udp\"\n",
        ),
        rules(
            "default = \"drop\"\n\
             [[rule]]\naction = \"pass\"\ndst = \"::ffff:0:0/96\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"192.168.1.128/25\"\ndport = \"80-80\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"fe80::1\"\n\
             [[rule]]\naction = \"pass\"\nsport = 0\n",
        ),
        RuleSet::default(),
    ]
}

/// Frames around the boundaries of the rules above, in both families.
pub fn feature_frames() -> Vec<Vec<u8>> {
    let v4 = [
        "10.0.0.0",
        "10.1.2.3",
        "10.1.0.1",
        "10.1.255.255",
        "10.2.0.0",
        "9.255.255.255",
        "11.0.0.0",
        "192.168.0.1",
        "192.168.1.127",
        "192.168.1.128",
        "192.168.1.255",
    ];
    let v6 = [
        "2001:db8::1",
        "2001:db8:1::1",
        "2001:db8:1:ffff::1",
        "2001:db9::",
        "fe80::1",
        "fe80::2",
        "::ffff:1.2.3.4",
        "::1",
    ];
    let ports = [
        0u16, 1, 53, 79, 80, 81, 999, 1000, 1023, 1024, 2000, 2001, 65534, 65535,
    ];
    let mut out = Vec::new();
    for family in [&v4[..], &v6[..]] {
        for (i, s) in family.iter().enumerate() {
            let d = family[(i * 7 + 3) % family.len()];
            let (s, d) = (ip(s), ip(d));
            for (j, &p) in ports.iter().enumerate() {
                let q = ports[(j * 5 + 1) % ports.len()];
                out.push(FrameSpec::udp(s, d, p, q).build());
                out.push(FrameSpec::tcp(s, d, q, p).payload(3).build());
                out.push(FrameSpec::udp(d, s, q, p).build());
            }
            out.push(FrameSpec::ping(s, d).build());
            out.push(
                FrameSpec::new(s, d, L4Spec::Other { proto: 47 })
                    .payload(8)
                    .build(),
            );
            let wrong_icmp = if s.is_ipv4() {
                L4Spec::Icmpv6 { ty: 1, code: 0 }
            } else {
                L4Spec::Icmp { ty: 3, code: 0 }
            };
            out.push(FrameSpec::new(s, d, wrong_icmp).build());
        }
    }
    out
}

/// Frames with VLAN tags, IPv4 options, fragments and IPv6 extension headers.
pub fn structural_frames() -> Vec<FrameSpec> {
    let a4 = ip("10.1.0.1");
    let b4 = ip("10.1.2.3");
    let a6 = ip("2001:db8::1");
    let b6 = ip("2001:db8:1::1");
    let mut specs = vec![
        FrameSpec::udp(a4, b4, 53, 1000).vlan(0x8100, 5),
        FrameSpec::tcp(a6, b6, 1, 1500)
            .vlan(0x88a8, 5)
            .vlan(0x8100, 6),
        FrameSpec::tcp(a4, b4, 80, 1024).payload(10),
    ];
    let mut opts = FrameSpec::tcp(a4, b4, 80, 1024);
    if let IpSpec::V4 { options, .. } = &mut opts.ip {
        *options = vec![0x94, 0x04, 0, 0, 1, 1, 1, 0];
    }
    specs.push(opts);
    for (offset, more) in [(0, true), (1, true), (185, false)] {
        let mut s = FrameSpec::udp(a4, b4, 53, 53).payload(16);
        if let IpSpec::V4 { frag, .. } = &mut s.ip {
            *frag = Fragment { offset, more };
        }
        specs.push(s);
        let mut s = FrameSpec::udp(a6, b6, 53, 53).payload(16);
        if let IpSpec::V6 { ext, .. } = &mut s.ip {
            ext.push(Ipv6Ext::Fragment { offset, more });
        }
        specs.push(s);
    }
    // The first fragment of a datagram larger than itself: its UDP length is the whole
    // datagram's (1,432 bytes), longer than the fragment; only the 8-byte header must be here.
    for (src, dst) in [(a4, b4), (a6, b6)] {
        let mut s = FrameSpec::udp(src, dst, 53, 5353).payload(64).udp_len(1432);
        match &mut s.ip {
            IpSpec::V4 { frag, .. } => {
                *frag = Fragment {
                    offset: 0,
                    more: true,
                }
            }
            IpSpec::V6 { ext, .. } => ext.push(Ipv6Ext::Fragment {
                offset: 0,
                more: true,
            }),
        }
        specs.push(s);
    }
    // Two fragment headers, a first one and an atomic one: still a first fragment (the
    // differential test found the kernel letting the second undo the first).
    let mut s = FrameSpec::udp(a6, b6, 53, 5353).payload(0).udp_len(264);
    if let IpSpec::V6 { ext, .. } = &mut s.ip {
        ext.push(Ipv6Ext::Fragment {
            offset: 0,
            more: true,
        });
        ext.push(Ipv6Ext::Fragment {
            offset: 0,
            more: false,
        });
    }
    specs.push(s);
    let chains: [&[Ipv6Ext]; 4] = [
        &[
            Ipv6Ext::HopByHop(0),
            Ipv6Ext::Routing(1),
            Ipv6Ext::DestOpts(0),
        ],
        &[Ipv6Ext::Ah(1), Ipv6Ext::DestOpts(2)],
        &[Ipv6Ext::DestOpts(0); 8],
        &[Ipv6Ext::DestOpts(0); 9],
    ];
    for chain in chains {
        let mut s = FrameSpec::tcp(a6, b6, 1000, 2000);
        if let IpSpec::V6 { ext, .. } = &mut s.ip {
            ext.extend_from_slice(chain);
        }
        specs.push(s);
    }
    specs.push(FrameSpec::ping(a6, b6).vlan(0x8100, 1));
    specs.push(
        FrameSpec::udp(a4, b4, 1, 2)
            .vlan(0x8100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3),
    );
    specs
}

/// Well-formed frames with one header field broken (and one with harmless padding).
pub fn bad_field_frames() -> Vec<Vec<u8>> {
    let good = FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2)
        .payload(4)
        .build();
    let mut frames = Vec::new();
    let mut edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut fr = good.clone();
        f(&mut fr);
        frames.push(fr);
    };
    edit(&|f| f[14] = 0x44); // IHL 4
    edit(&|f| f[14] = 0x4f); // IHL 15: options beyond the packet
    edit(&|f| f[14] = 0x55); // version 5
    edit(&|f| f[16..18].copy_from_slice(&19u16.to_be_bytes())); // total < header
    edit(&|f| f[16..18].copy_from_slice(&1500u16.to_be_bytes())); // total beyond frame
    edit(&|f| f[16..18].copy_from_slice(&27u16.to_be_bytes())); // UDP header cut by total
    edit(&|f| f[38..40].copy_from_slice(&7u16.to_be_bytes())); // UDP length < 8
    edit(&|f| f[38..40].copy_from_slice(&13u16.to_be_bytes())); // UDP length > packet
    edit(&|f| f.extend_from_slice(&[0xee; 10])); // Ethernet padding: fine
    edit(&|f| f[16..18].copy_from_slice(&0u16.to_be_bytes())); // total length 0
    edit(&|f| f[24] ^= 0xff); // wrong header checksum: not checked, judged by its fields
                              // The ICMP check goes by protocol number in either family: ICMPv6's number in IPv4 and
                              // ICMP's in IPv6 need 8 bytes too.
    let ping4 = FrameSpec::ping(ip("10.0.0.1"), ip("10.0.0.2")).build();
    let ping6 = FrameSpec::ping(ip("::1"), ip("::2")).build();
    for (mut f, at) in [(ping4.clone(), 23), (ping6.clone(), 20)] {
        f[at] = if at == 23 { 58 } else { 1 };
        frames.push(f.clone()); // 8 bytes: well formed
        if at == 23 {
            f[16..18].copy_from_slice(&24u16.to_be_bytes()); // 4 bytes in the packet
        } else {
            f[18..20].copy_from_slice(&4u16.to_be_bytes());
        }
        frames.push(f);
    }
    let tcp = FrameSpec::tcp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2).build();
    for doff in [0u8, 4, 5, 6, 15] {
        let mut t = tcp.clone();
        t[14 + 20 + 12] = doff << 4;
        frames.push(t);
    }
    let v6 = FrameSpec::udp(ip("::1"), ip("::2"), 1, 2).build();
    for plen in [0u16, 7, 8, 9, 100] {
        let mut t = v6.clone();
        t[18..20].copy_from_slice(&plen.to_be_bytes());
        frames.push(t);
    }
    let mut ver = v6.clone();
    ver[14] = 0x40;
    frames.push(ver);
    frames
}

/// Every truncation (from 14 bytes on) of every structural frame.
pub fn truncated_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for spec in structural_frames() {
        let full = spec.build();
        for cut in 14..=full.len() {
            frames.push(full[..cut].to_vec());
        }
    }
    frames
}

/// The client/server example's flows (and a few frames it does not expect).
pub fn client_server_frames() -> Vec<Vec<u8>> {
    let mut arp = FrameSpec::udp(ip("192.168.1.3"), ip("192.168.1.2"), 1, 2).build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut frames = vec![
        FrameSpec::udp(ip("192.168.1.1"), ip("192.168.1.9"), 5353, 53)
            .payload(18)
            .build(),
        FrameSpec::tcp(ip("192.168.1.3"), ip("192.168.1.2"), 40000, 80).build(),
        FrameSpec::udp(ip("192.168.1.3"), ip("192.168.1.4"), 9, 9).build(),
        FrameSpec::ping(ip("192.168.1.2"), ip("192.168.1.1")).build(),
        FrameSpec::tcp(ip("192.168.1.1"), ip("192.168.1.2"), 1, 22)
            .vlan(0x8100, 7)
            .build(),
        FrameSpec::udp(ip("2001:db8::1"), ip("2001:db8::2"), 1, 2).build(),
        arp,
    ];
    let mut bad = frames[0].clone();
    bad[14] = 0x44;
    frames.push(bad);
    frames
}

/// One corpus case.
pub struct Case {
    /// Folder name under harness/corpus/.
    pub name: &'static str,
    /// The rule file's text.
    pub rules: String,
    /// The frames.
    pub frames: Vec<Vec<u8>>,
}

/// Every corpus case.
pub fn cases() -> Vec<Case> {
    let sets = feature_sets();
    let structural: Vec<Vec<u8>> = structural_frames().iter().map(FrameSpec::build).collect();
    let mut malformed = bad_field_frames();
    malformed.extend(truncated_frames());
    vec![
        Case {
            name: "client-server",
            rules: crate::demo::CLIENT_SERVER.to_string(),
            frames: client_server_frames(),
        },
        Case {
            name: "matchers-addresses",
            rules: sets[0].to_toml(),
            frames: feature_frames(),
        },
        Case {
            name: "matchers-ports-protocols",
            rules: sets[1].to_toml(),
            frames: feature_frames(),
        },
        Case {
            name: "structure",
            rules: sets[2].to_toml(),
            frames: structural,
        },
        Case {
            name: "malformed",
            rules: sets[1].to_toml(),
            frames: malformed,
        },
        Case {
            name: "rate-limit",
            rules: RATE_LIMIT.to_string(),
            frames: rate_limit_frames(),
        },
    ]
}

/// A rate limit of one packet per second with a burst of five per source /32, UDP only.
const RATE_LIMIT: &str = "default = \"pass\"\n\
    [[rule]]\nname = \"udp-flood\"\naction = \"rate-limit\"\nproto = \"udp\"\nrate = 1\nburst = 5\n";

/// A flood of 20 datagrams from one source (five pass, the rest are over the limit), three
/// from another (its own bucket: all pass) and TCP that the limit does not cover. The
/// capture's frames are microseconds apart, far less than the second a token takes.
pub fn rate_limit_frames() -> Vec<Vec<u8>> {
    let (a, b, dst) = (ip("10.9.0.1"), ip("10.9.0.2"), ip("10.9.1.1"));
    let mut out = Vec::new();
    for i in 0..20u16 {
        out.push(FrameSpec::udp(a, dst, 1000 + i, 53).build());
        if i % 7 == 0 {
            out.push(FrameSpec::udp(b, dst, 2000 + i, 53).build());
            out.push(FrameSpec::tcp(a, dst, 3000 + i, 80).build());
        }
    }
    out
}
