//! What the xdpwall XDP program and its user-space side must agree on: map names, table sizes,
//! action and statistic codes, and the `#[repr(C)]` layouts of map keys and values.
//!
//! Every struct here has explicit padding fields and a `const` size assertion, so a layout change
//! on one side cannot silently misread the other.
//!
//! # How the kernel tables work (the "compiled tables")
//!
//! A rule set of `N <= MAX_RULES` ordered rules is compiled into one bitmap of `N` bits per
//! distinct value of each matcher dimension (source address, destination address, protocol,
//! source port, destination port). Bit `i` of a dimension's bitmap is set when rule `i` accepts
//! that value (or has no matcher in that dimension). The program looks up one bitmap per
//! dimension, ANDs them, and the lowest set bit is the first matching rule. Per-packet cost is
//! therefore independent of the rule order and grows only with `N / 64` words.
//!
//! Two complete copies ("generations") of every table exist. User space fills the inactive one
//! and then flips [`Config::active_gen`]; a packet reads the generation once and uses only that
//! generation's tables, so it never sees a mix of two rule sets.
#![no_std]

/// Version of the map layout; user space refuses pinned maps with a different value.
pub const ABI_VERSION: u32 = 2;

/// Maximum number of ordered rules in one rule set.
pub const MAX_RULES: usize = 1024;
/// Number of `u64` words in a rule bitmap.
pub const BITMAP_WORDS: usize = MAX_RULES / 64;
/// Number of table generations (the active one and the one being prepared).
pub const GENERATIONS: u32 = 2;
/// Bitmap slots available to one generation. The compiler needs at most
/// `1 + 2 * (MAX_RULES + 2) + 2 * (2 * MAX_RULES + 2) + 257` distinct bitmaps.
pub const SLOTS_PER_GEN: u32 = 8192;
/// Entries per generation in the port tables: one per port plus [`NO_PORT`].
pub const PORT_ENTRIES: u32 = 65537;
/// Index into the port tables used for packets that carry no ports (not TCP/UDP, or a
/// non-first fragment).
pub const NO_PORT: u32 = 65536;
/// Entries per generation in the protocol table.
pub const PROTO_ENTRIES: u32 = 256;
/// Maximum number of LPM entries per generation and address family (distinct prefixes + /0).
pub const LPM_ENTRIES_PER_GEN: u32 = MAX_RULES as u32 + 1;
/// The bitmap slot that every generation reserves for "all rules" (a dimension no rule uses).
pub const SLOT_ALL: u32 = 0;

/// Map names, as they appear in the object file and under the pin directory.
pub mod map_names {
    /// [`super::Config`], one entry.
    pub const CONFIG: &str = "XW_CONFIG";
    /// [`super::GenInfo`], one entry per generation.
    pub const GEN_INFO: &str = "XW_GEN_INFO";
    /// [`super::RuleEntry`], `MAX_RULES` entries per generation.
    pub const RULES: &str = "XW_RULES";
    /// [`super::Bitmap`], `SLOTS_PER_GEN` entries per generation.
    pub const BITMAPS: &str = "XW_BITMAPS";
    /// LPM trie: key [`super::Lpm4Key`] -> slot (`u32`).
    pub const SRC4: &str = "XW_SRC4";
    /// LPM trie: key [`super::Lpm4Key`] -> slot (`u32`).
    pub const DST4: &str = "XW_DST4";
    /// LPM trie: key [`super::Lpm6Key`] -> slot (`u32`).
    pub const SRC6: &str = "XW_SRC6";
    /// LPM trie: key [`super::Lpm6Key`] -> slot (`u32`).
    pub const DST6: &str = "XW_DST6";
    /// Array: `gen * PROTO_ENTRIES + proto` -> slot.
    pub const PROTO: &str = "XW_PROTO";
    /// Array: `gen * PORT_ENTRIES + port` -> slot.
    pub const SPORT: &str = "XW_SPORT";
    /// Array: `gen * PORT_ENTRIES + port` -> slot.
    pub const DPORT: &str = "XW_DPORT";
    /// Per-CPU [`super::Counter`] per statistic ([`super::stat`]).
    pub const STATS: &str = "XW_STATS";
    /// Per-CPU [`super::Counter`] per rule: `gen * MAX_RULES + rule`.
    pub const RULE_STATS: &str = "XW_RULE_STATS";

    /// Every map, in a fixed order (used for pinning and cleanup).
    pub const ALL: [&str; 13] = [
        CONFIG, GEN_INFO, RULES, BITMAPS, SRC4, DST4, SRC6, DST6, PROTO, SPORT, DPORT, STATS,
        RULE_STATS,
    ];
}

/// `BPF_F_MMAPABLE`: the big table arrays are written by user space through a shared mapping
/// (one memcpy instead of one syscall per entry). Each element then takes
/// `round_up(value_size, 8)` bytes in the mapping.
pub const MAP_F_MMAPABLE: u32 = 1 << 10;

/// Name of the XDP filter program in the object file.
pub const PROGRAM_NAME: &str = "xdpwall";

/// Actions a rule (or the default, malformed and non-IP policies) can take.
pub mod action {
    /// Let the packet continue (`XDP_PASS`).
    pub const PASS: u8 = 0;
    /// Drop the packet (`XDP_DROP`).
    pub const DROP: u8 = 1;
}

/// Indices into the statistics map.
pub mod stat {
    /// Packets passed, for any reason.
    pub const PASS: u32 = 0;
    /// Packets dropped, for any reason.
    pub const DROP: u32 = 1;
    /// Packets that matched no rule and took the default action.
    pub const DEFAULT: u32 = 2;
    /// Malformed packets (took the malformed policy).
    pub const MALFORMED: u32 = 3;
    /// Frames that are not IPv4/IPv6 (took the non-IP policy).
    pub const NON_IP: u32 = 4;
    /// Number of statistics.
    pub const COUNT: u32 = 5;
}

