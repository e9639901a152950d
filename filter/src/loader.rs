//! The loader: loads the XDP object (the real kernel verifier runs here), owns the map handles,
//! writes compiled tables into a generation and flips to it, reads counters, attaches to
//! interfaces and pins everything under `/sys/fs/bpf/xdpwall/<name>/` so that a second process
//! can steer a running filter.
//!
//! # Live, atomic updates
//! [`Maps::apply`] writes the whole new rule set into the inactive generation, then flips
//! [`Config::active_gen`] with one map write. Each packet reads the generation once, so it is
//! judged entirely by the old or entirely by the new rule set. Before the inactive generation
//! is rewritten, [`wait_for_readers`] waits for an RCU grace period (XDP programs run inside
//! RCU read-side sections), so no packet that started before the previous flip still reads it.

use std::{
    fs,
    io::ErrorKind,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    maps::{
        lpm_trie::Key, Array, IterableMap, LpmTrie, Map, MapData, MapError, PerCpuArray,
        PerCpuValues, RingBuf,
    },
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLinkId,
        ProgramError, TestRun, TestRunOptions, Xdp, XdpMode,
    },
    Ebpf,
};
use serde::Serialize;
use xdpwall_common::{
    map_names, stat, Addr4Bucket, Addr6Bucket, Bitmap, Block4, Config, Counter, Divisor, GenInfo,
    Lpm6Key, RuleEntry, SetInfo, ABI_VERSION, ADDR_BUCKETS, BLOCKS4, DEFAULT_SAMPLE_DROPS,
    GENERATIONS, GEN_PREFIX_BITS, MAX_RULES, MAX_SETS, NO_LEN, PORT_ENTRIES, PROGRAM_NAME,
    PROTO_ENTRIES, SLOTS_PER_GEN, SNAP_MAX,
};

use crate::{
    batch,
    compile::{compile, decode_rule, LpmEntry, Tables},
    rules::{Action, Rule, RuleSet},
};

/// The XDP object, built by ebpf/build.rs.
static OBJECT: &[u8] = xdpwall_ebpf::FILTER;

/// Leading frame bytes a verdict event carries unless configured otherwise.
pub const DEFAULT_SNAP_LEN: u32 = 128;

/// Where filters are pinned: one folder per filter name (by default the interface name).
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdpwall";
const LINK_PIN: &str = "link";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Errors of the loader, each with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The caller lacks the privileges for BPF or XDP.
    #[error("permission denied while {what}: run as root (needs CAP_BPF, CAP_NET_ADMIN)")]
    Permission {
        /// What was being done.
        what: String,
    },
    /// The kernel refused the program.
    #[error("the kernel verifier rejected the XDP program: {0}")]
    Verifier(String),
    /// Loading failed for another reason.
    #[error("loading the XDP object failed: {0}")]
    Load(String),
    /// The interface does not exist.
    #[error("interface '{0}' does not exist (see `ip link`; in another namespace? run inside it)")]
    NoInterface(String),
    /// Attaching failed.
    #[error("attaching to '{iface}' in {mode} mode failed: {reason}")]
    Attach {
        /// Interface.
        iface: String,
        /// Requested mode.
        mode: Mode,
        /// Why, with a hint.
        reason: String,
    },
    /// Detaching failed.
    #[error("detaching the filter failed: {0}")]
    Detach(String),
    /// A map operation failed.
    #[error("map {map}: {}", full_chain(source))]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        source: MapError,
    },
    /// No filter is pinned under that name.
    #[error("no xdpwall filter named '{0}' is running (nothing pinned at {PIN_ROOT}/{0}); start one with `xdpwall attach`")]
    NotRunning(String),
    /// The pinned maps were made by an incompatible version.
    #[error("the filter pinned at {0} uses map layout {1}, this xdpwall uses {ABI_VERSION}: detach it first")]
    Abi(PathBuf, u32),
    /// Pinning or bpffs problems.
    #[error("{0}")]
    Pin(String),
    /// The rule set does not fit the tables.
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    /// A kernel table is too small for the rule set; nothing was changed.
    #[error("{0}")]
    Capacity(String),
    /// BPF_PROG_TEST_RUN failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(String),
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// In the driver (`xdpdrv`); fails if the driver has no XDP support.
    Native,
    /// In the generic network stack path (`xdpgeneric`); works everywhere, slower.
    Generic,
    /// Native, falling back to generic with a message.
    Auto,
}

