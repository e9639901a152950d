//! The map handles of one filter: writing a rule set into the inactive generation and
//! flipping to it, sampling, counters.

use std::time::Duration;

use aya::maps::{
    lpm_trie::Key, Array, IterableMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues,
    RingBuf,
};
use xdpwall_common::{
    map_names, stat, Addr6Bucket, Bitmap, Block4, Config, Counter, Divisor, GenInfo, Lpm6Key,
    RangeLine, RuleEntry, SetInfo, ABI_VERSION, ADDR_BUCKETS, BLOCKS4, GENERATIONS,
    GEN_PREFIX_BITS, MAX_RULES, MAX_SETS, NO_LEN, PORT_ENTRIES, PROTO_ENTRIES, RANGES_PER_GEN,
    RANGE_LINE, SLOTS_PER_GEN, SNAP_MAX,
};

use crate::{
    compile::{compile, decode_rule, LpmEntry, Tables},
    rules::{Action, Rule, RuleSet},
};

use super::*;

/// Handles on every map of one filter (loaded here or opened from pins).
pub struct Maps {
    config: Array<MapData, Config>,
    gen_info: Array<MapData, GenInfo>,
    rules: Array<MapData, RuleEntry>,
    bitmaps: MmapArray,
    block4: MmapArray,
    src6: LpmTrie<MapData, Lpm6Key, u32>,
    dst6: LpmTrie<MapData, Lpm6Key, u32>,
    proto: MmapArray,
    sport: MmapArray,
    dport: MmapArray,
    stats: PerCpuArray<MapData, Counter>,
    rule_stats: PerCpuArray<MapData, Counter>,
    rule_limited: PerCpuArray<MapData, Counter>,
    ranges: MmapArray,
    addr6: MmapArray,
    sets: Array<MapData, SetInfo>,
    /// Token buckets: only the program uses them; kept so they are pinned.
    _rate: Map,
    events: Option<Map>,
    /// Whether packets may be running the program concurrently (attached, or maps opened
    /// from pins). When not, nothing can still read the inactive generation and the RCU wait
    /// before an update is skipped (BPF_PROG_TEST_RUN in this thread is synchronous).
    pub(super) live: bool,
    /// For maps no other process can write (not pinned): the IPv6 address-table buckets each
    /// generation holds, so an update zeroes just those instead of scanning the whole table.
    pub(super) addr_used: Option<[Vec<u32>; 2]>,
}

