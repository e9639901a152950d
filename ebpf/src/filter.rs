//! The `xdpwall` program: maps, classification and accounting.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use xdpwall_common::{
    action, addr_buckets, addr_key, block6_key, cause, dim, matcher, range4_key, stat, Addr6Bucket,
    Addr6Entry, Bitmap, Block4, Bucket, Config, Counter, Event, GenInfo, Lpm6Key, RangeLine,
    RateKey, RuleEntry, SetInfo, ADDR_BUCKETS, BITMAP_WORDS, BLOCK4_BITS, BLOCKS4,
    EVENT_RING_BYTES, FEW_DST, FEW_RULES, FEW_SRC, GENERATIONS, GEN_PREFIX_BITS, HOSTS4,
    LIST4_LINE, LPM_ENTRIES_PER_GEN, MAP_F_MMAPABLE, MAX_HASHED_LENS, MAX_RULES, MAX_SETS, NO_LEN,
    NO_PORT, PORT_ENTRIES, PROTO_ENTRIES, RANGE4_STEPS, RANGE6_STEPS, RANGE6_WORDS, RANGES_PER_GEN,
    RANGE_LINE, RATE_ENTRIES, SLOTS_PER_GEN, SLOT_ALL, SNAP_MAX, SWITCH4, TOKEN,
};

use crate::parse::{parse, Packet, Parsed};

#[map]
static XW_CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map]
static XW_GEN_INFO: Array<GenInfo> = Array::with_max_entries(GENERATIONS, 0);
#[map]
static XW_RULES: Array<RuleEntry> = Array::with_max_entries(GENERATIONS * MAX_RULES as u32, 0);
#[map]
static XW_BITMAPS: Array<Bitmap> =
    Array::with_max_entries(GENERATIONS * SLOTS_PER_GEN, MAP_F_MMAPABLE);
#[map]
static XW_BLOCK4: Array<Block4> =
    Array::with_max_entries(GENERATIONS * 2 * BLOCKS4, MAP_F_MMAPABLE);
#[map]
static XW_SRC6: LpmTrie<Lpm6Key, u32> =
    LpmTrie::with_max_entries(GENERATIONS * LPM_ENTRIES_PER_GEN, 0);
#[map]
static XW_DST6: LpmTrie<Lpm6Key, u32> =
    LpmTrie::with_max_entries(GENERATIONS * LPM_ENTRIES_PER_GEN, 0);
#[map]
static XW_PROTO: Array<u32> = Array::with_max_entries(GENERATIONS * PROTO_ENTRIES, MAP_F_MMAPABLE);
#[map]
static XW_SPORT: Array<u32> = Array::with_max_entries(GENERATIONS * PORT_ENTRIES, MAP_F_MMAPABLE);
#[map]
static XW_DPORT: Array<u32> = Array::with_max_entries(GENERATIONS * PORT_ENTRIES, MAP_F_MMAPABLE);
#[map]
static XW_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(stat::COUNT, 0);
#[map]
static XW_RULE_STATS: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(GENERATIONS * MAX_RULES as u32, 0);
#[map]
static XW_RULE_LIMITED: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(GENERATIONS * MAX_RULES as u32, 0);
#[map]
static XW_RANGES: Array<RangeLine> = Array::with_max_entries(
    GENERATIONS * RANGES_PER_GEN / RANGE_LINE as u32,
    MAP_F_MMAPABLE,
);
#[map]
static XW_ADDR6: Array<Addr6Bucket> =
    Array::with_max_entries(GENERATIONS * ADDR_BUCKETS, MAP_F_MMAPABLE);
/// Only user space reads it; declared here so that it lives with the other maps.
#[map]
static XW_SETS: Array<SetInfo> = Array::with_max_entries(GENERATIONS * MAX_SETS, 0);
#[map]
static XW_RATE: LruHashMap<RateKey, Bucket> = LruHashMap::with_max_entries(RATE_ENTRIES, 0);
#[map]
static XW_EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// The outcome for one frame.
struct Verdict {
    action: u8,
    cause: u8,
    rule: u32,
    gen: u32,
}

