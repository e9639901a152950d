//! The generator benchmark (`harness bench --generators`, `cargo xtask bench --generators`):
//! pktgen's engines against their peers on the standard veth topology, in one run.
//!
//! - `xdp` engine (live frames) against `xdp-trafficgen` (xdp-tools 1.6 or later): IPv6 UDP,
//!   the only UDP traffic xdp-trafficgen builds;
//! - `afpacket` engine (sendmmsg) against `trafgen` (netsniff-ng): IPv4 UDP, the same bytes.
//!
//! The DUT runs the counting drop program in native mode and counts every frame; a case's rate
//! is what the DUT counted over the window. For pktgen the frames sent are known too, so the
//! loss is reported; the peers do not say what they sent. A peer that is not on PATH, or too old,
//! is skipped with the reason.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::programs::XdpMode;
use pktgen::{xdp::CountDrop, Flows, FrameSpec};
use serde::Serialize;

use crate::{
    bench::{
        measure::{self, progress, progress_done, Generator, Rates, RunInfo, Source},
        report::write_results,
        Args,
    },
    peer::{xdp_tools_version, PeerSender},
    Options, Topology,
};

/// One measured generator.
#[derive(Clone, Debug, Serialize)]
pub struct GenCase {
    /// Which pktgen engine this case is, or is compared with.
    pub engine: Source,
    /// `pktgen`, or the peer with its version (`xdp-trafficgen 1.6.3`, `trafgen 0.6.8`).
    pub tool: String,
    /// Sending threads (xdp-trafficgen `-t`, trafgen `--cpus`).
    pub threads: usize,
    /// Mpps counted by the DUT.
    #[serde(flatten)]
    pub rate: Rates,
    /// Frames sent over all runs (pktgen only: the peers do not report it).
    pub sent: Option<u64>,
    /// Frames the DUT counted over all runs.
    pub received: u64,
    /// sent - received (pktgen only).
    pub lost: Option<u64>,
}

/// pktgen over its peer, per engine and thread count.
#[derive(Clone, Debug, Serialize)]
pub struct GenRatio {
    /// `xdp` or `afpacket`.
    pub engine: Source,
    /// Threads on both sides.
    pub threads: usize,
    /// The peer.
    pub peer: String,
    /// pktgen's median Mpps over the peer's.
    pub ratio: f64,
}

/// The JSON report of the generator benchmark (`version` 1).
#[derive(Clone, Debug, Serialize)]
pub struct GenReport {
    /// Schema version.
    pub version: u32,
    /// When and where it ran.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Window per run (s).
    pub duration_s: f64,
    /// Runs per case.
    pub repeats: usize,
    /// Frame size (bytes, without FCS).
    pub frame_size: usize,
    /// Measured cases.
    pub cases: Vec<GenCase>,
    /// pktgen / peer.
    pub ratios: Vec<GenRatio>,
    /// Cases not run, with the reason.
    pub skipped: Vec<String>,
}

/// What runs on the generator side for one run.
enum Sender {
    Ours(Generator),
    Peer(PeerSender),
}

/// Addresses of the IPv6 traffic (the `xdp` cases).
const V6_SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5857, 0, 0, 0, 0, 0, 1);
const V6_DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5857, 0, 0, 0, 0, 0, 2);

/// The frame template of an engine's cases, `size` bytes, between the topology's MACs.
fn template(topo: &Topology, engine: Source, size: usize) -> FrameSpec {
    let (src, dst): (IpAddr, IpAddr) = if engine == Source::Xdp {
        (V6_SRC.into(), V6_DST.into())
    } else {
        ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
    };
    let mut t = FrameSpec::udp(src, dst, 1024, 9);
    t.src_mac = topo.gen.mac;
    t.dst_mac = topo.dut.mac;
    let headers = t.build().len();
    t.payload(size.saturating_sub(headers))
}