impl Maps {
    pub(super) fn from_source(
        mut take: impl FnMut(&'static str) -> Result<Map, LoadError>,
    ) -> Result<Maps, LoadError> {
        macro_rules! typed {
            ($name:expr, $ty:ident) => {{
                let name = $name;
                $ty::try_from(take(name)?).map_err(map_err(name))?
            }};
        }
        macro_rules! mmapped {
            ($name:expr, $ty:ty, $entries:expr) => {{
                let name = $name;
                let arr: Array<MapData, $ty> = typed!(name, Array);
                MmapArray::new(arr.map(), $entries, std::mem::size_of::<$ty>(), name)?
            }};
        }
        Ok(Maps {
            config: typed!(map_names::CONFIG, Array),
            gen_info: typed!(map_names::GEN_INFO, Array),
            rules: typed!(map_names::RULES, Array),
            bitmaps: mmapped!(map_names::BITMAPS, Bitmap, GENERATIONS * SLOTS_PER_GEN),
            block4: mmapped!(map_names::BLOCK4, Block4, GENERATIONS * 2 * BLOCKS4),
            src6: typed!(map_names::SRC6, LpmTrie),
            dst6: typed!(map_names::DST6, LpmTrie),
            proto: mmapped!(map_names::PROTO, u32, GENERATIONS * PROTO_ENTRIES),
            sport: mmapped!(map_names::SPORT, u32, GENERATIONS * PORT_ENTRIES),
            dport: mmapped!(map_names::DPORT, u32, GENERATIONS * PORT_ENTRIES),
            stats: typed!(map_names::STATS, PerCpuArray),
            rule_stats: typed!(map_names::RULE_STATS, PerCpuArray),
            rule_limited: typed!(map_names::RULE_LIMITED, PerCpuArray),
            ranges: mmapped!(
                map_names::RANGES,
                RangeLine,
                GENERATIONS * RANGES_PER_GEN / RANGE_LINE as u32
            ),
            addr6: mmapped!(map_names::ADDR6, Addr6Bucket, GENERATIONS * ADDR_BUCKETS),
            sets: typed!(map_names::SETS, Array),
            _rate: take(map_names::RATE)?,
            events: Some(take(map_names::EVENTS)?),
            live: true,
            addr_used: None,
        })
    }

    /// Opens the maps of the filter pinned under `name`.
    pub fn open_pinned(name: &str) -> Result<Maps, LoadError> {
        let dir = pin_dir(name);
        if !dir.join(map_names::CONFIG).exists() {
            return Err(LoadError::NotRunning(name.to_string()));
        }
        let maps = Maps::from_source(|map| {
            let data = MapData::from_pin(dir.join(map)).map_err(|e| {
                if is_eperm(&e) {
                    LoadError::Permission {
                        what: format!("opening pinned map {}", dir.join(map).display()),
                    }
                } else {
                    LoadError::Map { map, source: e }
                }
            })?;
            Map::from_map_data(data).map_err(map_err(map))
        })?;
        let cfg = maps.config.get(&0, 0).map_err(map_err(map_names::CONFIG))?;
        if cfg.abi != ABI_VERSION {
            return Err(LoadError::Abi(dir, cfg.abi));
        }
        Ok(maps)
    }

    fn config(&self) -> Result<Config, LoadError> {
        self.config.get(&0, 0).map_err(map_err(map_names::CONFIG))
    }

    pub(super) fn set_config(&mut self, c: Config) -> Result<(), LoadError> {
        self.config.set(0, c, 0).map_err(map_err(map_names::CONFIG))
    }

    /// The generation packets use now.
    pub fn active_generation(&self) -> Result<u32, LoadError> {
        Ok(self.config()?.active_gen & 1)
    }

    /// The verdict sampling in force.
    pub fn sampling(&self) -> Result<Sampling, LoadError> {
        let c = self.config()?;
        Ok(Sampling {
            drops: c.drop_every.every,
            passes: c.pass_every.every,
            snap_len: c.snap_len,
        })
    }

    /// Makes one drop in `s.drops` and one pass in `s.passes` (per CPU; 0: none) a verdict
    /// event carrying the frame's first `s.snap_len` bytes (at most [`SNAP_MAX`]).
    pub fn set_sampling(&mut self, s: Sampling) -> Result<(), LoadError> {
        let mut c = self.config()?;
        c.drop_every = Divisor::new(s.drops);
        c.pass_every = Divisor::new(s.passes);
        c.snap_len = s.snap_len.min(SNAP_MAX as u32);
        self.set_config(c)
    }

    /// Sets the rate limiter's clock (nanoseconds; 0 = the kernel's monotonic clock). For tests
    /// that replay timestamps through BPF_PROG_TEST_RUN.
    pub fn set_clock(&mut self, ns: u64) -> Result<(), LoadError> {
        let mut c = self.config()?;
        c.clock_ns = ns;
        self.set_config(c)
    }

    /// The verdict-event ring buffer; it can be taken once per [`Maps`].
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.events.take().ok_or(LoadError::EventsTaken)?;
        RingBuf::try_from(map).map_err(map_err(map_names::EVENTS))
    }

    /// Compiles `set` and makes it the active rule set, atomically (see the module docs).
    /// On error the active rule set is unchanged.
    pub fn apply(&mut self, set: &RuleSet) -> Result<ApplyReport, LoadError> {
        let t0 = std::time::Instant::now();
        let tables = compile(set)?;
        let compiled = t0.elapsed();
        let t1 = std::time::Instant::now();
        let active = self.active_generation()?;
        let gen = 1 - active;
        if self.live {
            wait_for_readers();
        }
        self.write_generation(gen, &tables)?;
        // The tables were written through shared mappings: publish them before the flip.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let mut c = self.config()?;
        c.active_gen = gen;
        self.set_config(c)?;
        Ok(ApplyReport {
            generation: gen,
            rules: tables.rules.len(),
            bitmaps: tables.bitmaps.len(),
            prefixes: tables.src.len() + tables.dst.len(),
            hashed: tables.long4 + tables.long6 + tables.src_hashed.len() + tables.dst_hashed.len(),
            compile: compiled,
            write: t1.elapsed(),
        })
    }