#[xdp]
pub fn xdpwall(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    // Missing entries cannot happen (arrays are preallocated); passing keeps a broken setup
    // visible instead of black-holing the interface.
    let Some(cfg) = XW_CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let mut slot = core::mem::MaybeUninit::uninit();
    let pkt = Packet::zeroed(&mut slot);
    let v = filter(&ctx, cfg, len, pkt);
    let drop = v.action == action::DROP;
    let (stat_index, every) = if drop {
        (stat::DROP, &cfg.drop_every)
    } else {
        (stat::PASS, &cfg.pass_every)
    };
    // Every N-th drop (pass) of this CPU is sampled: the statistic just counted is the
    // sequence number, so sampling needs no state of its own, and a multiply tests it (a
    // division cost 5 ns per packet).
    let n = count(&XW_STATS, stat_index, len);
    if every.divides(n) {
        sample(&ctx, cfg, &v, pkt, len);
    }
    if drop {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Counts one packet of `len` bytes in entry `index` of a per-CPU counter map and returns the
/// entry's new packet count (this CPU's; 0 if the entry is missing, which cannot happen).
#[inline(always)]
fn count(map: &PerCpuArray<Counter>, index: u32, len: u64) -> u64 {
    match map.get_ptr_mut(index) {
        // SAFETY: per-CPU value, only this CPU writes it while the program runs.
        Some(c) => unsafe {
            let n = (*c).packets + 1;
            (*c).packets = n;
            (*c).bytes += len;
            n
        },
        None => 0,
    }
}

/// Decides the frame's fate and counts it by cause; `pkt` keeps the parsed headers.
#[inline(always)]
fn filter(ctx: &XdpContext, cfg: &Config, len: u64, pkt: &mut Packet) -> Verdict {
    let gen = cfg.active_gen & 1;
    let mut v = Verdict {
        action: action::PASS,
        cause: cause::DEFAULT,
        rule: 0,
        gen,
    };
    let Some(info) = XW_GEN_INFO.get(gen) else {
        return v;
    };
    match parse(ctx, pkt) {
        Parsed::Ip => {}
        Parsed::NonIp => {
            count(&XW_STATS, stat::NON_IP, len);
            v.cause = cause::NON_IP;
            v.action = info.non_ip_action;
            return v;
        }
        Parsed::Malformed => {
            count(&XW_STATS, stat::MALFORMED, len);
            v.cause = cause::MALFORMED;
            v.action = info.malformed_action;
            return v;
        }
    }
    match classify(gen, info, pkt) {
        Some(rule) => {
            let index = gen * MAX_RULES as u32 + rule;
            count(&XW_RULE_STATS, index, len);
            v.rule = rule;
            v.cause = cause::RULE;
            if let Some(r) = XW_RULES.get(index) {
                v.action = r.action;
                if r.action == action::RATE_LIMIT {
                    if over_limit(cfg, index, r, pkt) {
                        count(&XW_RULE_LIMITED, index, len);
                        count(&XW_STATS, stat::RATE_LIMITED, len);
                        v.action = action::DROP;
                        v.cause = cause::RATE_LIMITED;
                    } else {
                        v.action = action::PASS;
                    }
                }
            }
            v
        }
        None => {
            count(&XW_STATS, stat::DEFAULT, len);
            v.action = info.default_action;
            v
        }
    }
}

/// `addr` (words in network order) masked to its first `prefix` bits.
#[inline(always)]
fn masked(addr: &[u32; 4], prefix: u32) -> [u32; 4] {
    let mut out = [0u32; 4];
    for (i, o) in out.iter_mut().enumerate() {
        let bits = prefix.saturating_sub(32 * i as u32);
        let mask = if bits >= 32 {
            u32::MAX
        } else if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        *o = (u32::from_be(addr[i]) & mask).to_be();
    }
    out
}

/// Token bucket of rule `index` for the packet's source (filter/README.md): takes one token
/// and returns false, or returns true when the bucket has none. Not inlined: only rate-limit
/// rules reach it, and inlined it makes every packet's path longer.
#[inline(never)]
fn over_limit(cfg: &Config, index: u32, r: &RuleEntry, pkt: &Packet) -> bool {
    let rate = r.rate as u64;
    if rate == 0 {
        return true;
    }
    let now = if cfg.clock_ns != 0 {
        cfg.clock_ns
    } else {
        // SAFETY: helper without arguments.
        unsafe { bpf_ktime_get_ns() }
    };
    let (family, words) = if pkt.v6 {
        (6, masked(&pkt.src, r.limit_prefix6 as u32))
    } else {
        (4, masked(&[pkt.src[0], 0, 0, 0], r.limit_prefix4 as u32))
    };
    let key = RateKey {
        rule: index,
        family,
        // SAFETY: [u32; 4] and [u8; 16] have the same size and no invalid values.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words) },
    };
    let cap = r.burst as u64 * TOKEN;
    match XW_RATE.get_ptr_mut(&key) {
        Some(b) => {
            // SAFETY: a map value; concurrent CPUs may race on it (documented: the limit is
            // then approximate), which cannot make it invalid.
            let b = unsafe { &mut *b };
            let mut credit = b.credit;
            if now > b.last_ns {
                let elapsed = now - b.last_ns;
                // min(cap, credit + elapsed * rate), without overflow.
                credit = if elapsed > cap / rate {
                    cap
                } else {
                    (credit + elapsed * rate).min(cap)
                };
                b.last_ns = now;
            }
            if credit >= TOKEN {
                b.credit = credit - TOKEN;
                false
            } else {
                b.credit = credit;
                true
            }
        }
        None => {
            let b = Bucket {
                credit: cap.saturating_sub(TOKEN),
                last_ns: now,
            };
            let _ = XW_RATE.insert(&key, &b, 0);
            false
        }
    }
}

/// Sends the verdict as an event. Not inlined, for the same reason as [`over_limit`].
#[inline(never)]
fn sample(ctx: &XdpContext, cfg: &Config, v: &Verdict, pkt: &Packet, len: u64) {
    let Some(mut entry) = XW_EVENTS.reserve::<Event>(0) else {
        count(&XW_STATS, stat::EVENTS_LOST, len);
        return;
    };
    let e = entry.as_mut_ptr();
    let ip = v.cause == cause::RULE || v.cause == cause::RATE_LIMITED || v.cause == cause::DEFAULT;
    // SAFETY: `e` points at a reserved, writable ring-buffer record of size_of::<Event>().
    unsafe {
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).rule = v.rule;
        (*e).frame_len = len as u32;
        (*e).action = v.action;
        (*e).cause = v.cause;
        (*e).gen = v.gen;
        (*e).family = if !ip {
            0
        } else if pkt.v6 {
            6
        } else {
            4
        };
        (*e).proto = pkt.proto;
        (*e).sport = if pkt.has_ports { pkt.sport } else { 0 };
        (*e).dport = if pkt.has_ports { pkt.dport } else { 0 };
        (*e).src = core::mem::transmute::<[u32; 4], [u8; 16]>(pkt.src);
        (*e).dst = core::mem::transmute::<[u32; 4], [u8; 16]>(pkt.dst);
        (*e).cap_len = copy_frame(ctx, &mut (*e).data, cfg.snap_len as usize);
    }
    entry.submit(0);
}

/// Copies the frame's first `snap` bytes (at most [`SNAP_MAX`]) into `out` by direct packet
/// access and returns how many it copied.
///
/// Not `bpf_xdp_load_bytes`: that helper exists only from 5.18 on, and the program is not
/// loaded for multi-buffer frames, so every byte it could read is in the linear part anyway.
/// Whole 8-byte words while the frame has them, then the last few bytes one at a time: every
/// offset is a constant to the verifier, each checked against a fresh read of the frame's end.
#[inline(always)]
fn copy_frame(ctx: &XdpContext, out: &mut [u8; SNAP_MAX], snap: usize) -> u32 {
    let mut n = 0;
    for i in 0..SNAP_MAX / 8 {
        let off = i * 8;
        if off >= snap {
            break;
        }
        let Some(p) = frame_at::<8>(ctx, off) else {
            break;
        };
        // SAFETY: `p` has 8 readable bytes (frame_at); off + 8 <= SNAP_MAX.
        unsafe {
            let w = core::ptr::read_unaligned(p as *const u64);
            core::ptr::write_unaligned(out.as_mut_ptr().add(off) as *mut u64, w);
        }
        n = off + 8;
    }
    // The frame ended inside the word at `n` (or `snap` was reached): at most 7 bytes remain.
    for _ in 0..7 {
        if n >= snap || n >= SNAP_MAX {
            break;
        }
        let Some(p) = frame_at::<1>(ctx, n) else {
            break;
        };
        // SAFETY: `p` is readable (frame_at); n < SNAP_MAX.
        unsafe { *out.as_mut_ptr().add(n) = *p };
        n += 1;
    }
    n.min(snap) as u32
}

/// A pointer to `N` bytes at `off` into the frame, or `None` past its end (the sampling
/// path's twin of the parser's accessor).
#[inline(always)]
fn frame_at<const N: usize>(ctx: &XdpContext, off: usize) -> Option<*const u8> {
    // SAFETY: ctx.ctx points at the kernel's xdp_md for the whole program run; volatile so
    // that LLVM keeps one comparison per access, which is what the verifier tracks.
    let (start, end) = unsafe {
        (
            core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
        )
    };
    // Opaque to LLVM: it would turn `start + off + 1 > end` into `start + off >= end`, and
    // verifiers before 6.2 or so derive no readable range from a `>=` at the access's own
    // offset ("invalid access to packet").
    let past = core::hint::black_box(start + off + N);
    if past > end {
        return None;
    }
    Some((start + off) as *const u8)
}

/// Returns the index of the first rule that matches `pkt`, if any.
#[inline(always)]
fn classify(gen: u32, info: &GenInfo, pkt: &Packet) -> Option<u32> {
    let base = gen * SLOTS_PER_GEN;
    let dims = info.dims;
    // An address slot names every rule that can match in its dimension; when one lists only a
    // few rules, their own matchers decide (GenInfo::few_dims) and no other dimension is
    // looked up. (Two call sites: merging them costs 4 ns per packet in branches.)
    let src = if dims & dim::SRC != 0 {
        let b = bitmap(base, addr_slot(gen, 0, info, pkt)?)?;
        if info.few_dims & FEW_SRC != 0 && b.nfew as usize <= FEW_RULES {
            return first_of_few(gen, b, pkt, 0);
        }
        Some(b)
    } else {
        None
    };
    let dst = if dims & dim::DST != 0 {
        let b = bitmap(base, addr_slot(gen, 1, info, pkt)?)?;
        if info.few_dims & FEW_DST != 0 && b.nfew as usize <= FEW_RULES {
            return first_of_few(gen, b, pkt, 1);
        }
        Some(b)
    } else {
        None
    };
    let all = XW_BITMAPS.get(base + SLOT_ALL)?;
    let src = src.unwrap_or(all);
    let dst = dst.unwrap_or(all);
    let proto = if dims & dim::PROTO != 0 {
        bitmap(base, *XW_PROTO.get(gen * PROTO_ENTRIES + pkt.proto as u32)?)?
    } else {
        all
    };
    let (sport, dport) = if pkt.has_ports {
        (pkt.sport as u32, pkt.dport as u32)
    } else {
        (NO_PORT, NO_PORT)
    };
    let sport = if dims & dim::SPORT != 0 {
        bitmap(base, *XW_SPORT.get(gen * PORT_ENTRIES + sport)?)?
    } else {
        all
    };
    let dport = if dims & dim::DPORT != 0 {
        bitmap(base, *XW_DPORT.get(gen * PORT_ENTRIES + dport)?)?
    } else {
        all
    };
    // Only words that every dimension has bits in can hold a match: AND the summaries, then
    // visit those words in order (at most BITMAP_WORDS of them).
    let mut candidates = src.summary & dst.summary & proto.summary & sport.summary & dport.summary;
    for _ in 0..BITMAP_WORDS {
        if candidates == 0 {
            break;
        }
        let w = (candidates.trailing_zeros() as usize) & (BITMAP_WORDS - 1);
        let hit = src.words[w] & dst.words[w] & proto.words[w] & sport.words[w] & dport.words[w];
        if hit != 0 {
            return Some(w as u32 * 64 + hit.trailing_zeros());
        }
        candidates &= candidates - 1;
    }
    None
}

/// The first rule of `b`'s short list whose own matchers accept `pkt`, all but the address
/// dimension `pivot` (0 source, 1 destination) that `b` came from: `b` holds exactly the rules
/// that accept the packet's address there.
#[inline(always)]
fn first_of_few(gen: u32, b: &Bitmap, pkt: &Packet, pivot: u32) -> Option<u32> {
    let n = b.nfew as usize;
    for i in 0..FEW_RULES {
        if i >= n {
            break;
        }
        let rule = b.few[i] as u32;
        let r = XW_RULES.get(gen * MAX_RULES as u32 + rule)?;
        if rule_accepts(r, pkt, pivot) {
            return Some(rule);
        }
    }
    None
}

/// Whether rule `r` accepts `pkt` in every dimension but the address dimension `pivot`.
/// In the other address dimension a rule that gets here has no matcher or an IPv4 network
/// (GenInfo::few_dims): one masked word to compare.
#[inline(always)]
fn rule_accepts(r: &RuleEntry, pkt: &Packet, pivot: u32) -> bool {
    let f = r.flags;
    if f & matcher::PROTO != 0 && r.proto != pkt.proto {
        return false;
    }
    if f & (matcher::SPORT | matcher::DPORT) != 0 {
        if !pkt.has_ports {
            return false;
        }
        if f & matcher::SPORT != 0 && (pkt.sport < r.sport[0] || pkt.sport > r.sport[1]) {
            return false;
        }
        if f & matcher::DPORT != 0 && (pkt.dport < r.dport[0] || pkt.dport > r.dport[1]) {
            return false;
        }
    }
    let (flag, family, len, net, addr) = if pivot == 0 {
        (matcher::DST, r.dst_family, r.dst_len, &r.dst, pkt.dst[0])
    } else {
        (matcher::SRC, r.src_family, r.src_len, &r.src, pkt.src[0])
    };
    if f & flag == 0 {
        return true;
    }
    // An IPv4 network (few_dims excludes IPv6 ones here): never an IPv6 packet's.
    if family != 4 || pkt.v6 {
        return false;
    }
    // SAFETY: [u8; 16] at a 4-aligned offset of a 4-aligned struct; its first word.
    let net = unsafe { *(net.as_ptr() as *const u32) };
    let mask = u64::MAX.wrapping_shl(32u32.wrapping_sub(len as u32)) as u32;
    u32::from_be(addr) & mask == u32::from_be(net)
}

#[inline(always)]
fn bitmap(base: u32, slot: u32) -> Option<&'static Bitmap> {
    XW_BITMAPS.get(base + slot)
}

