//! The benchmark behind `cargo xtask bench`: packets per second judged by the DUT on the
//! standard veth topology, per XDP mode, traffic source and program, repeated, with median,
//! min and max; plus the kernel-measured BPF_PROG_TEST_RUN cost per packet.
//!
//! Cases: mode (native, generic) x source (`xdp`: frames generated in the kernel with live
//! frames and redirected into the veth; `afpacket`: frames sent through AF_PACKET sockets, so
//! the DUT receives skbs) x program (`baseline`: a counting drop program, the ceiling here;
//! `filter-N`: xdpwall with N ordered rules where only the last one matches, the worst case;
//! `set-N`: one rule with an N-entry address set; `denylist-N` and `xdp-filter-N`: xdpwall and
//! the peer [`crate::peer::XdpFilter`] dropping the same N exact source addresses).
//! Rates come from the DUT's own counters over a fixed window while the generator runs flat
//! out; after the window, frames sent = judged + lost is checked and reported.
//!
//! Results go to `results/bench-<unix time>.json` (schema: [`Report`]) and a matching `.svg`.

use std::{
    io::IsTerminal,
    path::PathBuf,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::programs::xdp::XdpLinkId;
use pktgen::{
    afpacket::AfPacket, pace::Slicer, xdp::CountDrop, xdp::XdpEngine, Flows, FrameSpec, Vary,
};
use serde::Serialize;
use xdpwall::{Filter, Mode, RuleSet};
use xdpwall_common::stat;

use crate::{netns, verdict::Checker, Options, Topology};

/// Which XDP modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Driver mode.
    Native,
    /// Generic (skb) mode.
    Generic,
    /// Both, in one run (ratios are comparable).
    Both,
}

impl ModeArg {
    /// The modes to run, in order.
    pub fn modes(self) -> Vec<Mode> {
        match self {
            ModeArg::Native => vec![Mode::Native],
            ModeArg::Generic => vec![Mode::Generic],
            ModeArg::Both => vec![Mode::Native, Mode::Generic],
        }
    }
}

/// Options of the benchmark.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// XDP mode(s).
    #[arg(long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Measurement window per run, in seconds.
    #[arg(long, default_value_t = 0.75)]
    pub duration: f64,
    /// Runs per case (median, min and max are reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Rule counts to measure (ordered rules, the last one matching).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 100, 1024])]
    pub rules: Vec<usize>,
    /// Set sizes to measure (one rule dropping sources in a synthetic blocklist of this many
    /// entries; the traffic hits one of its prefixes).
    #[arg(long, value_delimiter = ',', default_values_t = vec![10usize, 10_000, 1_000_000])]
    pub sets: Vec<usize>,
    /// Exact source addresses in the deny list that xdpwall and the peer, xdp-filter, both
    /// drop (0: no deny-list cases). The peer runs when xdp-tools 1.6 or later is on PATH.
    #[arg(long, default_value_t = 1024)]
    pub deny_list: usize,
    /// Traffic sources: xdp (live frames), afpacket (stack packets).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["xdp".to_string(), "afpacket".to_string()])]
    pub sources: Vec<String>,
    /// Frame size in bytes (without FCS).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Generator threads (each pinned to its own CPU; the veth gets one queue per thread).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Folder for the JSON and SVG results.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// A short smoke run: 0.5 s windows, 2 runs, rule counts 1 and 1024, sets of 10 and
    /// 1,000,000 entries.
    #[arg(long)]
    pub quick: bool,
    /// Only the BPF_PROG_TEST_RUN costs (no topology, no traffic).
    #[arg(long)]
    pub test_run_only: bool,
    /// Receive on the DUT in threaded NAPI pinned to this CPU (keep the generator threads,
    /// pinned to CPUs 0, 1, ..., off it). Default: the DUT receives in the softirq of the
    /// sending CPU, so generator and filter share it (steadier figures; see benches/README.md).
    #[arg(long)]
    pub dut_cpu: Option<usize>,
    /// Rounds of the paired program-time measurement on the wire (xdp source only; 0: none):
    /// per case one live-frames flow, the baseline and the case attached in turn for 0.15 s
    /// each round, their ns per run read from the kernel's BPF run-time statistics.
    #[arg(long, default_value_t = 6)]
    pub program_time_rounds: usize,
    /// Instead of the filter: pktgen's engines against their peers (xdp-trafficgen, trafgen)
    /// for the `--sources` given (see [`crate::genbench`]).
    #[arg(long, conflicts_with = "test_run_only")]
    pub generators: bool,
    /// Sending threads per generator case (`--generators`; `--quick` uses 1).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    pub gen_threads: Vec<usize>,
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// `native` or `generic`.
    pub mode: String,
    /// `xdp` or `afpacket`.
    pub source: String,
    /// `baseline`, `filter-N` (N ordered rules), `set-N` (one rule, an N-entry set),
    /// `denylist-N` (one rule, a set of N hosts) or `xdp-filter-N` (the peer with the same N
    /// hosts).
    pub program: String,
    /// Rules in the filter (0 for the baseline).
    pub rules: usize,
    /// Entries in the filter's address set (0 without one).
    pub set_entries: usize,
    /// Mpps judged by the DUT.
    #[serde(flatten)]
    pub rate: Rates,
    /// Median as a fraction of the baseline with the same mode and source.
    pub of_baseline: Option<f64>,
    /// Frames the generator sent over all runs of the case.
    pub sent: u64,
    /// Frames the DUT judged (passed + dropped) over all runs.
    pub judged: u64,
    /// sent - judged: frames lost before the program (queues full, redirect failures).
    pub lost: u64,
    /// `receiver` when more than 1% was lost (the DUT was the bottleneck), else `generator`.
    pub bound: String,
}

