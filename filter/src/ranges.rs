//! Networks cut into ranges of one longest match, per block of addresses: the IPv4 /16 blocks
//! ([`xdpwall_common::Block4`], whose forms `compile` chooses) and the IPv6 blocks
//! ([`xdpwall_common::GenInfo::block6`]) share the sweep ([`cut`]). This module also decides
//! where one dimension's IPv6 networks go: the address table, blocks or the trie ([`split6`]).

use std::collections::HashMap;

use ipnet::{IpNet, Ipv6Net};
use xdpwall_common::{
    BLOCK6_MAX, BLOCK6_MIN, MAX_HASHED_LENS, RANGE6_STEPS, RANGE6_WORDS, TRIE_TARGET,
};

use crate::compile::LpmEntry;

/// The ranges of one block of `size` addresses: (first address, slot), relative to the block,
/// the first at 0, each with the slot of the longest network containing it (`outer`, the
/// block's own, where none of `nets` does), no two neighbours with the same slot.
///
/// `nets` are the block's longer networks as (first address, end (exclusive), slot), relative
/// to the block and sorted by first address, outer before inner (as nested prefixes are). A
/// sweep: a stack holds the networks open at the current address, and each range starts where
/// a network starts or where the innermost open one ends. Each network adds at most two ranges.
pub(crate) fn cut(nets: &[(u128, u128, u32)], size: u128, outer: u32) -> Vec<(u128, u32)> {
    let mut out: Vec<(u128, u32)> = vec![(0, outer)];
    let push = |out: &mut Vec<(u128, u32)>, at: u128, slot: u32| {
        let last = out.len() - 1;
        if out[last].0 == at {
            out[last].1 = slot;
            if last > 0 && out[last - 1].1 == slot {
                out.pop();
            }
        } else if out[last].1 != slot {
            out.push((at, slot));
        }
    };
    // Open networks: (end, slot). The block itself is the outermost.
    let mut open: Vec<(u128, u32)> = vec![(size, outer)];
    for &(lo, hi, slot) in nets {
        while open.last().is_some_and(|o| o.0 <= lo) {
            let (end, _) = open.pop().expect("the block stays open");
            push(&mut out, end, open.last().expect("the block stays open").1);
        }
        push(&mut out, lo, slot);
        open.push((hi, slot));
    }
    while open.len() > 1 {
        let (end, _) = open.pop().expect("checked");
        // A network that ends with the block starts no range after it.
        if end < size {
            push(&mut out, end, open.last().expect("checked").1);
        }
    }
    out
}

/// One dimension's IPv6 networks, placed (see [`split6`]).
#[derive(Debug, Default)]
pub(crate) struct Split6 {
    /// Networks for the address table.
    pub hashed: Vec<LpmEntry>,
    /// Their prefix lengths, longest first ([`xdpwall_common::GenInfo::hashed6`]).
    pub lens: Vec<u8>,
    /// Networks for the trie (the /0 always).
    pub lpm: Vec<LpmEntry>,
    /// Block length ([`xdpwall_common::GenInfo::block6`]), 0 for none.
    pub block_len: u8,
    /// Each block: its network, its first range (counted in ranges from the generation's
    /// start of the range array) and its number of ranges.
    pub blocks: Vec<(Ipv6Net, u32, u32)>,
    /// The blocks' ranges, [`RANGE6_WORDS`] words each (see
    /// [`xdpwall_common::block6_key`]).
    pub ranges: Vec<u32>,
    /// Networks cut into the blocks' ranges.
    pub long: usize,
}