/// Bits of [`GenInfo::dims`]: which dimensions any rule of the generation uses.
pub mod dim {
    /// Some rule matches the source address.
    pub const SRC: u32 = 1;
    /// Some rule matches the destination address.
    pub const DST: u32 = 2;
    /// Some rule matches the protocol.
    pub const PROTO: u32 = 4;
    /// Some rule matches the source port.
    pub const SPORT: u32 = 8;
    /// Some rule matches the destination port.
    pub const DPORT: u32 = 16;
}

/// Bits of [`RuleEntry::flags`]: which matchers the rule has.
pub mod matcher {
    /// Source CIDR present.
    pub const SRC: u8 = 1;
    /// Destination CIDR present.
    pub const DST: u8 = 2;
    /// Protocol present.
    pub const PROTO: u8 = 4;
    /// Source port range present.
    pub const SPORT: u8 = 8;
    /// Destination port range present.
    pub const DPORT: u8 = 16;
}

/// Global configuration (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The generation every new packet uses (0 or 1).
    pub active_gen: u32,
    /// [`ABI_VERSION`] of whoever created the maps.
    pub abi: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 8);

/// Per-generation policy and sizes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenInfo {
    /// Number of rules.
    pub nrules: u32,
    /// Bitmap words in use: `ceil(nrules / 64)`.
    pub nwords: u32,
    /// Bits from [`dim`]: dimensions that need a lookup.
    pub dims: u32,
    /// Action when no rule matches.
    pub default_action: u8,
    /// Action for malformed packets.
    pub malformed_action: u8,
    /// Action for frames that are neither IPv4 nor IPv6.
    pub non_ip_action: u8,
    /// Explicit padding.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<GenInfo>() == 16);

/// One rule as stored in the kernel: its action, and its matchers so that a second process
/// (`xdpwall status`) can show what the running rules are.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleEntry {
    /// One of [`action`].
    pub action: u8,
    /// Bits from [`matcher`].
    pub flags: u8,
    /// IP protocol number (valid with [`matcher::PROTO`]).
    pub proto: u8,
    /// 4 or 6 (valid with [`matcher::SRC`]).
    pub src_family: u8,
    /// Prefix length of `src`.
    pub src_len: u8,
    /// 4 or 6 (valid with [`matcher::DST`]).
    pub dst_family: u8,
    /// Prefix length of `dst`.
    pub dst_len: u8,
    /// Explicit padding.
    pub _pad: u8,
    /// Source port range, inclusive.
    pub sport: [u16; 2],
    /// Destination port range, inclusive.
    pub dport: [u16; 2],
    /// Source network address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Destination network address (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// Rule name, UTF-8, NUL padded.
    pub name: [u8; 32],
}
const _: () = assert!(core::mem::size_of::<RuleEntry>() == 80);

/// A set of rules, bit `i` standing for rule `i`, with a summary of its non-zero words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bitmap {
    /// Bit `i % 64` of word `i / 64` stands for rule `i`.
    pub words: [u64; BITMAP_WORDS],
    /// Bit `w` is set when word `w` is not zero: the program ANDs the summaries first and only
    /// looks at words every dimension has bits in.
    pub summary: u64,
}
const _: () = assert!(core::mem::size_of::<Bitmap>() == MAX_RULES / 8 + 8);

/// Packet and byte counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames, as the XDP program sees them).
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);

/// LPM trie key data for IPv4: the generation (big endian) then the address, so that the
/// generation is part of every prefix (`prefix_len = 32 + cidr_len`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lpm4Key(pub [u8; 8]);

/// LPM trie key data for IPv6: the generation (big endian) then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lpm6Key(pub [u8; 20]);

/// Bits of LPM prefix length taken by the generation in front of the address.
pub const GEN_PREFIX_BITS: u32 = 32;

/// Indices of the varying fields in [`GenConfig`].
pub mod gen_field {
    /// Source address (IPv4, or the low 32 bits of IPv6).
    pub const SRC: usize = 0;
    /// Destination address (IPv4, or the low 32 bits of IPv6).
    pub const DST: usize = 1;
    /// Source port.
    pub const SPORT: usize = 2;
    /// Destination port.
    pub const DPORT: usize = 3;
}

/// Configuration of the live-frames generator program (`xdpwall_gen`): where the fields of
/// the template frame are and how each varies. Field `i` takes `base[i] + n % span[i]`, with
/// `n` the per-CPU sequence number, or a random number when bit `i` of `random` is set; a
/// span of 0 or 1 leaves the template's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenConfig {
    /// Interface the frames are redirected out of.
    pub ifindex: u32,
    /// Offset of the IP header.
    pub l3_off: u16,
    /// Offset of the transport header.
    pub l4_off: u16,
    /// Offset of the transport checksum inside the transport header (0: none).
    pub l4_csum_off: u8,
    /// IPv6 (else IPv4).
    pub v6: u8,
    /// TCP or UDP: ports vary.
    pub has_ports: u8,
    /// Bits from [`gen_field`]: draw that field at random.
    pub random: u8,
    /// Base value per field.
    pub base: [u32; 4],
    /// Span per field.
    pub span: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<GenConfig>() == 44);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] with no implicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::GenInfo {}
    unsafe impl aya::Pod for super::RuleEntry {}
    unsafe impl aya::Pod for super::Bitmap {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::Lpm4Key {}
    unsafe impl aya::Pod for super::Lpm6Key {}
    unsafe impl aya::Pod for super::GenConfig {}
}
