//! The filter cases: what the DUT runs (baseline, rule lists, sets, deny lists, the
//! xdp-filter peer), the runs on the wire, program time on the wire, test_run costs.

use std::{
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::programs::xdp::XdpLinkId;
use pktgen::{xdp::CountDrop, Flows, FrameSpec, Vary};
use xdpwall::{AddrMatch, Filter, Mode, RuleSet};
use xdpwall_common::stat;

use crate::{verdict::Checker, Options, Topology};

use super::{
    measure::{self, progress, progress_done, stats, Generator, Rates, RunInfo, Source},
    report::{
        print_report, print_test_run, write_results, Case, ProgramTime, Report, Settings,
        TestRunCost,
    },
    Args,
};

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
pub(super) enum Workload {
    Baseline,
    Rules(usize),
    Set(usize),
    DenyList(usize),
    XdpFilter(usize),
}

impl Workload {
    pub(super) fn name(&self) -> String {
        match self {
            Workload::Baseline => "baseline".into(),
            Workload::Rules(n) => format!("filter-{n}"),
            Workload::Set(n) => format!("set-{n}"),
            Workload::DenyList(n) => format!("denylist-{n}"),
            Workload::XdpFilter(n) => format!("xdp-filter-{n}"),
        }
    }

    /// The rules xdpwall runs for this case (None: not xdpwall, the baseline or the peer).
    pub(super) fn ruleset(&self) -> Option<RuleSet> {
        match self {
            Workload::Baseline | Workload::XdpFilter(_) => None,
            Workload::Rules(n) => Some(ordered_rules(*n)),
            Workload::Set(n) => Some(set_rules(*n)),
            Workload::DenyList(n) => Some(deny_rules(*n)),
        }
    }

    pub(super) fn template(&self, size: usize) -> FrameSpec {
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
    r.src = Some(AddrMatch::Set("blocklist".into()));
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
    r.src = Some(AddrMatch::Set("denylist".into()));
    set.rules.push(r);
    set
}

/// Flows of the benchmark traffic: 200 sources inside the matching /24, 1000 source ports.
pub(super) fn bench_flows() -> Flows {
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

/// What the DUT runs for a case, and how to read how many frames it judged. Loaded once per
/// mode, attached only for its own runs.
pub(super) enum Receiver {
    Baseline(CountDrop, Option<XdpLinkId>),
    Filter(Box<Filter>),
    Peer(Box<crate::peer::XdpFilter>),
}

impl Receiver {
    /// Loads the baseline (no rules) or the filter with `rules`, not attached.
    pub(super) fn load(rules: Option<&RuleSet>) -> Result<Receiver> {
        Ok(match rules {
            None => Receiver::Baseline(CountDrop::load()?, None),
            Some(r) => Receiver::Filter(Box::new(Filter::with_rules(r)?)),
        })
    }

    /// Like [`Receiver::load`], but the baseline passes frames on instead of dropping them
    /// (a DUT that forwards what it passes: the latency path).
    pub(super) fn load_forwarding(rules: Option<&RuleSet>) -> Result<Receiver> {
        Ok(match rules {
            None => Receiver::Baseline(CountDrop::passing()?, None),
            Some(r) => Receiver::Filter(Box::new(Filter::with_rules(r)?)),
        })
    }

    /// Attaches to the DUT's interface in `mode`.
    pub(super) fn attach(&mut self, topo: &Topology, mode: Mode) -> Result<()> {
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
    pub(super) fn detach(&mut self, topo: &Topology) -> Result<()> {
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

    /// Frames dropped so far (the baseline drops every frame).
    fn dropped(&self) -> Result<u64> {
        Ok(match self {
            Receiver::Baseline(c, _) => c.count()?.packets,
            Receiver::Filter(f) => f.maps.stat(stat::DROP)?.packets,
            Receiver::Peer(p) => p.dropped()?,
        })
    }

    pub(super) fn judged(&self) -> Result<u64> {
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

/// One run: generator on, settle, measure the window, generator off, wait for stragglers.
fn run_once(
    topo: &Topology,
    rx: &Receiver,
    source: Source,
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
    let (a, b, elapsed) = measure::window(SETTLE, window, || rx.judged())?;
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
    source: Source,
    slots: &mut [Slot],
    args: &Args,
    baseline_mpps: Option<f64>,
) -> Result<Vec<ProgramTime>> {
    let rounds = args.program_time_rounds;
    let Some(bi) = slots.iter().position(|s| s.workload == Workload::Baseline) else {
        return Ok(Vec::new());
    };
    if source != Source::Xdp || rounds == 0 {
        return Ok(Vec::new());
    }
    let slice = Duration::from_millis(if args.quick { 100 } else { 150 });
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("turning on BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let mut out = Vec::new();
    for i in (0..slots.len()).filter(|&i| i != bi) {
        let (template, program) = (slots[i].template.clone(), slots[i].program.clone());
        let (base, case) = two_mut(slots, bi, i);
        let Paired { ns, .. } = paired_rounds(
            topo,
            mode,
            (template, bench_flows(), Arc::new(Vec::new())),
            [&mut base.rx, &mut case.rx],
            (rounds, slice, args.threads),
            &format!("{mode} {source} {program}: program time"),
        )?;
        let over_runs_ns: Vec<f64> = ns[1].iter().zip(&ns[0]).map(|(p, b)| p - b).collect();
        let (over_baseline_ns, min_over_ns, max_over_ns) = stats(&over_runs_ns);
        out.push(ProgramTime {
            mode: mode.to_string(),
            source,
            program,
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

/// `v[a]` and `v[b]` (`a != b`), both mutable.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (l, r) = v.split_at_mut(b);
        (&mut l[a], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(a);
        (&mut r[0], &mut l[b])
    }
}

/// What [`paired_rounds`] measured: per round, for the baseline (0) and the program (1), ns
/// per frame (the kernel's run-time statistics) and Mpps judged; and the frames the program
/// dropped and judged over its slices.
pub(super) struct Paired {
    pub(super) ns: [Vec<f64>; 2],
    pub(super) mpps: [Vec<f64>; 2],
    pub(super) dropped: u64,
    pub(super) judged: u64,
}

/// Program time on the wire, paired: one continuous live-frames flow (template, flows and a
/// source list for [`Generator::start_from`]), and `rounds` rounds in which the baseline
/// `rx[0]` and the program `rx[1]` are each attached for one `slice` (in alternating order)
/// while run-time statistics are on (the caller turns them on).
pub(super) fn paired_rounds(
    topo: &Topology,
    mode: Mode,
    (template, flows, sources): (FrameSpec, Flows, Arc<Vec<std::net::IpAddr>>),
    mut rx: [&mut Receiver; 2],
    (rounds, slice, threads): (usize, Duration, usize),
    label: &str,
) -> Result<Paired> {
    const SETTLE: Duration = Duration::from_millis(50);
    let until = Instant::now() + (slice + SETTLE * 3) * (2 * rounds as u32 + 4);
    let g = Generator::start_from(topo, Source::Xdp, template, flows, sources, threads, until);
    std::thread::sleep(Duration::from_millis(200));
    let mut m = Paired {
        ns: [Vec::new(), Vec::new()],
        mpps: [Vec::new(), Vec::new()],
        dropped: 0,
        judged: 0,
    };
    for r in 0..rounds {
        progress(r, rounds, label);
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let rx = &mut rx[k];
            rx.attach(topo, mode)?;
            let (((t0, n0), d0, j0), ((t1, n1), d1, j1), elapsed) =
                measure::window(SETTLE, slice, || {
                    Ok((rx.run_stats()?, rx.dropped()?, rx.judged()?))
                })?;
            rx.detach(topo)?;
            if n1 <= n0 || j1 <= j0 {
                let what = if k == 0 {
                    "the baseline"
                } else {
                    "the program"
                };
                bail!("{label}: no frame reached {what} in {slice:?}");
            }
            m.ns[k].push((t1 - t0) as f64 / (n1 - n0) as f64);
            m.mpps[k].push((j1 - j0) as f64 / elapsed / 1e6);
            if k == 1 {
                m.dropped += d1.saturating_sub(d0);
                m.judged += j1 - j0;
            }
        }
    }
    g.finish()?;
    Ok(m)
}

/// Runs the filter benchmark (options as [`Args::checked`] left them) and writes the report.
pub(super) fn run(args: Args) -> Result<()> {
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
                // Built once for both modes (a million entries take seconds).
                Workload::Set(n) => Some(set_cache[n].clone()),
                w => w.ruleset(),
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
        for &source in &args.sources {
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
                    source,
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
    let svg = super::chart::svg(&report);
    write_results(&args.out, "bench", started, &report, Some(svg))
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
