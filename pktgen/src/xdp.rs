//! The `xdp` engine: frames generated in the kernel with BPF_PROG_TEST_RUN live frames. Our
//! `xdpwall_gen` program (ebpf/src/gen.rs) rewrites the flow fields of the template in every
//! run and redirects the frame out of the target interface, so no frame crosses the syscall
//! boundary. The calling thread must be in the interface's network namespace.
//!
//! On veth, redirected frames reach the peer only if the peer has a native-mode XDP program,
//! or GRO enabled (they then go up as skbs); otherwise they are lost silently.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp},
    Ebpf,
};
use xdpwall_common::{gen_field, Counter, GenConfig, GenPace, PACE_BUCKETS};

use crate::{flow::low32, Flows, FrameSpec, IpSpec, L4Spec};

/// Errors of the in-kernel engine.
#[derive(Debug, thiserror::Error)]
pub enum XdpEngineError {
    /// Loading the generator object.
    #[error("loading the generator program: {0} (run as root)")]
    Load(String),
    /// The interface is not in this namespace.
    #[error("interface '{0}' does not exist in this network namespace")]
    NoInterface(String),
    /// BPF_PROG_TEST_RUN failed.
    #[error("BPF_PROG_TEST_RUN (live frames) failed: {0}")]
    Run(String),
    /// The kernel cannot run XDP programs on live frames.
    #[error(
        "the xdp engine needs BPF_PROG_TEST_RUN live frames (Linux 5.18 or later), which this \
         kernel ({0}) lacks: use --engine afpacket (or auto)"
    )]
    NoLiveFrames(String),
}

/// Most source addresses [`XdpEngine::with_sources`] takes (16 MiB of map).
pub const MAX_SOURCES: usize = 1 << 20;

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut c = e.source();
    while let Some(x) = c {
        s.push_str(": ");
        s.push_str(&x.to_string());
        c = x.source();
    }
    s
}

/// The loaded generator programs.
pub struct XdpEngine {
    ebpf: Ebpf,
    template: Vec<u8>,
    cfg: GenConfig,
    config: Array<MapData, GenConfig>,
}

/// What paced sending did on one CPU since the last [`XdpEngine::reset_pace`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PaceStats {
    /// Frames sent.
    pub sent: u64,
    /// Runs dropped unsent because they came early (the engine's idle spinning).
    pub held: u64,
    /// Frames sent more than [`xdpwall_common::PACE_CATCH_UP`] gaps late (the schedule
    /// restarted; the slots in between were given up).
    pub late: u64,
    /// The gap asked for, in ns.
    pub gap_ns: u64,
    /// Histogram of the gaps between frames: bucket `i` holds gaps in `[i, i + 1) *
    /// bucket_ns`, the last one every longer gap.
    pub gaps: Vec<u64>,
    /// Width of a bucket, in ns.
    pub bucket_ns: u64,
}

impl PaceStats {
    /// Adds the counts and gaps of `o` (another engine, or another CPU) to these.
    pub fn add(&mut self, o: &PaceStats) {
        self.sent += o.sent;
        self.held += o.held;
        self.late += o.late;
        self.gap_ns = o.gap_ns;
        self.bucket_ns = o.bucket_ns;
        self.gaps.resize(self.gaps.len().max(o.gaps.len()), 0);
        for (a, b) in self.gaps.iter_mut().zip(&o.gaps) {
            *a += b;
        }
    }

    /// The gap at quantile `q` (0..=1), as the upper edge of its bucket, in ns (None without
    /// gaps, or when it lies in the open last bucket).
    pub fn gap_quantile_ns(&self, q: f64) -> Option<f64> {
        let total: u64 = self.gaps.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.gaps.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (i + 1 < self.gaps.len()).then(|| ((i + 1) as u64 * self.bucket_ns) as f64);
            }
        }
        None
    }

    /// Share of gaps within one bucket width of the gap asked for.
    pub fn on_time(&self) -> f64 {
        let total: u64 = self.gaps.iter().sum();
        if total == 0 || self.bucket_ns == 0 {
            return 0.0;
        }
        let at = (self.gap_ns / self.bucket_ns) as usize;
        let near: u64 = self
            .gaps
            .iter()
            .enumerate()
            .filter(|(i, _)| i.abs_diff(at) <= 1)
            .map(|(_, n)| n)
            .sum();
        near as f64 / total as f64
    }
}

