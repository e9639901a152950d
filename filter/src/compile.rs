//! Compiles a [`RuleSet`] into the kernel's lookup tables (see common/src/lib.rs): one rule
//! bitmap per distinct value of each matcher dimension, deduplicated into slots.
//!
//! The result is plain data; `loader` writes it into one generation of the maps.

use std::collections::HashMap;

use ipnet::IpNet;
use xdpwall_common::{
    dim, matcher, range4, Bitmap, Block4, GenInfo, RuleEntry, SetInfo, ADDR_CAPACITY, BITMAP_WORDS,
    BLOCK4_BITS, BLOCKS4, FEW_DST, FEW_MANY, FEW_RULES, FEW_SRC, HOSTS4, LIST4_LINE,
    MAX_HASHED_LENS, MAX_RULES, NO_LEN, NO_PORT, PORT_ENTRIES, PROTO_ENTRIES, RANGE6_WORDS,
    RANGES_PER_GEN, SLOTS_PER_GEN, SLOT_ALL, SWITCH4,
};

use crate::rules::{AddrMatch, PortRange, Rule, RuleAction, RuleSet};

/// One LPM entry: a network and the slot of its bitmap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LpmEntry {
    /// The network (a `/0` is always present per family).
    pub net: IpNet,
    /// Bitmap slot.
    pub slot: u32,
}

/// The compiled tables of one rule set.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Sizes and policies.
    pub info: GenInfo,
    /// One entry per rule.
    pub rules: Vec<RuleEntry>,
    /// Distinct bitmaps; index = slot. Slot [`SLOT_ALL`] has every rule's bit.
    pub bitmaps: Vec<Bitmap>,
    /// Source networks outside the address tables: IPv6 ones (the lengths not hashed) go into
    /// the LPM trie, IPv4 ones (/16 and shorter) are folded into [`Tables::blocks`].
    pub src: Vec<LpmEntry>,
    /// Destination networks outside the address tables, likewise.
    pub dst: Vec<LpmEntry>,
    /// Source networks for the IPv6 address table (the lengths in [`GenInfo::hashed6`]).
    pub src_hashed: Vec<LpmEntry>,
    /// Destination networks for the IPv6 address table.
    pub dst_hashed: Vec<LpmEntry>,
    /// The IPv4 block index of the source and the destination dimension, [`BLOCKS4`] entries
    /// each, or none for a dimension no rule matches (the program does not read it then).
    pub blocks: [Vec<Block4>; 2],
    /// The range array of both dimensions: IPv4 ranges and lists ([`Block4::first`] indexes
    /// it, see [`Block4`]), then the IPv6 blocks' ranges
    /// ([`xdpwall_common::block6_key`]).
    pub ranges: Vec<u32>,
    /// IPv4 networks longer than /16 of both dimensions (cut into `ranges`).
    pub long4: usize,
    /// IPv6 networks of both dimensions cut into blocks' ranges (in `ranges` too).
    pub long6: usize,
    /// The hashed networks of both dimensions placed into the IPv6 address table.
    pub addr6: crate::addr_table::Buckets,
    /// One entry per set of the rule set, in name order (a rule's set index points here).
    pub sets: Vec<SetInfo>,
    /// Slot per protocol number.
    pub proto: Vec<u32>,
    /// Slot per source port, plus [`NO_PORT`] (empty when no rule matches source ports).
    pub sport: Vec<u32>,
    /// Slot per destination port, plus [`NO_PORT`] (empty when no rule matches them).
    pub dport: Vec<u32>,
}

/// A rule set that cannot be compiled (cannot happen for a validated [`RuleSet`] within limits).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// More rules than the kernel tables hold.
    #[error("{0} rules: at most {MAX_RULES} fit in the kernel tables")]
    TooManyRules(usize),
    /// The sets nest in so many ways that the distinct rule bitmaps do not fit.
    #[error("the rule set needs more than {SLOTS_PER_GEN} distinct rule bitmaps (sets nested in too many different ways)")]
    TooManySlots,
    /// The hashed networks do not fit the address table.
    #[error(transparent)]
    AddrTable(#[from] crate::addr_table::TableError),
}

struct Slots {
    bitmaps: Vec<Bitmap>,
    index: HashMap<Bitmap, u32>,
}

impl Slots {
    fn slot_checked(&mut self, b: Bitmap) -> Result<u32, CompileError> {
        if !self.index.contains_key(&b) && self.bitmaps.len() >= SLOTS_PER_GEN as usize {
            return Err(CompileError::TooManySlots);
        }
        Ok(self.slot(b))
    }

    fn slot(&mut self, b: Bitmap) -> u32 {
        if let Some(&s) = self.index.get(&b) {
            return s;
        }
        let s = self.bitmaps.len() as u32;
        self.bitmaps.push(b);
        self.index.insert(b, s);
        s
    }
}

fn bitmap_of(n: usize, mut f: impl FnMut(usize) -> bool) -> Bitmap {
    let mut b = Bitmap {
        nfew: 0,
        few: [0; FEW_RULES],
        summary: 0,
        words: [0; BITMAP_WORDS],
    };
    for i in 0..n {
        if f(i) {
            add_rule(&mut b, i);
        }
    }
    b
}

/// Adds rule `r` to `b`: its bit, its word's summary bit, and its place in the short list
/// (ascending), which overflows into [`FEW_MANY`].
fn add_rule(b: &mut Bitmap, r: usize) {
    let bit = 1u64 << (r % 64);
    if b.words[r / 64] & bit != 0 {
        return;
    }
    b.words[r / 64] |= bit;
    b.summary |= 1 << (r / 64);
    let n = b.nfew as usize;
    if n >= FEW_RULES {
        b.nfew = FEW_MANY;
        return;
    }
    let at = b.few[..n].partition_point(|&x| (x as usize) < r);
    b.few.copy_within(at..n, at + 1);
    b.few[at] = r as u16;
    b.nfew += 1;
}

