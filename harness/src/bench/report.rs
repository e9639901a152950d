//! The filter benchmark's report: its JSON schema and its table.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::measure::{Rates, RunInfo, Source};

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// `native` or `generic`.
    pub mode: String,
    /// `xdp` or `afpacket`.
    pub source: Source,
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
    pub source: Source,
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

pub(super) fn print_test_run(costs: &[TestRunCost]) {
    println!("\nBPF_PROG_TEST_RUN, kernel-measured ns/packet (frame matching the last rule):");
    for c in costs {
        println!(
            "  {:<18} {:>7.1} ns  [{:.1} - {:.1}]",
            c.program, c.median_ns, c.min_ns, c.max_ns
        );
    }
}

pub(super) fn print_report(r: &Report) {
    println!("\n{}", r.run.machine());
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

/// One trial of the NDR/PDR search: a rate offered for a while, and where every frame went.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The rate asked of the generator (frames per second; null: flat out).
    pub requested_pps: Option<f64>,
    /// Frames sent / seconds of sending: the rate the DUT was offered.
    pub offered_pps: f64,
    /// Seconds of sending.
    pub secs: f64,
    /// Frames sent (the generator's own count).
    pub sent: u64,
    /// Frames the DUT's program judged (passed + dropped by its verdict).
    pub judged: u64,
    /// sent - judged.
    pub lost: u64,
    /// lost / sent.
    pub loss_ratio: f64,
    /// Of the lost frames, those the veth had no room for (the generator side's
    /// `tx_dropped`: the DUT did not keep up).
    pub lost_in_veth_ring: u64,
    /// Lost frames no counter accounts for (should be 0).
    pub lost_unaccounted: i64,
    /// Paced trials: median gap between frames, ns (upper edge of its histogram bucket).
    pub gap_p50_ns: Option<f64>,
    /// Paced trials: 99th percentile gap, ns (null: beyond 4 gaps).
    pub gap_p99_ns: Option<f64>,
    /// Paced trials: frames more than 8 gaps late (the schedule restarted).
    pub late: Option<u64>,
    /// A confirming trial (longer than the search's).
    pub final_trial: bool,
}

/// The outcome of one search: the highest offered rate whose loss ratio stayed within the
/// target, confirmed by a longer trial.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// The loss ratio allowed (0 for NDR).
    pub loss_ratio_allowed: f64,
    /// Mpps offered in the confirming trial.
    pub mpps: f64,
    /// Gbit/s of frames (without preamble and FCS) at that rate.
    pub gbps: f64,
    /// The lowest rate asked for that failed (Mpps; null when none did): the true bound lies
    /// between `mpps` and this.
    pub failed_at_mpps: Option<f64>,
    /// The confirming trial (of two or three at the load: the one with the median rate).
    pub confirm: Trial,
    /// Whether the load was confirmed (two confirming trials within the ratio); a load
    /// that failed, lowered by `precision`, failed again is reported marked false.
    pub confirmed: bool,
}