/// Where one dimension's IPv6 networks `v6` go (the /0 among them; each with its slot).
///
/// Hashed: all lengths when there are at most [`MAX_HASHED_LENS`] (the trie keeps only the
/// /0); otherwise host entries (/128) plus as few of the next longest lengths as leave at most
/// [`TRIE_TARGET`] prefixes in the trie. A packet then needs one hash lookup per hashed length
/// and, on a miss, one trie lookup; every length left in the trie is shorter than the hashed
/// ones, so the first hash hit (longest first) is the longest match.
///
/// When that cannot get the trie down to [`TRIE_TARGET`] (a blocklist of networks of many
/// lengths), blocks instead ([`blocks6`]): hosts stay hashed, the other networks longer than
/// the block length are cut into ranges per block, and the trie keeps the rest. Blocks take
/// `first` on in the range array (counted in ranges), at most `room` ranges, and the hosts and
/// blocks at most `entries` of the address table; when they do not fit, or a block would hold
/// more ranges than the program's search reaches, the split falls back to hashing and the
/// trie (which keeps the address table at most as full as before).
pub(crate) fn split6(v6: Vec<LpmEntry>, first: usize, room: usize, entries: usize) -> Split6 {
    let mut per_len = [0usize; 129];
    for e in v6.iter().filter(|e| e.net.prefix_len() > 0) {
        per_len[e.net.prefix_len() as usize] += 1;
    }
    // How many entries each length has, longest first (without the /0).
    let counts: Vec<(u8, usize)> = (1..=128u8)
        .rev()
        .filter(|&l| per_len[l as usize] > 0)
        .map(|l| (l, per_len[l as usize]))
        .collect();
    let base = usize::from(counts.first().is_some_and(|c| c.0 == 128));
    let total: usize = counts.iter().map(|c| c.1).sum();
    let left = |k: usize| total - counts[..k].iter().map(|c| c.1).sum::<usize>();
    let k = if counts.len() <= MAX_HASHED_LENS {
        counts.len()
    } else {
        (base..=MAX_HASHED_LENS)
            .find(|&k| left(k) <= TRIE_TARGET)
            .unwrap_or(base)
    };
    if left(k) > TRIE_TARGET {
        if let Some(s) = blocks6(&v6, &per_len, first, room) {
            if s.hashed.len() + s.blocks.len() <= entries {
                return s;
            }
        }
    }
    let lens: Vec<u8> = counts[..k].iter().map(|c| c.0).collect();
    let (hashed, lpm) = v6
        .into_iter()
        .partition(|e| lens.contains(&e.net.prefix_len()));
    Split6 {
        hashed,
        lens,
        lpm,
        ..Split6::default()
    }
}

