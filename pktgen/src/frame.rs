//! Frame building: a [`FrameSpec`] describes an Ethernet frame (optional VLAN tags, IPv4 with
//! options and fragments or IPv6 with extension headers, TCP/UDP/ICMP/other) and
//! [`FrameSpec::build`] emits it with correct lengths and checksums, written through pnet's
//! mutable packet views.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::{
    ethernet::{EtherType, MutableEthernetPacket},
    icmp::{self, IcmpCode, IcmpType, MutableIcmpPacket},
    icmpv6::{self, Icmpv6Code, Icmpv6Type, MutableIcmpv6Packet},
    ip::IpNextHeaderProtocol,
    ipv4::{self, MutableIpv4Packet},
    ipv6::MutableIpv6Packet,
    tcp::{self, MutableTcpPacket},
    udp::{self, MutableUdpPacket},
    vlan::MutableVlanPacket,
};

/// IP protocol numbers.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// One VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
    /// VLAN id (12 bits).
    pub vid: u16,
}

/// IPv4 fragmentation fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in 8-byte units (0 for a first fragment or a whole packet).
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
}

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// Hop-by-hop options of `(len + 1) * 8` bytes.
    HopByHop(u8),
    /// Routing header of `(len + 1) * 8` bytes.
    Routing(u8),
    /// Destination options of `(len + 1) * 8` bytes.
    DestOpts(u8),
    /// Authentication header of `(len + 2) * 4` bytes.
    Ah(u8),
    /// Fragment header.
    Fragment {
        /// Offset in 8-byte units.
        offset: u16,
        /// More-fragments flag.
        more: bool,
    },
}

impl Ipv6Ext {
    fn number(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop(_) => 0,
            Ipv6Ext::Routing(_) => 43,
            Ipv6Ext::DestOpts(_) => 60,
            Ipv6Ext::Ah(_) => 51,
            Ipv6Ext::Fragment { .. } => 44,
        }
    }

    fn len(&self) -> usize {
        match *self {
            Ipv6Ext::HopByHop(l) | Ipv6Ext::Routing(l) | Ipv6Ext::DestOpts(l) => {
                (l as usize + 1) * 8
            }
            Ipv6Ext::Ah(l) => (l as usize + 2) * 4,
            Ipv6Ext::Fragment { .. } => 8,
        }
    }
}

/// The network layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpSpec {
    /// IPv4.
    V4 {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// Option bytes (padded with zeros to a multiple of 4, at most 40).
        options: Vec<u8>,
        /// Fragmentation.
        frag: Fragment,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: Ipv6Addr,
        /// Destination.
        dst: Ipv6Addr,
        /// Extension headers, in order.
        ext: Vec<Ipv6Ext>,
    },
}

/// The transport layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Spec {
    /// TCP with flags.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flag bits ([`tcp_flags`]).
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP (IPv4) echo etc.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
    },
    /// Any other protocol: only payload bytes follow the IP header.
    Other {
        /// Protocol number.
        proto: u8,
    },
}

impl L4Spec {
    /// The IP protocol number.
    pub fn proto(&self) -> u8 {
        match self {
            L4Spec::Tcp { .. } => ipproto::TCP,
            L4Spec::Udp { .. } => ipproto::UDP,
            L4Spec::Icmp { .. } => ipproto::ICMP,
            L4Spec::Icmpv6 { .. } => ipproto::ICMPV6,
            L4Spec::Other { proto } => *proto,
        }
    }