/// NDR and PDR of one program in one mode.
#[derive(Clone, Debug, Serialize)]
pub struct SearchCase {
    /// `native` or `generic`.
    pub mode: String,
    /// As in [`Case::program`].
    pub program: String,
    /// The flat-out trial the search started from.
    pub max: Trial,
    /// A confirming-length trial at 0.1 Mpps, far below what the DUT struggles with: frames
    /// lost there were lost to the host (a vCPU preempted longer than the veth ring lasts),
    /// and no NDR above that floor can be confirmed.
    pub floor: Trial,
    /// Highest rate without loss.
    pub ndr: Bound,
    /// Highest rate with at most the PDR loss ratio.
    pub pdr: Bound,
    /// NDR as a fraction of the baseline's NDR in the same mode.
    pub ndr_of_baseline: Option<f64>,
    /// `receiver` when flat out lost frames (the DUT was the limit), else `generator` (the
    /// search then only confirms the generator's rate).
    pub bound: String,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

/// One frame size, flat out (one trial): what the DUT judged.
#[derive(Clone, Debug, Serialize)]
pub struct SizeCase {
    /// `native` or `generic`.
    pub mode: String,
    /// As in [`Case::program`].
    pub program: String,
    /// Bytes with FCS (RFC 2544: 64 ... 1518), or `imix` (64, 594, 1518 bytes as 7:4:1).
    pub size: String,
    /// Average bytes per frame, FCS included.
    pub frame_bytes: f64,
    /// Mpps the generator offered.
    pub offered_mpps: f64,
    /// Mpps the DUT judged.
    pub judged_mpps: f64,
    /// Gbit/s the DUT judged (frames with FCS; a veth has no preamble or gap).
    pub judged_gbps: f64,
    /// Loss ratio of the trial.
    pub loss_ratio: f64,
    /// Frames the veth ring had no room for.
    pub lost_in_veth_ring: u64,
}

/// Latency at one load: where every probe went and the percentiles of those measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyPoint {
    /// `no load`, or the share of the NDR (`10% NDR`, ...).
    pub load: String,
    /// Frames per second asked for.
    pub requested_pps: f64,
    /// Frames sent / seconds of sending.
    pub offered_pps: f64,
    /// Probes sent.
    pub sent: u64,
    /// Probes that reached the receiver and were measured.
    pub measured: u64,
    /// Probes the DUT's program never judged (lost in the veth ring before it).
    pub lost_before_program: u64,
    /// Probes the program passed that never reached the receiver (the DUT's forwarding, or
    /// the receiver's veth ring).
    pub lost_after_program: u64,
    /// Smallest latency, microseconds (exact).
    pub min_us: Option<f64>,
    /// Median, microseconds (upper edge of its histogram bucket, within 3%).
    pub p50_us: Option<f64>,
    /// 90th percentile, microseconds.
    pub p90_us: Option<f64>,
    /// 99th percentile, microseconds.
    pub p99_us: Option<f64>,
    /// 99.9th percentile, microseconds.
    pub p999_us: Option<f64>,
    /// Largest latency, microseconds (exact).
    pub max_us: Option<f64>,
    /// Mean, microseconds.
    pub mean_us: Option<f64>,
    /// The histogram: (low edge of a bucket in ns, probes in it), empty buckets left out.
    /// A bucket reaches to the next one's low edge (buckets are 1/32 of a power of two wide
    /// from 64 ns up, 1 ns below).
    pub histogram: Vec<(u64, u64)>,
}

/// The latency of one program in one mode at every load.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyCase {
    /// `native` or `generic`.
    pub mode: String,
    /// As in [`Case::program`].
    pub program: String,
    /// The NDR the loads are fractions of (Mpps): the lower of the mode's baseline and
    /// filter NDRs, the same for both programs.
    pub ndr_reference_mpps: f64,
    /// Per load, idle first.
    pub points: Vec<LatencyPoint>,
}

/// The report of `--search` (`results/search-<unix time>.json`).
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    /// Schema version.
    pub version: u32,
    /// When and where it ran.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Seconds per search trial.
    pub trial_s: f64,
    /// Seconds of each confirming trial.
    pub final_trial_s: f64,
    /// Relative width the search narrows each bound to.
    pub precision: f64,
    /// Frame size (bytes, without FCS).
    pub frame_size: usize,
    /// The CPU of the generator thread.
    pub generator_cpu: usize,
    /// The CPU the DUT's receive path (threaded NAPI) is pinned to.
    pub dut_cpu: Option<usize>,
    /// Per mode and program.
    pub cases: Vec<SearchCase>,
    /// NDR(filter-N) / NDR(baseline) per mode, for the largest rule count.
    pub ratios: Vec<String>,
    /// Frame sizes, flat out: the baseline and the longest rule list.
    pub sizes: Vec<SizeCase>,
    /// Latency of passed frames through a forwarding DUT: the baseline and the longest rule
    /// list, at no load and at fractions of the NDR.
    pub latency: Vec<LatencyCase>,
    /// Cases not run, with the reason.
    pub skipped: Vec<String>,
}

