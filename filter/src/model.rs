//! The reference model: the oracle every kernel verdict is checked against.
//!
//! It shares no parsing or matching code with the XDP program: frames are read through pnet's
//! packet views and rules are tried one by one in order, exactly as filter/README.md states the
//! semantics. It is meant to be obviously right, not fast.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use pnet_packet::{
    ethernet::EthernetPacket,
    ipv4::{Ipv4Flags, Ipv4Packet},
    ipv6::{ExtensionPacket, FragmentPacket, Ipv6Packet},
    tcp::TcpPacket,
    udp::UdpPacket,
    vlan::VlanPacket,
};
use serde::Serialize;
use xdpwall_common::{stat, TOKEN};

use crate::rules::{proto, Action, AddrMatch, AddrSet, RateLimit, Rule, RuleAction, RuleSet};

/// Why a packet got its action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "rule")]
pub enum Cause {
    /// The rule with this index (0-based) matched first.
    Rule(usize),
    /// The rule with this index matched first; it is a rate-limit rule and the source had no
    /// token left.
    RateLimited(usize),
    /// No rule matched.
    Default,
    /// The frame is malformed.
    Malformed,
    /// The frame is not IPv4/IPv6.
    NonIp,
}

/// As replay output and golden files write it: `rule 2`, `rule 2 rate-limited`, `default`,
/// `malformed`, `non-ip`.
impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Through pad, so that a width given to a cause holds.
        f.pad(&match self {
            Cause::Rule(i) => format!("rule {i}"),
            Cause::RateLimited(i) => format!("rule {i} rate-limited"),
            Cause::Default => "default".into(),
            Cause::Malformed => "malformed".into(),
            Cause::NonIp => "non-ip".into(),
        })
    }
}

/// The model's decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What happens to the frame.
    pub action: Action,
    /// Why.
    pub cause: Cause,
}

/// The header fields rules look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// (source, destination) ports of TCP/UDP packets that carry their header.
    pub ports: Option<(u16, u16)>,
}

/// What reading a frame found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An IP packet.
    Ip(Headers),
    /// Not IPv4/IPv6.
    NonIp,
    /// Malformed, with the reason.
    Malformed(&'static str),
}

const MAX_VLAN_TAGS: usize = 2;
const MAX_EXT_HEADERS: usize = 8;

/// Reads a frame according to the documented semantics.
pub fn read_frame(frame: &[u8]) -> Frame {
    let Some(eth) = EthernetPacket::new(frame) else {
        return Frame::Malformed("frame shorter than an Ethernet header");
    };
    let mut ethertype = eth.get_ethertype().0;
    let mut rest = &frame[14..];
    let mut tags = 0;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        if tags == MAX_VLAN_TAGS {
            return Frame::Malformed("more than two VLAN tags");
        }
        let Some(tag) = VlanPacket::new(rest) else {
            return Frame::Malformed("truncated VLAN tag");
        };
        ethertype = tag.get_ethertype().0;
        rest = &rest[4..];
        tags += 1;
    }
    match ethertype {
        0x0800 => read_ipv4(rest),
        0x86dd => read_ipv6(rest),
        _ => Frame::NonIp,
    }
}

fn read_ipv4(l3: &[u8]) -> Frame {
    let Some(ip) = Ipv4Packet::new(l3) else {
        return Frame::Malformed("truncated IPv4 header");
    };
    if ip.get_version() != 4 {
        return Frame::Malformed("IPv4 ethertype but IP version is not 4");
    }
    let hlen = ip.get_header_length() as usize * 4;
    if hlen < 20 {
        return Frame::Malformed("IPv4 IHL below 5");
    }
    if hlen > l3.len() {
        return Frame::Malformed("IPv4 options truncated");
    }
    let total = ip.get_total_length() as usize;
    if total < hlen {
        return Frame::Malformed("IPv4 total length shorter than its header");
    }
    if total > l3.len() {
        return Frame::Malformed("IPv4 total length beyond the frame");
    }
    let src = IpAddr::V4(ip.get_source());
    let dst = IpAddr::V4(ip.get_destination());
    let protocol = ip.get_next_level_protocol().0;
    let piece = if ip.get_fragment_offset() != 0 {
        Piece::Later
    } else if ip.get_flags() & Ipv4Flags::MoreFragments != 0 {
        Piece::First
    } else {
        Piece::Whole
    };
    transport(src, dst, protocol, piece, &l3[hlen..total])
}

