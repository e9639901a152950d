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
pub const ABI_VERSION: u32 = 14;

/// Maximum number of ordered rules in one rule set.
pub const MAX_RULES: usize = 1024;
/// Number of `u64` words in a rule bitmap.
pub const BITMAP_WORDS: usize = MAX_RULES / 64;
/// Number of table generations (the active one and the one being prepared).
pub const GENERATIONS: u32 = 2;
/// Bitmap slots available to one generation. The compiler needs at most
/// `1 + 2 * (MAX_RULES + 2) + 2 * (2 * MAX_RULES + 2) + 257` distinct bitmaps.
pub const SLOTS_PER_GEN: u32 = 8192;
// Slots are stored in 16 bits (range4, Addr6Entry::tag, Block4::slot).
const _: () = assert!(SLOTS_PER_GEN <= 1 << 16);
/// Entries per generation in the port tables: one per port plus [`NO_PORT`].
pub const PORT_ENTRIES: u32 = 65537;
/// Index into the port tables used for packets that carry no ports (not TCP/UDP, or a
/// non-first fragment).
pub const NO_PORT: u32 = 65536;
/// Entries per generation in the protocol table.
pub const PROTO_ENTRIES: u32 = 256;
/// Maximum number of LPM entries per generation (IPv6 prefixes that are not hashed, + /0).
/// LPM tries allocate on demand, so this is only a bound.
pub const LPM_ENTRIES_PER_GEN: u32 = (1 << 20) + MAX_RULES as u32 + 1;
/// log2 of [`ADDR_BUCKETS`].
pub const ADDR_BUCKET_BITS: u32 = 18;
/// Fewest bucket bits a generation's table uses (see [`GenInfo::addr_bits`]).
pub const MIN_ADDR_BUCKET_BITS: u32 = 6;
/// Buckets per generation in the IPv6 address table: the hashed networks (the longest prefix
/// lengths, see [`GenInfo::hashed6`]), source and destination together, in a bucketed cuckoo
/// table the program probes inline (two buckets of [`WAYS`] entries per prefix length; no map
/// helper, no call).
pub const ADDR_BUCKETS: u32 = 1 << ADDR_BUCKET_BITS;
/// Entries per bucket of the IPv6 address table: five, so that a million networks fill
/// 2^18 buckets to 80% (cuckoo placement with two choices of buckets this wide holds past
/// 95%) and the table takes 26 MiB per generation instead of 48 at half load.
pub const WAYS: usize = 5;
/// Most hashed networks per generation and family: the largest set size (a million) plus the
/// rules' own networks.
pub const ADDR_CAPACITY: usize = (1 << 20) + 2 * MAX_RULES;
/// log2 of [`BLOCKS4`]: the IPv4 block index is the address's first 16 bits.
pub const BLOCK4_BITS: u32 = 16;
/// IPv4 blocks (/16s) per dimension in the block index (see [`Block4`]).
pub const BLOCKS4: u32 = 1 << BLOCK4_BITS;
/// Words per generation of the range array: IPv4 ranges and lists (see [`Block4`]), then the
/// IPv6 blocks' ranges (see [`block6_key`]), which take what room the IPv4 ones leave. Every
/// IPv4 network longer than /16 starts at most two ranges (at its first address and after its
/// last), and a generation holds at most [`ADDR_CAPACITY`] of them.
pub const RANGES_PER_GEN: u32 = 2 * ADDR_CAPACITY as u32;
/// Halving steps that find a range among the at most 65,535 of one block.
pub const RANGE4_STEPS: usize = 16;
/// Range words per element of the range array: one cache line (array elements are padded to
/// 8 bytes, so one word per element would take twice the memory and half the line).
pub const RANGE_LINE: usize = 16;
/// One element of the range array: [`RANGE_LINE`] consecutive words ([`range4`] words, list
/// halves or IPv6 ranges).
pub type RangeLine = [u32; RANGE_LINE];
const _: () = assert!((RANGES_PER_GEN as usize).is_multiple_of(RANGE_LINE));

/// One entry of the IPv4 range array: the first address of a range (the low 16 bits of the
/// address, its block being implied) in the high half, its bitmap slot in the low half. Entries
/// of a block are sorted, so comparing whole words compares starts, and an address `a` of the
/// block lies at or after the entry `e` exactly when `e <= range4_key(a)`.
pub const fn range4(start: u16, slot: u16) -> u32 {
    (start as u32) << 16 | slot as u32
}

