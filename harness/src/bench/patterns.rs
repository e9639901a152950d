//! Traffic patterns against big sets (`--patterns`): the set and deny-list cases meet floods
//! shaped like real ones, not only the 200 sources inside one /24 of the default run.
//!
//! Patterns (IPv4 unless said): `one-24` (the default run's traffic: 200 sources in the set's
//! /24, 1000 source ports), `spread-64k` and `spread-1m` (65,536 and 1,000,000 random sources
//! over the whole address space: nearly all misses), `from-set` (the sources are the set's own
//! IPv4 entries, the first address of 65,536 of them: every frame a hit, spread over the set), and
//! `v6-spread-1m` and `v6-from-set`, the same over IPv6 (in 2001:db8::/32, where the synthetic
//! blocklists keep their IPv6 entries; the spread varies the low 32 bits). Spread sources are
//! computed by the generator ([`pktgen::Vary::Spread`]); sources from a set are taken whole
//! from a list ([`pktgen::XdpEngine::with_sources`]).
//!
//! For each mode, pattern and program: program time on the wire over the counting baseline,
//! paired round by round on the same traffic (as in the default run), and the rate the DUT
//! judged frames at during those slices, for the program and for the baseline. Frames that a
//! program passes go on to the DUT's stack (which drops them) and that time counts in the
//! rate, not in the program time.

use std::{net::IpAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use pktgen::{Flows, FrameSpec, Vary};
use serde::Serialize;
use xdpwall::{Mode, RuleSet};

use crate::{Options, Topology};

use super::{
    filter::{
        bench_flows, deny_list, deny_rules, frame_for_last, paired_rounds, set_rules, Receiver,
    },
    measure::{progress, progress_done, stats, RunInfo},
    report::write_results,
    Args,
};

/// Deny-list size of the patterns run: xdp-filter's IPv4 map holds at most 10,000 addresses.
pub const PATTERN_DENY_LIST: usize = 10_000;

/// One traffic pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// 200 sources inside the set's /24 (the default run's traffic).
    OneSubnet,
    /// This many random IPv4 sources over the whole address space.
    Spread(usize),
    /// The set's own IPv4 entries.
    FromSet,
    /// This many random IPv6 sources in 2001:db8::/32.
    Spread6(usize),
    /// The set's own IPv6 entries.
    FromSet6,
}