impl Mode {
    /// The kernel attach flag: generic is `xdpgeneric` (skb), native and auto try the driver.
    pub fn xdp_mode(self) -> XdpMode {
        if self == Mode::Generic {
            XdpMode::Skb
        } else {
            XdpMode::Driver
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
            Mode::Auto => "auto",
        })
    }
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

fn is_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn full_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

/// A shared mapping of a `BPF_F_MMAPABLE` array: element `i` lives at `i * stride`.
struct MmapArray {
    ptr: *mut u8,
    len: usize,
    stride: usize,
}

impl MmapArray {
    fn new(
        map: &MapData,
        entries: u32,
        value_size: usize,
        name: &'static str,
    ) -> Result<MmapArray, LoadError> {
        let stride = value_size.div_ceil(8) * 8;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (entries as usize * stride).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's value area; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(LoadError::Map {
                map: name,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "mmap",
                    io_error: std::io::Error::last_os_error(),
                }),
            });
        }
        Ok(MmapArray {
            ptr: ptr as *mut u8,
            len,
            stride,
        })
    }

    /// The first word of element `index`.
    fn first_word(&self, index: u32) -> u32 {
        assert!((index as usize + 1) * self.stride <= self.len);
        // SAFETY: in bounds (asserted above); the element is at least 4 bytes, 8-aligned.
        unsafe { std::ptr::read_volatile(self.ptr.add(index as usize * self.stride) as *const u32) }
    }

    /// Copies `values` into consecutive elements from `first`.
    fn write<V: aya::Pod>(&mut self, first: u32, values: &[V]) {
        let size = std::mem::size_of::<V>();
        assert!(size <= self.stride && (first as usize + values.len()) * self.stride <= self.len);
        if size == self.stride {
            // Packed: one copy (the block index alone is 1 MiB per generation).
            // SAFETY: in bounds (asserted above); V is Pod; the kernel side only reads.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    values.as_ptr() as *const u8,
                    self.ptr.add(first as usize * self.stride),
                    std::mem::size_of_val(values),
                );
            }
            return;
        }
        for (i, v) in values.iter().enumerate() {
            // SAFETY: in bounds (asserted above); V is Pod; the kernel side only reads.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    v as *const V as *const u8,
                    self.ptr.add((first as usize + i) * self.stride),
                    size,
                );
            }
        }
    }

    /// [`MmapArray::write`] for `u32` elements in 8-byte slots, widened so that a port table
    /// (65,537 entries) is one copy instead of one per entry.
    fn write_u32s(&mut self, first: u32, values: &[u32]) {
        if self.stride == 8 && cfg!(target_endian = "little") {
            // The u32 is the low half of its slot; the high half is padding.
            let wide: Vec<u64> = values.iter().map(|&v| v as u64).collect();
            self.write(first, &wide);
        } else {
            self.write(first, values);
        }
    }
}

impl Drop for MmapArray {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

// SAFETY: the mapping is owned memory; it is only written through &mut self.
unsafe impl Send for MmapArray {}
// SAFETY: shared references cannot write or read through the pointer.
unsafe impl Sync for MmapArray {}

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
    addr4: MmapArray,
    addr6: MmapArray,
    sets: Array<MapData, SetInfo>,
    /// Token buckets: only the program uses them; kept so they are pinned.
    _rate: Map,
    events: Option<Map>,
    /// Whether packets may be running the program concurrently (attached, or maps opened
    /// from pins). When not, nothing can still read the inactive generation and the RCU wait
    /// before an update is skipped (BPF_PROG_TEST_RUN in this thread is synchronous).
    live: bool,
    /// For maps no other process can write (not pinned): the address-table buckets each
    /// generation and family holds (`gen * 2 + v6`), so an update zeroes just those instead of
    /// scanning the whole table.
    addr_used: Option<[Vec<u32>; 4]>,
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// How long an update took and how big it was.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// The generation now active.
    pub generation: u32,
    /// Rules in the new set.
    pub rules: usize,
    /// Distinct bitmaps written.
    pub bitmaps: usize,
    /// Networks outside the address tables (both dimensions): IPv6 ones written to the LPM
    /// tries, IPv4 ones (/16 and shorter) folded into the block index.
    pub prefixes: usize,
    /// Entries written to the address tables.
    pub hashed: usize,
    /// Time to compile.
    pub compile: Duration,
    /// Time to write the maps and flip.
    pub write: Duration,
}