/// Compiles `set` into kernel tables.
pub fn compile(set: &RuleSet) -> Result<Tables, CompileError> {
    let n = set.rules.len();
    if n > MAX_RULES {
        return Err(CompileError::TooManyRules(n));
    }
    let rules = &set.rules;
    let mut slots = Slots {
        bitmaps: Vec::new(),
        index: HashMap::new(),
    };
    let all = slots.slot(bitmap_of(n, |_| true));
    debug_assert_eq!(all, SLOT_ALL);

    let mut dims = 0;
    let uses = |f: &dyn Fn(usize) -> bool| (0..n).any(f);
    if uses(&|i| rules[i].src.is_some()) {
        dims |= dim::SRC;
    }
    if uses(&|i| rules[i].dst.is_some()) {
        dims |= dim::DST;
    }
    if uses(&|i| rules[i].proto.is_some()) {
        dims |= dim::PROTO;
    }
    if uses(&|i| rules[i].sport.is_some()) {
        dims |= dim::SPORT;
    }
    if uses(&|i| rules[i].dport.is_some()) {
        dims |= dim::DPORT;
    }
    // A dimension's short lists are usable when the program can check the rules' other
    // address matcher from the rule entry with one word: none, or an IPv4 network (not a set,
    // not IPv6).
    let v4_or_none = |m: &Option<AddrMatch>| match m {
        None | Some(AddrMatch::Net(IpNet::V4(_))) => true,
        Some(AddrMatch::Net(IpNet::V6(_)) | AddrMatch::Set(_)) => false,
    };
    let mut few_dims = 0;
    if dims & dim::SRC != 0 && !uses(&|i| !v4_or_none(&rules[i].dst)) {
        few_dims |= FEW_SRC;
    }
    if dims & dim::DST != 0 && !uses(&|i| !v4_or_none(&rules[i].src)) {
        few_dims |= FEW_DST;
    }

    let set_index: HashMap<&str, usize> = set
        .sets
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let AddrTables {
        lpm: mut src,
        v6: src6,
        blocks: mut src_blocks,
        long4: mut src_long4,
    } = addr_entries(&mut slots, set, dims & dim::SRC != 0, |r| r.src.as_ref())?;
    let AddrTables {
        lpm: mut dst,
        v6: dst6,
        blocks: mut dst_blocks,
        long4: mut dst_long4,
    } = addr_entries(&mut slots, set, dims & dim::DST != 0, |r| r.dst.as_ref())?;
    let long4 = src_long4.len() + dst_long4.len();
    if long4 > ADDR_CAPACITY {
        return Err(crate::addr_table::TableError::TooMany(long4).into());
    }
    // Both dimensions' ranges and host lists share the generation's range array, the
    // destination's after the source's.
    let mut halves = Vec::new();
    block_ranges(&mut src_blocks, &mut src_long4, &mut halves);
    block_ranges(&mut dst_blocks, &mut dst_long4, &mut halves);
    let mut ranges: Vec<u32> = halves
        .chunks(2)
        .map(|w| w[0] as u32 | (w[1] as u32) << 16)
        .collect();
    // IPv6 blocks' ranges follow, whole ranges from a range boundary on.
    ranges.resize(ranges.len().next_multiple_of(RANGE6_WORDS), 0);
    let mut hashed6 = [[NO_LEN; MAX_HASHED_LENS]; 2];
    let mut block6 = [0u8; 2];
    let mut split: Vec<crate::ranges::Split6> = Vec::with_capacity(2);
    // What the address table leaves the source's blocks when the destination hashes every
    // IPv6 network it has, and what the source then leaves the destination's.
    let mut entries = ADDR_CAPACITY.saturating_sub(dst6.len());
    for (d, v6) in [src6, dst6].into_iter().enumerate() {
        let at = ranges.len() / RANGE6_WORDS;
        let room = (RANGES_PER_GEN as usize / RANGE6_WORDS).saturating_sub(at);
        let s = crate::ranges::split6(v6, at, room, entries);
        entries = ADDR_CAPACITY.saturating_sub(s.hashed.len() + s.blocks.len());
        hashed6[d][..s.lens.len()].copy_from_slice(&s.lens);
        block6[d] = s.block_len;
        ranges.extend_from_slice(&s.ranges);
        split.push(s);
    }
    let [src_split, dst_split]: [crate::ranges::Split6; 2] =
        split.try_into().expect("two dimensions");
    src.extend(src_split.lpm);
    dst.extend(dst_split.lpm);
    let (src_hashed, dst_hashed) = (src_split.hashed, dst_split.hashed);
    let long6 = src_split.long + dst_split.long;
    let sets = set
        .sets
        .iter()
        .map(|(name, s)| SetInfo {
            name: name_field(name),
            entries: s.nets.len() as u32,
            hosts: s
                .nets
                .iter()
                .filter(|n| n.prefix_len() == n.max_prefix_len())
                .count() as u32,
            v6: s.nets.iter().filter(|n| n.addr().is_ipv6()).count() as u32,
            _pad: 0,
        })
        .collect();
    let proto = (0..PROTO_ENTRIES)
        .map(|p| {
            let b = bitmap_of(n, |i| rules[i].proto.is_none_or(|rp| rp as u32 == p));
            slots.slot(b)
        })
        .collect();
    let sport = if dims & dim::SPORT != 0 {
        port_slots(&mut slots, n, |i| rules[i].sport)
    } else {
        Vec::new()
    };
    let dport = if dims & dim::DPORT != 0 {
        port_slots(&mut slots, n, |i| rules[i].dport)
    } else {
        Vec::new()
    };
    if slots.bitmaps.len() > SLOTS_PER_GEN as usize {
        return Err(CompileError::TooManySlots);
    }
    let blocks6 = [(0, &src_split.blocks), (1, &dst_split.blocks)]
        .into_iter()
        .flat_map(|(dim, blocks)| {
            blocks.iter().map(move |&(net, first, count)| {
                crate::addr_table::AddrItem::block(dim, net, first, count)
            })
        });
    let items: Vec<crate::addr_table::AddrItem> = [(0, &src_hashed), (1, &dst_hashed)]
        .into_iter()
        .flat_map(|(dim, entries)| {
            entries
                .iter()
                .map(move |e| crate::addr_table::AddrItem::new(dim, &e.net, e.slot))
        })
        .chain(blocks6)
        .collect();
    let bits6 = crate::addr_table::bits_for(items.len());
    let addr6 = crate::addr_table::build(&items, bits6)?;

    Ok(Tables {
        info: GenInfo {
            nrules: n as u32,
            dims,
            default_action: set.default.code(),
            malformed_action: set.malformed.code(),
            non_ip_action: set.non_ip.code(),
            _pad0: 0,
            hashed6,
            addr_bits: bits6 as u8,
            few_dims,
            block6,
        },
        rules: rules.iter().map(|r| rule_entry(r, &set_index)).collect(),
        bitmaps: slots.bitmaps,
        src,
        dst,
        src_hashed,
        dst_hashed,
        blocks: [src_blocks, dst_blocks],
        ranges,
        long4,
        long6,
        addr6,
        sets,
        proto,
        sport,
        dport,
    })
}