/// When and where a benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Unix time of the start.
    pub started: u64,
    /// Kernel release.
    pub kernel: String,
    /// CPUs online.
    pub cpus: usize,
}

impl RunInfo {
    /// This machine, now.
    pub fn now() -> Result<RunInfo> {
        Ok(RunInfo {
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        })
    }
}

/// Mpps of the runs of one case: each run, median, min and max.
#[derive(Clone, Debug, Serialize)]
pub struct Rates {
    /// Mpps, one per run.
    pub runs_mpps: Vec<f64>,
    /// Median of the runs.
    pub median_mpps: f64,
    /// Minimum.
    pub min_mpps: f64,
    /// Maximum.
    pub max_mpps: f64,
}

impl Rates {
    /// The spread of `runs` (at least one).
    pub fn of(runs: Vec<f64>) -> Rates {
        let (median_mpps, min_mpps, max_mpps) = stats(&runs);
        Rates {
            runs_mpps: runs,
            median_mpps,
            min_mpps,
            max_mpps,
        }
    }
}

/// Kernel-measured cost of one program run.
#[derive(Clone, Debug, Serialize)]
pub struct TestRunCost {
    /// `baseline`, `filter-N`, or `set-N-host` / `set-N-prefix` / `set-N-miss` (a frame whose
    /// source is a host entry of the N-entry set, inside one of its prefixes, or in neither).
    pub program: String,
    /// ns per packet, median of the rounds.
    pub median_ns: f64,
    /// Minimum.
    pub min_ns: f64,
    /// Maximum.
    pub max_ns: f64,
}

/// The program's own time on the wire against the baseline's, measured in pairs.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramTime {
    /// `native` or `generic`.
    pub mode: String,
    /// Traffic source (`xdp`).
    pub source: String,
    /// The case's program, as in [`Case::program`].
    pub program: String,
    /// Rounds measured (one slice of the baseline and one of the program each).
    pub rounds: usize,
    /// Length of one slice, seconds.
    pub slice_s: f64,
    /// ns per run of the baseline, median over the rounds (bpf_stats' own cost included).
    pub baseline_ns: f64,
    /// ns per run of the program, likewise.
    pub program_ns: f64,
    /// ns per frame more than the baseline: the median of the per-round differences (the
    /// statistics' own cost, the same for both, cancels).
    pub over_baseline_ns: f64,
    /// Smallest per-round difference.
    pub min_over_ns: f64,
    /// Largest per-round difference.
    pub max_over_ns: f64,
    /// The per-round differences, in round order.
    pub over_runs_ns: Vec<f64>,
    /// What that cost makes of the baseline's rate when a frame takes `1000 / baseline Mpps`
    /// ns (the baseline's median in this run): `t / (t + over_baseline_ns)`.
    pub implied_of_baseline: Option<f64>,
}

/// The JSON report (`version` 3: adds `program_time`; 2 added `peers`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Schema version.
    pub version: u32,
    /// When and where it ran.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Settings used.
    pub settings: Settings,
    /// On-wire cases.
    pub cases: Vec<Case>,
    /// BPF_PROG_TEST_RUN ns/packet.
    pub test_run: Vec<TestRunCost>,
    /// Program time on the wire, paired with the baseline.
    pub program_time: Vec<ProgramTime>,
    /// Cases not run, with the reason.
    pub skipped: Vec<String>,
    /// Peer tools that ran, with their versions.
    pub peers: Vec<String>,
}

/// Settings of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Window per run (s).
    pub duration_s: f64,
    /// Runs per case.
    pub repeats: usize,
    /// Frame size (bytes).
    pub frame_size: usize,
    /// Generator threads (pinned to CPUs 0, 1, ...).
    pub threads: usize,
    /// The CPU the DUT's receive path (threaded NAPI, and so the XDP program) is pinned to;
    /// null when it shares the generator's CPUs.
    pub dut_cpu: Option<usize>,
}