impl Pattern {
    /// Every pattern, in report order (`quick`: one of each kind).
    pub fn all(quick: bool) -> Vec<Pattern> {
        if quick {
            vec![
                Pattern::OneSubnet,
                Pattern::Spread(1_000_000),
                Pattern::FromSet,
                Pattern::FromSet6,
            ]
        } else {
            vec![
                Pattern::OneSubnet,
                Pattern::Spread(65_536),
                Pattern::Spread(1_000_000),
                Pattern::FromSet,
                Pattern::Spread6(1_000_000),
                Pattern::FromSet6,
            ]
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> String {
        let count = |n: usize| match n {
            1_000_000 => "1m".to_string(),
            65_536 => "64k".to_string(),
            n => n.to_string(),
        };
        match self {
            Pattern::OneSubnet => "one-24".into(),
            Pattern::Spread(n) => format!("spread-{}", count(*n)),
            Pattern::FromSet => "from-set".into(),
            Pattern::Spread6(n) => format!("v6-spread-{}", count(*n)),
            Pattern::FromSet6 => "v6-from-set".into(),
        }
    }
}

/// What the generator sends for one pattern and one program's rules.
pub struct Traffic {
    /// The template frame.
    pub template: FrameSpec,
    /// How its fields vary (the source, unless `sources` is given).
    pub flows: Flows,
    /// Whole source addresses, one per frame in turn (empty: `flows.src` varies it).
    pub sources: Arc<Vec<IpAddr>>,
}

/// Sources a set pattern takes from the set at most: more than a million-entry set's IPv4
/// lists have cache lines (about 48,000), few enough that the generator's list (16 bytes a
/// source) stays at 1 MiB. The whole set's list (13.6 MiB for set-1000000), streamed by
/// the generator's CPU, evicted the DUT's tables from the shared L3, as the spread patterns'
/// lists did before they were computed.
pub const FROM_SET_SOURCES: usize = 65_536;

/// The first address of [`FROM_SET_SOURCES`] entries (or all, if fewer) of the rule set's sets
/// of one family, drawn at random (the same on every machine) and shuffled. A set keeps its
/// entries sorted: in that order the traffic walked the tables from end to end, every line and
/// page used many times in a row, and a million entries cost 75 ns a frame instead of 300.
fn set_sources(rules: &RuleSet, v6: bool) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = rules
        .sets
        .values()
        .flat_map(|s| s.nets.iter())
        .filter(|n| n.addr().is_ipv6() == v6)
        .map(|n| n.network())
        .collect();
    // Fisher-Yates.
    let mut rng = crate::blocklist::Rng(7);
    for i in (1..out.len()).rev() {
        out.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    out.truncate(FROM_SET_SOURCES);
    out
}

impl Traffic {
    /// The traffic of `pattern` for a program running `rules` (frames of `size` bytes), or
    /// `None` where the pattern does not apply (IPv6 against an IPv4-only deny list).
    pub fn of(pattern: Pattern, rules: &RuleSet, size: usize) -> Option<Traffic> {
        let mut v4 = frame_for_last(1, size);
        let mut v6 = FrameSpec::udp(
            "2001:db8:1234:5678:9abc:def0:0:7".parse().unwrap(),
            "2001:db8:18::2".parse().unwrap(),
            5000,
            1000,
        )
        .payload(size.saturating_sub(14 + 40 + 8));
        // Addressed to another host's MAC: what a program passes, the DUT's stack drops at
        // once as `otherhost`. Addressed to the DUT, each of a million sources made its stack
        // answer (ICMP, one peer entry per source) and the DUT fell to 0.06 Mpps, which says
        // nothing about the program.
        v4.dst_mac = crate::topo::OTHER_HOST_MAC;
        v6.dst_mac = crate::topo::OTHER_HOST_MAC;
        let ports = Flows {
            sport: Vary::Range { count: 1000 },
            ..Flows::default()
        };
        // Spread sources are computed by the generator (Vary::Spread), not read from a list: a
        // 16 MiB list streamed by the generator's CPU evicted the DUT's tables from the
        // shared L3 and cost every program 70 ns more at a million sources than at 65,536.
        let spread = |template: FrameSpec, n: usize| Traffic {
            template,
            flows: Flows {
                src: Vary::Spread { count: n as u32 },
                ..ports
            },
            sources: Arc::new(Vec::new()),
        };
        let list = |template: FrameSpec, sources: Vec<IpAddr>| {
            (!sources.is_empty()).then(|| Traffic {
                template,
                flows: ports,
                sources: Arc::new(sources),
            })
        };
        match pattern {
            Pattern::OneSubnet => Some(Traffic {
                template: v4,
                flows: bench_flows(),
                sources: Arc::new(Vec::new()),
            }),
            Pattern::Spread(n) => Some(spread(v4, n)),
            Pattern::FromSet => list(v4, set_sources(rules, false)),
            Pattern::Spread6(n) => Some(spread(v6, n)),
            Pattern::FromSet6 => list(v6, set_sources(rules, true)),
        }
    }
}

/// One program under one pattern.
#[derive(Clone, Debug, Serialize)]
pub struct PatternCase {
    /// XDP mode.
    pub mode: String,
    /// Pattern name.
    pub pattern: String,
    /// Program (case) name.
    pub program: String,
    /// Distinct sources the traffic cycles through.
    pub sources: usize,
    /// Median ns per frame over the baseline, and min and max over rounds.
    pub over_baseline_ns: f64,
    /// Smallest per-round difference.
    pub min_over_ns: f64,
    /// Largest per-round difference.
    pub max_over_ns: f64,
    /// Median ns per frame of the program itself (with run-time statistics on).
    pub program_ns: f64,
    /// Median ns per frame of the baseline.
    pub baseline_ns: f64,
    /// Median Mpps the DUT judged at with the program attached.
    pub mpps: f64,
    /// Median Mpps with the baseline attached, same traffic.
    pub baseline_mpps: f64,
    /// Frames the program dropped / frames it judged, over its slices.
    pub dropped_share: f64,
}

/// The report of a patterns run.
#[derive(Debug, Serialize)]
pub struct PatternReport {
    /// Machine and kernel.
    pub run: RunInfo,
    /// Rounds per case and slice length.
    pub rounds: usize,
    /// Slice length, seconds.
    pub slice_s: f64,
    /// Frame size.
    pub frame_size: usize,
    /// Kernel memory of one loaded xdpwall filter with no rules, by map: what the kernel
    /// charges for it (`memlock` in the map's fdinfo; tries and hashes that allocate on demand
    /// count what they hold).
    pub filter_memory: Vec<(String, u64)>,
    /// The cases.
    pub cases: Vec<PatternCase>,
    /// Cases not run, and why.
    pub skipped: Vec<String>,
}

/// The programs of the patterns run.
fn workloads(args: &Args, peer: bool) -> Vec<(String, Option<RuleSet>)> {
    let mut w: Vec<(String, Option<RuleSet>)> = args
        .sets
        .iter()
        .map(|&n| (format!("set-{n}"), Some(set_rules(n))))
        .collect();
    w.push((
        format!("denylist-{PATTERN_DENY_LIST}"),
        Some(deny_rules(PATTERN_DENY_LIST)),
    ));
    if peer {
        w.push((format!("xdp-filter-{PATTERN_DENY_LIST}"), None));
    }
    w
}

/// Runs the patterns benchmark and writes `results/patterns-*.json`.
pub(super) fn run(args: &Args) -> Result<()> {
    let run = RunInfo::now()?;
    let started = run.started;
    let mut skipped = Vec::new();
    let peer = match crate::peer::xdp_tools_version("xdp-filter", "load") {
        Ok(_) => true,
        Err(why) => {
            skipped.push(format!("peer xdp-filter-{PATTERN_DENY_LIST}: {why}"));
            false
        }
    };
    let patterns = Pattern::all(args.quick);
    let programs = workloads(args, peer);
    let rounds = args.program_time_rounds.max(2);
    let slice = Duration::from_millis(if args.quick { 100 } else { 150 });
    let total = args.mode.modes().len() * patterns.len() * programs.len();
    let mut done = 0;
    let mut cases = Vec::new();
    let filter_memory = filter_memory()?;
    for mode in args.mode.modes() {
        let opts = Options {
            gro: mode == Mode::Generic,
            ipv6: false,
            queues: args.threads.max(1) as u32,
            dut_cpu: args.dut_cpu,
            ..Options::default()
        };
        let topo = Topology::standard(&format!("pat-{mode}"), &opts)?;
        let mut baseline = Receiver::load(None)?;
        let mut receivers = Vec::new();
        for (name, rules) in &programs {
            progress(done, total, &format!("{mode} {name}: loading"));
            let rx = match rules {
                Some(r) => Receiver::load(Some(r))?,
                None => {
                    let list = deny_list(PATTERN_DENY_LIST);
                    match crate::peer::XdpFilter::load(&topo.dut, mode, &list) {
                        Ok(p) => Receiver::Peer(Box::new(p)),
                        Err(e) => {
                            skipped.push(format!("peer {name} in {mode} mode: {e:#}"));
                            continue;
                        }
                    }
                }
            };
            receivers.push((name.clone(), rules.clone(), rx));
        }
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("turning on BPF run-time statistics (BPF_ENABLE_STATS)")?;
        for &pattern in &patterns {
            for (name, rules, rx) in receivers.iter_mut() {
                done += 1;
                // xdp-filter runs the deny list's addresses.
                let rules = rules
                    .clone()
                    .unwrap_or_else(|| deny_rules(PATTERN_DENY_LIST));
                let Some(traffic) = Traffic::of(pattern, &rules, args.size) else {
                    skipped.push(format!(
                        "{mode} {name} {}: no entry of that family",
                        pattern.name()
                    ));
                    continue;
                };
                progress(done, total, &format!("{mode} {} {name}", pattern.name()));
                let label = format!("{mode} {} {name}", pattern.name());
                let case = paired(
                    &topo,
                    mode,
                    &traffic,
                    [&mut baseline, rx],
                    (rounds, slice, args.threads),
                    &label,
                )?;
                cases.push(PatternCase {
                    mode: mode.to_string(),
                    pattern: pattern.name(),
                    program: name.clone(),
                    sources: if traffic.sources.is_empty() {
                        traffic.flows.src.span() as usize
                    } else {
                        traffic.sources.len()
                    },
                    ..case
                });
            }
        }
        drop(receivers);
        drop(baseline);
        drop(topo);
    }
    progress_done(total);
    let report = PatternReport {
        run,
        rounds,
        slice_s: slice.as_secs_f64(),
        frame_size: args.size,
        filter_memory,
        cases,
        skipped,
    };
    print(&report, &patterns);
    write_results(&args.out, "patterns", started, &report, None)
}

/// Baseline and program on the pattern's traffic ([`paired_rounds`]), summed up.
fn paired(
    topo: &Topology,
    mode: Mode,
    traffic: &Traffic,
    rx: [&mut Receiver; 2],
    (rounds, slice, threads): (usize, Duration, usize),
    label: &str,
) -> Result<PatternCase> {
    let m = paired_rounds(
        topo,
        mode,
        (
            traffic.template.clone(),
            traffic.flows,
            traffic.sources.clone(),
        ),
        rx,
        (rounds, slice, threads),
        label,
    )?;
    let over: Vec<f64> = m.ns[1].iter().zip(&m.ns[0]).map(|(p, b)| p - b).collect();
    let (over_baseline_ns, min_over_ns, max_over_ns) = stats(&over);
    Ok(PatternCase {
        mode: mode.to_string(),
        pattern: String::new(),
        program: String::new(),
        sources: 0,
        over_baseline_ns,
        min_over_ns,
        max_over_ns,
        program_ns: stats(&m.ns[1]).0,
        baseline_ns: stats(&m.ns[0]).0,
        mpps: stats(&m.mpps[1]).0,
        baseline_mpps: stats(&m.mpps[0]).0,
        dropped_share: m.dropped as f64 / m.judged.max(1) as f64,
    })
}

/// Loads a filter with no rules and reads what the kernel charges for each of its maps.
pub fn filter_memory() -> Result<Vec<(String, u64)>> {
    use std::os::fd::AsRawFd;
    let before: std::collections::HashSet<u32> =
        aya::maps::loaded_maps().flatten().map(|m| m.id()).collect();
    let filter = xdpwall::Filter::with_rules(&RuleSet::default())?;
    let mut out = Vec::new();
    for m in aya::maps::loaded_maps().flatten() {
        if before.contains(&m.id()) {
            continue;
        }
        let name = m.name_as_str().unwrap_or("?").to_string();
        let fd = m.fd()?;
        use std::os::fd::AsFd;
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd()))?;
        let memlock = info
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push((name, memlock));
    }
    drop(filter);
    out.sort_by_key(|m| std::cmp::Reverse(m.1));
    Ok(out)
}