/// The address tables of one dimension: every distinct network that some rule names (as its
/// CIDR or as an entry of its set), plus a /0 per family, with their slots: the IPv4 block
/// index (to be cut into ranges) and the IPv6 networks (to be placed).
///
/// IPv4: networks of /16 or shorter set the slot of every block they cover; longer ones cut
/// their block into ranges ([`block_ranges`], [`Block4`]). A packet searches only the ranges
/// of its own /16, so the cost follows how crowded that block is, not the size of the table,
/// and no trie is walked.
///
/// IPv6: placed afterwards, by [`crate::ranges::split6`] (the address table, blocks of ranges,
/// the trie).
///
/// The bitmap of network `p` holds the rules with no matcher in this dimension and those with a
/// network (CIDR or set entry) containing `p`. The longest-prefix match of an address `a` is the
/// longest such `p` containing `a`; every rule network containing `a` contains that `p` (both
/// contain `a`, so they nest), so the bitmap is exactly the set of rules accepting `a`. Host
/// entries are the longest prefixes there are, so looking them up first and the trie (which
/// then holds only shorter prefixes) second finds the same `p`; the IPv4 ranges are cut from
/// the same longest matches.
///
/// Computed parent-first: bitmap(p) = own(p) | bitmap(parent(p)), where parent(p) is the
/// longest strictly shorter network of the table containing `p`, so the work grows with the
/// number of entries times the number of distinct prefix lengths, not times the rules.
///
/// `used`: some rule matches this dimension ([`GenInfo::dims`]), so the program reads it.
fn addr_entries<'a>(
    slots: &mut Slots,
    set: &'a RuleSet,
    used: bool,
    matcher_of: impl Fn(&'a Rule) -> Option<&'a AddrMatch>,
) -> Result<AddrTables, CompileError> {
    let n = set.rules.len();
    // (network, rule) for every network a rule names; u32::MAX marks the /0 entries.
    let mut named: Vec<(IpNet, u32)> = vec![
        ("0.0.0.0/0".parse().unwrap(), u32::MAX),
        ("::/0".parse().unwrap(), u32::MAX),
    ];
    for (i, r) in set.rules.iter().enumerate() {
        match matcher_of(r) {
            Some(&AddrMatch::Net(net)) => named.push((net, i as u32)),
            Some(AddrMatch::Set(name)) => {
                named.extend(set.sets[name].nets.iter().map(|&net| (net, i as u32)))
            }
            None => {}
        }
    }
    named.sort_unstable_by_key(|&(net, rule)| (net.addr().is_ipv6(), net.prefix_len(), net, rule));
    named.dedup();
    let base = bitmap_of(n, |i| matcher_of(&set.rules[i]).is_none());

    let mut lens: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut index: HashMap<IpNet, u32> = HashMap::with_capacity(named.len());
    let mut lpm = Vec::new();
    let mut v6 = Vec::new();
    let mut all = Vec::new();
    let mut i = 0;
    while i < named.len() {
        let net = named[i].0;
        let family = net.addr().is_ipv6() as usize;
        let mut j = i;
        while j < named.len() && named[j].0 == net {
            j += 1;
        }
        let parent = lens[family]
            .iter()
            .rev()
            .filter(|&&l| l < net.prefix_len())
            .find_map(|&l| {
                let q = IpNet::new(net.addr(), l).unwrap().trunc();
                index.get(&q).copied()
            });
        let mut b = parent.map_or(base, |p| slots.bitmaps[p as usize]);
        let before = b;
        for &(_, rule) in &named[i..j] {
            if rule != u32::MAX {
                add_rule(&mut b, rule as usize);
            }
        }
        let slot = match parent {
            Some(p) if b == before => p,
            _ => slots.slot_checked(b)?,
        };
        index.insert(net, slot);
        if lens[family].last() != Some(&net.prefix_len()) {
            lens[family].push(net.prefix_len());
        }
        all.push(LpmEntry { net, slot });
        i = j;
    }
    // The program reads the block index only when some rule matches this dimension (`used`);
    // without one it stays empty (and unwritten). IPv4 networks come in ascending length
    // order: a longer network's block slot overwrites the shorter one it lies in.
    let mut blocks = if used {
        vec![Block4::default(); BLOCKS4 as usize]
    } else {
        Vec::new()
    };
    let mut long4 = Vec::new();
    for e in all {
        match e.net {
            IpNet::V4(n) if n.prefix_len() as u32 > BLOCK4_BITS => long4.push(e),
            IpNet::V4(n) => {
                if used {
                    let first = (u32::from(n.network()) >> BLOCK4_BITS) as usize;
                    let count = 1usize << (BLOCK4_BITS - n.prefix_len() as u32);
                    for b in &mut blocks[first..first + count] {
                        b.slot = e.slot as u16;
                    }
                }
                lpm.push(e);
            }
            IpNet::V6(_) => v6.push(e),
        }
    }
    Ok(AddrTables {
        lpm,
        v6,
        blocks,
        long4,
    })
}