/// The word an IPv4 address (host order) is compared with in its block's ranges (see
/// [`range4`]).
pub const fn range4_key(host: u32) -> u32 {
    host << 16 | 0xffff
}

/// Flag in [`Block4::first`]: the block is a host list (see [`Block4`]) and `first` counts
/// 16-bit halves of the range array instead of its words.
pub const HOSTS4: u32 = 1 << 31;
/// Flag in [`Block4::first`]: the block is a switch list (see [`Block4`]) and `first` counts
/// 16-bit halves of the range array instead of its words.
pub const SWITCH4: u32 = 1 << 30;
/// 16-bit halves per line of the range array: a list of at most this many halves (its slot
/// and its entries) is placed within one line.
pub const LIST4_LINE: usize = 2 * RANGE_LINE;

/// Words of one IPv6 range in the range array (see [`block6_key`]): the range's first address
/// without its first word (address words 1 to 3, host order), then its bitmap slot. Four to a
/// line; a generation's IPv6 ranges follow its IPv4 entries.
pub const RANGE6_WORDS: usize = 4;
/// Halving steps that find a range among the at most 4,096 of one IPv6 block.
pub const RANGE6_STEPS: usize = 12;
/// Shortest IPv6 block ([`GenInfo::block6`]): a block's ranges compare only the address's last
/// three words, so all of a block's addresses must share the first.
pub const BLOCK6_MIN: u8 = 32;
/// Longest IPv6 block: a block's entry in the address table is found by its first two words.
pub const BLOCK6_MAX: u8 = 64;

/// The key word of an IPv6 block's entry in the address table (see [`GenInfo::block6`]); no
/// network's [`addr_key`] (lengths end at 128). Such an entry is hashed over the block's first
/// two words (the other two taken as 0) and holds, in the place of the last two, the index of
/// the block's first range (in ranges of [`RANGE6_WORDS`] from the generation's start of the
/// range array) and the number of its ranges. The first range starts at the block's first
/// address; a block's ranges are sorted, each with the slot of the longest network containing
/// it (the block's own, from networks of its length or shorter, where no longer one does).
pub const fn block6_key(dim: u32) -> u32 {
    (dim + 1) << 8 | 0xff
}

/// Maximum number of named address sets per rule set.
pub const MAX_SETS: u32 = 64;
/// Maximum number of entries of all sets of one rule set together.
pub const MAX_SET_ENTRIES: usize = 1 << 20;
/// Token buckets the rate limiter keeps (least recently used ones are evicted).
pub const RATE_ENTRIES: u32 = 1 << 16;
/// One token in the rate limiter's fixed-point unit: a bucket's credit counts token-nanoseconds.
pub const TOKEN: u64 = 1_000_000_000;
/// Largest `burst` a rate-limit rule may have (keeps `burst * TOKEN` far from overflow).
pub const MAX_BURST: u32 = 1_000_000;
/// Largest `rate` (packets per second) a rate-limit rule may have.
pub const MAX_RATE: u32 = 1_000_000_000;
/// Most leading bytes of a frame a verdict event carries.
pub const SNAP_MAX: usize = 256;
/// Size of the verdict-event ring buffer in bytes.
pub const EVENT_RING_BYTES: u32 = 1 << 21;
/// Verdict events: one drop in this many is sampled unless configured otherwise.
pub const DEFAULT_SAMPLE_DROPS: u32 = 1000;
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
    /// Array of [`super::Block4`]: `(gen * 2 + dim) * BLOCKS4 + block` (dim 0 source,
    /// 1 destination).
    pub const BLOCK4: &str = "XW_BLOCK4";
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
    /// Per-CPU [`super::Counter`] per rule of packets over a rate limit: `gen * MAX_RULES + rule`.
    pub const RULE_LIMITED: &str = "XW_RULE_LIMITED";
    /// Array of [`super::RangeLine`]s: the range array, IPv4 ranges and lists of the block
    /// index (word `gen * RANGES_PER_GEN + Block4::first + i` in element
    /// `word / RANGE_LINE`), then the IPv6 blocks' ranges ([`super::block6_key`]).
    pub const RANGES: &str = "XW_RANGES";
    /// Array of [`super::Addr6Bucket`].
    pub const ADDR6: &str = "XW_ADDR6";
    /// [`super::SetInfo`] per set: `gen * MAX_SETS + set`.
    pub const SETS: &str = "XW_SETS";
    /// LRU hash: [`super::RateKey`] -> [`super::Bucket`].
    pub const RATE: &str = "XW_RATE";
    /// Ring buffer of [`super::Event`]s.
    pub const EVENTS: &str = "XW_EVENTS";

    /// Every map, in a fixed order (used for pinning and cleanup).
    pub const ALL: [&str; 18] = [
        CONFIG,
        GEN_INFO,
        RULES,
        BITMAPS,
        BLOCK4,
        SRC6,
        DST6,
        PROTO,
        SPORT,
        DPORT,
        STATS,
        RULE_STATS,
        RULE_LIMITED,
        RANGES,
        ADDR6,
        SETS,
        RATE,
        EVENTS,
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
    /// Pass while the source's token bucket has a token, drop otherwise.
    pub const RATE_LIMIT: u8 = 2;
}