/// Counting drop program: the baseline receiver ([`CountDrop::passing`]: the same counter
/// passing the frames on, the baseline of a path that forwards them).
pub struct CountDrop {
    ebpf: Ebpf,
    name: &'static str,
}

pub(crate) fn load_object() -> Result<Ebpf, XdpEngineError> {
    Ebpf::load(xdpwall_ebpf::GEN).map_err(|e| XdpEngineError::Load(chain(&e)))
}

pub(crate) fn load_prog<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, XdpEngineError> {
    let p: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| XdpEngineError::Load(format!("no program {name}")))?
        .try_into()
        .map_err(|e: ProgramError| XdpEngineError::Load(chain(&e)))?;
    p.load().map_err(|e| XdpEngineError::Load(chain(&e)))?;
    Ok(p)
}

impl XdpEngine {
    /// How long one [`XdpEngine::send`] call should last: each call costs about 24 ms of
    /// set-up besides its frames (see [`crate::pace`]), so calls of 1 s keep that under 3%.
    pub const CALL_SLICE: Duration = Duration::from_secs(1);

    /// Loads the generator for `template` varied by `flows`, sending out of `iface` (in the
    /// calling thread's namespace).
    pub fn new(
        template: &FrameSpec,
        flows: &Flows,
        iface: &str,
    ) -> Result<XdpEngine, XdpEngineError> {
        Self::with_sources(template, flows, iface, &[])
    }

    /// Like [`XdpEngine::new`], but frame `n` takes its whole source address from `sources`
    /// (entry `n % len`, or a random entry when `flows.src` is random; the template's family,
    /// at most [`MAX_SOURCES`]): traffic from hosts spread over the address space, or drawn
    /// from a blocklist. Empty: the source varies as `flows.src` says.
    pub fn with_sources(
        template: &FrameSpec,
        flows: &Flows,
        iface: &str,
        sources: &[IpAddr],
    ) -> Result<XdpEngine, XdpEngineError> {
        if sources.len() > MAX_SOURCES {
            return Err(XdpEngineError::Load(format!(
                "{} source addresses, at most {MAX_SOURCES}",
                sources.len()
            )));
        }
        let v6 = matches!(template.ip, IpSpec::V6 { .. });
        if let Some(a) = sources.iter().find(|a| a.is_ipv6() != v6) {
            return Err(XdpEngineError::Load(format!(
                "source {a} is not of the template's family"
            )));
        }
        let name =
            std::ffi::CString::new(iface).map_err(|_| XdpEngineError::NoInterface(iface.into()))?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(XdpEngineError::NoInterface(iface.into()));
        }
        if !xdpwall::features::xdp_live_frames() {
            return Err(XdpEngineError::NoLiveFrames(
                xdpwall::features::kernel_release(),
            ));
        }
        let mut ebpf = if sources.is_empty() {
            load_object()?
        } else {
            aya::EbpfLoader::new()
                .map_max_entries("XW_GEN_SRC", sources.len() as u32)
                .load(xdpwall_ebpf::GEN)
                .map_err(|e| XdpEngineError::Load(chain(&e)))?
        };
        if !sources.is_empty() {
            let mut list: Array<&mut MapData, [u8; 16]> = Array::try_from(
                ebpf.map_mut("XW_GEN_SRC")
                    .ok_or_else(|| XdpEngineError::Load("map XW_GEN_SRC missing".into()))?,
            )
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
            for (i, a) in sources.iter().enumerate() {
                let mut w = [0u8; 16];
                match a {
                    IpAddr::V4(a) => w[..4].copy_from_slice(&a.octets()),
                    IpAddr::V6(a) => w = a.octets(),
                }
                list.set(i as u32, w, 0)
                    .map_err(|e| XdpEngineError::Load(chain(&e)))?;
            }
        }
        load_prog(&mut ebpf, "xdpwall_gen")?;
        let (v6, src, dst) = match &template.ip {
            IpSpec::V4 { src, dst, .. } => (false, low32((*src).into()), low32((*dst).into())),
            IpSpec::V6 { src, dst, .. } => (true, low32((*src).into()), low32((*dst).into())),
        };
        let (has_ports, sport, dport, csum) = match template.l4 {
            L4Spec::Tcp { sport, dport, .. } => (1, sport, dport, 16),
            L4Spec::Udp { sport, dport } => (1, sport, dport, 6),
            _ => (0, 0, 0, 0),
        };
        let random = [flows.src, flows.dst, flows.sport, flows.dport]
            .iter()
            .enumerate()
            .map(|(i, v)| (matches!(v, crate::Vary::Random { .. }) as u8) << i)
            .fold(0, |a, b| a | b);
        let spread = [flows.src, flows.dst, flows.sport, flows.dport]
            .iter()
            .enumerate()
            .map(|(i, v)| (matches!(v, crate::Vary::Spread { .. }) as u8) << i)
            .fold(0, |a, b| a | b);
        let mut base = [0u32; 4];
        base[gen_field::SRC] = src;
        base[gen_field::DST] = dst;
        base[gen_field::SPORT] = sport as u32;
        base[gen_field::DPORT] = dport as u32;
        let cfg = GenConfig {
            ifindex,
            l3_off: template.l3_offset() as u16,
            l4_off: (template.l3_offset() + template.l3_len()) as u16,
            l4_csum_off: if template.has_l4_header() { csum } else { 0 },
            v6: v6 as u8,
            has_ports: if template.has_l4_header() {
                has_ports
            } else {
                0
            },
            random,
            stamp_off: template.probe_offset().map_or(0, |o| (o + 4) as u16),
            macs: {
                let mut m = [0u8; 12];
                m[..6].copy_from_slice(&template.dst_mac);
                m[6..].copy_from_slice(&template.src_mac);
                m
            },
            ttl: crate::frame::TTL,
            src_list: sources.len() as u32,
            spread,
            base,
            span: [
                flows.src.span(),
                flows.dst.span(),
                flows.sport.span(),
                flows.dport.span(),
            ],
            ..GenConfig::default()
        };
        let mut map: Array<MapData, GenConfig> = Array::try_from(
            ebpf.take_map("XW_GEN_CONFIG")
                .ok_or_else(|| XdpEngineError::Load("map XW_GEN_CONFIG missing".into()))?,
        )
        .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        map.set(0, cfg, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        Ok(XdpEngine {
            ebpf,
            template: template.build(),
            cfg,
            config: map,
        })
    }