/// Cuts every /16 block that holds IPv4 networks longer than /16 into ranges of one longest
/// match each (see [`Block4`]): fills the blocks' `first`, `count` and (when a network starts
/// at the block's first address) `slot`, and appends each block's entries to `halves`, the
/// range array as 16-bit halves (kept at an even length: words of [`range4`] stay whole).
/// `long` (sorted here) holds those networks, `blocks` already the slot of each block's
/// longest network of at most 16 bits.
///
/// Per block, the sweep of [`crate::ranges::cut`] over its networks by first address (each
/// adds at most two ranges). The block then takes a list form when it has one ([`host_list`];
/// a switch list needs only two slots) and that takes no more room than its ranges (the
/// denser list when both do), so the array never outgrows two words per network.
fn block_ranges(blocks: &mut [Block4], long: &mut [LpmEntry], halves: &mut Vec<u16>) {
    let start = |e: &LpmEntry| match e.net {
        IpNet::V4(n) => u32::from(n.network()),
        IpNet::V6(_) => unreachable!("IPv4 networks only"),
    };
    long.sort_unstable_by_key(|e| (start(e), e.net.prefix_len()));
    let mut i = 0;
    while i < long.len() {
        let block = start(&long[i]) >> BLOCK4_BITS;
        let mut nets = Vec::new();
        while i < long.len() && start(&long[i]) >> BLOCK4_BITS == block {
            let e = &long[i];
            let lo = (start(e) & 0xffff) as u128;
            nets.push((lo, lo + (1 << (32 - e.net.prefix_len() as u32)), e.slot));
            i += 1;
        }
        // (first address, slot) of the block's ranges, relative to the block.
        let out: Vec<(u32, u32)> =
            crate::ranges::cut(&nets, 1 << BLOCK4_BITS, blocks[block as usize].slot as u32)
                .into_iter()
                .map(|(at, slot)| (at as u32, slot))
                .collect();
        let b = &mut blocks[block as usize];
        b.slot = out[0].1 as u16;
        let words = out.len() - 1;
        // The densest form the block has (see [`Block4`]): ranges take two halves each, a list
        // one per entry (plus its slot and the padding that keeps it within a line).
        let room =
            |entries: usize| (list_pad(halves.len(), entries) + 1 + entries).next_multiple_of(2);
        let hosts =
            host_list(&out).filter(|(_, _, h)| h.len() < 1 << 16 && room(h.len()) <= 2 * words);
        let switch = (out.len() > 1 && out.iter().all(|r| r.1 == out[0].1 || r.1 == out[1].1))
            .then_some(())
            .filter(|_| room(words) <= 2 * words);
        let list = match (hosts, switch) {
            (Some((outer, slot, h)), sw) if sw.is_none() || h.len() <= words => {
                b.slot = outer as u16;
                Some((HOSTS4, slot, h))
            }
            (_, Some(())) => Some((SWITCH4, out[1].1, out[1..].iter().map(|r| r.0).collect())),
            _ => None,
        };
        match list {
            Some((form, slot, entries)) => {
                halves.resize(halves.len() + list_pad(halves.len(), entries.len()), 0);
                b.first = form | halves.len() as u32;
                b.count = entries.len() as u16;
                halves.push(slot as u16);
                halves.extend(entries.iter().map(|&h| h as u16));
            }
            None => {
                b.first = (halves.len() / 2) as u32;
                b.count = words as u16;
                for &(at, slot) in &out[1..] {
                    let w = range4(at as u16, slot as u16);
                    halves.extend([w as u16, (w >> 16) as u16]);
                }
            }
        }
        if halves.len() % 2 == 1 {
            halves.push(0);
        }
    }
}

/// The padding a list of `entries` appended at half `at` needs so that a list that fits in one
/// line (its slot and entries, [`LIST4_LINE`] halves at most) lies within one.
fn list_pad(at: usize, entries: usize) -> usize {
    let len = 1 + entries;
    if len <= LIST4_LINE && at % LIST4_LINE + len > LIST4_LINE {
        LIST4_LINE - at % LIST4_LINE
    } else {
        0
    }
}

/// A block's host-list form (see [`Block4`]), when its ranges `out` (first address relative to
/// the block, slot; the first at 0) have one: the ranges alternate between two slots, those of
/// one of them (the hosts') at most 4 addresses long. Returns the other slot (the block's), the
/// hosts' slot and the addresses that have it, ascending.
fn host_list(out: &[(u32, u32)]) -> Option<(u32, u32, Vec<u32>)> {
    const LONGEST: u32 = 4;
    if out.len() < 2 {
        return None;
    }
    // The hosts' ranges are every other one from the second on, or from the first on when the
    // block starts with a host.
    [1, 0].into_iter().find_map(|first: usize| {
        let inner = out[first].1;
        let outer = out[1 - first].1;
        let mut hosts = Vec::new();
        for (k, &(at, slot)) in out.iter().enumerate() {
            let end = out.get(k + 1).map_or(1 << BLOCK4_BITS, |r| r.0);
            if k % 2 != first {
                if slot != outer {
                    return None;
                }
            } else if slot != inner || end - at > LONGEST {
                return None;
            } else {
                hosts.extend(at..end);
            }
        }
        Some((outer, inner, hosts))
    })
}

/// One dimension's address tables.
struct AddrTables {
    /// IPv4 networks of /16 or shorter (also folded into `blocks`).
    lpm: Vec<LpmEntry>,
    /// IPv6 networks, the /0 among them (still to be placed: [`crate::ranges::split6`]).
    v6: Vec<LpmEntry>,
    /// The IPv4 block index.
    blocks: Vec<Block4>,
    /// IPv4 networks longer than /16 (still to be cut into ranges: [`block_ranges`]).
    long4: Vec<LpmEntry>,
}

