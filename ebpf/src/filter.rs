//! The `xdpwall` program: maps, classification and accounting.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, LpmTrie, PerCpuArray},
    programs::XdpContext,
};
use xdpwall_common::{
    action, dim, stat, Bitmap, Config, Counter, GenInfo, Lpm4Key, Lpm6Key, RuleEntry, BITMAP_WORDS,
    GENERATIONS, GEN_PREFIX_BITS, LPM_ENTRIES_PER_GEN, MAP_F_MMAPABLE, MAX_RULES, NO_PORT,
    PORT_ENTRIES, PROTO_ENTRIES, SLOTS_PER_GEN, SLOT_ALL,
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
static XW_SRC4: LpmTrie<Lpm4Key, u32> =
    LpmTrie::with_max_entries(GENERATIONS * LPM_ENTRIES_PER_GEN, 0);
#[map]
static XW_DST4: LpmTrie<Lpm4Key, u32> =
    LpmTrie::with_max_entries(GENERATIONS * LPM_ENTRIES_PER_GEN, 0);
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

#[xdp]
pub fn xdpwall(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if filter(&ctx, len) == action::DROP {
        count(&XW_STATS, stat::DROP, len);
        xdp_action::XDP_DROP
    } else {
        count(&XW_STATS, stat::PASS, len);
        xdp_action::XDP_PASS
    }
}

#[inline(always)]
fn count(map: &PerCpuArray<Counter>, index: u32, len: u64) {
    if let Some(c) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU value, only this CPU writes it while the program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}

/// Returns the action ([`action`]) for the frame and counts it by cause.
#[inline(always)]
fn filter(ctx: &XdpContext, len: u64) -> u8 {
    // Missing entries cannot happen (arrays are preallocated); passing keeps a broken setup
    // visible instead of black-holing the interface.
    let Some(cfg) = XW_CONFIG.get(0) else {
        return action::PASS;
    };
    let gen = cfg.active_gen & 1;
    let Some(info) = XW_GEN_INFO.get(gen) else {
        return action::PASS;
    };
    let mut pkt = Packet::new();
    match parse(ctx, &mut pkt) {
        Parsed::Ip => {}
        Parsed::NonIp => {
            count(&XW_STATS, stat::NON_IP, len);
            return info.non_ip_action;
        }
        Parsed::Malformed => {
            count(&XW_STATS, stat::MALFORMED, len);
            return info.malformed_action;
        }
    }
    match classify(gen, info, &pkt) {
        Some(rule) => {
            let index = gen * MAX_RULES as u32 + rule;
            count(&XW_RULE_STATS, index, len);
            match XW_RULES.get(index) {
                Some(r) => r.action,
                None => action::PASS,
            }
        }
        None => {
            count(&XW_STATS, stat::DEFAULT, len);
            info.default_action
        }
    }
}

/// Returns the index of the first rule that matches `pkt`, if any.
#[inline(always)]
fn classify(gen: u32, info: &GenInfo, pkt: &Packet) -> Option<u32> {
    let base = gen * SLOTS_PER_GEN;
    let all = XW_BITMAPS.get(base + SLOT_ALL)?;
    let dims = info.dims;
    let src = if dims & dim::SRC != 0 {
        bitmap(base, addr_slot(gen, pkt.v6, &pkt.src, &XW_SRC4, &XW_SRC6)?)?
    } else {
        all
    };
    let dst = if dims & dim::DST != 0 {
        bitmap(base, addr_slot(gen, pkt.v6, &pkt.dst, &XW_DST4, &XW_DST6)?)?
    } else {
        all
    };
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

#[inline(always)]
fn bitmap(base: u32, slot: u32) -> Option<&'static Bitmap> {
    XW_BITMAPS.get(base + slot)
}

/// Looks the address up in the family's LPM trie; every generation has a /0 entry, so a
/// well-formed table always answers.
#[inline(always)]
fn addr_slot(
    gen: u32,
    v6: bool,
    addr: &[u32; 4],
    trie4: &LpmTrie<Lpm4Key, u32>,
    trie6: &LpmTrie<Lpm6Key, u32>,
) -> Option<u32> {
    let g = gen.to_be();
    if v6 {
        let words = [g, addr[0], addr[1], addr[2], addr[3]];
        // SAFETY: [u32; 5] and [u8; 20] have the same size and no invalid values.
        let k: [u8; 20] = unsafe { core::mem::transmute(words) };
        trie6
            .get(Key::new(GEN_PREFIX_BITS + 128, Lpm6Key(k)))
            .copied()
    } else {
        // SAFETY: [u32; 2] and [u8; 8] have the same size and no invalid values.
        let k: [u8; 8] = unsafe { core::mem::transmute([g, addr[0]]) };
        trie4
            .get(Key::new(GEN_PREFIX_BITS + 32, Lpm4Key(k)))
            .copied()
    }
}