/// Why a packet got its verdict, as carried by an [`Event`].
pub mod cause {
    /// A rule matched ([`super::Event::rule`]).
    pub const RULE: u8 = 0;
    /// No rule matched.
    pub const DEFAULT: u8 = 1;
    /// The frame is malformed.
    pub const MALFORMED: u8 = 2;
    /// The frame is not IPv4/IPv6.
    pub const NON_IP: u8 = 3;
    /// A rate-limit rule matched and the source was over its limit.
    pub const RATE_LIMITED: u8 = 4;
}

/// Most IPv6 prefix lengths per dimension kept in the address table (see [`GenInfo::hashed6`]).
pub const MAX_HASHED_LENS: usize = 4;
/// Marks an unused entry of [`GenInfo::hashed6`]: 0, since the /0 always stays in the trie
/// (so a zeroed [`GenInfo`] hashes nothing).
pub const NO_LEN: u8 = 0;
/// A dimension's IPv6 trie may keep at most this many prefixes (besides the /0) when hashing its
/// longest prefix lengths can get it there: then those lengths go into the hash instead.
pub const TRIE_TARGET: usize = 64;

/// The key word of an IPv6 address-table entry: dimension (0 source, 1 destination) and prefix
/// length; never 0, which marks a free entry.
pub const fn addr_key(dim: u32, len: u8) -> u32 {
    (dim + 1) << 8 | len as u32
}