/// Counters of a running filter, summed over CPUs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Active generation.
    pub generation: u32,
    /// Policies of the active rule set.
    pub default: Action,
    /// Malformed-frame policy.
    pub malformed_action: Action,
    /// Non-IP policy.
    pub non_ip_action: Action,
    /// Packets passed.
    pub pass: Count,
    /// Packets dropped.
    pub drop: Count,
    /// Packets that matched no rule.
    pub default_hits: Count,
    /// Malformed frames.
    pub malformed: Count,
    /// Non-IP frames.
    pub non_ip: Count,
    /// Packets rate-limit rules dropped.
    pub rate_limited: Count,
    /// Verdict events lost to a full ring buffer.
    pub events_lost: Count,
    /// Verdict sampling in force.
    pub sampling: Sampling,
    /// The active rule set's address sets.
    pub sets: Vec<SetStatus>,
    /// The active rules with their counters.
    pub rules: Vec<RuleCounter>,
}

/// Which verdicts become events (see [`Maps::set_sampling`]).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Sampling {
    /// One drop in this many (0: none).
    pub drops: u32,
    /// One pass in this many (0: none).
    pub passes: u32,
    /// Leading frame bytes carried per event.
    pub snap_len: u32,
}

/// One address set of the active rule set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SetStatus {
    /// Its name.
    pub name: String,
    /// Entries.
    pub entries: u32,
    /// Of which host entries (/32, /128).
    pub hosts: u32,
    /// Of which IPv6.
    pub v6: u32,
}

/// One rule and its counters.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleCounter {
    /// 0-based position.
    pub index: usize,
    /// The rule.
    pub rule: Rule,
    /// Packets and bytes it matched since it was applied.
    pub hits: Count,
    /// Of those, packets a rate limit dropped.
    pub limited: Count,
}