/// Rule sets of `n` rules where only the last one matches [`frame_for_last`].
pub fn ordered_rules(n: usize) -> RuleSet {
    let mut text = String::from("default = \"pass\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[rule]]\naction = \"drop\"\nsrc = \"10.{}.{}.0/24\"\nproto = \"udp\"\ndport = {}\n",
            (i / 256) % 256,
            i % 256,
            1000 + i
        ));
    }
    RuleSet::parse(&text, "generated").expect("generated rules are valid")
}

/// A UDP frame of `size` bytes that the last of [`ordered_rules`]`(n)` matches.
pub fn frame_for_last(n: usize, size: usize) -> FrameSpec {
    let i = n.saturating_sub(1);
    let src = format!("10.{}.{}.7", (i / 256) % 256, i % 256);
    FrameSpec::udp(
        src.parse().unwrap(),
        "198.18.0.2".parse().unwrap(),
        5000,
        1000 + i as u16,
    )
    .payload(size.saturating_sub(14 + 20 + 8))
}

/// What the DUT runs in one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Baseline,
    Rules(usize),
    Set(usize),
    DenyList(usize),
    XdpFilter(usize),
}

impl Workload {
    fn name(&self) -> String {
        match self {
            Workload::Baseline => "baseline".into(),
            Workload::Rules(n) => format!("filter-{n}"),
            Workload::Set(n) => format!("set-{n}"),
            Workload::DenyList(n) => format!("denylist-{n}"),
            Workload::XdpFilter(n) => format!("xdp-filter-{n}"),
        }
    }

    fn template(&self, size: usize) -> FrameSpec {
        match self {
            Workload::Rules(n) => frame_for_last((*n).max(1), size),
            _ => frame_for_last(1, size),
        }
    }
}

/// The prefix of [`set_rules`] that the benchmark traffic (sources 10.0.0.7 and up) hits.
pub const SET_TRAFFIC_PREFIX: &str = "10.0.0.0/24";

/// One rule dropping sources in a set of `n` entries: a synthetic blocklist
/// ([`crate::blocklist`]) of `n - 1` entries plus [`SET_TRAFFIC_PREFIX`].
pub fn set_rules(n: usize) -> RuleSet {
    let mut nets = crate::blocklist::blocklist(n.saturating_sub(1), 42).nets;
    nets.push(SET_TRAFFIC_PREFIX.parse().unwrap());
    let mut set = RuleSet::default();
    set.sets
        .insert("blocklist".into(), xdpwall::AddrSet::new(nets));
    let mut r = xdpwall::Rule::new(xdpwall::Action::Drop);
    r.name = Some("blocklist".into());
    r.src_set = Some("blocklist".into());
    set.rules.push(r);
    set
}

/// Sources in the benchmark traffic, from its template's source up.
const TRAFFIC_SOURCES: usize = 200;

/// The deny list of the `denylist-N` and `xdp-filter-N` cases: the traffic's sources, then
/// other hosts up to `n`.
pub fn deny_list(n: usize) -> Vec<std::net::Ipv4Addr> {
    crate::peer::deny_list("10.0.0.7".parse().unwrap(), TRAFFIC_SOURCES, n)
}

/// One rule dropping sources in a set of the `n` hosts of [`deny_list`]: xdpwall's side of
/// the comparison with xdp-filter.
pub fn deny_rules(n: usize) -> RuleSet {
    let nets = deny_list(n)
        .into_iter()
        .map(|a| ipnet::IpNet::from(std::net::IpAddr::V4(a)))
        .collect();
    let mut set = RuleSet::default();
    set.sets
        .insert("denylist".into(), xdpwall::AddrSet::new(nets));
    let mut r = xdpwall::Rule::new(xdpwall::Action::Drop);
    r.name = Some("denylist".into());
    r.src_set = Some("denylist".into());
    set.rules.push(r);
    set
}

/// Flows of the benchmark traffic: 200 sources inside the matching /24, 1000 source ports.
fn bench_flows() -> Flows {
    Flows {
        src: Vary::Range {
            count: TRAFFIC_SOURCES as u32,
        },
        sport: Vary::Range { count: 1000 },
        ..Flows::default()
    }
}

/// One case of one mode and source while it runs: its receiver and what it measured.
struct Slot {
    workload: Workload,
    program: String,
    template: FrameSpec,
    ruleset: Option<RuleSet>,
    rx: Receiver,
    runs: Vec<f64>,
    sent: u64,
    judged: u64,
}

/// Median, min and max.
pub(crate) fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// What the DUT runs for a case, and how to read how many frames it judged. Loaded once per
/// mode, attached only for its own runs.
enum Receiver {
    Baseline(CountDrop, Option<XdpLinkId>),
    Filter(Box<Filter>),
    Peer(Box<crate::peer::XdpFilter>),
}