    /// Paces the frames of each sending CPU to `pps` per second (None: as fast as it goes).
    /// Frames then leave evenly spaced; a run that comes early is dropped unsent, so a paced
    /// engine keeps its CPU busy whatever the rate. Resets the pacing state.
    pub fn set_rate(&mut self, pps: Option<f64>) -> Result<(), XdpEngineError> {
        let gap_ns = pps.map_or(0, |r| (1e9 / r.max(1e-3)).round().max(1.0) as u64);
        self.cfg.gap_ns = gap_ns;
        // 32 buckets of an eighth of the gap: gaps up to 4x the one asked for are resolved.
        self.cfg.bucket_ns = (gap_ns / 8).max(1);
        self.config
            .set(0, self.cfg, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        self.reset_pace()
    }

    fn pace_map(&mut self) -> Result<PerCpuArray<&mut MapData, GenPace>, XdpEngineError> {
        PerCpuArray::try_from(
            self.ebpf
                .map_mut("XW_GEN_PACE")
                .ok_or_else(|| XdpEngineError::Load("map XW_GEN_PACE missing".into()))?,
        )
        .map_err(|e| XdpEngineError::Load(chain(&e)))
    }

    /// Zeroes the pacing state and counts of every CPU (the next frame starts the clock).
    pub fn reset_pace(&mut self) -> Result<(), XdpEngineError> {
        let n = aya::util::nr_cpus().map_err(|(_, e)| XdpEngineError::Load(e.to_string()))?;
        let zero = aya::maps::PerCpuValues::try_from(vec![GenPace::default(); n])
            .map_err(|e| XdpEngineError::Load(e.to_string()))?;
        self.pace_map()?
            .set(0, zero, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))
    }

    /// What paced sending did since the last reset, summed over CPUs.
    pub fn pace_stats(&mut self) -> Result<PaceStats, XdpEngineError> {
        let (gap_ns, bucket_ns) = (self.cfg.gap_ns, self.cfg.bucket_ns);
        let v = self
            .pace_map()?
            .get(&0, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        let mut s = PaceStats {
            gap_ns,
            bucket_ns,
            gaps: vec![0; PACE_BUCKETS],
            ..PaceStats::default()
        };
        for p in v.iter() {
            s.sent += p.sent;
            s.held += p.held;
            s.late += p.late;
            for (a, b) in s.gaps.iter_mut().zip(p.gaps) {
                *a += b;
            }
        }
        Ok(s)
    }

    /// Generates `count` frames (in live-frame batches of `batch`) and returns how long the
    /// kernel took.
    pub fn send(&self, count: u32, batch: u32) -> Result<Duration, XdpEngineError> {
        let prog: &Xdp = self
            .ebpf
            .program("xdpwall_gen")
            .and_then(|p| p.try_into().ok())
            .expect("loaded in new()");
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&self.template);
        opts.repeat = count.max(1);
        opts.attrs = TestRunAttrs::new().xdp_live_frames(batch.max(1));
        let t = Instant::now();
        prog.test_run(opts)
            .map_err(|e| XdpEngineError::Run(chain(&e)))?;
        Ok(t.elapsed())
    }
}