impl Maps {
    fn from_source(
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
            addr4: mmapped!(map_names::ADDR4, Addr4Bucket, GENERATIONS * ADDR_BUCKETS),
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

    fn set_config(&mut self, c: Config) -> Result<(), LoadError> {
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
        let map = self
            .events
            .take()
            .ok_or_else(|| LoadError::Load("the event ring buffer is already taken".into()))?;
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
            hashed: tables.src_hashed.len() + tables.dst_hashed.len(),
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
        let (stale4, stale6) = stale_info.addr_tables();
        let stale_bits = stale_info.addr_bits;
        let (new4, new6) = t.info.addr_tables();
        // Record first that this (inactive) generation may hold entries in those tables, and
        // in how many buckets, so that a write that fails half way is still cleaned up by the
        // next one.
        let wider = |f: usize| t.info.addr_bits[f] > stale_bits[f];
        if (new4 && (!stale4 || wider(0))) || (new6 && (!stale6 || wider(1))) {
            stale_info.hashed4 |= t.info.hashed4;
            for (old, new) in stale_info.hashed6.iter_mut().zip(t.info.hashed6) {
                if old[0] == NO_LEN {
                    *old = new;
                }
            }
            for (old, new) in stale_info.addr_bits.iter_mut().zip(t.info.addr_bits) {
                *old = (*old).max(new);
            }
            self.gen_info
                .set(gen, stale_info, 0)
                .map_err(map_err(map_names::GEN_INFO))?;
        }
        let (used4, used6) = match &mut self.addr_used {
            Some(u) => {
                let [a, b, c, d] = u;
                let (v4, v6) = if gen == 0 { (a, b) } else { (c, d) };
                (Some(v4), Some(v6))
            }
            None => (None, None),
        };
        write_addr(
            &mut self.addr4,
            used4,
            gen,
            &t.addr[0],
            stale4.then_some(stale_bits[0]),
            crate::addr_table::bucket4,
        );
        write_addr(
            &mut self.addr6,
            used6,
            gen,
            &t.addr[1],
            stale6.then_some(stale_bits[1]),
            crate::addr_table::bucket6,
        );
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
        PerCpuValues::try_from(vec![Counter::default(); self.0])
            .map_err(|e| LoadError::Load(format!("per-CPU values: {e}")))
    }
}

fn zero_per_cpu() -> Result<ZeroPerCpu, LoadError> {
    let n = aya::util::nr_cpus().map_err(|(what, e)| LoadError::Load(format!("{what}: {e}")))?;
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

/// Writes one family's address-table buckets of generation `gen`, after zeroing the buckets
/// the generation held before: those recorded in `used` (private maps; updated here), else,
/// when `stale_bits` (an earlier rule set hashed networks of this family there, in at most
/// `1 << bits` buckets, see [`GenInfo::addr_bits`]), every bucket found filled by a scan of
/// those.
fn write_addr<B: aya::Pod + Default>(
    table: &mut MmapArray,
    used: Option<&mut Vec<u32>>,
    gen: u32,
    buckets: &crate::addr_table::Buckets,
    stale_bits: Option<u8>,
    layout: impl Fn(&[crate::addr_table::AddrItem; xdpwall_common::WAYS]) -> B,
) {
    let base = gen * ADDR_BUCKETS;
    match (used, stale_bits) {
        (Some(used), _) => {
            for &b in used.iter() {
                table.write(base + b, &[B::default()]);
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
                    table.write(base + b, &[B::default()]);
                }
            }
        }
        (None, None) => {}
    }
    for (&b, items) in buckets {
        table.write(base + b, &[layout(items)]);
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

/// The index of `iface` in the current thread's network namespace (sysfs would show the
/// namespace it was mounted in instead).
pub fn if_index(iface: &str) -> Option<u32> {
    let c = std::ffi::CString::new(iface).ok()?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The pin folder of the filter called `name`.
pub fn pin_dir(name: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(name)
}

/// Where the BPF filesystem lives.
const BPFFS: &str = "/sys/fs/bpf";
/// Present while a bpffs that xdpwall mounted is mounted (xdpwall unmounts only its own).
const MOUNT_MARK: &str = "/run/xdpwall/bpffs-mounted";
/// Serialises mounting, pinning, unpinning and unmounting between xdpwall processes.
const BPFFS_LOCK: &str = "/run/xdpwall/bpffs.lock";
/// What the kernel itself puts into every new bpffs (the bpf_preload iterators).
const KERNEL_ENTRIES: [&str; 2] = ["maps.debug", "progs.debug"];

/// An exclusive lock on [`BPFFS_LOCK`], released on drop.
struct BpffsLock {
    _file: fs::File,
}

impl BpffsLock {
    fn take() -> Result<BpffsLock, LoadError> {
        let err = |e: std::io::Error| LoadError::Pin(format!("locking {BPFFS_LOCK}: {e}"));
        fs::create_dir_all("/run/xdpwall").map_err(err)?;
        let f = fs::File::create(BPFFS_LOCK).map_err(err)?;
        // SAFETY: valid fd.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(BpffsLock { _file: f })
    }
}

/// Makes sure a bpffs is mounted at /sys/fs/bpf, mounting one (and remembering that xdpwall
/// did) if not. Call with the [`BpffsLock`] held.
fn ensure_bpffs() -> Result<(), LoadError> {
    let path = c"/sys/fs/bpf";
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    if r == 0 && st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    fs::create_dir_all(BPFFS).ok();
    // SAFETY: constant C strings, no data argument.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            path.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(LoadError::Pin(format!(
            "no BPF filesystem at /sys/fs/bpf and mounting one failed ({e}): run as root, or `mount -t bpf bpf /sys/fs/bpf`"
        )));
    }
    fs::write(MOUNT_MARK, b"mounted by xdpwall\n")
        .map_err(|e| LoadError::Pin(format!("writing {MOUNT_MARK}: {e}")))
}