    /// Makes the previous rule set active again and returns its generation: the generation
    /// the last [`Maps::apply`] flipped away from still holds that rule set, untouched, until
    /// the next apply. The caller keeps other writers out in between (`xdpwall update
    /// --confirm` holds the filter's update lock), so the flip back is as atomic as the flip.
    pub fn roll_back(&mut self) -> Result<u32, LoadError> {
        let mut c = self.config()?;
        c.active_gen = 1 - (c.active_gen & 1);
        self.set_config(c)?;
        Ok(c.active_gen)
    }

    fn write_generation(&mut self, gen: u32, t: &Tables) -> Result<(), LoadError> {
        // Hash tables first: the only ones that can be full, and nothing live reads this
        // generation.
        let info = |g: u32| {
            self.gen_info
                .get(&g, 0)
                .map_err(map_err(map_names::GEN_INFO))
        };
        let mut stale_info = info(gen)?;
        let stale6 = stale_info.addr6_table();
        let stale_bits = stale_info.addr_bits;
        let new6 = t.info.addr6_table();
        // Record first that this (inactive) generation may hold entries in the IPv6 table, and
        // in how many buckets, so that a write that fails half way is still cleaned up by the
        // next one. (The IPv4 ranges need no cleaning: the block index names the ones in use.)
        if new6 && (!stale6 || t.info.addr_bits > stale_bits) {
            for (old, new) in stale_info.hashed6.iter_mut().zip(t.info.hashed6) {
                if old[0] == NO_LEN {
                    *old = new;
                }
            }
            for (old, new) in stale_info.block6.iter_mut().zip(t.info.block6) {
                if *old == 0 {
                    *old = new;
                }
            }
            stale_info.addr_bits = stale_info.addr_bits.max(t.info.addr_bits);
            self.gen_info
                .set(gen, stale_info, 0)
                .map_err(map_err(map_names::GEN_INFO))?;
        }
        let used6 = self.addr_used.as_mut().map(|u| &mut u[gen as usize & 1]);
        write_addr6(
            &mut self.addr6,
            used6,
            gen,
            &t.addr6,
            stale6.then_some(stale_bits),
        );
        let lines: Vec<RangeLine> = t
            .ranges
            .chunks(RANGE_LINE)
            .map(|c| {
                let mut line = [0u32; RANGE_LINE];
                line[..c.len()].copy_from_slice(c);
                line
            })
            .collect();
        self.ranges
            .write(gen * RANGES_PER_GEN / RANGE_LINE as u32, &lines);
        clear_trie(&mut self.src6, gen, map_names::SRC6)?;
        clear_trie(&mut self.dst6, gen, map_names::DST6)?;
        self.bitmaps.write(gen * SLOTS_PER_GEN, &t.bitmaps);
        write_lpm(&mut self.src6, gen, &t.src, map_names::SRC6)?;
        write_lpm(&mut self.dst6, gen, &t.dst, map_names::DST6)?;
        // Empty for a dimension no rule matches: the program does not read its blocks then.
        for (d, blocks) in t.blocks.iter().enumerate() {
            self.block4.write((gen * 2 + d as u32) * BLOCKS4, blocks);
        }
        self.proto.write_u32s(gen * PROTO_ENTRIES, &t.proto);
        self.sport.write_u32s(gen * PORT_ENTRIES, &t.sport);
        self.dport.write_u32s(gen * PORT_ENTRIES, &t.dport);
        let rule_base = gen * MAX_RULES as u32;
        update_batch(self.rules.map(), rule_base, &t.rules, 1, map_names::RULES)?;
        // Per-CPU values: one 16-byte Counter per possible CPU and key, all zero.
        let cpus = zero_per_cpu()?.0;
        let zeros = vec![Counter::default(); cpus * t.rules.len()];
        update_batch(
            self.rule_stats.map(),
            rule_base,
            &zeros,
            cpus,
            map_names::RULE_STATS,
        )?;
        update_batch(
            self.rule_limited.map(),
            rule_base,
            &zeros,
            cpus,
            map_names::RULE_LIMITED,
        )?;
        update_batch(self.sets.map(), gen * MAX_SETS, &t.sets, 1, map_names::SETS)?;
        self.gen_info
            .set(gen, t.info, 0)
            .map_err(map_err(map_names::GEN_INFO))
    }