fn read_ipv6(l3: &[u8]) -> Frame {
    let Some(ip) = Ipv6Packet::new(l3) else {
        return Frame::Malformed("truncated IPv6 header");
    };
    if ip.get_version() != 6 {
        return Frame::Malformed("IPv6 ethertype but IP version is not 6");
    }
    let end = 40 + ip.get_payload_length() as usize;
    if end > l3.len() {
        return Frame::Malformed("IPv6 payload length beyond the frame");
    }
    let src = IpAddr::V6(ip.get_source());
    let dst = IpAddr::V6(ip.get_destination());
    let mut next = ip.get_next_header().0;
    let mut payload = &l3[40..end];
    let mut walked = 0;
    let mut piece = Piece::Whole;
    loop {
        let ext_len = match next {
            0 | 43 | 60 | 51 => {
                if walked == MAX_EXT_HEADERS {
                    return Frame::Malformed("more than eight IPv6 extension headers");
                }
                let Some(ext) = ExtensionPacket::new(payload) else {
                    return Frame::Malformed("truncated IPv6 extension header");
                };
                let len = if next == 51 {
                    (ext.get_hdr_ext_len() as usize + 2) * 4
                } else {
                    (ext.get_hdr_ext_len() as usize + 1) * 8
                };
                next = ext.get_next_header().0;
                len
            }
            44 => {
                if walked == MAX_EXT_HEADERS {
                    return Frame::Malformed("more than eight IPv6 extension headers");
                }
                let Some(frag) = FragmentPacket::new(payload) else {
                    return Frame::Malformed("truncated IPv6 fragment header");
                };
                next = frag.get_next_header().0;
                let offset_flags = frag.get_fragment_offset_with_flags();
                if offset_flags >> 3 != 0 {
                    return transport(src, dst, next, Piece::Later, payload);
                }
                // M flag: more fragments follow; without it the fragment is the whole packet.
                // Any fragment header with it makes the packet a first fragment.
                if offset_flags & 1 != 0 {
                    piece = Piece::First;
                }
                8
            }
            _ => return transport(src, dst, next, piece, payload),
        };
        if ext_len > payload.len() {
            return Frame::Malformed("IPv6 extension header longer than the payload");
        }
        payload = &payload[ext_len..];
        walked += 1;
    }
}

/// Which part of a datagram an IP packet carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// The whole datagram.
    Whole,
    /// The first fragment: the transport header, but not all of the datagram.
    First,
    /// A later fragment: no transport header.
    Later,
}

/// Checks the transport header (inside the IP packet's own length) of a whole packet or a
/// first fragment, and reads TCP/UDP ports. A first fragment's UDP length is the whole
/// datagram's, so it is not held against the fragment.
fn transport(src: IpAddr, dst: IpAddr, protocol: u8, piece: Piece, l4: &[u8]) -> Frame {
    let mut h = Headers {
        src,
        dst,
        proto: protocol,
        ports: None,
    };
    if piece == Piece::Later {
        return Frame::Ip(h);
    }
    match protocol {
        proto::TCP => {
            let Some(tcp) = TcpPacket::new(l4) else {
                return Frame::Malformed("truncated TCP header");
            };
            let doff = tcp.get_data_offset() as usize;
            if doff < 5 {
                return Frame::Malformed("TCP data offset below 5");
            }
            if doff * 4 > l4.len() {
                return Frame::Malformed("TCP options truncated");
            }
            h.ports = Some((tcp.get_source(), tcp.get_destination()));
        }
        proto::UDP => {
            let Some(udp) = UdpPacket::new(l4) else {
                return Frame::Malformed("truncated UDP header");
            };
            let len = udp.get_length() as usize;
            if len < 8 || (len > l4.len() && piece == Piece::Whole) {
                return Frame::Malformed("bad UDP length");
            }
            h.ports = Some((udp.get_source(), udp.get_destination()));
        }
        proto::ICMP | proto::ICMPV6 if l4.len() < 8 => {
            return Frame::Malformed("truncated ICMP header");
        }
        _ => {}
    }
    Frame::Ip(h)
}