/// The two candidate buckets (below `1 << bits`, `bits` from [`GenInfo::addr_bits`]) of an
/// IPv6 network: `key` from [`addr_key`], `words` the masked address as four words read in
/// native order from its network-order bytes. Multiply-and-shift hashing of one 64-bit mix.
#[inline(always)]
pub fn addr_buckets(key: u32, words: &[u32; 4], bits: u32) -> (u32, u32) {
    let hi = ((words[0] as u64) << 32 | words[1] as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let lo = ((words[2] as u64) << 32 | words[3] as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let x = hi ^ lo ^ (key as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    (
        top_bits(x.wrapping_mul(0xFF51_AFD7_ED55_8CCD), bits),
        top_bits(x.wrapping_mul(0xC4CE_B9FE_1A85_EC53), bits),
    )
}

/// The bucket a multiply-shift hash `h` picks in a table of `1 << bits`: its top `bits` bits,
/// masked so that the verifier (and a corrupt `bits`) can never index past [`ADDR_BUCKETS`].
#[inline(always)]
fn top_bits(h: u64, bits: u32) -> u32 {
    h.wrapping_shr(64u32.wrapping_sub(bits)) as u32 & (ADDR_BUCKETS - 1)
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
    /// Packets a rate-limit rule dropped because their source was over its limit.
    pub const RATE_LIMITED: u32 = 5;
    /// Verdict events lost because the ring buffer was full.
    pub const EVENTS_LOST: u32 = 6;
    /// Number of statistics.
    pub const COUNT: u32 = 7;
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

/// [`GenInfo::few_dims`]: source slots' short lists are usable.
pub const FEW_SRC: u8 = 1;
/// [`GenInfo::few_dims`]: destination slots' short lists are usable.
pub const FEW_DST: u8 = 2;

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
    /// The source matcher is a set: `src_len` holds the set's index.
    pub const SRC_SET: u8 = 32;
    /// The destination matcher is a set: `dst_len` holds the set's index.
    pub const DST_SET: u8 = 64;
}

/// Global configuration (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The generation every new packet uses (0 or 1).
    pub active_gen: u32,
    /// [`ABI_VERSION`] of whoever created the maps.
    pub abi: u32,
    /// Leading bytes of a sampled frame copied into its event (at most [`SNAP_MAX`]).
    pub snap_len: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// When not zero, the rate limiter's clock in nanoseconds instead of the kernel's monotonic
    /// clock: tests set it before each `BPF_PROG_TEST_RUN` to check the token buckets against
    /// the reference model with the same timestamps.
    pub clock_ns: u64,
    /// Sample one dropped packet in this many as a verdict event ([`Divisor::every`]; 0:
    /// none): the program tests its drop count against it.
    pub drop_every: Divisor,
    /// Sample one passed packet in this many, likewise.
    pub pass_every: Divisor,
}
const _: () = assert!(core::mem::size_of::<Config>() == 24 + 2 * 32);

/// "Is `n` a multiple of `d`?" without a division, which costs the program about 5 ns per
/// packet (a 64-bit `div` on every packet's sampling check): `d = odd << shift`, and `n` is a
/// multiple exactly when its low `shift` bits are zero and `(n >> shift) * inverse(odd)`
/// (mod 2^64) is at most `u64::MAX / odd` (multiplying by the inverse maps the multiples of
/// `odd` onto `0..=u64::MAX / odd` and everything else above; Granlund and Montgomery 1994).
///
/// Its default is [`Divisor::new`]`(0)`, which samples nothing (an all-zero one would pass
/// every count).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divisor {
    /// `(1 << shift) - 1`.
    pub low_mask: u64,
    /// Trailing zero bits of `d`.
    pub shift: u32,
    /// `d` itself (what user space set and shows).
    pub every: u32,
    /// The inverse of `d >> shift` modulo 2^64.
    pub inverse: u64,
    /// `u64::MAX / (d >> shift)`.
    pub limit: u64,
}

impl Default for Divisor {
    fn default() -> Divisor {
        Divisor::new(0)
    }
}

impl Divisor {
    /// The test for multiples of `d`; for 0 one that no count passes but 0.
    pub const fn new(d: u32) -> Divisor {
        if d == 0 {
            return Divisor {
                low_mask: u64::MAX,
                shift: 0,
                every: 0,
                inverse: 0,
                limit: 0,
            };
        }
        let shift = d.trailing_zeros();
        let odd = (d >> shift) as u64;
        // Newton's iteration: each step doubles the correct low bits (odd * odd = 1 mod 8).
        let mut inverse = odd;
        let mut i = 0;
        while i < 5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
            i += 1;
        }
        Divisor {
            low_mask: (1u64 << shift) - 1,
            shift,
            every: d,
            inverse,
            limit: u64::MAX / odd,
        }
    }

    /// Whether `n` is a multiple of the divisor (for [`Divisor::new`]`(0)`, whether `n` is 0).
    #[inline(always)]
    pub fn divides(&self, n: u64) -> bool {
        n & self.low_mask == 0
            && n.wrapping_shr(self.shift).wrapping_mul(self.inverse) <= self.limit
    }
}

/// Per-generation policy and sizes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenInfo {
    /// Number of rules.
    pub nrules: u32,
    /// Bits from [`dim`]: dimensions that need a lookup.
    pub dims: u32,
    /// Action when no rule matches.
    pub default_action: u8,
    /// Action for malformed packets.
    pub malformed_action: u8,
    /// Action for frames that are neither IPv4 nor IPv6.
    pub non_ip_action: u8,
    /// Explicit padding (was the IPv4 table's flag: the range array needs no record).
    pub _pad0: u8,
    /// Per IPv6 dimension (source, destination): the prefix lengths whose networks are in the
    /// address table instead of the trie, longest first, unused entries [`NO_LEN`]. Every
    /// length left in the trie is shorter than all of them, so the first hash hit, tried
    /// longest first, is the longest match.
    pub hashed6: [[u8; MAX_HASHED_LENS]; 2],
    /// log2 of the buckets this generation's IPv6 address table uses, the fewest (at least
    /// [`MIN_ADDR_BUCKET_BITS`], at most [`ADDR_BUCKET_BITS`]) that keep it at most 40% full. A
    /// small set then lives in a few pages instead of being spread over the whole table, where
    /// every lookup met another page (a TLB miss) and another line.
    pub addr_bits: u8,
    /// Address dimensions whose slot bitmaps' short lists the program may use ([`FEW_SRC`],
    /// [`FEW_DST`]): the packet's slot in that dimension names every rule that can match it,
    /// so when it lists at most [`FEW_RULES`] rules the program checks those rules' matchers
    /// against the packet directly ([`RuleEntry`]) instead of looking up and ANDing the other
    /// dimensions' bitmaps. Set for a dimension some rule matches, when every rule's matcher
    /// in the other address dimension is absent or an IPv4 network (a set cannot be checked
    /// from the rule entry; an IPv6 network would cost the verifier a four-word compare).
    pub few_dims: u8,
    /// Per IPv6 dimension (source, destination): the length of its blocks (from [`BLOCK6_MIN`]
    /// to [`BLOCK6_MAX`]), or 0 for none. The networks longer than that (hosts aside, which
    /// stay hashed) are then cut into ranges per block ([`block6_key`]) and the trie keeps only
    /// networks of that length or shorter. A packet that misses the hashed lengths looks its
    /// block up (one probe of two buckets) and searches the block's ranges; only an address in
    /// no block walks the trie.
    pub block6: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<GenInfo>() == 24);