/// Unmounts the bpffs at /sys/fs/bpf if xdpwall mounted it and nothing but the kernel's own
/// entries is left in it. Call with the [`BpffsLock`] held.
fn release_bpffs_locked() -> Result<(), LoadError> {
    if !Path::new(MOUNT_MARK).exists() {
        return Ok(());
    }
    let in_use = fs::read_dir(BPFFS)
        .map_err(|e| LoadError::Pin(format!("reading {BPFFS}: {e}")))?
        .flatten()
        .any(|e| !KERNEL_ENTRIES.iter().any(|k| e.file_name() == *k));
    if in_use {
        return Ok(());
    }
    // SAFETY: constant C string.
    if unsafe { libc::umount(c"/sys/fs/bpf".as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(LoadError::Pin(format!("unmounting {BPFFS}: {e}")));
    }
    fs::remove_file(MOUNT_MARK).map_err(|e| LoadError::Pin(format!("removing {MOUNT_MARK}: {e}")))
}

/// Unmounts the bpffs xdpwall mounted, once no pin of anyone is left in it (`xdpwall detach
/// --all` calls this after a crash; [`remove_pins`] does it by itself).
pub fn release_bpffs() -> Result<(), LoadError> {
    let _lock = BpffsLock::take()?;
    release_bpffs_locked()
}

/// Keeps a bpffs mounted at /sys/fs/bpf for another tool that pins there (the benchmark's
/// xdp-filter peer), with the same bookkeeping as xdpwall's own pins: on drop it is unmounted
/// if xdpwall mounted it and nothing but the kernel's entries is left.
pub struct BpffsHold(());

impl BpffsHold {
    /// Mounts a bpffs at /sys/fs/bpf unless one is there.
    pub fn take() -> Result<BpffsHold, LoadError> {
        let _lock = BpffsLock::take()?;
        ensure_bpffs()?;
        Ok(BpffsHold(()))
    }
}

impl Drop for BpffsHold {
    fn drop(&mut self) {
        let _ = release_bpffs();
    }
}

/// A loaded (not necessarily attached) filter.
pub struct Filter {
    ebpf: Ebpf,
    /// The filter's maps.
    pub maps: Maps,
    link: Option<XdpLinkId>,
}

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    /// The XDP action code (`XDP_DROP` = 1, `XDP_PASS` = 2).
    pub xdp_action: u32,
    /// Kernel-measured time per run.
    pub duration: Duration,
}

/// Kernel-side size figures of the loaded program.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProgramStats {
    /// Instructions after the verifier's rewrites.
    pub xlated_instructions: u32,
    /// Instructions the verifier processed (explored) to prove the program safe.
    pub verified_instructions: Option<u32>,
    /// Bytes of JITed machine code.
    pub jited_bytes: u32,
    /// Nanoseconds spent in the program while BPF run-time statistics were on
    /// (`BPF_ENABLE_STATS` / `kernel.bpf_stats_enabled`); 0 if they never were.
    pub run_time_ns: u64,
    /// Runs counted while they were on.
    pub run_count: u64,
}

impl Filter {
    /// Loads the XDP object into the kernel (runs the verifier) with an empty rule set that
    /// passes everything.
    pub fn load() -> Result<Filter, LoadError> {
        Filter::load_inner(None)
    }

    /// Like [`Filter::load`], and pins the maps under [`PIN_ROOT`]/`name` at once so other
    /// processes can steer the filter; [`Filter::pin_link`] later pins the attachment.
    /// On error nothing stays pinned.
    pub fn load_pinned(name: &str) -> Result<Filter, LoadError> {
        let _lock = BpffsLock::take()?;
        ensure_bpffs()?;
        let dir = pin_dir(name);
        if dir.exists() {
            return Err(LoadError::Pin(format!(
                "{} already exists: a filter named '{name}' is running (`xdpwall detach {name}` removes it)",
                dir.display()
            )));
        }
        fs::create_dir_all(&dir)
            .map_err(|e| LoadError::Pin(format!("creating {}: {e}", dir.display())))?;
        let r = Filter::load_inner(Some(&dir));
        if r.is_err() {
            let _ = remove_pins_locked(name);
        }
        r
    }