/// An address set as the model sees it: per family, for each prefix length present, the
/// networks of that length. An address is in the set when, masked to one of those lengths, it
/// is one of them.
struct SetIndex {
    /// Index 0: IPv4, 1: IPv6.
    by_len: [Vec<(u8, HashSet<IpAddr>)>; 2],
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl SetIndex {
    fn new(set: &AddrSet) -> SetIndex {
        let mut by_len: [HashMap<u8, HashSet<IpAddr>>; 2] = Default::default();
        for n in &set.nets {
            by_len[n.addr().is_ipv6() as usize]
                .entry(n.prefix_len())
                .or_default()
                .insert(n.network());
        }
        SetIndex {
            by_len: by_len.map(|m| m.into_iter().collect()),
        }
    }

    fn contains(&self, a: IpAddr) -> bool {
        self.by_len[a.is_ipv6() as usize]
            .iter()
            .any(|(len, nets)| nets.contains(&mask(a, *len)))
    }
}

/// One token bucket: credit in token-nanoseconds and the time of the last refill.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    credit: u64,
    last: u64,
}

/// The reference model of one rule set, with the state rate limiting needs: judge frames in
/// time order with [`Model::judge`].
pub struct Model {
    set: RuleSet,
    sets: HashMap<String, SetIndex>,
    buckets: HashMap<(usize, IpAddr), Bucket>,
}

impl Model {
    /// A model of `set` with every token bucket absent (full at first use).
    pub fn new(set: RuleSet) -> Model {
        let sets = set
            .sets
            .iter()
            .map(|(name, s)| (name.clone(), SetIndex::new(s)))
            .collect();
        Model {
            set,
            sets,
            buckets: HashMap::new(),
        }
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    fn addr_matches(&self, m: &Option<AddrMatch>, a: IpAddr) -> bool {
        match m {
            None => true,
            Some(AddrMatch::Net(n)) => n.contains(&a),
            Some(AddrMatch::Set(name)) => self.sets[name].contains(a),
        }
    }

    /// Whether rule `r` accepts the headers.
    fn matches(&self, r: &Rule, h: &Headers) -> bool {
        self.addr_matches(&r.src, h.src)
            && self.addr_matches(&r.dst, h.dst)
            && r.proto.is_none_or(|p| p == h.proto)
            && r.sport
                .is_none_or(|p| h.ports.is_some_and(|(s, _)| p.contains(s)))
            && r.dport
                .is_none_or(|p| h.ports.is_some_and(|(_, d)| p.contains(d)))
    }

    /// Token bucket of rule `i` for source `src` at time `now` (filter/README.md): true when
    /// the packet is over the limit.
    fn over_limit(&mut self, i: usize, l: RateLimit, src: IpAddr, now: u64) -> bool {
        let key = mask(src, if src.is_ipv4() { l.prefix4 } else { l.prefix6 });
        let cap = l.burst as u64 * TOKEN;
        let rate = l.rate as u64;
        match self.buckets.get_mut(&(i, key)) {
            None => {
                self.buckets.insert(
                    (i, key),
                    Bucket {
                        credit: cap - TOKEN,
                        last: now,
                    },
                );
                false
            }
            Some(b) => {
                if now > b.last {
                    // min(cap, credit + elapsed * rate), without overflow.
                    let elapsed = now - b.last;
                    b.credit = if elapsed > cap / rate {
                        cap
                    } else {
                        (b.credit + elapsed * rate).min(cap)
                    };
                    b.last = now;
                }
                if b.credit >= TOKEN {
                    b.credit -= TOKEN;
                    false
                } else {
                    true
                }
            }
        }
    }

    /// The verdict on `frame` arriving at `now_ns` (only rate limits look at the time; judge
    /// frames in time order).
    pub fn judge(&mut self, frame: &[u8], now_ns: u64) -> Verdict {
        match read_frame(frame) {
            Frame::NonIp => Verdict {
                action: self.set.non_ip,
                cause: Cause::NonIp,
            },
            Frame::Malformed(_) => Verdict {
                action: self.set.malformed,
                cause: Cause::Malformed,
            },
            Frame::Ip(h) => match self.set.rules.iter().position(|r| self.matches(r, &h)) {
                Some(i) => match self.set.rules[i].action {
                    RuleAction::Pass => Verdict {
                        action: Action::Pass,
                        cause: Cause::Rule(i),
                    },
                    RuleAction::Drop => Verdict {
                        action: Action::Drop,
                        cause: Cause::Rule(i),
                    },
                    RuleAction::RateLimit(l) => {
                        if self.over_limit(i, l, h.src, now_ns) {
                            Verdict {
                                action: Action::Drop,
                                cause: Cause::RateLimited(i),
                            }
                        } else {
                            Verdict {
                                action: Action::Pass,
                                cause: Cause::Rule(i),
                            }
                        }
                    }
                },
                None => Verdict {
                    action: self.set.default,
                    cause: Cause::Default,
                },
            },
        }
    }
}

/// The verdict of `set` on `frame`, judged alone (a rate-limit rule passes it: a bucket starts
/// full). For many frames, or rule sets with large sets, build a [`Model`] once.
pub fn verdict(set: &RuleSet, frame: &[u8]) -> Verdict {
    Model::new(set.clone()).judge(frame, 0)
}

/// Packet and byte counts the kernel should show after a batch of frames.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Indexed by [`xdpwall_common::stat`]: (packets, bytes).
    pub stats: [(u64, u64); stat::COUNT as usize],
    /// Per rule: (packets, bytes).
    pub rules: Vec<(u64, u64)>,
}