impl GenInfo {
    /// Whether the IPv6 address table holds networks or blocks of this generation.
    pub fn addr6_table(&self) -> bool {
        self.hashed6.iter().any(|row| row[0] != NO_LEN) || self.block6 != [0; 2]
    }
}

/// One IPv4 /16 block of one dimension in the block index, which replaces a trie for IPv4.
///
/// The networks of a dimension cut each /16 block into ranges of addresses with the same
/// longest match (any prefix list is a list of ranges). A block's first range starts at its
/// first address and its slot is `slot` (the longest network of the block's that contains that
/// address: often one of 16 bits or less containing the whole block). The other ranges are
/// stored in one of three forms in the range array, whichever takes least room:
///
/// - **Ranges**: the `count` words of the range array from `first` on (see [`range4`]), sorted
///   by their start. An address `a` of the block gets the slot of the last range starting at or
///   before it.
/// - **Host list** (`first` has [`HOSTS4`]): when every other range is a handful of addresses
///   with one slot of their own between stretches of `slot` (a set of hosts, say), the block
///   keeps only their low 16 bits: the 16-bit halves of the range array from `first & !HOSTS4`
///   on hold that slot, then the `count` addresses, sorted. An address in the list gets the
///   list's slot, any other `slot`. A host takes 2 bytes instead of two 4-byte ranges.
/// - **Switch list** (`first` has [`SWITCH4`]): when the ranges have only two slots between
///   them (`slot` and one other: the hosts and networks of one set, say), they alternate, so
///   only their starts are kept: the halves from `first & !SWITCH4` on hold the other slot,
///   then the `count` starts (low 16 bits), sorted. An address gets the other slot when the
///   last start at or before it is the first, third, fifth... of the list, else `slot`.
///
/// A list of up to [`LIST4_LINE`] halves (a block of about 30 hosts) lies within one cache
/// line.
///
/// Either way, an address `a` in block `b = a >> 16` is looked up as: read the block's entry,
/// then a binary search of its `count` entries for the last one at or before `a` (at most
/// [`RANGE4_STEPS`] halvings, no branch on the data; none when `count` is 0). The cost follows
/// how crowded the packet's own /16 is, and a hit costs what a miss costs; the benchmarks'
/// million-entry blocklist takes 3 MiB of lists (8.5 as ranges), a lookup one line of them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Block4 {
    /// Where the block's entries start in its generation's part of the range array: a word
    /// index, or with [`HOSTS4`] or [`SWITCH4`] the index of a 16-bit half (the list's slot;
    /// its entries follow).
    pub first: u32,
    /// Bitmap slot of the block's first range (with a host list: of every address not in it).
    pub slot: u16,
    /// Ranges after the first, or entries of the list (at most 65,535).
    pub count: u16,
}
const _: () = assert!(core::mem::size_of::<Block4>() == 8);

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
    /// Rate-limit rules: packets per second per source key.
    pub rate: u32,
    /// Rate-limit rules: bucket size in packets.
    pub burst: u32,
    /// Rate-limit rules: IPv4 sources are grouped by this prefix length.
    pub limit_prefix4: u8,
    /// Rate-limit rules: IPv6 sources are grouped by this prefix length.
    pub limit_prefix6: u8,
    /// Explicit padding.
    pub _pad2: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<RuleEntry>() == 96);

