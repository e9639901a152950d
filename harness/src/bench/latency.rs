//! Latency of passed frames, filter against baseline, after RFC 2544 (26.2) and FD.io CSIT:
//! one-way, through a forwarding path (generator -> DUT -> receiver), at no load and at 10%,
//! 50% and 90% of the NDR the search found.
//!
//! Every frame is a probe: the generator (the xdp engine, paced, batches of one frame) writes
//! `bpf_ktime_get_ns()` into it as it leaves, the DUT's program passes it (the baseline: a
//! counter that passes everything; `filter-N`: N rules, none of which matches the probe's
//! port, so every table is looked up and the default passes it), the DUT's kernel routes it
//! out of `dut1`, and the receiver's XDP program histograms `now - stamp` (one host clock;
//! log-linear buckets, within 3%). The latency thus covers the generator's redirect, the
//! DUT's veth ring, its XDP program, its IP forwarding and the receiver's veth ring.
//!
//! Both programs of a mode are offered the same loads: fractions of the lower of their two
//! NDRs, so each stays below its own and their latencies compare. No load is 1% of that
//! (at most 10,000 frames per second): the path is idle between probes. Each load is one
//! trial of the confirming length; frames are accounted as in the search (sent = measured +
//! lost, lost before the DUT's program or after it).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use pktgen::{FrameSpec, IpSpec, L4Spec, LatencyReceiver};
use xdpwall::Mode;

use super::{
    filter::{bench_flows, Receiver, Workload},
    measure::{progress, TrialGenerator},
    report::{LatencyCase, LatencyPoint},
};
use crate::Topology;

/// The fractions of the NDR the latency is measured at (after the idle trial).
pub(super) const LOADS: [f64; 3] = [0.1, 0.5, 0.9];
/// The idle trial: this fraction of the NDR ...
const IDLE_SHARE: f64 = 0.01;
/// ... but at most this many frames per second.
const IDLE_MAX_PPS: f64 = 10_000.0;
/// A destination port no rule of `filter-N` names (theirs are 1000 and up).
const NO_RULE_PORT: u16 = 999;

/// A probe of `size` bytes (without FCS) from the source `w`'s traffic uses, to the
/// receiver, on a port none of the case's rules drops.
fn probe(w: &Workload, size: usize, topo: &Topology) -> Result<FrameSpec> {
    let r = topo
        .receiver
        .as_ref()
        .context("the latency path needs a receiver namespace")?;
    let mut t = w.template(size);
    if let IpSpec::V4 { dst, .. } = &mut t.ip {
        *dst = r.rcv.ip4;
    }
    if let L4Spec::Udp { dport, .. } = &mut t.l4 {
        *dport = NO_RULE_PORT;
    }
    t.dst_mac = topo.dut.mac;
    t.src_mac = topo.gen.mac;
    Ok(t.latency_probe())
}

/// The loads (frames per second) of one mode: idle, then [`LOADS`] of `ndr_pps`.
pub(super) fn loads(ndr_pps: f64) -> Vec<(String, f64)> {
    let mut v = vec![(
        "no load".to_string(),
        (ndr_pps * IDLE_SHARE).min(IDLE_MAX_PPS),
    )];
    v.extend(
        LOADS
            .iter()
            .map(|&f| (format!("{:.0}% NDR", f * 100.0), ndr_pps * f)),
    );
    v
}

/// Measures the latency of `programs` in `mode` on `topo` (built with a receiver, the
/// generator on `cpu`) at the loads of `ndr_pps`, trials of `len`.
pub(super) fn measure(
    topo: &Topology,
    mode: Mode,
    programs: &[Workload],
    ndr_pps: f64,
    size: usize,
    cpu: usize,
    len: Duration,
) -> Result<Vec<LatencyCase>> {
    if ndr_pps <= 0.0 {
        bail!("no NDR to measure latency at");
    }
    let r = topo
        .receiver
        .as_ref()
        .context("the latency path needs a receiver namespace")?;
    let marker = probe(&Workload::Baseline, size, topo)?
        .probe_offset()
        .expect("a probe");
    let mut rcv = {
        let _ns = r.rcv.enter()?;
        LatencyReceiver::attach(&r.rcv.iface, marker, aya::programs::XdpMode::Driver)
            .context("attaching the latency receiver")?
    };
    let mut cases = Vec::new();
    for w in programs {
        let mut rx = Receiver::load_forwarding(w.ruleset().as_ref())?;
        rx.attach(topo, mode)?;
        let gen = TrialGenerator::start(
            topo,
            vec![(probe(w, size, topo)?, 1)],
            bench_flows(),
            cpu,
            1,
        )?;
        let mut points = Vec::new();
        for (label, rate) in loads(ndr_pps) {
            progress(
                0,
                1,
                &format!(
                    "{mode} {}: latency at {label} ({:.3} Mpps)",
                    w.name(),
                    rate / 1e6
                ),
            );
            points.push(trial(&rx, &gen, &mut rcv, label, rate, len)?);
        }
        drop(gen);
        rx.detach(topo)?;
        cases.push(LatencyCase {
            mode: mode.to_string(),
            program: w.name(),
            ndr_reference_mpps: ndr_pps / 1e6,
            points,
        });
    }
    Ok(cases)
}

/// One latency trial at `rate` for `len`: every probe accounted for, the measured ones
/// summarised.
fn trial(
    rx: &Receiver,
    gen: &TrialGenerator,
    rcv: &mut LatencyReceiver,
    load: String,
    rate: f64,
    len: Duration,
) -> Result<LatencyPoint> {
    rcv.reset()?;
    let judged0 = rx.judged()?;
    let sent = gen.run(Some(rate), len)?;
    // Frames still on their way arrive within milliseconds.
    std::thread::sleep(Duration::from_millis(50));
    let l = rcv.latency()?;
    let judged = rx.judged()? - judged0;
    let us = |q: f64| l.quantile_ns(q).map(|n| n as f64 / 1e3);
    Ok(LatencyPoint {
        load,
        requested_pps: rate,
        offered_pps: sent.frames as f64 / sent.secs.max(1e-9),
        sent: sent.frames,
        measured: l.count,
        lost_before_program: sent.frames.saturating_sub(judged),
        lost_after_program: judged.saturating_sub(l.count),
        min_us: us(0.0),
        p50_us: us(0.5),
        p90_us: us(0.9),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: (l.count > 0).then(|| l.max_ns as f64 / 1e3),
        mean_us: l.mean_ns().map(|n| n / 1e3),
        histogram: l
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (xdpwall_common::lat_bucket_low(i), *n))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_idle_then_fractions_of_the_ndr() {
        let l = loads(400_000.0);
        let rates: Vec<f64> = l.iter().map(|x| x.1).collect();
        assert_eq!(rates, vec![4_000.0, 40_000.0, 200_000.0, 360_000.0]);
        assert_eq!(l[0].0, "no load");
        assert_eq!(l[3].0, "90% NDR");
        // Idle stays idle on a fast DUT.
        assert_eq!(loads(5e6)[0].1, IDLE_MAX_PPS);
    }
}
