//! `--search`: the highest rate the DUT carries without loss (NDR) and with at most a small
//! loss ratio (PDR), the throughput of RFC 2544 and the two targets of RFC 9971 (MLRsearch)
//! and FD.io CSIT.
//!
//! The DUT receives in threaded NAPI pinned to its own CPU, the generator sends from another
//! (the xdp engine, paced in the kernel frame by frame), so the DUT saturates before the
//! generator. Per mode and program:
//!
//! 1. one flat-out trial: the generator's ceiling, and whether the DUT kept up with it (then
//!    the case is bound by the generator and the searches only confirm that rate);
//! 2. the PDR search, then the NDR search: bisection between the highest load (rate asked
//!    for) that passed and the lowest that failed, starting from the rate the DUT judged flat
//!    out; it stops once the interval is narrower than `precision` of its top, or after 8
//!    loads. A load passes when two of its trials keep within the loss ratio (a third runs
//!    when the first two disagree): a goal exceed ratio of one half, after RFC 9971, because
//!    on a virtual machine a vCPU preempted for a millisecond loses frames at any rate;
//! 3. confirmation at the load found, with trials longer than the search's (two of three
//!    again); if it fails, the load is lowered by `precision` and confirmed once more.
//!
//! Loss is exact accounting per trial: frames sent (the generator's own count in the kernel)
//! = judged by the DUT's program (its pass + drop counters) + lost, and the lost frames are
//! placed: the veth ring between the namespaces (the generator side's `tx_dropped`, which
//! grows when the DUT's NAPI does not drain the ring in time) or unaccounted.
//! Rates are reported as offered (frames sent / seconds of sending), which falls short of the
//! rate asked for by the generator's per-call set-up (see `pktgen::pace`).
//!
//! Then, per mode, the latency of passed frames (see [`super::latency`]) and the frame-size
//! sweep.

use std::time::Duration;

use anyhow::{Context, Result};
use xdpwall::Mode;

use super::{
    filter::{bench_flows, deny_list, Receiver, Workload},
    measure::{progress, progress_done, RunInfo, TrialGenerator},
    report::{
        print_search, write_results, write_svg, Bound, SearchCase, SearchReport, SizeCase, Trial,
    },
    Args,
};
use crate::{Options, Topology};

/// The frame check sequence: RFC 2544's frame sizes count it, the frames built here do not.
const FCS: usize = 4;

/// A frame size of the sweep: one size, or a mix of sizes by weight (IMIX).
struct FrameSize {
    label: String,
    /// (bytes with FCS, weight).
    mix: Vec<(usize, u32)>,
}

impl FrameSize {
    /// `64` ... `1518` (bytes with FCS, as RFC 2544 counts them) or `imix` (the simple IMIX:
    /// 64, 594 and 1518 bytes as 7:4:1).
    fn parse(s: &str) -> Result<FrameSize> {
        let mix = if s.eq_ignore_ascii_case("imix") {
            vec![(64, 7), (594, 4), (1518, 1)]
        } else {
            let n: usize = s
                .parse()
                .with_context(|| format!("frame size {s:?}: a number of bytes or `imix`"))?;
            anyhow::ensure!(
                (64..=1518).contains(&n),
                "frame size {n}: between 64 and 1518 bytes (with FCS; the veth's MTU is 1500)"
            );
            vec![(n, 1)]
        };
        Ok(FrameSize {
            label: s.to_lowercase(),
            mix,
        })
    }

    /// Average bytes per frame, FCS included.
    fn average(&self) -> f64 {
        let w: u32 = self.mix.iter().map(|m| m.1).sum();
        self.mix
            .iter()
            .map(|&(b, k)| (b * k as usize) as f64)
            .sum::<f64>()
            / w as f64
    }
}

/// The highest of `loads` (0 without any).
fn highest(loads: &[f64]) -> f64 {
    loads.iter().copied().fold(0.0, f64::max)
}