/// A named address set of one generation (for `xdpwall status`; the program does not read it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetInfo {
    /// Set name, UTF-8, NUL padded.
    pub name: [u8; 32],
    /// Entries in the set.
    pub entries: u32,
    /// Of which host entries (/32, /128).
    pub hosts: u32,
    /// Of which IPv6 entries.
    pub v6: u32,
    /// Explicit padding.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<SetInfo>() == 48);

/// An IPv6 address-table entry: its tag ([`addr_key`] in the high half, the bitmap slot in the
/// low half; 0: free) and the network as four words.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addr6Entry {
    /// `addr_key << 16 | slot`, or 0.
    pub tag: u32,
    /// Network address.
    pub addr: [u32; 4],
}

/// A bucket of the IPv6 address table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addr6Bucket {
    /// Entries, filled from the first.
    pub e: [Addr6Entry; WAYS],
}
const _: () = assert!(core::mem::size_of::<Addr6Bucket>() == 100);

/// Token-bucket key: the rule (`gen * MAX_RULES + rule`) and the source address masked to the
/// rule's prefix length (IPv4 in the first 4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateKey {
    /// Generation and rule.
    pub rule: u32,
    /// 4 or 6.
    pub family: u32,
    /// Masked source address.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<RateKey>() == 24);

/// A token bucket (semantics in filter/README.md).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Credit in token-nanoseconds ([`TOKEN`] per packet).
    pub credit: u64,
    /// Time of the last refill, nanoseconds.
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Bucket>() == 16);

/// A sampled verdict, sent through the [`map_names::EVENTS`] ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Kernel monotonic time, nanoseconds.
    pub ts_ns: u64,
    /// The rule (valid when `cause` is [`cause::RULE`] or [`cause::RATE_LIMITED`]).
    pub rule: u32,
    /// Length of the whole frame.
    pub frame_len: u32,
    /// Bytes of the frame in `data`.
    pub cap_len: u32,
    /// One of [`action`] (PASS or DROP).
    pub action: u8,
    /// One of [`cause`].
    pub cause: u8,
    /// 4, 6, or 0 when the frame was not parsed as IP.
    pub family: u8,
    /// IP protocol.
    pub proto: u8,
    /// Source port (0 without ports).
    pub sport: u16,
    /// Destination port (0 without ports).
    pub dport: u16,
    /// Generation the verdict came from.
    pub gen: u32,
    /// Source address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// Leading bytes of the frame.
    pub data: [u8; SNAP_MAX],
}
const _: () = assert!(core::mem::size_of::<Event>() == 32 + 32 + SNAP_MAX);

/// Rules a [`Bitmap`] lists by index when it holds at most this many.
pub const FEW_RULES: usize = 7;
/// [`Bitmap::nfew`] of a bitmap with more than [`FEW_RULES`] rules.
pub const FEW_MANY: u16 = u16::MAX;

/// A set of rules, bit `i` standing for rule `i`, with a summary of its non-zero words and,
/// when it holds at most [`FEW_RULES`] rules, their indices.
///
/// The short list comes first so that a packet whose address slot lists few rules reads one
/// line of the bitmap and then checks those rules' own matchers (see [`GenInfo::few_dims`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bitmap {
    /// Number of rules in the bitmap when at most [`FEW_RULES`], else [`FEW_MANY`].
    pub nfew: u16,
    /// The first `nfew` entries: the rules' indices, ascending.
    pub few: [u16; FEW_RULES],
    /// Bit `w` is set when word `w` is not zero: the program ANDs the summaries first and only
    /// looks at words every dimension has bits in.
    pub summary: u64,
    /// Bit `i % 64` of word `i / 64` stands for rule `i`.
    pub words: [u64; BITMAP_WORDS],
}
const _: () = assert!(core::mem::size_of::<Bitmap>() == 16 + 8 + MAX_RULES / 8);

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