/// The bitmap slot of the packet's source (`dim` 0) or destination (`dim` 1) address: the
/// longest network of that dimension containing it, in the table of the packet's family.
#[inline(always)]
fn addr_slot(gen: u32, dim: u32, info: &GenInfo, pkt: &Packet) -> Option<u32> {
    let (addr, trie) = if dim == 0 {
        (&pkt.src, &XW_SRC6)
    } else {
        (&pkt.dst, &XW_DST6)
    };
    if pkt.v6 {
        addr6_slot(gen, dim, info, addr, trie)
    } else {
        addr4_slot(gen, dim, addr[0])
    }
}

/// Looks an IPv4 address (network order) up in dimension `dim`: its /16's entry of the block
/// index, then a binary search of the block's entries (Block4): its ranges or its switch list
/// for the last one that starts at or before the address, or its host list for the address.
/// All are one search over sorted numbers (range words, or 16-bit halves of the same array),
/// the form choosing the width of an entry and the key. Each halving step keeps the upper half
/// when its first entry is at or before the key, written as a mask; the compiler turns that
/// mask into one conditional jump per step, which the verifier prunes well here (the mask made
/// opaque, as [`range6_slot`] has it, multiplied the instructions it processed by 3.7).
#[inline(always)]
fn addr4_slot(gen: u32, dim: u32, addr: u32) -> Option<u32> {
    let host = u32::from_be(addr);
    let block = XW_BLOCK4.get((gen * 2 + dim) * BLOCKS4 + (host >> BLOCK4_BITS))?;
    let mut n = block.count as u32;
    if n == 0 {
        return Some(block.slot as u32);
    }
    // `wide` 0 for a list (entries are halves), 1 for ranges (entries are words).
    let list = block.first & (HOSTS4 | SWITCH4) != 0;
    let wide = (!list) as u32;
    let key = if list {
        host & 0xffff
    } else {
        range4_key(host)
    } as u64;
    // The generation's part of the array, in halves; the block's first entry, in entries.
    let base = gen * RANGES_PER_GEN * 2;
    let first = (block.first & !(HOSTS4 | SWITCH4)) + list as u32;
    let mut at = first;
    for _ in 0..RANGE4_STEPS {
        if n <= 1 {
            break;
        }
        let half = n / 2;
        let e = entry4(base, at + half, wide)? as u64;
        // All ones when e <= key (the upper half starts at or before the key), else 0.
        let keep = ((key.wrapping_sub(e) >> 63) as u32).wrapping_sub(1);
        at += half & keep;
        n -= half;
    }
    let e = entry4(base, at, wide)? as u64;
    Some(if list {
        // Whether the address has the list's slot (in the list's first half): it is one of a
        // host list's addresses, or a switch list's last start at or before it is an odd one.
        let other = if block.first & HOSTS4 != 0 {
            e == key
        } else {
            e <= key && (at - first) & 1 == 0
        };
        if other {
            entry4(base, first - 1, 0)?
        } else {
            block.slot as u32
        }
    } else if e <= key {
        e as u32 & 0xffff
    } else {
        block.slot as u32
    })
}

