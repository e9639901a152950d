//! Wire parsing for the kernel side: Ethernet (up to two VLAN tags), IPv4 (options, fragments),
//! IPv6 (a bounded walk over extension headers), and the TCP/UDP/ICMP header checks that decide
//! whether a packet is well formed. Every read goes through [`at`], the one bounds-checked
//! accessor. The semantics are specified in filter/README.md; the reference model in
//! filter/src/model.rs implements them independently.

use aya_ebpf::programs::XdpContext;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// VLAN tags accepted in front of the IP header; one more makes the frame malformed.
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked; a chain that is longer makes the packet malformed.
const MAX_EXT_HEADERS: usize = 8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

/// Header layouts: the sizes and field offsets the parser reads, one module per header (the
/// way smoltcp's `wire` modules name theirs), so no read is at a bare number.
mod eth {
    /// Ethernet header length.
    pub const LEN: usize = 14;
    /// EtherType.
    pub const ETHERTYPE: usize = 12;
}

mod vlan {
    /// An 802.1Q/802.1ad tag.
    pub const LEN: usize = 4;
    /// The EtherType that follows the tag.
    pub const ETHERTYPE: usize = 2;
}

mod ipv4 {
    /// Header without options.
    pub const LEN: usize = 20;
    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    /// Flags (high 3 bits) and fragment offset (low 13).
    pub const FLAGS_FRAG: usize = 6;
    pub const PROTOCOL: usize = 9;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    /// Fragment offset bits of FLAGS_FRAG.
    pub const FRAG_OFFSET: u16 = 0x1fff;
    /// More-fragments bit of FLAGS_FRAG.
    pub const MORE_FRAGMENTS: u16 = 0x2000;
}

mod ipv6 {
    /// Fixed header.
    pub const LEN: usize = 40;
    /// Version in the high nibble.
    pub const VER: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// IPv6 extension headers: the generic ones (hop-by-hop, routing, destination options, AH)
/// and the fragment header.
mod ext {
    /// What the parser reads of a generic one.
    pub const LEN: usize = 2;
    pub const NEXT_HEADER: usize = 0;
    /// Length in 8-byte units not counting the first (4-byte units not counting two for AH).
    pub const HDR_LEN: usize = 1;
    /// Fragment header length.
    pub const FRAG_LEN: usize = 8;
    /// Fragment offset (high 13 bits) and M flag (low bit).
    pub const FRAG_OFFSET_FLAGS: usize = 2;
}

mod tcp {
    pub const LEN: usize = 20;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    /// Data offset in the high nibble.
    pub const DATA_OFF: usize = 12;
}

mod udp {
    pub const LEN: usize = 8;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
}

/// ICMP and ICMPv6: type, code, checksum and four bytes of the rest.
const ICMP_LEN: usize = 8;

/// The fields the classifier needs.
///
/// Laid out without holes and 8-byte aligned (40 bytes): the packet lives on the stack
/// (sampling takes its address), and a zeroed struct of this shape is five 64-bit stores,
/// while an odd-sized one made LLVM call a byte-by-byte memset on every packet.
#[repr(C, align(8))]
pub struct Packet {
    /// Source address as four 32-bit words in network byte order (IPv4: word 0 only).
    pub src: [u32; 4],
    /// Destination address, likewise.
    pub dst: [u32; 4],
    /// Source port, host order.
    pub sport: u16,
    /// Destination port, host order.
    pub dport: u16,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TCP or UDP with its header present (not a non-first fragment).
    pub has_ports: bool,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Explicit padding.
    pub _pad: u8,
}

impl Packet {
    /// Zeroes `slot` and returns it as an empty packet to parse into. Five volatile 64-bit
    /// stores: plain zeroing is turned by LLVM into a call to a byte-by-byte `memset`, which
    /// cost about 40 ns per packet.
    #[inline(always)]
    pub fn zeroed(slot: &mut core::mem::MaybeUninit<Packet>) -> &mut Packet {
        const WORDS: usize = core::mem::size_of::<Packet>() / 8;
        let w = slot.as_mut_ptr() as *mut u64;
        for i in 0..WORDS {
            // SAFETY: `w` points at WORDS aligned u64s inside the slot.
            unsafe { core::ptr::write_volatile(w.add(i), 0) };
        }
        // SAFETY: every byte was written; all-zero is a valid Packet.
        unsafe { slot.assume_init_mut() }
    }
}

const _: () = assert!(core::mem::size_of::<Packet>() == 40);

/// What parsing found out about a frame.
pub enum Parsed {
    /// An IPv4 or IPv6 packet, fields in the [`Packet`].
    Ip,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp,
    /// Truncated or inconsistent headers.
    Malformed,
}

/// A pointer to `N` bytes at `off` into the frame, or `None` past its end. All packet access
/// goes through here.
#[inline(always)]
fn at<const N: usize>(ctx: &XdpContext, off: usize) -> Option<*const u8> {
    // Volatile reads of the frame bounds: otherwise LLVM proves this check redundant from the
    // length checks above (total length, payload length) and drops it, and the verifier, which
    // only trusts comparisons against data_end, rejects the access.
    // SAFETY: ctx.ctx points at the kernel's xdp_md for the whole program run.
    let (start, end) = unsafe {
        (
            core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
        )
    };
    if start + off + N > end {
        return None;
    }
    Some((start + off) as *const u8)
}

// Field readers for pointers returned by `at` (within its checked range). Word loads at any
// byte offset are fine for the verifier on architectures with efficient unaligned access; they
// avoid the byte-by-byte copies that unaligned reads compile to.
#[inline(always)]
fn u8_at(p: *const u8, off: usize) -> u8 {
    // SAFETY: callers stay inside the range `at` checked.
    unsafe { *p.add(off) }
}

#[inline(always)]
fn be16_at(p: *const u8, off: usize) -> u16 {
    // SAFETY: as above.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe {
        u16::from_be(*(p.add(off) as *const u16))
    }
}