impl Receiver {
    /// Loads the baseline (no rules) or the filter with `rules`, not attached.
    fn load(rules: Option<&RuleSet>) -> Result<Receiver> {
        Ok(match rules {
            None => Receiver::Baseline(CountDrop::load()?, None),
            Some(r) => Receiver::Filter(Box::new(Filter::with_rules(r)?)),
        })
    }

    /// Attaches to the DUT's interface in `mode`.
    fn attach(&mut self, topo: &Topology, mode: Mode) -> Result<()> {
        let _ns = topo.dut.enter()?;
        match self {
            Receiver::Baseline(c, link) => {
                *link = Some(
                    c.program()
                        .attach(&topo.dut.iface, mode.xdp_mode())
                        .with_context(|| format!("attaching the baseline in {mode} mode"))?,
                );
            }
            Receiver::Filter(f) => {
                f.attach(&topo.dut.iface, mode)?;
            }
            Receiver::Peer(p) => p.attach()?,
        }
        Ok(())
    }

    /// Detaches from the DUT's interface; stays loaded.
    fn detach(&mut self, topo: &Topology) -> Result<()> {
        let _ns = topo.dut.enter()?;
        match self {
            Receiver::Baseline(c, link) => {
                if let Some(id) = link.take() {
                    c.program().detach(id).context("detaching the baseline")?;
                }
            }
            Receiver::Filter(f) => f.detach()?,
            Receiver::Peer(p) => p.detach()?,
        }
        Ok(())
    }

    /// Nanoseconds in the program and its runs while BPF run-time statistics were on.
    fn run_stats(&mut self) -> Result<(u64, u64)> {
        let info = match self {
            Receiver::Baseline(c, _) => c.program().info()?,
            Receiver::Filter(f) => {
                let s = f.program_stats()?;
                return Ok((s.run_time_ns, s.run_count));
            }
            Receiver::Peer(p) => p.program()?.info()?,
        };
        Ok((info.run_time().as_nanos() as u64, info.run_count()))
    }

    fn judged(&self) -> Result<u64> {
        Ok(match self {
            Receiver::Baseline(c, _) => c.count()?.packets,
            // The two global counters only: a whole snapshot reads every rule too, inside the
            // measured window.
            Receiver::Filter(f) => {
                f.maps.stat(stat::PASS)?.packets + f.maps.stat(stat::DROP)?.packets
            }
            Receiver::Peer(p) => p.judged()?,
        })
    }
}

/// Generator threads running flat out until stopped; counts what they sent.
pub(crate) struct Generator {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handles: Vec<std::thread::JoinHandle<Result<()>>>,
}

impl Generator {
    /// Starts `threads` generators of `template` varied by `flows`, with the `xdp` or
    /// `afpacket` engine; `xdp` ones size their calls to end near `until`.
    pub(crate) fn start(
        topo: &Topology,
        source: &str,
        template: FrameSpec,
        flows: Flows,
        threads: usize,
        until: Instant,
    ) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let handles = (0..threads.max(1))
            .map(|cpu| {
                let (s2, c2) = (stop.clone(), sent.clone());
                let (ns, iface, source) = (
                    topo.gen.netns.clone(),
                    topo.gen.iface.clone(),
                    source.to_string(),
                );
                let template = template.clone();
                std::thread::spawn(move || -> Result<()> {
                    netns::run_in(&ns, move || -> Result<()> {
                        pktgen::pin_to_cpu(cpu);
                        if source == "xdp" {
                            let e = XdpEngine::new(&template, &flows, &iface)?;
                            let mut slicer = Slicer::new(XdpEngine::CALL_SLICE, 1e6);
                            while !s2.load(Ordering::Relaxed) {
                                let left = until.saturating_duration_since(Instant::now());
                                let n = slicer.next(Some(left)).min(u32::MAX as u64) as u32;
                                let took = e.send(n, 64)?;
                                slicer.record(n as u64, took);
                                c2.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        } else {
                            let frames = flows.frames(&template, 1000);
                            let s = AfPacket::open(&iface)?;
                            let mut at = 0;
                            while !s2.load(Ordering::Relaxed) {
                                s.send_batch(&frames, at, 1024)?;
                                at += 1024;
                                c2.fetch_add(1024, Ordering::Relaxed);
                            }
                        }
                        Ok(())
                    })?
                })
            })
            .collect();
        Generator {
            stop,
            sent,
            handles,
        }
    }