impl Counts {
    /// Zero counts for a rule set of `nrules` rules.
    pub fn new(nrules: usize) -> Counts {
        Counts {
            stats: Default::default(),
            rules: vec![(0, 0); nrules],
        }
    }

    /// Adds one frame of `len` bytes judged `v`.
    pub fn record(&mut self, len: usize, v: &Verdict) {
        let len = len as u64;
        let add = |c: &mut (u64, u64)| {
            c.0 += 1;
            c.1 += len;
        };
        add(&mut self.stats[match v.action {
            Action::Pass => stat::PASS,
            Action::Drop => stat::DROP,
        } as usize]);
        match v.cause {
            Cause::Rule(i) => add(&mut self.rules[i]),
            Cause::RateLimited(i) => {
                add(&mut self.rules[i]);
                add(&mut self.stats[stat::RATE_LIMITED as usize]);
            }
            Cause::Default => add(&mut self.stats[stat::DEFAULT as usize]),
            Cause::Malformed => add(&mut self.stats[stat::MALFORMED as usize]),
            Cause::NonIp => add(&mut self.stats[stat::NON_IP as usize]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(l4);
        h
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    fn client_server() -> RuleSet {
        RuleSet::from_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/client-server.toml"),
        )
        .unwrap()
    }

    #[test]
    fn client_server_example() {
        let set = client_server();
        let f = |s, d| eth(0x0800, &ipv4(17, s, d, &udp(1000, 53)));
        let v = |s, d| verdict(&set, &f(s, d));
        assert_eq!(v([192, 168, 1, 1], [10, 0, 0, 9]).action, Action::Pass);
        assert_eq!(v([192, 168, 1, 1], [10, 0, 0, 9]).cause, Cause::Rule(0));
        assert_eq!(v([10, 9, 9, 9], [192, 168, 1, 2]).action, Action::Pass);
        assert_eq!(v([10, 9, 9, 9], [192, 168, 1, 2]).cause, Cause::Rule(1));
        assert_eq!(v([192, 168, 1, 3], [192, 168, 1, 4]).action, Action::Drop);
        assert_eq!(v([192, 168, 1, 2], [192, 168, 1, 1]).cause, Cause::Default);
    }

    #[test]
    fn malformed_frames_take_the_malformed_policy() {
        let good = eth(0x0800, &ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], &udp(1, 2)));
        assert!(matches!(read_frame(&good), Frame::Ip(_)));
        // Every truncation inside the headers is malformed.
        for cut in 0..good.len() {
            assert!(
                matches!(read_frame(&good[..cut]), Frame::Malformed(_)),
                "cut at {cut}"
            );
        }
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        assert_eq!(read_frame(&bad_ihl), Frame::Malformed("IPv4 IHL below 5"));
        let mut bad_ver = good.clone();
        bad_ver[14] = 0x65;
        assert!(matches!(read_frame(&bad_ver), Frame::Malformed(_)));
        let mut long_total = good.clone();
        long_total[17] += 1;
        assert!(matches!(read_frame(&long_total), Frame::Malformed(_)));
        let set = client_server();
        assert_eq!(
            verdict(&set, &bad_ihl),
            Verdict {
                action: Action::Drop,
                cause: Cause::Malformed
            }
        );
    }