    /// The address sets of generation `gen` (names end at the first unused slot).
    fn generation_sets(&self, gen: u32) -> Result<Vec<SetStatus>, LoadError> {
        let mut sets = Vec::new();
        for i in 0..MAX_SETS {
            let s = self
                .sets
                .get(&(gen * MAX_SETS + i), 0)
                .map_err(map_err(map_names::SETS))?;
            let name = crate::compile::name_of(&s.name);
            if name.is_empty() {
                break;
            }
            sets.push(SetStatus {
                name,
                entries: s.entries,
                hosts: s.hosts,
                v6: s.v6,
            });
        }
        Ok(sets)
    }

    /// The active rule set's policies and rules, as the kernel holds them.
    pub fn active_rules(&self) -> Result<(GenInfo, Vec<Rule>), LoadError> {
        let gen = self.active_generation()?;
        let info = self
            .gen_info
            .get(&gen, 0)
            .map_err(map_err(map_names::GEN_INFO))?;
        let names: Vec<String> = self
            .generation_sets(gen)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let rules = (0..info.nrules)
            .map(|i| {
                self.rules
                    .get(&(gen * MAX_RULES as u32 + i), 0)
                    .map(|e| decode_rule(&e, &names))
                    .map_err(map_err(map_names::RULES))
            })
            .collect::<Result<_, _>>()?;
        Ok((info, rules))
    }

    /// Global counter `index` (one of [`stat`]), summed over CPUs.
    pub fn stat(&self, index: u32) -> Result<Count, LoadError> {
        sum(&self.stats, index, map_names::STATS)
    }

    /// The hit counters of the first `rules` rules of generation `gen`, summed over CPUs: the
    /// active one's, or (until the next update zeroes them) those the previous rule set
    /// counted while it was active.
    pub fn rule_hits(&self, gen: u32, rules: usize) -> Result<Vec<Count>, LoadError> {
        (0..rules as u32)
            .map(|i| {
                sum(
                    &self.rule_stats,
                    (gen & 1) * MAX_RULES as u32 + i,
                    map_names::RULE_STATS,
                )
            })
            .collect()
    }

    /// Reads all counters, summed over CPUs.
    pub fn snapshot(&self) -> Result<Snapshot, LoadError> {
        let gen = self.active_generation()?;
        let (info, rules) = self.active_rules()?;
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                Ok(RuleCounter {
                    index,
                    rule,
                    hits: sum(
                        &self.rule_stats,
                        gen * MAX_RULES as u32 + index as u32,
                        map_names::RULE_STATS,
                    )?,
                    limited: sum(
                        &self.rule_limited,
                        gen * MAX_RULES as u32 + index as u32,
                        map_names::RULE_LIMITED,
                    )?,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(Snapshot {
            generation: gen,
            default: Action::from_code(info.default_action),
            malformed_action: Action::from_code(info.malformed_action),
            non_ip_action: Action::from_code(info.non_ip_action),
            pass: self.stat(stat::PASS)?,
            drop: self.stat(stat::DROP)?,
            default_hits: self.stat(stat::DEFAULT)?,
            malformed: self.stat(stat::MALFORMED)?,
            non_ip: self.stat(stat::NON_IP)?,
            rate_limited: self.stat(stat::RATE_LIMITED)?,
            events_lost: self.stat(stat::EVENTS_LOST)?,
            sampling: self.sampling()?,
            sets: self.generation_sets(gen)?,
            rules,
        })
    }

    /// Sets every global counter of every CPU back to zero (rule counters restart with each
    /// applied rule set anyway).
    pub fn reset_stats(&mut self) -> Result<(), LoadError> {
        let zero = zero_per_cpu()?;
        for i in 0..stat::COUNT {
            self.stats
                .set(i, zero.clone_values()?, 0)
                .map_err(map_err(map_names::STATS))?;
        }
        Ok(())
    }
}

struct ZeroPerCpu(usize);

impl ZeroPerCpu {
    fn clone_values(&self) -> Result<PerCpuValues<Counter>, LoadError> {
        PerCpuValues::try_from(vec![Counter::default(); self.0]).map_err(|source| LoadError::Cpus {
            what: "per-CPU values",
            source,
        })
    }
}

fn zero_per_cpu() -> Result<ZeroPerCpu, LoadError> {
    let n = aya::util::nr_cpus().map_err(|(what, source)| LoadError::Cpus { what, source })?;
    Ok(ZeroPerCpu(n))
}

fn sum(
    map: &PerCpuArray<MapData, Counter>,
    i: u32,
    name: &'static str,
) -> Result<Count, LoadError> {
    let v = map.get(&i, 0).map_err(map_err(name))?;
    Ok(v.iter().fold(Count::default(), |a, c| Count {
        packets: a.packets + c.packets,
        bytes: a.bytes + c.bytes,
    }))
}

/// Writes `values` (`per_key` elements per key: 1, or the number of possible CPUs for per-CPU
/// maps) at consecutive keys from `first`.
fn update_batch<V: aya::Pod>(
    map: &MapData,
    first: u32,
    values: &[V],
    per_key: usize,
    name: &'static str,
) -> Result<(), LoadError> {
    // SAFETY: V is Pod: plain bytes without padding.
    let bytes = unsafe {
        std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values))
    };
    let count = values.len() / per_key;
    let keys: Vec<u32> = (first..first + count as u32).collect();
    batch::update(map, as_bytes(&keys), bytes, count)
        .map_err(batch_err(name, "bpf_map_update_batch"))
}