    /// Stops the threads and returns how many frames they sent.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.join()
                .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        }
        Ok(self.sent.load(Ordering::Relaxed))
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// One run: generator on, settle, measure the window, generator off, wait for stragglers.
fn run_once(
    topo: &Topology,
    rx: &Receiver,
    source: &str,
    template: &FrameSpec,
    window: Duration,
    threads: usize,
) -> Result<(f64, u64, u64)> {
    let start_judged = rx.judged()?;
    const SETTLE: Duration = Duration::from_millis(100);
    let until = Instant::now() + SETTLE + window + Duration::from_millis(50);
    let g = Generator::start(
        topo,
        source,
        template.clone(),
        bench_flows(),
        threads,
        until,
    );
    std::thread::sleep(SETTLE);
    let a = rx.judged()?;
    let t = Instant::now();
    std::thread::sleep(window);
    let b = rx.judged()?;
    let elapsed = t.elapsed().as_secs_f64();
    let sent = g.finish()?;
    std::thread::sleep(Duration::from_millis(50));
    let judged = rx.judged()? - start_judged;
    Ok(((b - a) as f64 / elapsed / 1e6, sent, judged))
}

/// Program time on the wire, paired (see [`ProgramTime`]): for each case but the baseline, one
/// continuous live-frames flow of the case's template, and `args.program_time_rounds` rounds
/// in which the baseline and the case are each attached for one slice (in alternating order)
/// while the kernel's run-time statistics count their nanoseconds. Both programs of a round
/// meet the same traffic and the same spell of the host, so their difference resolves a few
/// ns where Mpps runs move by 15%. The statistics add their own cost to every run (turned
/// on only for this phase, by a file descriptor that turns them off when it closes).
fn program_times(
    topo: &Topology,
    mode: Mode,
    source: &str,
    slots: &mut [Slot],
    args: &Args,
    baseline_mpps: Option<f64>,
) -> Result<Vec<ProgramTime>> {
    let rounds = args.program_time_rounds;
    let Some(bi) = slots.iter().position(|s| s.workload == Workload::Baseline) else {
        return Ok(Vec::new());
    };
    if source != "xdp" || rounds == 0 {
        return Ok(Vec::new());
    }
    let slice = Duration::from_millis(if args.quick { 100 } else { 150 });
    const SETTLE: Duration = Duration::from_millis(50);
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("turning on BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let mut out = Vec::new();
    for i in (0..slots.len()).filter(|&i| i != bi) {
        let until = Instant::now() + (slice + SETTLE * 2) * (2 * rounds as u32 + 2);
        let g = Generator::start(
            topo,
            source,
            slots[i].template.clone(),
            bench_flows(),
            args.threads,
            until,
        );
        std::thread::sleep(Duration::from_millis(200));
        let mut ns = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            progress(
                r,
                rounds,
                &format!("{mode} {source} {}: program time", slots[i].program),
            );
            let order = if r % 2 == 0 { [bi, i] } else { [i, bi] };
            for k in order {
                let rx = &mut slots[k].rx;
                rx.attach(topo, mode)?;
                std::thread::sleep(SETTLE);
                let (t0, n0) = rx.run_stats()?;
                std::thread::sleep(slice);
                let (t1, n1) = rx.run_stats()?;
                rx.detach(topo)?;
                if n1 <= n0 {
                    bail!(
                        "{mode} {source} {}: no frame reached the program in {slice:?}",
                        slots[k].program
                    );
                }
                ns[(k == i) as usize].push((t1 - t0) as f64 / (n1 - n0) as f64);
            }
        }
        g.finish()?;
        let over_runs_ns: Vec<f64> = ns[1].iter().zip(&ns[0]).map(|(p, b)| p - b).collect();
        let (over_baseline_ns, min_over_ns, max_over_ns) = stats(&over_runs_ns);
        out.push(ProgramTime {
            mode: mode.to_string(),
            source: source.to_string(),
            program: slots[i].program.clone(),
            rounds,
            slice_s: slice.as_secs_f64(),
            baseline_ns: stats(&ns[0]).0,
            program_ns: stats(&ns[1]).0,
            over_baseline_ns,
            min_over_ns,
            max_over_ns,
            over_runs_ns,
            implied_of_baseline: baseline_mpps.filter(|&m| m > 0.0).map(|m| {
                let t = 1000.0 / m;
                t / (t + over_baseline_ns.max(0.0))
            }),
        });
    }
    Ok(out)
}

/// One progress step: redrawn in place on a terminal, one plain line each in a log.
pub(crate) fn progress(done: usize, total: usize, what: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K[{done:>3}/{total}] {what}");
    } else {
        eprintln!("[{done:>3}/{total}] {what}");
    }
}

/// The last progress step.
pub(crate) fn progress_done(total: usize) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
    eprintln!("[{total}/{total}] done");
}