    fn header_len(&self) -> usize {
        match self {
            L4Spec::Tcp { .. } => 20,
            L4Spec::Udp { .. } | L4Spec::Icmp { .. } | L4Spec::Icmpv6 { .. } => 8,
            L4Spec::Other { .. } => 0,
        }
    }
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// VLAN tags, outermost first.
    pub vlans: Vec<VlanTag>,
    /// Network layer.
    pub ip: IpSpec,
    /// Transport layer.
    pub l4: L4Spec,
    /// Payload bytes after the transport header (filled with a counting pattern).
    pub payload_len: usize,
    /// The UDP length field, when it should not be the segment's own length: the first
    /// fragment of a larger datagram carries the whole datagram's.
    pub udp_len: Option<u16>,
    /// A latency probe: the payload starts with [`xdpwall_common::LAT_MAGIC`] and room for
    /// the 8-byte timestamp the `xdp` engine writes as the frame leaves.
    pub probe: bool,
}

/// The IPv4 TTL or IPv6 hop limit of every frame.
pub const TTL: u8 = 64;

/// Payload bytes a latency probe needs: the marker and the timestamp.
pub const PROBE_LEN: usize = 12;

/// Default source MAC (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Default destination MAC (locally administered).
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

impl FrameSpec {
    /// A frame between two addresses of one family with the given transport.
    pub fn new(src: IpAddr, dst: IpAddr, l4: L4Spec) -> FrameSpec {
        let ip = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => IpSpec::V4 {
                src: s,
                dst: d,
                options: Vec::new(),
                frag: Fragment::default(),
            },
            (IpAddr::V6(s), IpAddr::V6(d)) => IpSpec::V6 {
                src: s,
                dst: d,
                ext: Vec::new(),
            },
            (s, d) => panic!("FrameSpec::new: {s} and {d} are of different families"),
        };
        FrameSpec {
            src_mac: SRC_MAC,
            dst_mac: DST_MAC,
            vlans: Vec::new(),
            ip,
            l4,
            payload_len: 0,
            udp_len: None,
            probe: false,
        }
    }

    /// A UDP frame.
    pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FrameSpec {
        FrameSpec::new(src, dst, L4Spec::Udp { sport, dport })
    }

    /// A TCP SYN frame.
    pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FrameSpec {
        FrameSpec::new(
            src,
            dst,
            L4Spec::Tcp {
                sport,
                dport,
                flags: tcp_flags::SYN,
            },
        )
    }

    /// An ICMP echo request (ICMPv6 for IPv6 addresses).
    pub fn ping(src: IpAddr, dst: IpAddr) -> FrameSpec {
        let l4 = if src.is_ipv4() {
            L4Spec::Icmp { ty: 8, code: 0 }
        } else {
            L4Spec::Icmpv6 { ty: 128, code: 0 }
        };
        FrameSpec::new(src, dst, l4)
    }

    /// Makes the frame a latency probe (see [`FrameSpec::probe`]); the payload grows to
    /// [`PROBE_LEN`] bytes if it is shorter.
    pub fn latency_probe(mut self) -> FrameSpec {
        self.probe = true;
        self.payload_len = self.payload_len.max(PROBE_LEN);
        self
    }

    /// Offset of the payload (after the transport header, if any).
    pub fn payload_offset(&self) -> usize {
        let l4 = self.l3_offset() + self.l3_len();
        if self.has_l4_header() {
            l4 + self.l4.header_len()
        } else {
            l4
        }
    }

    /// Offset of a probe's marker (its timestamp follows); None unless a probe.
    pub fn probe_offset(&self) -> Option<usize> {
        (self.probe && self.payload_len >= PROBE_LEN).then(|| self.payload_offset())
    }

    /// The same frame from source address `src` (of the frame's family; another family's
    /// address leaves it unchanged).
    pub fn with_source(mut self, src: std::net::IpAddr) -> FrameSpec {
        match (&mut self.ip, src) {
            (IpSpec::V4 { src: s, .. }, std::net::IpAddr::V4(a)) => *s = a,
            (IpSpec::V6 { src: s, .. }, std::net::IpAddr::V6(a)) => *s = a,
            _ => {}
        }
        self
    }

    /// Sets the payload length.
    pub fn payload(mut self, len: usize) -> FrameSpec {
        self.payload_len = len;
        self
    }

    /// Sets the UDP length field to `len` (a first fragment's: the whole datagram's length);
    /// the checksum is then left 0 (it covers the whole datagram, which the frame does not
    /// hold).
    pub fn udp_len(mut self, len: u16) -> FrameSpec {
        self.udp_len = Some(len);
        self
    }

    /// Adds a VLAN tag (outermost first).
    pub fn vlan(mut self, tpid: u16, vid: u16) -> FrameSpec {
        self.vlans.push(VlanTag { tpid, vid });
        self
    }

    /// Offset of the IP header in the built frame.
    pub fn l3_offset(&self) -> usize {
        14 + 4 * self.vlans.len()
    }

    /// Length of the IP header including IPv4 options or IPv6 extension headers.
    pub fn l3_len(&self) -> usize {
        match &self.ip {
            IpSpec::V4 { options, .. } => 20 + options.len().div_ceil(4) * 4,
            IpSpec::V6 { ext, .. } => 40 + ext.iter().map(Ipv6Ext::len).sum::<usize>(),
        }
    }

    /// Whether the transport header is present (not a non-first fragment).
    pub fn has_l4_header(&self) -> bool {
        match &self.ip {
            IpSpec::V4 { frag, .. } => frag.offset == 0,
            IpSpec::V6 { ext, .. } => !ext
                .iter()
                .any(|e| matches!(e, Ipv6Ext::Fragment { offset, .. } if *offset != 0)),
        }
    }

    /// Total frame length.
    pub fn len(&self) -> usize {
        let l4 = if self.has_l4_header() {
            self.l4.header_len()
        } else {
            0
        };
        self.l3_offset() + self.l3_len() + l4 + self.payload_len
    }

    /// Always false: a frame has at least an Ethernet header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Builds the frame.
    pub fn build(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.len()];
        self.build_into(&mut buf);
        buf
    }

    /// Builds the frame into `buf`, which must be exactly [`FrameSpec::len`] bytes.
    pub fn build_into(&self, buf: &mut [u8]) {
        assert_eq!(buf.len(), self.len(), "buffer size");
        let l3 = self.l3_offset();
        let l4 = l3 + self.l3_len();
        // Transport first: its checksum covers the payload, the IP header's covers itself.
        let payload_at = self.payload_offset();
        for (i, b) in buf[payload_at..].iter_mut().enumerate() {
            *b = i as u8;
        }
        if let Some(at) = self.probe_offset() {
            buf[at..at + 4].copy_from_slice(&xdpwall_common::LAT_MAGIC);
            buf[at + 4..at + PROBE_LEN].fill(0);
        }
        if self.has_l4_header() {
            self.write_l4(&mut buf[l4..]);
        }
        self.write_ip(&mut buf[l3..]);
        self.write_l2(buf);
    }

    fn write_l2(&self, buf: &mut [u8]) {
        let ip_type = match self.ip {
            IpSpec::V4 { .. } => 0x0800,
            IpSpec::V6 { .. } => 0x86dd,
        };
        let first_type = self.vlans.first().map_or(ip_type, |t| t.tpid);
        let mut eth = MutableEthernetPacket::new(buf).expect("frame holds an Ethernet header");
        eth.set_destination(self.dst_mac.into());
        eth.set_source(self.src_mac.into());
        eth.set_ethertype(EtherType(first_type));
        for (i, tag) in self.vlans.iter().enumerate() {
            let inner = self.vlans.get(i + 1).map_or(ip_type, |t| t.tpid);
            let mut v = MutableVlanPacket::new(&mut buf[14 + 4 * i..]).expect("room for the tag");
            v.set_vlan_identifier(tag.vid & 0x0fff);
            v.set_ethertype(EtherType(inner));
        }
    }

    fn write_ip(&self, l3: &mut [u8]) {
        let total = l3.len();
        let proto = self.l4.proto();
        match &self.ip {
            IpSpec::V4 {
                src,
                dst,
                options,
                frag,
            } => {
                let hlen = self.l3_len();
                l3[20..20 + options.len()].copy_from_slice(options);
                let mut ip = MutableIpv4Packet::new(&mut l3[..]).expect("room for IPv4");
                ip.set_version(4);
                ip.set_header_length((hlen / 4) as u8);
                ip.set_total_length(total as u16);
                ip.set_identification(0x1234);
                ip.set_flags(if frag.more { 1 } else { 0 });
                ip.set_fragment_offset(frag.offset);
                ip.set_ttl(TTL);
                ip.set_next_level_protocol(IpNextHeaderProtocol(proto));
                ip.set_source(*src);
                ip.set_destination(*dst);
                ip.set_checksum(0);
                let c = ipv4::checksum(&ip.to_immutable());
                ip.set_checksum(c);
            }
            IpSpec::V6 { src, dst, ext } => {
                let first = ext.first().map_or(proto, Ipv6Ext::number);
                let mut off = 40;
                for (i, e) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(proto, Ipv6Ext::number);
                    let h = &mut l3[off..off + e.len()];
                    h.fill(0);
                    h[0] = next;
                    match *e {
                        Ipv6Ext::HopByHop(l) | Ipv6Ext::Routing(l) | Ipv6Ext::DestOpts(l) => {
                            h[1] = l;
                            // PadN option filling the rest, so the header is well formed.
                            if !matches!(e, Ipv6Ext::Routing(_)) {
                                h[2] = 1;
                                h[3] = (e.len() - 4) as u8;
                            }
                        }
                        Ipv6Ext::Ah(l) => h[1] = l,
                        Ipv6Ext::Fragment { offset, more } => {
                            let v = (offset << 3) | more as u16;
                            h[2..4].copy_from_slice(&v.to_be_bytes());
                            h[4..8].copy_from_slice(&0x1234u32.to_be_bytes());
                        }
                    }
                    off += e.len();
                }
                let mut ip = MutableIpv6Packet::new(&mut l3[..]).expect("room for IPv6");
                ip.set_version(6);
                ip.set_payload_length((total - 40) as u16);
                ip.set_next_header(IpNextHeaderProtocol(first));
                ip.set_hop_limit(TTL);
                ip.set_source(*src);
                ip.set_destination(*dst);
            }
        }
    }

    fn write_l4(&self, seg: &mut [u8]) {
        let (src, dst) = match &self.ip {
            IpSpec::V4 { src, dst, .. } => (IpAddr::V4(*src), IpAddr::V4(*dst)),
            IpSpec::V6 { src, dst, .. } => (IpAddr::V6(*src), IpAddr::V6(*dst)),
        };
        match self.l4 {
            L4Spec::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut t = MutableTcpPacket::new(seg).expect("room for TCP");
                t.set_source(sport);
                t.set_destination(dport);
                t.set_sequence(1);
                t.set_data_offset(5);
                t.set_flags(flags);
                t.set_window(65535);
                t.set_checksum(0);
                let c = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&t.to_immutable(), &s, &d),
                    (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&t.to_immutable(), &s, &d),
                    _ => unreachable!(),
                };
                t.set_checksum(c);
            }
            L4Spec::Udp { sport, dport } => {
                let len = seg.len() as u16;
                let mut u = MutableUdpPacket::new(seg).expect("room for UDP");
                u.set_source(sport);
                u.set_destination(dport);
                u.set_checksum(0);
                if let Some(whole) = self.udp_len {
                    u.set_length(whole);
                    return;
                }
                u.set_length(len);
                let c = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => udp::ipv4_checksum(&u.to_immutable(), &s, &d),
                    (IpAddr::V6(s), IpAddr::V6(d)) => udp::ipv6_checksum(&u.to_immutable(), &s, &d),
                    _ => unreachable!(),
                };
                u.set_checksum(c);
            }
            L4Spec::Icmp { ty, code } => {
                let mut p = MutableIcmpPacket::new(seg).expect("room for ICMP");
                p.set_icmp_type(IcmpType(ty));
                p.set_icmp_code(IcmpCode(code));
                p.set_checksum(0);
                let c = icmp::checksum(&p.to_immutable());
                p.set_checksum(c);
            }
            L4Spec::Icmpv6 { ty, code } => {
                let mut p = MutableIcmpv6Packet::new(seg).expect("room for ICMPv6");
                p.set_icmpv6_type(Icmpv6Type(ty));
                p.set_icmpv6_code(Icmpv6Code(code));
                p.set_checksum(0);
                if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) {
                    let c = icmpv6::checksum(&p.to_immutable(), &s, &d);
                    p.set_checksum(c);
                }
            }
            L4Spec::Other { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::{
        ethernet::EthernetPacket, ipv4::Ipv4Packet, ipv6::Ipv6Packet, tcp::TcpPacket,
        udp::UdpPacket, Packet,
    };

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp4_parses_back_with_valid_checksums() {
        let f = FrameSpec::udp(v4("192.168.1.1"), v4("192.168.1.2"), 1234, 53)
            .payload(18)
            .build();
        assert_eq!(f.len(), 14 + 20 + 8 + 18);
        let eth = EthernetPacket::new(&f).unwrap();
        assert_eq!(eth.get_ethertype().0, 0x0800);
        let ip = Ipv4Packet::new(eth.payload()).unwrap();
        assert_eq!(ip.get_total_length() as usize, f.len() - 14);
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
        let u = UdpPacket::new(ip.payload()).unwrap();
        assert_eq!((u.get_source(), u.get_destination()), (1234, 53));
        assert_eq!(
            udp::ipv4_checksum(&u, &ip.get_source(), &ip.get_destination()),
            u.get_checksum()
        );
    }

    #[test]
    fn tcp6_with_vlans_and_ext_headers() {
        let mut spec = FrameSpec::tcp(v4("2001:db8::1"), v4("2001:db8::2"), 40000, 443)
            .vlan(0x88a8, 10)
            .vlan(0x8100, 20);
        if let IpSpec::V6 { ext, .. } = &mut spec.ip {
            ext.push(Ipv6Ext::HopByHop(0));
            ext.push(Ipv6Ext::Fragment {
                offset: 0,
                more: true,
            });
        }
        let f = spec.build();
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[20..22], &[0x86, 0xdd]);
        let ip = Ipv6Packet::new(&f[22..]).unwrap();
        assert_eq!(ip.get_next_header().0, 0);
        assert_eq!(ip.get_payload_length() as usize, 8 + 8 + 20);
        let t = TcpPacket::new(&f[22 + 40 + 16..]).unwrap();
        assert_eq!(t.get_destination(), 443);
        assert_eq!(
            tcp::ipv6_checksum(&t, &ip.get_source(), &ip.get_destination()),
            t.get_checksum()
        );
    }

    #[test]
    fn non_first_fragment_has_no_transport_header() {
        let mut spec = FrameSpec::udp(v4("10.0.0.1"), v4("10.0.0.2"), 1, 2).payload(16);
        if let IpSpec::V4 { frag, .. } = &mut spec.ip {
            frag.offset = 100;
        }
        let f = spec.build();
        assert_eq!(f.len(), 14 + 20 + 16);
        let ip = Ipv4Packet::new(&f[14..]).unwrap();
        assert_eq!(ip.get_fragment_offset(), 100);
    }

    #[test]
    fn ipv4_options_are_padded() {
        let mut spec = FrameSpec::ping(v4("10.0.0.1"), v4("10.0.0.2"));
        if let IpSpec::V4 { options, .. } = &mut spec.ip {
            *options = vec![1, 1, 1];
        }
        let f = spec.build();
        let ip = Ipv4Packet::new(&f[14..]).unwrap();
        assert_eq!(ip.get_header_length(), 6);
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
    }
}