#[inline(always)]
fn raw32_at(p: *const u8, off: usize) -> u32 {
    // SAFETY: as above.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe {
        *(p.add(off) as *const u32)
    }
}

/// Parses `ctx`'s frame into `pkt`.
#[inline(always)]
pub fn parse(ctx: &XdpContext, pkt: &mut Packet) -> Parsed {
    match parse_inner(ctx, pkt) {
        Some(p) => p,
        None => Parsed::Malformed,
    }
}

#[inline(always)]
fn parse_inner(ctx: &XdpContext, pkt: &mut Packet) -> Option<Parsed> {
    let mut ethertype = be16_at(at::<{ eth::LEN }>(ctx, 0)?, eth::ETHERTYPE);
    let mut off = eth::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = be16_at(at::<{ vlan::LEN }>(ctx, off)?, vlan::ETHERTYPE);
        off += vlan::LEN;
    }
    let frame_len = ctx.data_end() - ctx.data();
    let parsed = match ethertype {
        ETH_P_IPV4 => parse_ipv4(ctx, pkt, off, frame_len - off),
        ETH_P_IPV6 => parse_ipv6(ctx, pkt, off, frame_len - off),
        ETH_P_8021Q | ETH_P_8021AD => None,
        _ => return Some(Parsed::NonIp),
    };
    if parsed? {
        Some(Parsed::Ip)
    } else {
        None
    }
}

/// Parses an IPv4 header at `l3` with `avail` bytes left in the frame. `Some(true)` when well formed.
#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, pkt: &mut Packet, l3: usize, avail: usize) -> Option<bool> {
    let h = at::<{ ipv4::LEN }>(ctx, l3)?;
    let b0 = u8_at(h, ipv4::VER_IHL);
    let ihl = (b0 & 0x0f) as usize;
    if b0 >> 4 != 4 || ihl < 5 {
        return Some(false);
    }
    let hlen = ihl * 4;
    let total = be16_at(h, ipv4::TOTAL_LEN) as usize;
    if total < hlen || total > avail {
        return Some(false);
    }
    pkt.v6 = false;
    pkt.proto = u8_at(h, ipv4::PROTOCOL);
    pkt.src[0] = raw32_at(h, ipv4::SRC);
    pkt.dst[0] = raw32_at(h, ipv4::DST);
    let frag = be16_at(h, ipv4::FLAGS_FRAG);
    if frag & ipv4::FRAG_OFFSET != 0 {
        // A non-first fragment: the protocol is known, the ports are not.
        return Some(true);
    }
    // More fragments follow (MF): a first fragment.
    parse_l4(
        ctx,
        pkt,
        l3 + hlen,
        total - hlen,
        frag & ipv4::MORE_FRAGMENTS != 0,
    )
}