/// Runs the benchmark and writes the report.
pub fn run(mut args: Args) -> Result<()> {
    if args.quick {
        args.duration = 0.5;
        args.repeats = 2;
        args.rules = vec![1, 1024];
        args.sets = vec![10, 1_000_000];
        args.program_time_rounds = args.program_time_rounds.min(2);
    }
    for s in &args.sources {
        if s != "xdp" && s != "afpacket" {
            bail!("unknown source '{s}' (xdp or afpacket)");
        }
    }
    if args.generators {
        return crate::genbench::run(&args);
    }
    let run = RunInfo::now()?;
    let started = run.started;
    let mut skipped = Vec::new();
    let peer = match crate::peer::xdp_tools_version("xdp-filter", "load") {
        Ok(v) => Some(v),
        Err(why) => {
            if args.deny_list > 0 {
                skipped.push(format!("peer xdp-filter-{}: {why}", args.deny_list));
            }
            None
        }
    };

    let mut set_cache: std::collections::HashMap<usize, RuleSet> = Default::default();
    for &n in &args.sets {
        set_cache.insert(n, set_rules(n));
    }
    let mut test_run = test_run_costs(&args, &set_cache)?;
    if args.test_run_only {
        print_test_run(&test_run);
        return Ok(());
    }
    let mut programs: Vec<Workload> = vec![Workload::Baseline];
    programs.extend(args.rules.iter().map(|&n| Workload::Rules(n)));
    programs.extend(args.sets.iter().map(|&n| Workload::Set(n)));
    if args.deny_list > 0 {
        programs.push(Workload::DenyList(args.deny_list));
        if peer.is_some() {
            programs.push(Workload::XdpFilter(args.deny_list));
        }
    }
    let total = args.mode.modes().len() * args.sources.len() * programs.len() * args.repeats;
    let mut done = 0;
    let mut cases = Vec::new();
    let mut program_time = Vec::new();
    let receiver_cpu = args.dut_cpu;
    for mode in args.mode.modes() {
        // Generic XDP on veth sees redirected XDP frames only as skbs, which needs GRO.
        let opts = Options {
            gro: mode == Mode::Generic,
            ipv6: false,
            queues: args.threads.max(1) as u32,
            dut_cpu: receiver_cpu,
            ..Options::default()
        };
        let topo = Topology::standard(&format!("bench-{mode}"), &opts)?;
        // Every receiver is loaded once per mode, before any run, and the runs then go
        // round by round (each case once per round, attached only for its run): the host's
        // noise comes and goes over seconds (benches/README.md), and this way every case
        // meets it alike instead of one case catching a slow minute whole.
        let mut slots = Vec::new();
        for w in &programs {
            let program = w.name();
            progress(done, total, &format!("{mode} {program}: loading"));
            let template = w.template(args.size);
            let ruleset = match w {
                Workload::Baseline | Workload::XdpFilter(_) => None,
                Workload::Rules(n) => Some(ordered_rules(*n)),
                Workload::Set(n) => Some(set_cache[n].clone()),
                Workload::DenyList(n) => Some(deny_rules(*n)),
            };
            let rx = match w {
                Workload::XdpFilter(n) => {
                    match crate::peer::XdpFilter::load(&topo.dut, mode, &deny_list(*n)) {
                        Ok(p) => {
                            if !test_run.iter().any(|c| c.program == program) {
                                let (repeat, rounds) = test_run_rounds(&args);
                                let frame = template.build();
                                test_run.push(cost(
                                    program.clone(),
                                    p.ns_per_packet(&frame, repeat, rounds)?,
                                ));
                            }
                            Receiver::Peer(Box::new(p))
                        }
                        Err(e) => {
                            skipped.push(format!("peer {program} in {mode} mode: {e:#}"));
                            done += args.repeats * args.sources.len();
                            continue;
                        }
                    }
                }
                _ => Receiver::load(ruleset.as_ref())?,
            };
            slots.push(Slot {
                workload: *w,
                program,
                template,
                ruleset,
                rx,
                runs: Vec::new(),
                sent: 0,
                judged: 0,
            });
        }
        for source in &args.sources {
            for r in 0..args.repeats {
                for s in &mut slots {
                    progress(
                        done,
                        total,
                        &format!(
                            "{mode} {source} {}: run {}/{}",
                            s.program,
                            r + 1,
                            args.repeats
                        ),
                    );
                    s.rx.attach(&topo, mode)?;
                    let (mpps, sent, judged) = run_once(
                        &topo,
                        &s.rx,
                        source,
                        &s.template,
                        Duration::from_secs_f64(args.duration),
                        args.threads,
                    )?;
                    s.rx.detach(&topo)?;
                    s.runs.push(mpps);
                    s.sent += sent;
                    s.judged += judged;
                    done += 1;
                }
            }
            let baseline = slots
                .iter()
                .find(|s| s.workload == Workload::Baseline)
                .map(|s| stats(&s.runs).0);
            program_time.extend(program_times(
                &topo, mode, source, &mut slots, &args, baseline,
            )?);
            // This source's measurements are taken out of the slots, which stay loaded for
            // the next source.
            for s in &mut slots {
                let rate = Rates::of(std::mem::take(&mut s.runs));
                let (sent, judged) = (std::mem::take(&mut s.sent), std::mem::take(&mut s.judged));
                let median = rate.median_mpps;
                let lost = sent.saturating_sub(judged);
                cases.push(Case {
                    mode: mode.to_string(),
                    source: source.clone(),
                    program: s.program.clone(),
                    rules: s.ruleset.as_ref().map_or(0, |r| r.rules.len()),
                    set_entries: match s.workload {
                        Workload::XdpFilter(n) => n,
                        _ => s
                            .ruleset
                            .as_ref()
                            .map_or(0, |r| r.sets.values().map(|s| s.nets.len()).sum()),
                    },
                    rate,
                    of_baseline: baseline.filter(|b| *b > 0.0).map(|b| median / b),
                    sent,
                    judged,
                    lost,
                    bound: if lost * 100 > sent {
                        "receiver".into()
                    } else {
                        "generator".into()
                    },
                });
            }
        }
        // The receivers (an xdp-filter peer's pins among them) go before their topology.
        drop(slots);
        drop(topo);
    }
    progress_done(total);
    let report = Report {
        version: 3,
        run,
        settings: Settings {
            duration_s: args.duration,
            repeats: args.repeats,
            frame_size: args.size,
            threads: args.threads,
            dut_cpu: receiver_cpu,
        },
        cases,
        test_run,
        program_time,
        skipped,
        peers: peer.into_iter().collect(),
    };
    print_report(&report);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join(format!("bench-{started}.json"));
    let svg = args.out.join(format!("bench-{started}.svg"));
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(&svg, crate::chart::svg(&report))?;
    println!("\nresults: {} and {}", json.display(), svg.display());
    Ok(())
}