/// The version of `trafgen` on PATH, or why it cannot be used.
fn trafgen_version() -> Result<String, String> {
    let out = std::process::Command::new("trafgen")
        .arg("--version")
        .output()
        .map_err(|_| "trafgen: not on PATH (Debian's netsniff-ng package has it)".to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().take(2).collect();
    match words.as_slice() {
        ["trafgen", v] => Ok(format!("trafgen {v}")),
        _ => Err(format!("trafgen: unexpected --version output {first:?}")),
    }
}

/// Runs the generator benchmark and writes its JSON report.
pub fn run(args: &Args) -> Result<()> {
    let run = RunInfo::now()?;
    let started = run.started;
    let threads: Vec<usize> = if args.quick {
        vec![1]
    } else {
        args.gen_threads.clone()
    };
    let max_threads = threads.iter().copied().max().unwrap_or(1).max(1);
    let mut skipped = Vec::new();
    let mut peers: Vec<(Source, Option<String>)> = Vec::new();
    for (engine, version) in [
        (Source::Xdp, xdp_tools_version("xdp-trafficgen", "udp")),
        (Source::Afpacket, trafgen_version()),
    ] {
        if !args.sources.contains(&engine) {
            continue;
        }
        match version {
            Ok(v) => peers.push((engine, Some(v))),
            Err(why) => {
                skipped.push(format!("peer of the {engine} engine: {why}"));
                peers.push((engine, None));
            }
        }
    }
    let topo = Topology::standard(
        "bench-gen",
        &Options {
            queues: max_threads as u32,
            ipv6: false,
            ..Options::default()
        },
    )?;
    let mut rx = {
        let _ns = topo.dut.enter()?;
        let mut c = CountDrop::load()?;
        c.program()
            .attach(&topo.dut.iface, XdpMode::Driver)
            .context("attaching the counting receiver in native mode")?;
        c
    };
    let window = Duration::from_secs_f64(args.duration);
    let per_engine = |p: &Option<String>| if p.is_some() { 2 } else { 1 };
    let total: usize =
        threads.len() * peers.iter().map(|(_, p)| per_engine(p)).sum::<usize>() * args.repeats;
    let mut done = 0;
    let mut cases = Vec::new();
    for &t in &threads {
        for (engine, peer) in &peers {
            let spec = template(&topo, *engine, args.size);
            let frame = spec.build();
            let mut tools = vec!["pktgen".to_string()];
            tools.extend(peer.clone());
            for tool in tools {
                let (mut runs, mut sent, mut received) = (Vec::new(), 0u64, 0u64);
                let mut failed = None;
                for r in 0..args.repeats {
                    progress(
                        done,
                        total,
                        &format!(
                            "{engine}: {tool}, {t} thread(s): run {}/{}",
                            r + 1,
                            args.repeats
                        ),
                    );
                    done += 1;
                    let before = rx.count()?.packets;
                    // Peers load their programs first: give every sender the same head start.
                    const SETTLE: Duration = Duration::from_millis(700);
                    let until = Instant::now() + SETTLE + window + Duration::from_millis(50);
                    let mut sender = if tool == "pktgen" {
                        Sender::Ours(Generator::start(
                            &topo,
                            *engine,
                            spec.clone(),
                            Flows::default(),
                            t,
                            until,
                        ))
                    } else if *engine == Source::Xdp {
                        Sender::Peer(PeerSender::xdp_trafficgen(
                            &topo.gen, &spec, V6_SRC, V6_DST, args.size, t,
                        )?)
                    } else {
                        Sender::Peer(PeerSender::trafgen(&topo.gen, &frame, t)?)
                    };
                    std::thread::sleep(SETTLE);
                    if let Sender::Peer(p) = &mut sender {
                        if let Err(e) = p.check_running() {
                            failed = Some(format!("{tool} ({engine}, {t} thread(s)): {e:#}"));
                            break;
                        }
                    }
                    let (a, b, secs) =
                        measure::window(Duration::ZERO, window, || Ok(rx.count()?.packets))?;
                    match sender {
                        Sender::Ours(g) => sent += g.finish()?,
                        Sender::Peer(p) => p.stop()?,
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    received += rx.count()?.packets - before;
                    runs.push((b - a) as f64 / secs / 1e6);
                }
                if let Some(why) = failed {
                    skipped.push(why);
                    continue;
                }
                let ours = tool == "pktgen";
                cases.push(GenCase {
                    engine: *engine,
                    tool,
                    threads: t,
                    rate: Rates::of(runs),
                    sent: ours.then_some(sent),
                    received,
                    lost: ours.then_some(sent.saturating_sub(received)),
                });
            }
        }
    }
    progress_done(total);
    rx.program().unload().ok();
    drop(topo);
    let ratios = cases
        .iter()
        .filter(|c| c.tool == "pktgen")
        .filter_map(|o| {
            let p = cases
                .iter()
                .find(|p| p.tool != "pktgen" && p.engine == o.engine && p.threads == o.threads)?;
            Some(GenRatio {
                engine: o.engine,
                threads: o.threads,
                peer: p.tool.clone(),
                ratio: o.rate.median_mpps / p.rate.median_mpps.max(1e-9),
            })
        })
        .collect();
    let report = GenReport {
        version: 1,
        run,
        duration_s: args.duration,
        repeats: args.repeats,
        frame_size: args.size,
        cases,
        ratios,
        skipped,
    };
    print(&report);
    write_results(&args.out, "generators", started, &report, None)
}

fn print(r: &GenReport) {
    println!(
        "\n{}\nGenerators: Mpps counted by the DUT (counting drop program, native XDP), {} runs of {} s, {}-byte frames (median [min - max]):",
        r.run.machine(), r.repeats, r.duration_s, r.frame_size
    );
    println!(
        "  {:<9} {:<22} {:>7} {:>8} {:>19} {:>8}",
        "engine", "tool", "threads", "Mpps", "[min - max]", "lost"
    );
    for c in &r.cases {
        let lost = match (c.lost, c.sent) {
            (Some(l), Some(s)) if s > 0 => format!("{:.2}%", l as f64 * 100.0 / s as f64),
            _ => "-".into(),
        };
        println!(
            "  {:<9} {:<22} {:>7} {:>8.3} [{:>7.3} - {:>7.3}] {:>8}",
            c.engine, c.tool, c.threads, c.rate.median_mpps, c.rate.min_mpps, c.rate.max_mpps, lost
        );
    }
    for x in &r.ratios {
        println!(
            "pktgen {} / {}, {} thread(s): {:.2}x",
            x.engine, x.peer, x.threads, x.ratio
        );
    }
    for s in &r.skipped {
        println!("skipped: {s}");
    }
}