    fn load_inner(pin: Option<&Path>) -> Result<Filter, LoadError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| {
            if is_eperm(&e) {
                LoadError::Permission {
                    what: "creating BPF maps".into(),
                }
            } else {
                LoadError::Load(full_chain(&e))
            }
        })?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| LoadError::Load(format!("no program {PROGRAM_NAME} in the object")))?
            .try_into()
            .map_err(|e: ProgramError| LoadError::Load(e.to_string()))?;
        prog.load().map_err(|e| match &e {
            ProgramError::LoadError { verifier_log, .. } => {
                LoadError::Verifier(verifier_log.to_string())
            }
            _ if is_eperm(&e) => LoadError::Permission {
                what: "loading the XDP program".into(),
            },
            _ => LoadError::Load(full_chain(&e)),
        })?;
        let mut maps = Maps::from_source(|name| {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| LoadError::Load(format!("map {name} missing from the object")))?;
            if let Some(dir) = pin {
                map.pin(dir.join(name)).map_err(|e| {
                    LoadError::Pin(format!(
                        "pinning {name} under {}: {}",
                        dir.display(),
                        full_chain(&e)
                    ))
                })?;
            }
            Ok(map)
        })?;
        // Pinned maps can be steered by other processes while packets flow; private ones only
        // see packets once attached.
        maps.live = pin.is_some();
        if pin.is_none() {
            maps.addr_used = Some(Default::default());
        }
        maps.set_config(Config {
            active_gen: 0,
            abi: ABI_VERSION,
            snap_len: DEFAULT_SNAP_LEN,
            drop_every: Divisor::new(DEFAULT_SAMPLE_DROPS),
            ..Config::default()
        })?;
        maps.apply(&RuleSet::default())?;
        Ok(Filter {
            ebpf,
            maps,
            link: None,
        })
    }

    /// Loads the filter and applies `set`.
    pub fn with_rules(set: &RuleSet) -> Result<Filter, LoadError> {
        let mut f = Filter::load()?;
        f.maps.apply(set)?;
        Ok(f)
    }

    fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in Filter::load")
    }

    fn program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in Filter::load")
    }

    /// Size figures the kernel reports for the loaded program.
    pub fn program_stats(&self) -> Result<ProgramStats, LoadError> {
        let info = self
            .program()
            .info()
            .map_err(|e| LoadError::Load(full_chain(&e)))?;
        Ok(ProgramStats {
            xlated_instructions: info.size_translated().unwrap_or(0) / 8,
            verified_instructions: info.verified_instruction_count(),
            jited_bytes: info.size_jitted(),
            run_time_ns: info.run_time().as_nanos() as u64,
            run_count: info.run_count(),
        })
    }

    /// Runs one frame through the loaded program with BPF_PROG_TEST_RUN, `repeat` times.
    /// Frames shorter than an Ethernet header cannot be injected (the kernel refuses them).
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<RunResult, LoadError> {
        let mut out = vec![0u8; frame.len() + 512];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        let r = self
            .program()
            .test_run(opts)
            .map_err(|e| LoadError::TestRun(full_chain(&e)))?;
        Ok(RunResult {
            xdp_action: r.return_value,
            duration: r.duration,
        })
    }

    /// Attaches to `iface`. With [`Mode::Auto`], native is tried first and generic is used
    /// (and reported in the returned mode) when the driver refuses.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> Result<Mode, LoadError> {
        if if_index(iface).is_none() {
            return Err(LoadError::NoInterface(iface.to_string()));
        }
        // From the first attach on, packets may be mid-run during any update.
        self.maps.live = true;
        let try_mode = |f: &mut Filter, m: Mode| {
            f.program_mut().attach(iface, m.xdp_mode()).map(|id| f.link = Some(id)).map_err(|e| {
                let chain = full_chain(&e);
                let hint = if chain.contains("busy") || chain.contains("EBUSY") {
                    format!(
                        "another XDP program is attached (`xdpwall detach {iface}` or `ip link set dev {iface} xdp off`)"
                    )
                } else if is_eperm(&e) {
                    "permission denied: run as root (needs CAP_NET_ADMIN)".to_string()
                } else if m == Mode::Native {
                    format!("{chain} (the driver may lack native XDP: try --mode generic or auto)")
                } else {
                    chain
                };
                LoadError::Attach {
                    iface: iface.to_string(),
                    mode: m,
                    reason: hint,
                }
            })
        };
        let used = match mode {
            Mode::Auto => match try_mode(self, Mode::Native) {
                Ok(()) => Mode::Native,
                Err(e) => {
                    eprintln!(
                        "xdpwall: native XDP unavailable on {iface} ({e}); using generic mode"
                    );
                    try_mode(self, Mode::Generic)?;
                    Mode::Generic
                }
            },
            m => {
                try_mode(self, m)?;
                m
            }
        };
        Ok(used)
    }

    /// Detaches from the interface of the last [`Filter::attach`] (call in the namespace it
    /// was attached in); the program and its maps stay loaded, ready to attach again. A filter
    /// that is not attached is left as it is.
    pub fn detach(&mut self) -> Result<(), LoadError> {
        if let Some(id) = self.link.take() {
            self.program_mut()
                .detach(id)
                .map_err(|e| LoadError::Detach(full_chain(&e)))?;
        }
        Ok(())
    }

    /// Pins the attachment under [`PIN_ROOT`]/`name`/link, so it outlives this process
    /// (`xdpwall detach` or [`remove_pins`] ends it). Call after [`Filter::attach`].
    pub fn pin_link(&mut self, name: &str) -> Result<(), LoadError> {
        let dir = pin_dir(name);
        let id = self
            .link
            .take()
            .ok_or_else(|| LoadError::Pin("not attached: nothing to pin".into()))?;
        let link = self
            .program_mut()
            .take_link(id)
            .map_err(|e| LoadError::Pin(full_chain(&e)))?;
        let fd_link = FdLink::try_from(link).map_err(|e| {
            LoadError::Pin(format!(
                "the kernel attached without a BPF link, which cannot be pinned: {}",
                full_chain(&e)
            ))
        })?;
        fd_link.pin(dir.join(LINK_PIN)).map_err(|e| {
            LoadError::Pin(format!(
                "pinning the link under {}: {}",
                dir.display(),
                full_chain(&e)
            ))
        })?;
        Ok(())
    }
}