/// One slot per port and one for packets without ports: computed per elementary interval
/// between range boundaries, so the work is O(rules x boundaries), not O(rules x 65536).
fn port_slots(
    slots: &mut Slots,
    n: usize,
    range_of: impl Fn(usize) -> Option<PortRange>,
) -> Vec<u32> {
    let mut cuts: Vec<u32> = vec![0, 65536];
    for i in 0..n {
        if let Some(r) = range_of(i) {
            cuts.push(r.lo as u32);
            cuts.push(r.hi as u32 + 1);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut table = vec![0u32; PORT_ENTRIES as usize];
    for w in cuts.windows(2) {
        let port = w[0] as u16;
        let b = bitmap_of(n, |i| range_of(i).is_none_or(|r| r.contains(port)));
        let s = slots.slot(b);
        table[w[0] as usize..w[1] as usize].fill(s);
    }
    table[NO_PORT as usize] = slots.slot(bitmap_of(n, |i| range_of(i).is_none()));
    table
}

fn rule_entry(r: &Rule, set_index: &HashMap<&str, usize>) -> RuleEntry {
    let mut e = RuleEntry {
        rate: 0,
        burst: 0,
        limit_prefix4: 0,
        limit_prefix6: 0,
        _pad2: [0; 6],
        action: match r.action {
            RuleAction::Pass => xdpwall_common::action::PASS,
            RuleAction::Drop => xdpwall_common::action::DROP,
            RuleAction::RateLimit(_) => xdpwall_common::action::RATE_LIMIT,
        },
        flags: 0,
        proto: r.proto.unwrap_or(0),
        src_family: 0,
        src_len: 0,
        dst_family: 0,
        dst_len: 0,
        _pad: 0,
        sport: [0, 0],
        dport: [0, 0],
        src: [0; 16],
        dst: [0; 16],
        name: [0; 32],
    };
    match &r.src {
        Some(AddrMatch::Net(net)) => {
            e.flags |= matcher::SRC;
            (e.src_family, e.src_len, e.src) = net_fields(*net);
        }
        Some(AddrMatch::Set(name)) => {
            e.flags |= matcher::SRC_SET;
            e.src_len = set_index[name.as_str()] as u8;
        }
        None => {}
    }
    match &r.dst {
        Some(AddrMatch::Net(net)) => {
            e.flags |= matcher::DST;
            (e.dst_family, e.dst_len, e.dst) = net_fields(*net);
        }
        Some(AddrMatch::Set(name)) => {
            e.flags |= matcher::DST_SET;
            e.dst_len = set_index[name.as_str()] as u8;
        }
        None => {}
    }
    if let RuleAction::RateLimit(l) = r.action {
        e.rate = l.rate;
        e.burst = l.burst;
        e.limit_prefix4 = l.prefix4;
        e.limit_prefix6 = l.prefix6;
    }
    if r.proto.is_some() {
        e.flags |= matcher::PROTO;
    }
    if let Some(p) = r.sport {
        e.flags |= matcher::SPORT;
        e.sport = [p.lo, p.hi];
    }
    if let Some(p) = r.dport {
        e.flags |= matcher::DPORT;
        e.dport = [p.lo, p.hi];
    }
    if let Some(name) = &r.name {
        e.name = name_field(name);
    }
    e
}

fn net_fields(net: IpNet) -> (u8, u8, [u8; 16]) {
    let mut a = [0u8; 16];
    match net {
        IpNet::V4(n) => {
            a[..4].copy_from_slice(&n.addr().octets());
            (4, n.prefix_len(), a)
        }
        IpNet::V6(n) => (6, n.prefix_len(), n.addr().octets()),
    }
}

/// A name as the kernel tables keep it: UTF-8, at most 31 bytes, NUL padded.
fn name_field(name: &str) -> [u8; 32] {
    let mut field = [0; 32];
    let b = name.as_bytes();
    let len = b.len().min(31);
    field[..len].copy_from_slice(&b[..len]);
    field
}

/// The name in a kernel name field (empty when unused).
pub(crate) fn name_of(field: &[u8; 32]) -> String {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

/// Turns a kernel [`RuleEntry`] back into a rule (for `xdpwall status`); `set_names` are the
/// generation's sets in index order.
pub fn decode_rule(e: &RuleEntry, set_names: &[String]) -> Rule {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let net = |family: u8, len: u8, a: [u8; 16]| -> Option<IpNet> {
        let addr = if family == 4 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        };
        IpNet::new(addr, len).ok()
    };
    let has = |bit| e.flags & bit != 0;
    let name = name_of(&e.name);
    let set_name = |index: u8| {
        AddrMatch::Set(
            set_names
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| format!("set{index}")),
        )
    };
    let side = |net_bit, set_bit, family, len, a| {
        if has(net_bit) {
            net(family, len, a).map(AddrMatch::Net)
        } else if has(set_bit) {
            Some(set_name(len))
        } else {
            None
        }
    };
    Rule {
        name: (!name.is_empty()).then_some(name),
        action: if e.action == xdpwall_common::action::RATE_LIMIT {
            RuleAction::RateLimit(crate::rules::RateLimit {
                rate: e.rate,
                burst: e.burst,
                prefix4: e.limit_prefix4,
                prefix6: e.limit_prefix6,
            })
        } else {
            crate::rules::Action::from_code(e.action).into()
        },
        src: side(
            matcher::SRC,
            matcher::SRC_SET,
            e.src_family,
            e.src_len,
            e.src,
        ),
        dst: side(
            matcher::DST,
            matcher::DST_SET,
            e.dst_family,
            e.dst_len,
            e.dst,
        ),
        proto: has(matcher::PROTO).then_some(e.proto),
        sport: has(matcher::SPORT).then_some(PortRange {
            lo: e.sport[0],
            hi: e.sport[1],
        }),
        dport: has(matcher::DPORT).then_some(PortRange {
            lo: e.dport[0],
            hi: e.dport[1],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Action, Rule};

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet {
            rules,
            ..RuleSet::default()
        }
    }

    fn bit(b: &Bitmap, i: usize) -> bool {
        b.words[i / 64] >> (i % 64) & 1 == 1
    }

    #[test]
    fn empty_set_has_no_words_and_no_dims() {
        let t = compile(&RuleSet::default()).unwrap();
        assert_eq!((t.ranges.len(), t.info.addr6_table()), (0, false));
        assert_eq!(t.info.dims, 0);
        assert!(t.sport.is_empty() && t.dport.is_empty());
        assert_eq!(t.src.len(), 2, "a /0 per family");
    }

    /// The short list of every bitmap names exactly its rules, ascending, or says "many".
    fn assert_short_lists(t: &Tables) {
        for (slot, b) in t.bitmaps.iter().enumerate() {
            let rules: Vec<u16> = (0..MAX_RULES)
                .filter(|&i| bit(b, i))
                .map(|i| i as u16)
                .collect();
            if rules.len() <= FEW_RULES {
                assert_eq!(b.nfew as usize, rules.len(), "slot {slot}");
                assert_eq!(&b.few[..rules.len()], &rules[..], "slot {slot}");
            } else {
                assert_eq!(b.nfew, FEW_MANY, "slot {slot}");
            }
        }
    }

    #[test]
    fn short_lists_follow_the_bits_whatever_order_rules_are_added() {
        // Nested networks named by rules in descending order: each longer network's bitmap is
        // its parent's plus rules with lower indices, so insertions are out of order.
        let mut rules = Vec::new();
        for len in (8..=24).rev().step_by(2) {
            let mut r = Rule::new(Action::Drop);
            r.src = Some(format!("10.0.0.0/{len}").parse().unwrap());
            rules.push(r);
        }
        let mut any = Rule::new(Action::Pass);
        any.dst = Some("192.0.2.0/24".parse().unwrap());
        rules.push(any);
        let t = compile(&set(rules.clone())).unwrap();
        assert_short_lists(&t);
        let longest = lookup4(&t, 0, "10.0.0.1".parse().unwrap());
        let b = t.bitmaps[longest as usize];
        assert_eq!(
            b.nfew, FEW_MANY,
            "9 named rules + 1 without source: more than the list holds"
        );
        let sixteen = t.src.iter().find(|e| e.net.prefix_len() == 16).unwrap();
        let b = t.bitmaps[sixteen.slot as usize];
        assert_eq!(
            &b.few[..b.nfew as usize],
            &[4, 5, 6, 7, 8, 9],
            "/16../8 rules and the dst-only rule"
        );
        assert_eq!(t.info.few_dims, FEW_SRC | FEW_DST);

        // A destination set makes the source lists unusable (a set is not in the rule entry).
        let mut with_set = set(rules);
        with_set.sets.insert(
            "s".into(),
            crate::AddrSet::new(vec!["192.0.2.0/24".parse().unwrap()]),
        );
        with_set.rules[0].dst = Some(AddrMatch::Set("s".into()));
        let t = compile(&with_set).unwrap();
        assert_short_lists(&t);
        assert_eq!(t.info.few_dims, FEW_DST);

        // So does an IPv6 destination network (the program compares one IPv4 word).
        let mut v6 = set(vec![Rule::new(Action::Drop), Rule::new(Action::Pass)]);
        v6.rules[0].src = Some("10.0.0.0/8".parse().unwrap());
        v6.rules[1].dst = Some("2001:db8::/32".parse().unwrap());
        assert_eq!(compile(&v6).unwrap().info.few_dims, FEW_DST);
    }

    #[test]
    fn nested_prefixes_inherit_the_shorter_prefix_rules() {
        let mut a = Rule::new(Action::Drop);
        a.src = Some("10.0.0.0/8".parse().unwrap());
        let mut b = Rule::new(Action::Pass);
        b.src = Some("10.1.0.0/16".parse().unwrap());
        let c = Rule::new(Action::Pass);
        let t = compile(&set(vec![a, b, c])).unwrap();
        let slot = |net: &str| {
            let net: IpNet = net.parse().unwrap();
            let e = t.src.iter().chain(&t.src_hashed).find(|e| e.net == net);
            t.bitmaps[e.unwrap().slot as usize]
        };
        let s16 = slot("10.1.0.0/16");
        assert!(bit(&s16, 0) && bit(&s16, 1) && bit(&s16, 2));
        let s8 = slot("10.0.0.0/8");
        assert!(bit(&s8, 0) && !bit(&s8, 1) && bit(&s8, 2));
        let s0 = slot("0.0.0.0/0");
        assert!(!bit(&s0, 0) && !bit(&s0, 1) && bit(&s0, 2));
        let s6 = slot("::/0");
        assert_eq!(s6, s0, "no IPv6 rule: same bitmap, same slot");
    }

    fn src_rules(nets: impl Iterator<Item = IpNet>) -> RuleSet {
        set(nets
            .map(|n| {
                let mut r = Rule::new(Action::Drop);
                r.src = Some(n.into());
                r
            })
            .collect())
    }

    /// The program's IPv4 lookup, in user space: block entry, then the last range of the block
    /// starting at or before `addr`, or whether its host list holds `addr` (a plain scan, not
    /// the program's halving). Checks the entries' order, and that a short list lies in one
    /// line, on the way.
    fn lookup4(t: &Tables, dim: usize, addr: std::net::Ipv4Addr) -> u32 {
        let host = u32::from(addr);
        let b = t.blocks[dim][(host >> BLOCK4_BITS) as usize];
        if b.first & (HOSTS4 | SWITCH4) != 0 {
            let half = |i: usize| (t.ranges[i / 2] >> (i % 2 * 16)) as u16;
            let at = (b.first & !(HOSTS4 | SWITCH4)) as usize;
            let end = at + b.count as usize;
            let entries: Vec<u16> = (at + 1..=end).map(half).collect();
            assert!(entries.windows(2).all(|w| w[0] < w[1]), "sorted entries");
            if end - at < LIST4_LINE {
                assert_eq!(
                    at / LIST4_LINE,
                    end / LIST4_LINE,
                    "a short list in one line"
                );
            }
            let other = if b.first & HOSTS4 != 0 {
                entries.contains(&(host as u16))
            } else {
                entries.iter().filter(|&&e| e <= host as u16).count() % 2 == 1
            };
            return if other {
                half(at) as u32
            } else {
                b.slot as u32
            };
        }
        let ranges = &t.ranges[b.first as usize..][..b.count as usize];
        assert!(ranges.windows(2).all(|w| w[0] < w[1]), "sorted ranges");
        ranges
            .iter()
            .rev()
            .find(|&&e| e <= xdpwall_common::range4_key(host))
            .map_or(b.slot as u32, |&e| e & 0xffff)
    }

    /// The rules (one per network of `nets`, in order) whose network contains `addr`: what the
    /// slot's bitmap must hold.
    fn containing(nets: &[IpNet], addr: std::net::Ipv4Addr) -> Vec<usize> {
        let a = std::net::IpAddr::V4(addr);
        (0..nets.len()).filter(|&i| nets[i].contains(&a)).collect()
    }

    fn rules_of(b: &Bitmap, n: usize) -> Vec<usize> {
        (0..n)
            .filter(|&i| b.words[i / 64] >> (i % 64) & 1 != 0)
            .collect()
    }

    #[test]
    fn ipv4_networks_longer_than_16_bits_become_ranges_of_their_blocks() {
        let text = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.1.2.3/32",
            "10.2.16.0/20",
            "10.3.0.0/17",
            "10.3.0.0/24",
            "10.3.255.255/32",
            "10.4.0.0/31",
            "10.4.0.2/31",
        ];
        let nets: Vec<IpNet> = text.iter().map(|n| n.parse().unwrap()).collect();
        let t = compile(&src_rules(nets.iter().copied())).unwrap();
        assert_eq!(t.long4, 8);
        assert!(t.src_hashed.is_empty());
        assert!(!t.ranges.is_empty());
        assert!(!t.info.addr6_table());
        let block = |a: u8, b: u8| t.blocks[0][(a as usize) << 8 | b as usize];
        // 10.1: .2.0, .2.3, .2.4, .3.0; 10.2: 16.0, 32.0; 10.3: 1.0, 128.0, 255.255 (0.0
        // starts the block with the /24's slot); 10.4: one range from 0.0 to 0.3, both /31s
        // having the same rules (none in common, one each: different slots) -> 0.2, 0.4.
        assert_eq!(block(10, 1).count, 4);
        assert_eq!(block(10, 2).count, 2);
        assert_eq!(block(10, 3).count, 3);
        assert_eq!(block(10, 4).count, 2);
        assert_eq!(block(10, 255).count, 0);
        assert_eq!(
            block(11, 0),
            Block4 {
                slot: block(9, 255).slot,
                ..Block4::default()
            }
        );
        // Every address of interest (each network's first and last, and its neighbours)
        // gets the slot whose bitmap holds exactly the rules containing it.
        let mut probes = Vec::new();
        for n in &nets {
            let lo = match n.network() {
                std::net::IpAddr::V4(a) => u32::from(a),
                _ => unreachable!(),
            };
            let hi = match n.broadcast() {
                std::net::IpAddr::V4(a) => u32::from(a),
                _ => unreachable!(),
            };
            probes.extend([
                lo.wrapping_sub(1),
                lo,
                lo + 1,
                hi.wrapping_sub(1),
                hi,
                hi.wrapping_add(1),
            ]);
        }
        probes.extend([0, u32::MAX, 0x0b00_0000]);
        for p in probes {
            let a = std::net::Ipv4Addr::from(p);
            let slot = lookup4(&t, 0, a);
            assert_eq!(
                rules_of(&t.bitmaps[slot as usize], nets.len()),
                containing(&nets, a),
                "{a}"
            );
        }
        // No rule names a destination: the program does not read its blocks, none are built.
        assert!(t.blocks[1].is_empty());
    }

    /// A small, reproducible stream of numbers for the random tests (xorshift32).
    fn xorshift(mut x: u32) -> impl FnMut() -> u32 {
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    #[test]
    fn random_ipv4_networks_match_like_a_linear_scan() {
        // Nested and neighbouring networks in a few blocks, and addresses all over them.
        let mut next = xorshift(0x9e37_79b9);
        let nets: Vec<IpNet> = (0..600)
            .map(|_| {
                let r = next();
                let addr = 0x0a00_0000 | (r % 3) << 16 | next() & 0xffff;
                let len = 17 + next() % 16;
                IpNet::new(std::net::Ipv4Addr::from(addr).into(), len as u8)
                    .unwrap()
                    .trunc()
            })
            .chain([
                "10.0.0.0/16".parse().unwrap(),
                "10.0.0.0/12".parse().unwrap(),
            ])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let t = compile(&src_rules(nets.iter().copied())).unwrap();
        for _ in 0..20_000 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 | (next() % 4) << 16 | next() & 0xffff);
            let slot = lookup4(&t, 0, a);
            assert_eq!(
                rules_of(&t.bitmaps[slot as usize], nets.len()),
                containing(&nets, a),
                "{a} {:?}",
                containing(&nets, a)
                    .iter()
                    .map(|&i| nets[i])
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn blocks_of_one_sets_hosts_and_networks_become_lists() {
        // A set of hosts (one slot) under a covering /8 and /24, with neighbours (runs of 3
        // and 5), hosts at a block's first and last address, a host that another rule names as
        // well (its own slot), blocks crowded enough that their lists cross lines, and blocks
        // where the set has networks too.
        let mut next = xorshift(0x2545_f491);
        let v4 = |a: u32| std::net::Ipv4Addr::from(a);
        let mut hosts: Vec<u32> = (0..3000)
            .map(|_| 0x0a00_0000 | (next() % 40) << 16 | next() & 0xffff)
            .collect();
        hosts.extend([
            0x0a30_0005,
            0x0a30_0006,
            0x0a30_0007,
            0x0a31_0000,
            0x0a31_ffff,
        ]);
        hosts.extend((0..5).map(|i| 0x0a32_0100 + i));
        hosts.extend([0x0a33_0001, 0x0a33_0203]);
        // Blocks 10.64 to 10.79 hold set networks too (/17 to /28) besides hosts: two slots,
        // switch lists.
        let set_nets: Vec<IpNet> = (0..16u32)
            .map(|b| {
                let len = 17 + next() % 12;
                IpNet::new(
                    v4(0x0a40_0000 | b << 16 | next() & 0xffff).into(),
                    len as u8,
                )
                .unwrap()
                .trunc()
            })
            .collect();
        hosts.extend((0..16 * 40).map(|i| 0x0a40_0000 | (i % 16) << 16 | next() & 0xffff));
        let nets: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "10.34.2.0/24".parse().unwrap(),
            "10.51.2.3/32".parse().unwrap(),
        ];
        let mut s = set(nets
            .iter()
            .map(|&n| {
                let mut r = Rule::new(Action::Drop);
                r.src = Some(n.into());
                r
            })
            .collect());
        let mut r = Rule::new(Action::Pass);
        r.src = Some(AddrMatch::Set("s".into()));
        s.rules.push(r);
        s.sets.insert(
            "s".into(),
            crate::rules::AddrSet::new(
                hosts
                    .iter()
                    .map(|&h| IpNet::from(std::net::IpAddr::V4(v4(h))))
                    .chain(set_nets.iter().copied())
                    .collect(),
            ),
        );
        let t = compile(&s).unwrap();
        let block = |b: u32| t.blocks[0][(0x0a00 | b) as usize];
        let lists = (0..0x50).filter(|&b| block(b).first & HOSTS4 != 0).count();
        // Every block of random hosts but the one with the /24 (10.34) and the block's edges
        // are host lists; the runs of 3 (two starts are fewer than three hosts) and 5 (a range
        // longer than 4) and the blocks with set networks are switch lists; the /24 (three
        // slots) and the host named twice (a third slot) make ranges.
        assert_eq!(lists, 39 + 1, "host lists");
        for b in [0x22, 0x33] {
            assert_eq!(block(b).first & (HOSTS4 | SWITCH4), 0, "block 10.{b}");
        }
        let switches: Vec<u32> = (0..0x50)
            .filter(|&b| block(b).first & SWITCH4 != 0)
            .collect();
        assert_eq!(
            switches,
            [0x30, 0x32]
                .into_iter()
                .chain(0x40..0x50)
                .collect::<Vec<_>>()
        );
        // The lists take less than ranges would: under 3 bytes per host (with the padding),
        // not 8.
        assert!(
            t.ranges.len() * 4 < 3 * hosts.len(),
            "{} words",
            t.ranges.len()
        );
        let contains = |a: u32| {
            let mut r = containing(&nets, v4(a));
            if hosts.contains(&a)
                || set_nets
                    .iter()
                    .any(|n| n.contains(&std::net::IpAddr::V4(v4(a))))
            {
                r.push(nets.len());
            }
            r
        };
        let probes = hosts
            .iter()
            .flat_map(|&h| [h.wrapping_sub(1), h, h + 1])
            .chain(set_nets.iter().flat_map(|n| {
                let (lo, hi) = match (n.network(), n.broadcast()) {
                    (std::net::IpAddr::V4(lo), std::net::IpAddr::V4(hi)) => {
                        (u32::from(lo), u32::from(hi))
                    }
                    _ => unreachable!(),
                };
                [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]
            }))
            .chain((0..20_000).map(|_| 0x0a00_0000 | (next() % 0x50) << 16 | next() & 0xffff));
        for a in probes {
            let slot = lookup4(&t, 0, v4(a));
            assert_eq!(
                rules_of(&t.bitmaps[slot as usize], nets.len() + 1),
                contains(a),
                "{}",
                v4(a)
            );
        }
    }

    #[test]
    fn longest_ipv6_prefix_lengths_go_to_the_hash_and_the_trie_keeps_shorter_ones() {
        use std::net::Ipv6Addr;
        let net = |a: u128, l: u8| IpNet::new(Ipv6Addr::from(a).into(), l).unwrap().trunc();
        let top = 0x2001_0db8u128 << 96;
        // Three lengths: all hashed, the trie keeps only the /0s.
        let t = compile(&src_rules(
            (0..300u128).map(|i| net(top | i << 64, [112, 120, 128][i as usize % 3])),
        ))
        .unwrap();
        assert_eq!(t.info.hashed6[0], [128, 120, 112, NO_LEN]);
        assert_eq!((t.ranges.len(), t.info.addr6_table()), (0, true));
        assert_eq!(t.src.len(), 2);
        assert_eq!(t.src_hashed.len(), 300);
        assert_eq!(t.info.block6, [0, 0]);
        // Nine lengths, 100 networks each: hashing four leaves 500 in the trie, so only the
        // hosts are hashed and the others go into blocks (/64: none is that short), their
        // ranges after the IPv4 ones, whole ranges from a boundary on.
        let many = (0..900u128).map(|i| net(top | i << 64, 128 - (i % 9) as u8));
        let mut rules = src_rules(many);
        let mut v4 = Rule::new(Action::Drop);
        v4.src = Some(AddrMatch::Net("10.1.2.0/24".parse().unwrap()));
        rules.rules.push(v4);
        let t = compile(&rules).unwrap();
        assert_eq!(t.info.hashed6[0], [128, NO_LEN, NO_LEN, NO_LEN]);
        assert_eq!(t.info.block6, [64, 0]);
        assert_eq!(t.src_hashed.len(), 100);
        assert!(
            t.src.iter().all(|e| e.net.prefix_len() <= 24),
            "{:?}",
            t.src
        );
        // 800 blocks of two ranges (the block's own, the network's), after the IPv4 switch
        // list (two words, padded to one range).
        let block = xdpwall_common::block6_key(0);
        let items: Vec<_> = t
            .addr6
            .values()
            .flatten()
            .filter(|e| e.key == block)
            .collect();
        assert_eq!(items.len(), 800);
        assert!(items.iter().all(|e| e.words[3] == 2 && e.words[2] % 2 == 1));
        assert_eq!(t.ranges.len(), RANGE6_WORDS * (1 + 1600));
        // Too many networks of /32 and shorter to leave the trie short: no blocks.
        let many = (0..900u128).map(|i| net(0x2001u128 << 112 | i << 100, 32 + (i % 9) as u8));
        assert_eq!(compile(&src_rules(many)).unwrap().info.block6, [0, 0]);
        // Nine lengths, most networks long (a set): hashing /128, /127 and /126 leaves 60 <= 64.
        let skewed: Vec<IpNet> = (0..1000u128)
            .map(|i| net(top | i << 64, 128))
            .chain((0..1000u128).map(|i| net(top | i << 64 | 1 << 40, 127)))
            .chain((0..70u128).map(|i| net(top | i << 80 | 1 << 50, 126 - (i % 7) as u8)))
            .collect();
        let mut s = set(vec![Rule::new(Action::Drop)]);
        s.rules[0].src = Some(AddrMatch::Set("s".into()));
        s.sets
            .insert("s".into(), crate::rules::AddrSet::new(skewed));
        let t = compile(&s).unwrap();
        assert_eq!(t.info.hashed6[0], [128, 127, 126, NO_LEN]);
        assert!(t.src.iter().all(|e| e.net.prefix_len() < 126));
        assert!(t.src.len() - 2 <= xdpwall_common::TRIE_TARGET);
        assert_eq!(t.info.block6, [0, 0]);
    }

    #[test]
    fn port_tables_cover_range_edges_and_portless_packets() {
        let mut a = Rule::new(Action::Drop);
        a.dport = Some(PortRange { lo: 80, hi: 90 });
        let b = Rule::new(Action::Pass);
        let t = compile(&set(vec![a, b])).unwrap();
        assert_eq!(t.dport.len(), PORT_ENTRIES as usize);
        let has0 = |p: usize| bit(&t.bitmaps[t.dport[p] as usize], 0);
        assert!(!has0(79) && has0(80) && has0(90) && !has0(91) && !has0(NO_PORT as usize));
        assert!(bit(&t.bitmaps[t.dport[NO_PORT as usize] as usize], 1));
        assert!(t.sport.is_empty());
        assert_eq!(t.info.dims, dim::DPORT);
    }

    #[test]
    fn worst_case_slot_count_fits() {
        let rules = (0..MAX_RULES)
            .map(|i| {
                let mut r = Rule::new(Action::Drop);
                let net = |a: u32, len| IpNet::new(std::net::Ipv4Addr::from(a).into(), len);
                r.src = Some(net(i as u32 * 256, 24).unwrap().into());
                r.dst = Some(net(i as u32 * 65536, 16).unwrap().into());
                r.proto = Some(if i % 2 == 0 { 6 } else { 17 });
                r.sport = Some(PortRange {
                    lo: i as u16 * 60,
                    hi: i as u16 * 60 + 1,
                });
                r.dport = Some(PortRange {
                    lo: i as u16 * 60 + 2,
                    hi: i as u16 * 60 + 3,
                });
                r
            })
            .collect();
        let t = compile(&set(rules)).unwrap();
        assert!(t.bitmaps.len() > MAX_RULES, "{}", t.bitmaps.len());
        assert!(t.bitmaps.len() <= SLOTS_PER_GEN as usize);
    }

    #[test]
    fn rule_entries_decode_to_the_same_rule() {
        let text = "[[rule]]\nname = \"x\"\naction = \"drop\"\nsrc = \"2001:db8::/48\"\ndst = \"2001:db8:1::1\"\nproto = \"udp\"\nsport = \"1-2\"\ndport = 53\n\
                    [[rule]]\naction = \"pass\"\n";
        let s: RuleSet = text.parse().unwrap();
        let t = compile(&s).unwrap();
        let back: Vec<Rule> = t.rules.iter().map(|e| decode_rule(e, &[])).collect();
        assert_eq!(back, s.rules);
    }
}