    #[test]
    fn padding_after_the_ip_packet_is_fine() {
        let mut f = eth(0x0800, &ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], &udp(1, 2)));
        f.extend_from_slice(&[0; 6]);
        assert!(matches!(read_frame(&f), Frame::Ip(_)));
    }

    #[test]
    fn non_ip_and_vlan() {
        assert_eq!(read_frame(&eth(0x0806, &[0; 28])), Frame::NonIp);
        let ip = ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], &[0; 20]);
        let mut tagged = eth(0x8100, &[0, 5, 0x88, 0xa8, 0, 6, 0x08, 0x00]);
        tagged.extend_from_slice(&ip);
        // data offset 0 in the zeroed TCP header
        assert_eq!(
            read_frame(&tagged),
            Frame::Malformed("TCP data offset below 5")
        );
        let mut three = eth(
            0x8100,
            &[0, 5, 0x81, 0x00, 0, 6, 0x81, 0x00, 0, 7, 0x08, 0x00],
        );
        three.extend_from_slice(&ip);
        assert_eq!(
            read_frame(&three),
            Frame::Malformed("more than two VLAN tags")
        );
    }

    #[test]
    fn non_first_fragments_have_no_ports() {
        let mut ip = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], &[0; 3]);
        ip[6] = 0x00;
        ip[7] = 0x10; // offset 16 * 8 bytes
        let Frame::Ip(h) = read_frame(&eth(0x0800, &ip)) else {
            panic!("fragment should parse")
        };
        assert_eq!(h.ports, None);
        assert_eq!(h.proto, 17);
    }

    #[test]
    fn a_first_fragment_may_carry_a_longer_udp_length() {
        // UDP length 1,432: the whole datagram's, longer than this fragment's 8 bytes.
        let mut u = udp(53, 5353);
        u[4..6].copy_from_slice(&1432u16.to_be_bytes());
        let mut ip = ipv4(17, [1, 1, 1, 1], [2, 2, 2, 2], &u);
        assert!(
            matches!(read_frame(&eth(0x0800, &ip)), Frame::Malformed(_)),
            "whole packet"
        );
        ip[6] = 0x20; // more fragments, offset 0
        let Frame::Ip(h) = read_frame(&eth(0x0800, &ip)) else {
            panic!("a first fragment is well formed")
        };
        assert_eq!(h.ports, Some((53, 5353)));
        // IPv6: a fragment header with offset 0 and the M flag; without M it is atomic.
        for (m, first) in [(1u8, true), (0, false)] {
            let mut l3 = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
            l3.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            l3.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            l3.extend_from_slice(&[17, 0, 0, m, 0, 0, 0, 1]);
            l3.extend_from_slice(&u);
            let f = read_frame(&eth(0x86dd, &l3));
            assert_eq!(matches!(f, Frame::Ip(_)), first, "IPv6, M flag {m}");
        }
    }

    #[test]
    fn counts_follow_verdicts() {
        let set = client_server();
        let mut c = Counts::new(set.rules.len());
        c.record(100, &verdict(&set, &eth(0x0806, &[0; 28])));
        c.record(
            60,
            &verdict(
                &set,
                &eth(
                    0x0800,
                    &ipv4(17, [192, 168, 1, 1], [9, 9, 9, 9], &udp(1, 2)),
                ),
            ),
        );
        assert_eq!(c.stats[stat::PASS as usize], (2, 160));
        assert_eq!(c.stats[stat::NON_IP as usize], (1, 100));
        assert_eq!(c.rules[0], (1, 60));
    }
}