/// Kernel-measured ns per run of `frame` through any loaded XDP program (BPF_PROG_TEST_RUN,
/// `repeat` runs), `rounds` times, sorted.
pub fn ns_per_run(
    prog: &Xdp,
    frame: &[u8],
    repeat: u32,
    rounds: usize,
) -> Result<Vec<f64>, ProgramError> {
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        v.push(prog.test_run(opts)?.duration.as_nanos() as f64);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v)
}

impl CountDrop {
    /// Loads the counting drop program (attach it with [`CountDrop::program`]).
    pub fn load() -> Result<CountDrop, XdpEngineError> {
        Self::named("xdpwall_count_drop")
    }

    /// Loads the counting program that passes frames on (`XDP_PASS`) instead of dropping them.
    pub fn passing() -> Result<CountDrop, XdpEngineError> {
        Self::named("xdpwall_count_pass")
    }

    fn named(name: &'static str) -> Result<CountDrop, XdpEngineError> {
        let mut ebpf = load_object()?;
        load_prog(&mut ebpf, name)?;
        Ok(CountDrop { ebpf, name })
    }

    /// The program, to attach.
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(self.name)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in load()")
    }

    /// Kernel-measured ns per run of `frame` (BPF_PROG_TEST_RUN, `repeat` runs), `rounds`
    /// times, sorted.
    pub fn ns_per_packet(
        &self,
        frame: &[u8],
        repeat: u32,
        rounds: usize,
    ) -> Result<Vec<f64>, XdpEngineError> {
        let prog: &Xdp = self
            .ebpf
            .program(self.name)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in load()");
        ns_per_run(prog, frame, repeat, rounds).map_err(|e| XdpEngineError::Run(chain(&e)))
    }

    /// Frames counted so far, summed over CPUs.
    pub fn count(&self) -> Result<Counter, XdpEngineError> {
        let map: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map("XW_COUNT")
                .ok_or_else(|| XdpEngineError::Load("map XW_COUNT missing".into()))?,
        )
        .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        let v = map
            .get(&0, 0)
            .map_err(|e| XdpEngineError::Load(chain(&e)))?;
        Ok(v.iter().fold(Counter::default(), |a, c| Counter {
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::PaceStats;

    fn stats(gaps: &[(usize, u64)]) -> PaceStats {
        let mut g = vec![0; 32];
        for &(i, n) in gaps {
            g[i] = n;
        }
        PaceStats {
            gap_ns: 8_000,
            bucket_ns: 1_000,
            gaps: g,
            ..PaceStats::default()
        }
    }

    #[test]
    fn gap_quantiles_and_the_share_on_time_come_from_the_histogram() {
        // 90 gaps in [8, 9) us, 9 in [3, 4) us, one beyond the histogram.
        let s = stats(&[(8, 90), (3, 9), (31, 1)]);
        assert_eq!(s.gap_quantile_ns(0.05), Some(4_000.0));
        assert_eq!(s.gap_quantile_ns(0.5), Some(9_000.0));
        assert_eq!(s.gap_quantile_ns(0.99), Some(9_000.0));
        assert_eq!(s.gap_quantile_ns(1.0), None, "the open last bucket");
        assert!((s.on_time() - 0.9).abs() < 1e-12);
        assert_eq!(PaceStats::default().gap_quantile_ns(0.5), None);
    }

    #[test]
    fn stats_of_two_engines_add_up() {
        let mut a = stats(&[(8, 10)]);
        a.sent = 10;
        let mut b = stats(&[(8, 5), (9, 5)]);
        b.sent = 10;
        b.late = 2;
        let mut all = PaceStats::default();
        all.add(&a);
        all.add(&b);
        assert_eq!((all.sent, all.late, all.gap_ns), (20, 2, 8_000));
        assert_eq!(all.gaps[8], 15);
        assert_eq!(all.gaps[9], 5);
        assert_eq!(all.gaps.len(), 32);
    }
}