fn as_bytes<V: aya::Pod>(v: &[V]) -> &[u8] {
    // SAFETY: V is Pod: plain bytes without padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn batch_err(map: &'static str, call: &'static str) -> impl Fn(std::io::Error) -> LoadError {
    move |e| LoadError::Map {
        map,
        source: MapError::SyscallError(aya::sys::SyscallError { call, io_error: e }),
    }
}

/// Writes the IPv6 address-table buckets of generation `gen`, after zeroing the buckets the
/// generation held before: those recorded in `used` (private maps; updated here), else, when
/// `stale_bits` (an earlier rule set hashed networks there, in at most `1 << bits` buckets, see
/// [`GenInfo::addr_bits`]), every bucket found filled by a scan of those.
fn write_addr6(
    table: &mut MmapArray,
    used: Option<&mut Vec<u32>>,
    gen: u32,
    buckets: &crate::addr_table::Buckets,
    stale_bits: Option<u8>,
) {
    let base = gen * ADDR_BUCKETS;
    match (used, stale_bits) {
        (Some(used), _) => {
            for &b in used.iter() {
                table.write(base + b, &[Addr6Bucket::default()]);
            }
            *used = buckets.keys().copied().collect();
        }
        (None, Some(bits)) => {
            // Recorded with the flags, before any entry is written; were it 0, scan everything.
            let n = match bits as u32 {
                0 => ADDR_BUCKETS,
                b => (1u32 << b).min(ADDR_BUCKETS),
            };
            // A used bucket has its first entry filled (entries fill from the first).
            for b in 0..n {
                if table.first_word(base + b) != 0 {
                    table.write(base + b, &[Addr6Bucket::default()]);
                }
            }
        }
        (None, None) => {}
    }
    for (&b, items) in buckets {
        table.write(base + b, &[crate::addr_table::bucket6(items)]);
    }
}

/// Removes generation `gen`'s entries from an IPv6 trie (keys start with the generation).
fn clear_trie(
    trie: &mut LpmTrie<MapData, Lpm6Key, u32>,
    gen: u32,
    name: &'static str,
) -> Result<(), LoadError> {
    let stale: Vec<Key<Lpm6Key>> = trie
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| k.data().0[..4] == gen.to_be_bytes())
        .collect();
    for k in stale {
        trie.remove(&k).map_err(map_err(name))?;
    }
    Ok(())
}

/// Writes the IPv6 entries of `entries` into generation `gen` of `trie` (the IPv4 ones are in
/// the block index).
fn write_lpm(
    trie: &mut LpmTrie<MapData, Lpm6Key, u32>,
    gen: u32,
    entries: &[LpmEntry],
    name: &'static str,
) -> Result<(), LoadError> {
    for e in entries {
        if let ipnet::IpNet::V6(n) = e.net {
            let mut k = [0u8; 20];
            k[..4].copy_from_slice(&gen.to_be_bytes());
            k[4..].copy_from_slice(&n.addr().octets());
            let key = Key::new(GEN_PREFIX_BITS + n.prefix_len() as u32, Lpm6Key(k));
            trie.insert(&key, e.slot, 0).map_err(map_err(name))?;
        }
    }
    Ok(())
}

/// Waits until every XDP program run that started before now has finished: XDP runs inside
/// RCU read-side critical sections, and `membarrier(MEMBARRIER_CMD_GLOBAL)` waits for an RCU
/// grace period. Where that command is unavailable (nohz_full kernels) a 50 ms sleep, far
/// longer than any program run, stands in.
pub fn wait_for_readers() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r != 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
}