/// The lowest of `loads` (infinite without any).
fn lowest(loads: &[f64]) -> f64 {
    loads.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The load of the loss-floor trial, frames per second.
const FLOOR_PPS: f64 = 100_000.0;

/// The CPU the generator sends from.
const GENERATOR_CPU: usize = 0;
/// Live frames per batch of the generator (the frames of a batch leave together at its end).
const BATCH: u32 = 64;
/// At most this many loads per bound (each two or three trials).
const MAX_LOADS: usize = 8;

/// Runs the search for every mode and program and writes its report.
pub(super) fn run(args: &Args) -> Result<()> {
    let run = RunInfo::now()?;
    let started = run.started;
    let trial = Duration::from_secs_f64(args.trial);
    let final_trial = Duration::from_secs_f64(args.final_trial);
    let dut_cpu = args.dut_cpu.or((run.cpus > 1).then_some(GENERATOR_CPU + 1));
    let mut skipped = Vec::new();
    let mut programs = vec![Workload::Baseline];
    programs.extend(args.rules.iter().map(|&n| Workload::Rules(n)));
    if let Some(&n) = args.sets.iter().max() {
        programs.push(Workload::Set(n));
    }
    if args.deny_list > 0 {
        programs.push(Workload::DenyList(args.deny_list));
        match crate::peer::xdp_tools_version("xdp-filter", "load") {
            Ok(_) => programs.push(Workload::XdpFilter(args.deny_list)),
            Err(why) => skipped.push(format!("peer xdp-filter-{}: {why}", args.deny_list)),
        }
    }
    let modes = args.mode.modes();
    let total = modes.len() * programs.len();
    let mut done = 0;
    let mut cases: Vec<SearchCase> = Vec::new();
    let mut size_cases: Vec<SizeCase> = Vec::new();
    let mut latency_cases = Vec::new();
    let sizes = args
        .sizes
        .iter()
        .map(|s| FrameSize::parse(s))
        .collect::<Result<Vec<_>>>()?;
    for mode in modes {
        let opts = Options {
            gro: mode == Mode::Generic,
            ipv6: false,
            dut_cpu,
            receiver: true,
            ..Options::default()
        };
        let topo = Topology::standard(&format!("ndr-{mode}"), &opts)?;
        let dedicated = match dut_cpu {
            Some(c) => Some(topo.dedicate_dut_cpu(c)?),
            None => None,
        };
        for w in &programs {
            let program = w.name();
            progress(done, total, &format!("{mode} {program}: loading"));
            done += 1;
            let mut rx = match w {
                Workload::XdpFilter(n) => {
                    match crate::peer::XdpFilter::load(&topo.dut, mode, &deny_list(*n)) {
                        Ok(p) => Receiver::Peer(Box::new(p)),
                        Err(e) => {
                            skipped.push(format!("peer {program} in {mode} mode: {e:#}"));
                            continue;
                        }
                    }
                }
                w => Receiver::load(w.ruleset().as_ref())?,
            };
            rx.attach(&topo, mode)?;
            let gen = TrialGenerator::start(
                &topo,
                vec![(w.template(args.size), 1)],
                bench_flows(),
                GENERATOR_CPU,
                BATCH,
            )
            .context("starting the generator (the search needs live frames, Linux 5.18+)")?;
            let mut run = |rate, len| wire_trial(&topo, &rx, &gen, rate, len);
            let mut case = Searcher {
                run: &mut run,
                trials: Vec::new(),
                size: args.size,
                len: trial,
            };
            let what = format!("{mode} {program}");
            let r = case.search(&what, args.pdr_loss, args.precision, final_trial);
            let trials = std::mem::take(&mut case.trials);
            drop(gen);
            rx.detach(&topo)?;
            let (max, floor, ndr, pdr) = r?;
            let baseline = cases
                .iter()
                .find(|c| c.mode == mode.to_string() && c.program == "baseline")
                .map(|c| c.ndr.mpps);
            cases.push(SearchCase {
                mode: mode.to_string(),
                program,
                bound: if max.loss_ratio > 0.0 {
                    "receiver".into()
                } else {
                    "generator".into()
                },
                ndr_of_baseline: baseline.filter(|b| *b > 0.0).map(|b| ndr.mpps / b),
                max,
                floor,
                ndr,
                pdr,
                trials,
            });
        }
        // The baseline and the longest rule list: latency, then frame sizes.
        let mut pair = vec![Workload::Baseline];
        pair.extend(args.rules.iter().max().map(|&n| Workload::Rules(n)));
        let ndr = cases
            .iter()
            .filter(|c| c.mode == mode.to_string() && pair.iter().any(|w| w.name() == c.program))
            .map(|c| c.ndr.mpps * 1e6)
            .fold(f64::INFINITY, f64::min);
        if ndr.is_finite() && ndr > 0.0 {
            latency_cases.extend(super::latency::measure(
                &topo,
                mode,
                &pair,
                ndr,
                args.size,
                GENERATOR_CPU,
                final_trial,
            )?);
        } else {
            skipped.push(format!(
                "latency in {mode} mode: no NDR above 0 to load it with"
            ));
        }
        // Frame sizes, flat out, one trial each.
        for w in pair {
            let mut rx = Receiver::load(w.ruleset().as_ref())?;
            rx.attach(&topo, mode)?;
            for size in &sizes {
                progress(
                    0,
                    1,
                    &format!("{mode} {}: {} bytes flat out", w.name(), size.label),
                );
                let templates = size
                    .mix
                    .iter()
                    .map(|&(bytes, weight)| (w.template(bytes - FCS), weight))
                    .collect();
                let gen =
                    TrialGenerator::start(&topo, templates, bench_flows(), GENERATOR_CPU, BATCH)?;
                let t = wire_trial(&topo, &rx, &gen, None, trial)?;
                drop(gen);
                let judged_pps = t.judged as f64 / t.secs.max(1e-9);
                size_cases.push(SizeCase {
                    mode: mode.to_string(),
                    program: w.name(),
                    size: size.label.clone(),
                    frame_bytes: size.average(),
                    offered_mpps: t.offered_pps / 1e6,
                    judged_mpps: judged_pps / 1e6,
                    judged_gbps: judged_pps * size.average() * 8.0 / 1e9,
                    loss_ratio: t.loss_ratio,
                    lost_in_veth_ring: t.lost_in_veth_ring,
                });
            }
            rx.detach(&topo)?;
        }
        drop(dedicated);
        drop(topo);
    }
    progress_done(total);
    let ratios = cases
        .iter()
        .filter(|c| {
            args.rules
                .iter()
                .max()
                .is_some_and(|n| c.program == format!("filter-{n}"))
        })
        .filter_map(|c| {
            c.ndr_of_baseline
                .map(|f| format!("NDR({}) / NDR(baseline), {}: {:.2}", c.program, c.mode, f))
        })
        .collect();
    let report = SearchReport {
        version: 1,
        run,
        trial_s: args.trial,
        final_trial_s: args.final_trial,
        precision: args.precision,
        frame_size: args.size,
        generator_cpu: GENERATOR_CPU,
        dut_cpu,
        cases,
        ratios,
        sizes: size_cases,
        latency: latency_cases,
        skipped,
    };
    print_search(&report);
    let svg = super::chart::search_svg(&report);
    write_results(&args.out, "search", started, &report, Some(svg))?;
    if !report.latency.is_empty() {
        let path = write_svg(
            &args.out,
            "latency",
            started,
            &super::chart::latency_svg(&report),
        )?;
        println!("latency percentiles: {}", path.display());
    }
    Ok(())
}

/// Runs one trial: a rate (None: flat out) for a duration.
type RunTrial<'a> = dyn FnMut(Option<f64>, Duration) -> Result<Trial> + 'a;

/// One trial on the wire: the generator's frames into the DUT, every frame accounted for.
fn wire_trial(
    topo: &Topology,
    rx: &Receiver,
    gen: &TrialGenerator,
    rate: Option<f64>,
    len: Duration,
) -> Result<Trial> {
    let judged0 = rx.judged()?;
    let link0 = topo.gen.link_stats()?;
    let sent = gen.run(rate, len)?;
    // Frames still in the ring reach the program within milliseconds.
    std::thread::sleep(Duration::from_millis(50));
    let judged = rx.judged()? - judged0;
    let ring = (topo.gen.link_stats()? - link0).tx_dropped;
    let lost = sent.frames.saturating_sub(judged);
    let pacing = sent.pacing.as_ref();
    Ok(Trial {
        requested_pps: rate,
        offered_pps: sent.frames as f64 / sent.secs.max(1e-9),
        secs: sent.secs,
        sent: sent.frames,
        judged,
        lost,
        loss_ratio: if sent.frames > 0 {
            lost as f64 / sent.frames as f64
        } else {
            0.0
        },
        lost_in_veth_ring: ring,
        lost_unaccounted: lost as i64 - ring as i64,
        gap_p50_ns: pacing.and_then(|p| p.gap_quantile_ns(0.5)),
        gap_p99_ns: pacing.and_then(|p| p.gap_quantile_ns(0.99)),
        late: pacing.map(|p| p.late),
        final_trial: false,
    })
}

/// The trials of one case and the search over them.
struct Searcher<'a> {
    run: &'a mut RunTrial<'a>,
    trials: Vec<Trial>,
    size: usize,
    /// Length of a search trial (confirming trials are longer).
    len: Duration,
}