/// Detaches and removes the filter pinned under `name`: unpinning the link detaches the
/// program, unpinning the maps frees them once nothing else holds them. Idempotent.
pub fn remove_pins(name: &str) -> Result<bool, LoadError> {
    let _lock = BpffsLock::take()?;
    remove_pins_locked(name)
}

fn remove_pins_locked(name: &str) -> Result<bool, LoadError> {
    let dir = pin_dir(name);
    if !dir.exists() {
        release_bpffs_locked()?;
        return Ok(false);
    }
    let link = dir.join(LINK_PIN);
    if link.exists() {
        match PinnedLink::from_pin(&link) {
            Ok(l) => {
                let _ = l.unpin();
            }
            Err(_) => {
                let _ = fs::remove_file(&link);
            }
        }
    }
    let entries = fs::read_dir(&dir)
        .map_err(|e| LoadError::Pin(format!("reading {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        if let Err(e) = fs::remove_file(entry.path()) {
            if e.kind() != ErrorKind::NotFound {
                return Err(LoadError::Pin(format!(
                    "removing {}: {e}",
                    entry.path().display()
                )));
            }
        }
    }
    fs::remove_dir(&dir).map_err(|e| LoadError::Pin(format!("removing {}: {e}", dir.display())))?;
    // The root folder goes too once no filter is left (another one may race us: ignore), and
    // the bpffs when xdpwall mounted it and nothing else is pinned there.
    let _ = fs::remove_dir(PIN_ROOT);
    release_bpffs_locked()?;
    Ok(true)
}

/// Names of every pinned filter.
pub fn pinned_filters() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(PIN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}