/// Entry `i` of a block (see [`addr4_slot`]): the word `i` of the range array when `wide` is 1,
/// else its half `i`, counted from half `base`.
#[inline(always)]
fn entry4(base: u32, i: u32, wide: u32) -> Option<u32> {
    let half = base + (i << wide);
    let line = XW_RANGES.get(half / LIST4_LINE as u32)?;
    let word = line[(half / 2) as usize % RANGE_LINE];
    // A word is its two halves, the lower one first; a range word is read whole.
    let shift = (half & 1) * 16;
    let mask = u32::MAX >> (16 - 16 * wide);
    Some(word >> shift & mask)
}

/// Looks an IPv6 address up: first in the address table, one probe of two buckets per hashed
/// prefix length (longest first; every length in the trie is shorter), then, where the
/// dimension has blocks ([`GenInfo::block6`]), the address's block (one more probe) and its
/// ranges, and last in the LPM trie of the remaining prefixes; every generation has a /0
/// entry, so a well-formed table always answers.
#[inline(always)]
fn addr6_slot(
    gen: u32,
    dim: u32,
    info: &GenInfo,
    addr: &[u32; 4],
    trie: &LpmTrie<Lpm6Key, u32>,
) -> Option<u32> {
    let base = gen * ADDR_BUCKETS;
    let bits = info.addr_bits as u32;
    let lens: &[u8; MAX_HASHED_LENS] = &info.hashed6[(dim & 1) as usize];
    for &len in lens.iter() {
        if len == NO_LEN {
            break;
        }
        let key = addr_key(dim, len);
        if let Some(e) = probe6::<4>(base, key, &masked(addr, len as u32), bits) {
            return Some(e.tag & 0xffff);
        }
    }
    let len = info.block6[(dim & 1) as usize];
    if len != 0 {
        if let Some((first, count)) = block6(base, dim, len, addr, bits) {
            return range6_slot(gen, first, count, addr);
        }
    }
    let words = [gen.to_be(), addr[0], addr[1], addr[2], addr[3]];
    // SAFETY: [u32; 5] and [u8; 20] have the same size and no invalid values.
    let k: [u8; 20] = unsafe { core::mem::transmute(words) };
    trie.get(Key::new(GEN_PREFIX_BITS + 128, Lpm6Key(k)))
        .copied()
}