/// LPM trie key data for IPv6: the generation (big endian) then the address, so that the
/// generation is part of every prefix (`prefix_len = 32 + cidr_len`).
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
    /// Offset of an 8-byte timestamp (`bpf_ktime_get_ns`, little-endian) that every sent
    /// frame carries, written just before the frame leaves (0: none): the frames are latency
    /// probes. Even, and inside the payload: the transport checksum is updated for it.
    pub stamp_off: u16,
    /// Padding (zero).
    pub _pad: u16,
    /// Paced sending: the nanoseconds between two frames of this CPU (0: as fast as the CPU
    /// goes). A run that comes before its time is dropped unsent, so frames leave evenly
    /// spaced; see [`GenPace`].
    pub gap_ns: u64,
    /// Width of one bucket of [`GenPace::gaps`], in nanoseconds.
    pub bucket_ns: u64,
    /// Probes: the template's destination and source MAC, written into every probe again.
    /// A frame that a DUT forwards comes back to the engine's page pool with the DUT's
    /// rewrites in it (its next hop's MACs, a lower TTL): the kernel does not reset live frames
    /// between runs.
    pub macs: [u8; 12],
    /// Probes: the template's IPv4 TTL or IPv6 hop limit, restored likewise.
    pub ttl: u8,
    /// Padding (zero).
    pub _pad2: [u8; 3],
    /// Source addresses from a list (0: none, the source field varies as `base`/`span` say):
    /// frame `n` takes entry `n % src_list` (`n` random when the source's `random` bit is
    /// set) of the generator's `XW_GEN_SRC` map, 16 bytes each in network order (an IPv4
    /// address in the first 4), the whole address of either family.
    pub src_list: u32,
    /// Bits from [`gen_field`]: that field's value `v` is sent as [`spread`]`(v)`, so that
    /// `span` consecutive values land all over the field's range (an address field: hosts all
    /// over the address space, with no list to read).
    pub spread: u8,
    /// Padding (zero).
    pub _pad3: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<GenConfig>() == 88);

/// The bijection of 32-bit values that spreads a generator field (see [`GenConfig::spread`]):
/// MurmurHash3's finaliser, so distinct inputs stay distinct and neighbours land far apart.
#[inline(always)]
pub const fn spread(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ h >> 16
}

/// Paced sending: frames that fell behind their times by up to this many gaps catch up back
/// to back (a burst of at most this many); further behind, the schedule restarts.
pub const PACE_CATCH_UP: u64 = 8;

/// Buckets of the gap histogram of paced sending.
pub const PACE_BUCKETS: usize = 32;

/// Per-CPU state and accounting of paced sending (`GenConfig::gap_ns` > 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenPace {
    /// When the next frame is due (monotonic ns; 0: the next run sends and starts the clock).
    pub next_ns: u64,
    /// When the last frame was sent.
    pub last_ns: u64,
    /// Frames sent (redirected).
    pub sent: u64,
    /// Runs dropped unsent because they came before the next frame's time.
    pub held: u64,
    /// Frames sent more than [`PACE_CATCH_UP`] gaps after their time: the schedule
    /// restarted from then (the slots in between were given up, not caught up in a burst).
    pub late: u64,
    /// Gaps between consecutive frames: bucket `i` counts gaps in
    /// `[i, i + 1) * GenConfig::bucket_ns`; the last bucket holds every longer one.
    pub gaps: [u64; PACE_BUCKETS],
}

impl Default for GenPace {
    fn default() -> Self {
        GenPace {
            next_ns: 0,
            last_ns: 0,
            sent: 0,
            held: 0,
            late: 0,
            gaps: [0; PACE_BUCKETS],
        }
    }
}

/// Marker the payload of a latency probe carries just before its timestamp (see
/// [`GenConfig::stamp_off`]), so the receiver tells probes from other frames.
pub const LAT_MAGIC: [u8; 4] = *b"xwLT";

/// Sub-bucket bits of the latency histogram: each power of two is split into 32 buckets, so a
/// value is known within 1/32 (about 3%), as in an HDR histogram of 1.5 significant digits.
pub const LAT_SUB_BITS: u32 = 5;

/// Buckets of the latency histogram: exact below 64 ns, then 32 per power of two up to
/// 2^36 ns (69 s); the last bucket holds everything longer.
pub const LAT_BUCKETS: usize = 1024;

/// Configuration of the latency receiver (`xdpwall_latency`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatConfig {
    /// Offset of [`LAT_MAGIC`] in the frame; the 8-byte timestamp follows it.
    pub magic_off: u32,
    /// Padding (zero).
    pub _pad: u32,
}

/// Per-CPU latency histogram of the latency receiver: `now - stamp` of every probe.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatHist {
    /// Probes measured.
    pub count: u64,
    /// Sum of their latencies, ns.
    pub sum_ns: u64,
    /// Smallest latency, ns (0: none yet).
    pub min_ns: u64,
    /// Largest latency, ns.
    pub max_ns: u64,
    /// Frames that were not probes (no marker, or a timestamp from the future), passed on.
    pub other: u64,
    /// Bucket [`lat_bucket`]`(ns)` counts the probes of that latency.
    pub buckets: [u64; LAT_BUCKETS],
}