fn print(report: &PatternReport, patterns: &[Pattern]) {
    let r = &report.run;
    println!(
        "\nTraffic patterns: {} ({} CPUs), kernel {}, {}-byte frames, {} paired rounds of {:.0} ms, \
         xdp engine",
        r.cpu,
        r.cpus,
        r.kernel,
        report.frame_size,
        report.rounds,
        report.slice_s * 1000.0
    );
    println!("ns per frame over the counting baseline, median [min-max] over rounds; Mpps judged (baseline Mpps); share dropped");
    let mut modes: Vec<&str> = report.cases.iter().map(|c| c.mode.as_str()).collect();
    modes.dedup();
    for mode in modes {
        println!("\n{mode} mode:");
        println!(
            "{:<14} {:<18} {:>24} {:>16} {:>8}",
            "pattern", "program", "ns over baseline", "Mpps (base)", "dropped"
        );
        for p in patterns {
            for c in report
                .cases
                .iter()
                .filter(|c| c.mode == mode && c.pattern == p.name())
            {
                println!(
                    "{:<14} {:<18} {:>8.1} [{:>6.1}-{:>6.1}] {:>7.3} ({:>5.3}) {:>7.1}%",
                    c.pattern,
                    c.program,
                    c.over_baseline_ns,
                    c.min_over_ns,
                    c.max_over_ns,
                    c.mpps,
                    c.baseline_mpps,
                    c.dropped_share * 100.0
                );
            }
        }
    }
    let total: u64 = report.filter_memory.iter().map(|m| m.1).sum();
    println!(
        "\nKernel memory of one xdpwall filter (maps' max_entries x value size): {:.1} MiB",
        total as f64 / (1 << 20) as f64
    );
    for (name, bytes) in &report.filter_memory {
        if *bytes >= 1 << 20 {
            println!("  {name:<16} {:>7.1} MiB", *bytes as f64 / (1 << 20) as f64);
        }
    }
    for s in &report.skipped {
        println!("skipped: {s}");
    }
}