/// Parses an IPv6 header at `l3` with `avail` bytes left in the frame.
#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, pkt: &mut Packet, l3: usize, avail: usize) -> Option<bool> {
    let h = at::<{ ipv6::LEN }>(ctx, l3)?;
    if u8_at(h, ipv6::VER) >> 4 != 6 {
        return Some(false);
    }
    let payload = be16_at(h, ipv6::PAYLOAD_LEN) as usize;
    if ipv6::LEN + payload > avail {
        return Some(false);
    }
    pkt.v6 = true;
    for i in 0..4 {
        pkt.src[i] = raw32_at(h, ipv6::SRC + 4 * i);
        pkt.dst[i] = raw32_at(h, ipv6::DST + 4 * i);
    }
    let mut next = u8_at(h, ipv6::NEXT_HEADER);
    let mut off = l3 + ipv6::LEN;
    let mut left = payload;
    let mut first_fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                if left < ext::LEN {
                    return Some(false);
                }
                let e = at::<{ ext::LEN }>(ctx, off)?;
                let len = if next == IPPROTO_AH {
                    (u8_at(e, ext::HDR_LEN) as usize + 2) * 4
                } else {
                    (u8_at(e, ext::HDR_LEN) as usize + 1) * 8
                };
                next = u8_at(e, ext::NEXT_HEADER);
                len
            }
            IPPROTO_FRAGMENT => {
                if left < ext::FRAG_LEN {
                    return Some(false);
                }
                let f = at::<{ ext::FRAG_LEN }>(ctx, off)?;
                next = u8_at(f, ext::NEXT_HEADER);
                let offset_flags = be16_at(f, ext::FRAG_OFFSET_FLAGS);
                if offset_flags >> 3 != 0 {
                    pkt.proto = next;
                    return Some(true);
                }
                // Offset 0 with the M flag: a first fragment (without it: an atomic one,
                // a whole packet). Any such header in the chain makes it one: a later
                // header without the flag does not undo it.
                if offset_flags & 1 != 0 {
                    first_fragment = true;
                }
                ext::FRAG_LEN
            }
            _ => break,
        };
        if len > left {
            return Some(false);
        }
        off += len;
        left -= len;
    }
    if is_ext_header(next) {
        return Some(false);
    }
    pkt.proto = next;
    parse_l4(ctx, pkt, off, left, first_fragment)
}

#[inline(always)]
fn is_ext_header(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_AH | IPPROTO_DSTOPTS
    )
}

/// Checks the transport header at `l4`, which has `len` bytes inside the IP packet, and reads
/// the ports of TCP and UDP. In a `first_fragment` the UDP length is the whole datagram's and
/// may exceed the fragment: only the header itself must be present.
#[inline(always)]
fn parse_l4(
    ctx: &XdpContext,
    pkt: &mut Packet,
    l4: usize,
    len: usize,
    first_fragment: bool,
) -> Option<bool> {
    match pkt.proto {
        IPPROTO_TCP => {
            if len < tcp::LEN {
                return Some(false);
            }
            let t = at::<{ tcp::LEN }>(ctx, l4)?;
            let doff = (u8_at(t, tcp::DATA_OFF) >> 4) as usize;
            if doff < 5 || doff * 4 > len {
                return Some(false);
            }
            pkt.has_ports = true;
            pkt.sport = be16_at(t, tcp::SRC_PORT);
            pkt.dport = be16_at(t, tcp::DST_PORT);
        }
        IPPROTO_UDP => {
            if len < udp::LEN {
                return Some(false);
            }
            let u = at::<{ udp::LEN }>(ctx, l4)?;
            let ulen = be16_at(u, udp::LENGTH) as usize;
            if ulen < udp::LEN || (ulen > len && !first_fragment) {
                return Some(false);
            }
            pkt.has_ports = true;
            pkt.sport = be16_at(u, udp::SRC_PORT);
            pkt.dport = be16_at(u, udp::DST_PORT);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if len < ICMP_LEN {
                return Some(false);
            }
        }
        _ => {}
    }
    Some(true)
}