/// The entry with key `key` and address `words` in the generation's address table (from
/// bucket `base`), comparing the first `N` words (4 for a network, 2 for a block, whose other
/// two carry its ranges; it is hashed with them taken as 0).
#[inline(always)]
fn probe6<const N: usize>(
    base: u32,
    key: u32,
    words: &[u32; 4],
    bits: u32,
) -> Option<&'static Addr6Entry> {
    let (b1, b2) = addr_buckets(key, words, bits);
    for b in [b1, b2] {
        let bucket = XW_ADDR6.get(base + b)?;
        for e in bucket.e.iter() {
            if e.tag >> 16 == key && (0..N).all(|i| e.addr[i] == words[i]) {
                return Some(e);
            }
        }
    }
    None
}

/// The first range and the number of ranges of the IPv6 block of length `len` that holds
/// `addr`, from its entry in the address table (see [`block6_key`]), or `None` when the
/// address lies in no block.
#[inline(always)]
fn block6(base: u32, dim: u32, len: u8, addr: &[u32; 4], bits: u32) -> Option<(u32, u32)> {
    // The block's first two words: the first whole (blocks are at least /32), the second's
    // first `len - 32` bits, masked without a branch.
    let mask = (0xffff_ffff_0000_0000u64 >> ((len as u32).wrapping_sub(32) & 63)) as u32;
    let words = [addr[0], (u32::from_be(addr[1]) & mask).to_be(), 0, 0];
    let e = probe6::<2>(base, block6_key(dim), &words, bits)?;
    Some((e.addr[2], e.addr[3]))
}