impl Default for LatHist {
    fn default() -> Self {
        LatHist {
            count: 0,
            sum_ns: 0,
            min_ns: 0,
            max_ns: 0,
            other: 0,
            buckets: [0; LAT_BUCKETS],
        }
    }
}

/// The histogram bucket of a latency of `ns` (log-linear, see [`LAT_SUB_BITS`]). Written with
/// shifts and compares only, so the eBPF verifier sees no loop.
#[inline(always)]
pub fn lat_bucket(ns: u64) -> usize {
    const SUB: u64 = 1 << LAT_SUB_BITS;
    if ns < SUB {
        return ns as usize;
    }
    let (mut v, mut msb) = (ns, 0u32);
    if v >> 32 != 0 {
        v >>= 32;
        msb += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        msb += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        msb += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        msb += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        msb += 2;
    }
    if v >> 1 != 0 {
        msb += 1;
    }
    let shift = msb - LAT_SUB_BITS;
    let i = (((shift + 1) as u64) << LAT_SUB_BITS) | ((ns >> shift) & (SUB - 1));
    if i >= LAT_BUCKETS as u64 {
        LAT_BUCKETS - 1
    } else {
        i as usize
    }
}

/// The smallest latency (ns) that falls in bucket `i` of [`lat_bucket`].
pub fn lat_bucket_low(i: usize) -> u64 {
    let sub = 1usize << LAT_SUB_BITS;
    if i < 2 * sub {
        return i as u64;
    }
    let (b, s) = (i >> LAT_SUB_BITS, i & (sub - 1));
    ((sub + s) as u64) << (b - 1)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] with no implicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::GenInfo {}
    unsafe impl aya::Pod for super::RuleEntry {}
    unsafe impl aya::Pod for super::Bitmap {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::Block4 {}
    unsafe impl aya::Pod for super::Lpm6Key {}
    unsafe impl aya::Pod for super::GenConfig {}
    unsafe impl aya::Pod for super::GenPace {}
    unsafe impl aya::Pod for super::LatConfig {}
    unsafe impl aya::Pod for super::LatHist {}
    unsafe impl aya::Pod for super::SetInfo {}
    unsafe impl aya::Pod for super::Addr6Bucket {}
    unsafe impl aya::Pod for super::RateKey {}
    unsafe impl aya::Pod for super::Bucket {}
    unsafe impl aya::Pod for super::Event {}
}

#[cfg(test)]
mod tests {
    use super::{lat_bucket, lat_bucket_low, Divisor, LAT_BUCKETS};

    #[test]
    fn latency_buckets_are_ordered_and_hold_their_values_within_one_32nd() {
        for i in 1..LAT_BUCKETS {
            assert!(lat_bucket_low(i) > lat_bucket_low(i - 1), "bucket {i}");
            assert_eq!(lat_bucket(lat_bucket_low(i)), i, "bucket {i}");
            assert_eq!(lat_bucket(lat_bucket_low(i) - 1), i - 1, "below bucket {i}");
        }
        let mut v = 1u64;
        while v < 1 << 36 {
            let b = lat_bucket(v);
            let low = lat_bucket_low(b);
            assert!(
                low <= v && (v - low) as f64 <= v as f64 / 32.0,
                "{v} in {b} from {low}"
            );
            v = v * 3 / 2 + 1;
        }
        assert_eq!(lat_bucket(u64::MAX), LAT_BUCKETS - 1);
        assert_eq!(lat_bucket(0), 0);
        assert_eq!(lat_bucket(63), 63);
    }

    #[test]
    fn divisor_agrees_with_the_remainder() {
        let ds = [
            1u32,
            2,
            3,
            7,
            8,
            10,
            12,
            1000,
            1024,
            4096,
            65535,
            1 << 31,
            u32::MAX,
        ];
        let ns = (0u64..5000).chain([u64::MAX, u64::MAX - 1, 1 << 63, 3 << 62, 999_999_000]);
        for d in ds {
            let t = Divisor::new(d);
            for n in ns.clone().chain((1..2000).map(|k| k * d as u64)) {
                assert_eq!(t.divides(n), n % d as u64 == 0, "{n} % {d}");
            }
            assert_eq!(t.every, d);
        }
        for never in [Divisor::new(0), Divisor::default()] {
            assert!((1..5000u64).all(|n| !never.divides(n)) && !never.divides(u64::MAX));
        }
    }
}