impl Searcher<'_> {
    /// One trial at `rate` (None: flat out) for `len`, accounted for.
    fn trial(&mut self, rate: Option<f64>, len: Duration) -> Result<Trial> {
        let mut t = (self.run)(rate, len)?;
        t.final_trial = len != self.len;
        self.trials.push(t.clone());
        Ok(t)
    }

    /// The flat-out trial, then PDR and NDR.
    fn search(
        &mut self,
        what: &str,
        pdr_loss: f64,
        precision: f64,
        final_len: Duration,
    ) -> Result<(Trial, Trial, Bound, Bound)> {
        progress(0, 1, &format!("{what}: flat out"));
        let max = self.trial(None, self.len)?;
        // The loss floor: a load far below anything the DUT struggles with. Frames lost here
        // are lost to the host (a preempted vCPU), not to the program, and bound the NDR.
        progress(
            0,
            1,
            &format!("{what}: loss floor at {:.3} Mpps", FLOOR_PPS / 1e6),
        );
        let floor = self.trial(Some(FLOOR_PPS), final_len)?;
        let pdr = self.bound(what, "PDR", &max, pdr_loss, precision, final_len)?;
        let ndr = self.bound(what, "NDR", &max, 0.0, precision, final_len)?;
        Ok((max, floor, ndr, pdr))
    }

    /// Whether the load `rate` (asked for, trials of `len`) keeps within `ratio`: two of its
    /// trials decide, a third one only when the first two disagree (a goal exceed ratio of
    /// one half, after RFC 9971: on a host whose vCPUs are preempted now and then, one
    /// unlucky trial does not decide a load). Trials of the case at that load and length are
    /// reused, whatever ratio they were run for.
    fn load(&mut self, rate: f64, len: Duration, ratio: f64, what: &str) -> Result<bool> {
        loop {
            let (pass, fail) = self
                .trials
                .iter()
                .filter(|t| t.requested_pps == Some(rate) && t.final_trial == (len != self.len))
                .fold((0, 0), |(p, f), t| {
                    if t.loss_ratio <= ratio {
                        (p + 1, f)
                    } else {
                        (p, f + 1)
                    }
                });
            if pass >= 2 {
                return Ok(true);
            }
            if fail >= 2 {
                return Ok(false);
            }
            progress(
                pass + fail,
                3,
                &format!("{what} at {:.3} Mpps asked", rate / 1e6),
            );
            self.trial(Some(rate), len)?;
        }
    }

    /// The highest load whose loss ratio stays within `ratio`, confirmed by longer trials.
    fn bound(
        &mut self,
        what: &str,
        name: &str,
        max: &Trial,
        ratio: f64,
        precision: f64,
        final_len: Duration,
    ) -> Result<Bound> {
        let what = format!("{what}: {name}");
        let len = self.len;
        let mut passed: Vec<f64> = Vec::new();
        let mut failed: Vec<f64> = Vec::new();
        let generator_bound = max.loss_ratio <= ratio;
        if !generator_bound {
            // Loads already decided for this ratio (by the other bound's trials) count.
            let rates: Vec<f64> = {
                let mut r: Vec<f64> = self.trials.iter().filter_map(|t| t.requested_pps).collect();
                r.sort_by(|a, b| a.total_cmp(b));
                r.dedup();
                r
            };
            for r in rates {
                let n = self
                    .trials
                    .iter()
                    .filter(|t| t.requested_pps == Some(r) && !t.final_trial)
                    .count();
                if n >= 2 {
                    if self.load(r, len, ratio, &what)? {
                        passed.push(r);
                    } else {
                        failed.push(r);
                    }
                }
            }
            // Loss-guided start: the rate the DUT judged flat out; then the middle of the
            // interval between the highest load that passed and the lowest that failed (or
            // twice the highest that passed, while none failed).
            let mut next = max.judged as f64 / max.secs.max(1e-9);
            for _ in 0..MAX_LOADS {
                let (lo, hi) = (highest(&passed), lowest(&failed));
                if hi.is_finite() && hi - lo <= precision * hi {
                    break;
                }
                if !(lo < next && next < hi) {
                    next = if hi.is_finite() {
                        (lo + hi) / 2.0
                    } else {
                        lo * 2.0
                    };
                }
                if self.load(next, len, ratio, &what)? {
                    passed.push(next);
                } else {
                    failed.push(next);
                }
            }
        }
        let failed_at = lowest(&failed);
        let mut rate = if generator_bound {
            None
        } else {
            match highest(&passed) {
                // Nothing passed: confirm at half the lowest failing load.
                r if r <= 0.0 => Some(failed_at.min(max.offered_pps) / 2.0),
                r => Some(r),
            }
        };
        let mut confirmed = false;
        for _ in 0..2 {
            confirmed = match rate {
                Some(r) => self.load(r, final_len, ratio, &format!("{what} confirming"))?,
                None => {
                    let t = self.trial(None, final_len)?;
                    t.loss_ratio <= ratio
                }
            };
            if confirmed {
                break;
            }
            rate = Some(rate.unwrap_or(max.offered_pps) * (1.0 - precision));
        }
        // The confirming trials at that load: the one with the median offered rate speaks
        // for them.
        let mut finals: Vec<Trial> = self
            .trials
            .iter()
            .filter(|t| t.final_trial && t.requested_pps == rate)
            .cloned()
            .collect();
        finals.sort_by(|a, b| a.offered_pps.total_cmp(&b.offered_pps));
        let confirm = finals
            .get(finals.len() / 2)
            .cloned()
            .unwrap_or_else(|| self.trials.last().cloned().expect("a trial ran"));
        let bytes = self.size as f64 * 8.0;
        Ok(Bound {
            loss_ratio_allowed: ratio,
            mpps: confirm.offered_pps / 1e6,
            gbps: confirm.offered_pps * bytes / 1e9,
            failed_at_mpps: failed_at.is_finite().then_some(failed_at / 1e6),
            confirm,
            confirmed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model DUT that carries `capacity` frames per second and loses the rest; every
    /// `unlucky`-th trial also loses 300 frames at any rate (a preempted vCPU). The generator
    /// offers what it is asked, or `ceiling` flat out.
    fn model(
        capacity: f64,
        ceiling: f64,
        unlucky: Option<usize>,
    ) -> impl FnMut(Option<f64>, Duration) -> Result<Trial> {
        let mut n = 0;
        move |rate, len| {
            n += 1;
            let secs = len.as_secs_f64();
            let offered = rate.unwrap_or(ceiling);
            let sent = (offered * secs) as u64;
            let mut judged = (offered.min(capacity) * secs) as u64;
            if unlucky.is_some_and(|k| n % k == 0) {
                judged = judged.saturating_sub(300);
            }
            let lost = sent - judged;
            Ok(Trial {
                requested_pps: rate,
                offered_pps: offered,
                secs,
                sent,
                judged,
                lost,
                loss_ratio: lost as f64 / sent.max(1) as f64,
                lost_in_veth_ring: lost,
                lost_unaccounted: 0,
                gap_p50_ns: None,
                gap_p99_ns: None,
                late: None,
                final_trial: false,
            })
        }
    }

    fn search(run: &mut RunTrial<'_>, precision: f64) -> (Trial, Bound, Bound, Vec<Trial>) {
        let len = Duration::from_millis(100);
        let mut s = Searcher {
            run,
            trials: Vec::new(),
            size: 64,
            len,
        };
        let (max, _floor, ndr, pdr) = s
            .search("model", 0.005, precision, Duration::from_millis(200))
            .unwrap();
        (max, ndr, pdr, s.trials)
    }

    #[test]
    fn finds_the_ndr_and_pdr_of_a_model_dut() {
        let mut m = model(1e6, 3e6, None);
        let (max, ndr, pdr, trials) = search(&mut m, 0.05);
        assert!(max.loss_ratio > 0.5, "{max:?}");
        assert!(ndr.confirmed && pdr.confirmed);
        // Within the precision below the capacity, never above it.
        assert!((0.95..=1.0).contains(&ndr.mpps), "NDR {}", ndr.mpps);
        // 0.5% loss allows offering 1 / (1 - 0.005) of the capacity.
        assert!((0.95..=1.0 / 0.995).contains(&pdr.mpps), "PDR {}", pdr.mpps);
        assert!(pdr.mpps >= ndr.mpps);
        assert!(ndr.failed_at_mpps.is_some_and(|f| f > ndr.mpps));
        assert!(trials.len() < 40, "{} trials", trials.len());
    }

    #[test]
    fn one_unlucky_trial_does_not_decide_a_load() {
        // Every third trial loses frames whatever the rate: two of a load's trials decide
        // (a third when they disagree), so the bounds still land near the capacity.
        let mut m = model(1e6, 3e6, Some(3));
        let (_, ndr, pdr, trials) = search(&mut m, 0.05);
        assert!((0.95..=1.0).contains(&ndr.mpps), "NDR {}", ndr.mpps);
        assert!((0.95..=1.0 / 0.995).contains(&pdr.mpps), "PDR {}", pdr.mpps);
        // Some passing load was decided by a third trial after an unlucky one.
        let third = trials.iter().any(|t| {
            let same: Vec<&Trial> = trials
                .iter()
                .filter(|u| u.requested_pps == t.requested_pps && u.final_trial == t.final_trial)
                .collect();
            same.len() == 3 && same.iter().filter(|u| u.lost == 0).count() == 2
        });
        assert!(third, "no load needed a third trial: {trials:?}");
    }

    #[test]
    fn a_dut_faster_than_the_generator_is_bound_by_the_generator() {
        let mut m = model(5e6, 2e6, None);
        let (max, ndr, pdr, trials) = search(&mut m, 0.05);
        assert_eq!(max.lost, 0);
        // Nothing to search: the generator's flat-out rate is confirmed for both bounds.
        assert_eq!(ndr.mpps, 2.0);
        assert_eq!(pdr.mpps, 2.0);
        assert!(ndr.confirmed && pdr.confirmed);
        assert_eq!(ndr.failed_at_mpps, None);
        assert_eq!(
            trials.len(),
            4,
            "flat out, the floor, one confirmation per bound"
        );
    }

    #[test]
    fn frame_sizes_parse_as_rfc_2544_counts_them() {
        assert_eq!(FrameSize::parse("64").unwrap().average(), 64.0);
        let imix = FrameSize::parse("IMIX").unwrap();
        assert_eq!(imix.label, "imix");
        assert!((imix.average() - (7.0 * 64.0 + 4.0 * 594.0 + 1518.0) / 12.0).abs() < 1e-9);
        for bad in ["63", "1519", "jumbo"] {
            assert!(FrameSize::parse(bad).is_err(), "{bad}");
        }
    }
}