/// The slot of `addr` in its IPv6 block: the slot of the last of the block's `count` ranges
/// (from range `first`) that starts at or before it, found by halving as the IPv4 ranges are
/// ([`addr4_slot`]). A range's start and the address compare as 96-bit numbers (their last
/// three words; the first is the block's own), by the borrow of a subtraction carried word by
/// word. The first range starts at the block's first address, so the range found always holds
/// the address. Not inlined: the source's and the destination's lookups share one copy, and
/// the verifier processes fewer instructions for the whole program than it did before the
/// blocks came (118,563 against 143,039 on 6.18; inlined: about 27,000 more).
#[inline(never)]
fn range6_slot(gen: u32, first: u32, count: u32, addr: &[u32; 4]) -> Option<u32> {
    // Opaque to the compiler, which would otherwise see two 32-bit numbers in each difference
    // and turn its sign into a comparison and a jump.
    let key = core::hint::black_box([
        u32::from_be(addr[1]) as u64,
        u32::from_be(addr[2]) as u64,
        u32::from_be(addr[3]) as u64,
    ]);
    let base = gen * (RANGES_PER_GEN / RANGE6_WORDS as u32);
    let mut at = first;
    let mut n = count;
    for _ in 0..RANGE6_STEPS {
        if n <= 1 {
            break;
        }
        let half = n / 2;
        let e = range6(base + at + half)?;
        let borrow3 = key[2].wrapping_sub(e[2] as u64) >> 63;
        let borrow2 = key[1].wrapping_sub(e[1] as u64).wrapping_sub(borrow3) >> 63;
        let borrow1 = key[0].wrapping_sub(e[0] as u64).wrapping_sub(borrow2) >> 63;
        // All ones when there is no borrow (the range starts at or before the address); opaque
        // too, or the mask becomes a jump.
        let keep = (core::hint::black_box(borrow1) as u32).wrapping_sub(1);
        at += half & keep;
        n -= half;
    }
    Some(range6(base + at)?[3])
}

/// IPv6 range `i` of the range array (see [`RANGE6_WORDS`]).
#[inline(always)]
fn range6(i: u32) -> Option<[u32; RANGE6_WORDS]> {
    let line = XW_RANGES.get(i / (RANGE_LINE / RANGE6_WORDS) as u32)?;
    // SAFETY: [u32; 16] and [[u32; 4]; 4] have the same size and no invalid values.
    let ranges: &[[u32; RANGE6_WORDS]; RANGE_LINE / RANGE6_WORDS] =
        unsafe { &*(line as *const RangeLine as *const _) };
    Some(ranges[i as usize % (RANGE_LINE / RANGE6_WORDS)])
}