/// BPF_PROG_TEST_RUN repeat count and rounds per program.
fn test_run_rounds(args: &Args) -> (u32, usize) {
    (
        if args.quick { 20_000 } else { 100_000 },
        args.repeats.max(1),
    )
}

/// Median, min and max of kernel-measured ns per packet.
fn cost(program: String, ns: Vec<f64>) -> TestRunCost {
    let (median_ns, min_ns, max_ns) = stats(&ns);
    TestRunCost {
        program,
        median_ns,
        min_ns,
        max_ns,
    }
}

/// Measures one test_run round: ns per run of a frame, repeated that many times.
type Measure = Box<dyn Fn(&[u8], u32) -> Result<f64>>;
/// A program (by its case name) and the frame whose test_run cost is measured.
type Probe = (String, Vec<u8>, Measure);

/// The test_run cost of every case. Every program is loaded first, then measured round by
/// round (like the on-wire runs), so a slow spell of the host hits all of them alike.
fn test_run_costs(
    args: &Args,
    sets: &std::collections::HashMap<usize, RuleSet>,
) -> Result<Vec<TestRunCost>> {
    let (repeat, rounds) = test_run_rounds(args);
    let mut probes: Vec<Probe> = Vec::new();
    let filter = |c: &Rc<Checker>| -> Measure {
        let c = c.clone();
        Box::new(move |f, r| Ok(c.ns_per_packet(f, r, 1)?[0]))
    };
    let frame = frame_for_last(1, args.size).build();
    let cd = CountDrop::load()?;
    probes.push((
        "baseline".into(),
        frame.clone(),
        Box::new(move |f, r| Ok(cd.ns_per_packet(f, r, 1)?[0])),
    ));
    let mut counts = vec![0usize];
    counts.extend(&args.rules);
    for &n in &counts {
        let c = Rc::new(Checker::new(ordered_rules(n))?);
        let frame = frame_for_last(n.max(1), args.size).build();
        probes.push((format!("filter-{n}"), frame, filter(&c)));
    }
    if args.deny_list > 0 {
        let c = Rc::new(Checker::new(deny_rules(args.deny_list))?);
        probes.push((
            format!("denylist-{}", args.deny_list),
            frame.clone(),
            filter(&c),
        ));
    }
    for &n in &args.sets {
        let set = &sets[&n];
        let c = Rc::new(Checker::new(set.clone())?);
        for (what, frame) in set_probe_frames(set, args.size) {
            probes.push((format!("set-{n}-{what}"), frame.build(), filter(&c)));
        }
    }
    let mut ns = vec![Vec::with_capacity(rounds); probes.len()];
    for _ in 0..rounds {
        for (i, (_, frame, measure)) in probes.iter().enumerate() {
            ns[i].push(measure(frame, repeat)?);
        }
    }
    Ok(probes
        .into_iter()
        .zip(ns)
        .map(|((name, _, _), ns)| cost(name, ns))
        .collect())
}