pub(super) fn print_search(r: &SearchReport) {
    println!("\n{}", r.run.machine());
    println!(
        "NDR/PDR search (xdp engine, paced in the kernel; generator on CPU {}, DUT on {}; {}-byte \
         frames; trials of {} s, confirmed for {} s; PDR allows {}% loss):",
        r.generator_cpu,
        r.dut_cpu
            .map_or("the generator's CPU".into(), |c| format!("CPU {c}")),
        r.frame_size,
        r.trial_s,
        r.final_trial_s,
        r.cases
            .first()
            .map_or(0.0, |c| c.pdr.loss_ratio_allowed * 100.0)
    );
    println!(
        "  {:<8} {:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>10}  {:<9} trials",
        "mode",
        "program",
        "max Mpps",
        "NDR Mpps",
        "NDR Gb/s",
        "of base",
        "PDR Mpps",
        "PDR loss",
        "floor loss",
        "bound"
    );
    for c in &r.cases {
        let mark = |b: &Bound| if b.confirmed { "" } else { "!" };
        println!(
            "  {:<8} {:<16} {:>9.3} {:>8.3}{:1} {:>8.3} {:>9} {:>8.3}{:1} {:>8.3}% {:>9.3}%  {:<9} {}",
            c.mode,
            c.program,
            c.max.offered_pps / 1e6,
            c.ndr.mpps,
            mark(&c.ndr),
            c.ndr.gbps,
            c.ndr_of_baseline
                .map_or("-".into(), |f| format!("{:.0}%", f * 100.0)),
            c.pdr.mpps,
            mark(&c.pdr),
            c.pdr.confirm.loss_ratio * 100.0,
            c.floor.loss_ratio * 100.0,
            c.bound,
            c.trials.len()
        );
    }
    println!("  (! not confirmed: the longer trials at that load, and at one step lower, lost more than allowed;");
    println!(
        "   floor loss: lost in a trial at 0.1 Mpps, which the host, not the program, causes)"
    );
    for x in &r.ratios {
        println!("{x}");
    }
    if !r.sizes.is_empty() {
        println!("\nFrame sizes, flat out (one trial each; bytes with FCS):");
        println!(
            "  {:<8} {:<16} {:>6} {:>12} {:>11} {:>11} {:>7}",
            "mode", "program", "size", "offered Mpps", "judged Mpps", "judged Gb/s", "loss"
        );
        for c in &r.sizes {
            println!(
                "  {:<8} {:<16} {:>6} {:>12.3} {:>11.3} {:>11.2} {:>6.2}%",
                c.mode,
                c.program,
                c.size,
                c.offered_mpps,
                c.judged_mpps,
                c.judged_gbps,
                c.loss_ratio * 100.0
            );
        }
    }
    print_latency(&r.latency);
    for s in &r.skipped {
        println!("skipped: {s}");
    }
}

fn print_latency(cases: &[LatencyCase]) {
    if cases.is_empty() {
        return;
    }
    println!(
        "\nLatency of passed frames, one-way, generator -> DUT (forwarding) -> receiver, in \
         microseconds (xdp engine, paced; HDR histogram within 3%):"
    );
    println!(
        "  {:<8} {:<12} {:<9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9}",
        "mode",
        "program",
        "load",
        "Mpps",
        "lost",
        "min",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "measured"
    );
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for c in cases {
        for p in &c.points {
            println!(
                "  {:<8} {:<12} {:<9} {:>8.3} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9}",
                c.mode,
                c.program,
                p.load,
                p.offered_pps / 1e6,
                p.lost_before_program + p.lost_after_program,
                f(p.min_us),
                f(p.p50_us),
                f(p.p90_us),
                f(p.p99_us),
                f(p.p999_us),
                f(p.max_us),
                p.measured
            );
        }
    }
    let mut refs: Vec<String> = cases
        .iter()
        .map(|c| format!("{:.3} Mpps in {} mode", c.ndr_reference_mpps, c.mode))
        .collect();
    refs.dedup();
    println!(
        "  (loads are shares of the lower NDR of the mode's two programs: {}; no load: 1% of it, \
         at most 0.01 Mpps)",
        refs.join(", ")
    );
}

/// Writes a report as `OUT/STEM-STARTED.json` (and `.svg` when there is one) and says where.
pub(super) fn write_results(
    out: &Path,
    stem: &str,
    started: u64,
    report: &impl Serialize,
    svg: Option<String>,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join(format!("{stem}-{started}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    match svg {
        Some(svg) => {
            let path = write_svg(out, stem, started, &svg)?;
            println!("\nresults: {} and {}", json.display(), path.display());
        }
        None => println!("\nresults: {}", json.display()),
    }
    Ok(())
}

/// Writes `OUT/STEM-STARTED.svg` (the folder exists) and returns its path.
pub(super) fn write_svg(
    out: &Path,
    stem: &str,
    started: u64,
    svg: &str,
) -> Result<std::path::PathBuf> {
    let path = out.join(format!("{stem}-{started}.svg"));
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