/// The blocks' split (see [`split6`]), or `None` when there is no block length that leaves at
/// most [`TRIE_TARGET`] networks in the trie, when a block would have more than
/// `1 << RANGE6_STEPS` ranges or when the ranges exceed `room`.
///
/// The block length is the longest from [`BLOCK6_MIN`] to [`BLOCK6_MAX`] whose networks and
/// the shorter ones (hosts and the /0 aside) are at most [`TRIE_TARGET`]: the longer the
/// blocks, the fewer networks each holds. A block's own slot (its first range's, unless a
/// network starts there) is that of the longest of those shorter networks containing it.
fn blocks6(v6: &[LpmEntry], per_len: &[usize; 129], first: usize, room: usize) -> Option<Split6> {
    let len = (BLOCK6_MIN..=BLOCK6_MAX)
        .rev()
        .find(|&l| per_len[1..=l as usize].iter().sum::<usize>() <= TRIE_TARGET)?;
    let mut s = Split6 {
        block_len: len,
        ..Split6::default()
    };
    let mut long: Vec<(Ipv6Net, u32)> = Vec::new();
    for e in v6 {
        let IpNet::V6(net) = e.net else {
            unreachable!("IPv6 networks only: {}", e.net)
        };
        match net.prefix_len() {
            128 => s.hashed.push(e.clone()),
            p if p <= len => s.lpm.push(e.clone()),
            _ => long.push((net, e.slot)),
        }
    }
    if !s.hashed.is_empty() {
        s.lens.push(128);
    }
    s.long = long.len();
    let own: HashMap<Ipv6Net, u32> = s
        .lpm
        .iter()
        .map(|e| match e.net {
            IpNet::V6(n) => (n, e.slot),
            IpNet::V4(_) => unreachable!("IPv6 networks only"),
        })
        .collect();
    let mut short_lens: Vec<u8> = own.keys().map(|n| n.prefix_len()).collect();
    short_lens.sort_unstable();
    short_lens.dedup();
    let outer_slot = |block: &Ipv6Net| {
        short_lens
            .iter()
            .rev()
            .find_map(|&l| own.get(&Ipv6Net::new(block.network(), l).unwrap().trunc()))
            .copied()
            .expect("every dimension has a /0")
    };
    let start = |n: &Ipv6Net| u128::from(n.network());
    long.sort_unstable_by_key(|(n, _)| (start(n), n.prefix_len()));
    let shift = 128 - len as u32;
    let mut i = 0;
    while i < long.len() {
        let block = start(&long[i].0) >> shift << shift;
        let mut nets = Vec::new();
        while i < long.len() && start(&long[i].0) >> shift << shift == block {
            let (n, slot) = long[i];
            let lo = start(&n) - block;
            nets.push((lo, lo + (1u128 << (128 - n.prefix_len() as u32)), slot));
            i += 1;
        }
        let net = Ipv6Net::new(block.into(), len).expect("len is at most 128");
        let out = cut(&nets, 1u128 << shift, outer_slot(&net));
        let count = out.len();
        let at = s.ranges.len() / RANGE6_WORDS;
        if count > 1 << RANGE6_STEPS || at + count > room {
            return None;
        }
        s.blocks.push((net, (first + at) as u32, count as u32));
        for (rel, slot) in out {
            let a = block + rel;
            s.ranges
                .extend([(a >> 64) as u32, (a >> 32) as u32, a as u32, slot]);
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, for reproducible addresses.
    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    fn net(a: u128, len: u8) -> LpmEntry {
        LpmEntry {
            net: IpNet::V6(Ipv6Net::new(a.into(), len).unwrap().trunc()),
            slot: 0,
        }
    }

    /// What the program does with a split: the hashed lengths, longest first; the address's
    /// block and the last of its ranges starting at or before it; the trie.
    fn lookup(s: &Split6, first: usize, a: u128) -> u32 {
        for &len in &s.lens {
            let n = IpNet::V6(Ipv6Net::new(a.into(), len).unwrap().trunc());
            if let Some(e) = s.hashed.iter().find(|e| e.net == n) {
                return e.slot;
            }
        }
        if s.block_len != 0 {
            let b = Ipv6Net::new(a.into(), s.block_len).unwrap().trunc();
            if let Some(&(_, at, count)) = s.blocks.iter().find(|blk| blk.0 == b) {
                let range = |i: usize| {
                    let w = &s.ranges[(i - first) * RANGE6_WORDS..][..RANGE6_WORDS];
                    let start = (a >> 96) << 96
                        | (w[0] as u128) << 64
                        | (w[1] as u128) << 32
                        | w[2] as u128;
                    (start, w[3])
                };
                let at = at as usize;
                assert_eq!(
                    range(at).0,
                    u128::from(b.network()),
                    "starts with its block"
                );
                let i = (at..at + count as usize)
                    .rev()
                    .find(|&i| range(i).0 <= a)
                    .unwrap();
                return range(i).1;
            }
        }
        longest(&s.lpm, a)
    }

    /// The slot of the longest of `nets` containing `a`, by a linear scan.
    fn longest(nets: &[LpmEntry], a: u128) -> u32 {
        let a: std::net::IpAddr = std::net::Ipv6Addr::from(a).into();
        nets.iter()
            .filter(|e| e.net.contains(&a))
            .max_by_key(|e| e.net.prefix_len())
            .expect("the /0")
            .slot
    }

    /// A blocklist's shape: hosts, networks of every length from /48 on inside 2001:db8::/32,
    /// nested ones, networks at a block's first and last address, and two short networks
    /// whose slots the blocks inside them take.
    fn blocklist() -> Vec<LpmEntry> {
        let mut next = rng(5);
        let base = 0x2001_0db8u128 << 96;
        let mut v = vec![net(0, 0), net(base, 32), net(base | 7 << 84, 44)];
        for i in 0..3000u128 {
            let r = (next() as u128) << 32 | next() as u128 >> 32;
            v.push(net(base | r, 128));
            let len = 48 + (i % 80) as u8;
            v.push(net(
                base | (next() as u128) << 32 | (next() >> 32) as u128,
                len,
            ));
        }
        // Nested in one /48, one at its start, two ending with it.
        let b = base | 0x1234u128 << 80;
        let end = 1u128 << 80;
        for (off, len) in [
            (0, 50),
            (0, 64),
            (0, 100),
            (1 << 60, 70),
            (end - (1 << 63), 65),
            (end - 256, 120),
        ] {
            v.push(net(b | off, len));
        }
        for (i, e) in v.iter_mut().enumerate() {
            e.slot = i as u32 % 11;
        }
        let mut seen = std::collections::HashSet::new();
        v.retain(|e| seen.insert(e.net));
        v
    }

    /// The slot of the longest of `nets` containing an address, by trying every length
    /// (the linear scan is too slow for thousands of addresses against thousands of networks).
    fn oracle(nets: &[LpmEntry]) -> impl Fn(u128) -> u32 {
        let slots: HashMap<IpNet, u32> = nets.iter().map(|e| (e.net, e.slot)).collect();
        move |a| {
            (0..=128u8)
                .rev()
                .find_map(|l| {
                    let n = Ipv6Net::new(a.into(), l).unwrap().trunc();
                    slots.get(&IpNet::V6(n)).copied()
                })
                .expect("the /0")
        }
    }

    fn edges(nets: &[LpmEntry]) -> Vec<u128> {
        let mut out = Vec::new();
        for e in nets {
            let IpNet::V6(n) = e.net else { unreachable!() };
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            out.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
        }
        out
    }

    #[test]
    fn ipv6_blocks_find_the_longest_network() {
        let v = blocklist();
        let first = 1234;
        let s = split6(v.clone(), first, usize::MAX, usize::MAX);
        // 2 short networks and about 37 per length from /48 on: the longest block length that
        // leaves at most TRIE_TARGET in the trie.
        assert_eq!(s.block_len, 48);
        assert_eq!(s.lens, vec![128]);
        assert!(s.lpm.len() <= TRIE_TARGET + 1, "{}", s.lpm.len());
        let hosts = v.iter().filter(|e| e.net.prefix_len() == 128).count();
        assert_eq!(s.hashed.len(), hosts);
        assert!(s.blocks.len() > 1000, "{} blocks", s.blocks.len());
        let ranges = s.ranges.len() / RANGE6_WORDS;
        assert_eq!(s.blocks.iter().map(|b| b.2 as usize).sum::<usize>(), ranges);
        let long = v.len() - s.hashed.len() - s.lpm.len();
        assert!(
            ranges <= 2 * long + s.blocks.len(),
            "{ranges} ranges, {long} networks"
        );
        let mut next = rng(9);
        let mut addrs = edges(&v);
        addrs.extend((0..20_000).map(|_| 0x2001_0db8u128 << 96 | next() as u128));
        addrs.extend((0..20_000).map(|_| 0x2001_0db8u128 << 96 | (next() as u128) << 32));
        let longest_of_v = oracle(&v);
        for a in addrs {
            assert_eq!(
                lookup(&s, first, a),
                longest_of_v(a),
                "{}",
                std::net::Ipv6Addr::from(a)
            );
        }
    }

    #[test]
    fn ipv6_blocks_give_way_when_they_do_not_fit() {
        let v = blocklist();
        let s = split6(v.clone(), 0, 100, usize::MAX);
        assert_eq!(s.block_len, 0);
        assert!(s.blocks.is_empty() && s.ranges.is_empty());
        // Nor when the address table could not take the blocks besides the hosts.
        let hosts = v.iter().filter(|e| e.net.prefix_len() == 128).count();
        assert_eq!(split6(v.clone(), 0, usize::MAX, hosts + 10).block_len, 0);
        assert_eq!(
            s.lens,
            vec![128],
            "only hosts: the trie target is out of reach"
        );
        let longest_of_v = oracle(&v);
        for a in edges(&v) {
            assert_eq!(lookup(&s, 0, a), longest_of_v(a));
        }
        // More than one block can search: 2,100 networks of /100 to /104 in one /64.
        let base = 0x2001_0db8_0000_0001u128 << 64;
        let mut crowded: Vec<LpmEntry> = (0..2100u128)
            .map(|i| net(base | i << 30, 100 + (i % 5) as u8))
            .collect();
        for (i, e) in crowded.iter_mut().enumerate() {
            e.slot = 1 + i as u32 % 3;
        }
        crowded.push(net(0, 0));
        let s = split6(crowded.clone(), 0, usize::MAX, usize::MAX);
        assert_eq!(s.block_len, 0, "4,201 ranges in one block");
        // Fewer fit.
        let s = split6(crowded[1000..].to_vec(), 0, usize::MAX, usize::MAX);
        assert_eq!(s.block_len, BLOCK6_MAX);
        assert_eq!(s.blocks.len(), 1);
        for a in edges(&crowded[1000..]) {
            assert_eq!(lookup(&s, 0, a), longest(&crowded[1000..], a));
        }
    }

    /// Small sets keep today's split: every length hashed, the trie holds only the /0.
    #[test]
    fn few_ipv6_lengths_are_hashed_not_blocked() {
        let base = 0x2001_0db8u128 << 96;
        let v = vec![net(0, 0), net(base, 48), net(base | 5, 128), net(base, 64)];
        let s = split6(v, 0, usize::MAX, usize::MAX);
        assert_eq!(s.block_len, 0);
        assert_eq!(s.lens, vec![128, 64, 48]);
        assert_eq!(s.lpm.len(), 1);
    }
}