/// Frames of `size` bytes (like [`frame_for_last`]) whose IPv4 sources exercise each path of a
/// set lookup in [`set_rules`]: a host entry (hash hit), an address inside
/// [`SET_TRAFFIC_PREFIX`] (hash miss, trie hit) and one in no entry (hash miss, trie miss to
/// the /0).
pub fn set_probe_frames(set: &RuleSet, size: usize) -> Vec<(&'static str, FrameSpec)> {
    let nets = &set.sets["blocklist"].nets;
    let host = nets
        .iter()
        .find(|n| n.addr().is_ipv4() && n.prefix_len() == 32)
        .map(|n| n.addr())
        .expect("the blocklist has IPv4 hosts");
    let in_set = |a: std::net::IpAddr| nets.iter().any(|n| n.contains(&a));
    let miss = (1..=255u8)
        .map(|i| std::net::IpAddr::from([10, 0, i, 7]))
        .find(|a| !in_set(*a))
        .expect("an address outside the set");
    [
        ("host", host),
        ("prefix", "10.0.0.7".parse().unwrap()),
        ("miss", miss),
    ]
    .into_iter()
    .map(|(what, src)| {
        let spec = FrameSpec::udp(src, "198.18.0.2".parse().unwrap(), 5000, 1000)
            .payload(size.saturating_sub(14 + 20 + 8));
        (what, spec)
    })
    .collect()
}

fn print_test_run(costs: &[TestRunCost]) {
    println!("\nBPF_PROG_TEST_RUN, kernel-measured ns/packet (frame matching the last rule):");
    for c in costs {
        println!(
            "  {:<18} {:>7.1} ns  [{:.1} - {:.1}]",
            c.program, c.median_ns, c.min_ns, c.max_ns
        );
    }
}

fn print_report(r: &Report) {
    print_test_run(&r.test_run);
    println!(
        "\nOn the wire: Mpps judged by the DUT, {} runs of {} s, {}-byte frames, {} generator thread(s) (median [min - max]):",
        r.settings.repeats, r.settings.duration_s, r.settings.frame_size, r.settings.threads
    );
    println!(
        "  {:<8} {:<9} {:<15} {:>8} {:>19} {:>9} {:>7}  bound by",
        "mode", "source", "program", "Mpps", "[min - max]", "of base", "lost"
    );
    for c in &r.cases {
        println!(
            "  {:<8} {:<9} {:<15} {:>8.3} [{:>7.3} - {:>7.3}] {:>9} {:>6.2}%  {}",
            c.mode,
            c.source,
            c.program,
            c.rate.median_mpps,
            c.rate.min_mpps,
            c.rate.max_mpps,
            c.of_baseline
                .map(|f| format!("{:.0}%", f * 100.0))
                .unwrap_or_else(|| "-".into()),
            if c.sent > 0 {
                c.lost as f64 * 100.0 / c.sent as f64
            } else {
                0.0
            },
            c.bound
        );
    }
    if !r.program_time.is_empty() {
        println!(
            "\nProgram time on the wire, paired with the baseline (BPF run-time statistics, {} rounds of {} s per case, one flow each; ns per frame over the baseline, median [min - max], and the rate that implies at this run's baseline):",
            r.program_time[0].rounds, r.program_time[0].slice_s
        );
        for p in &r.program_time {
            println!(
                "  {:<8} {:<9} {:<15} {:>6.1} ns [{:>6.1} - {:>6.1}]  implied {:>4}",
                p.mode,
                p.source,
                p.program,
                p.over_baseline_ns,
                p.min_over_ns,
                p.max_over_ns,
                p.implied_of_baseline
                    .map(|f| format!("{:.0}%", f * 100.0))
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    // Native vs generic, per source and program, when both ran.
    let mut ratios = Vec::new();
    for n in r.cases.iter().filter(|c| c.mode == "native") {
        if let Some(g) = r
            .cases
            .iter()
            .find(|g| g.mode == "generic" && g.source == n.source && g.program == n.program)
        {
            if g.rate.median_mpps > 0.0 {
                ratios.push(format!(
                    "{} {}: {:.2}x",
                    n.source,
                    n.program,
                    n.rate.median_mpps / g.rate.median_mpps
                ));
            }
        }
    }
    if !ratios.is_empty() {
        println!("\nnative / generic: {}", ratios.join(", "));
    }
    // xdpwall against the peer on the same deny list and traffic.
    for p in r
        .cases
        .iter()
        .filter(|c| c.program.starts_with("xdp-filter-"))
    {
        let ours = format!("denylist-{}", p.set_entries);
        if let Some(o) = r
            .cases
            .iter()
            .find(|o| o.mode == p.mode && o.source == p.source && o.program == ours)
        {
            println!(
                "xdpwall / xdp-filter, {} {} ({} hosts): {:.2}x",
                p.mode,
                p.source,
                p.set_entries,
                o.rate.median_mpps / p.rate.median_mpps.max(1e-9)
            );
        }
    }
    for p in &r.peers {
        println!("peer: {p}");
    }
    for s in &r.skipped {
        println!("skipped: {s}");
    }
}
