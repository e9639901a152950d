//! `pktgen`: build TCP/UDP/ICMP traffic, write it to pcap, or send it onto an interface with
//! the `afpacket` engine (AF_PACKET sockets, sendmmsg batches) or the `xdp` engine (frames
//! generated in the kernel with BPF_PROG_TEST_RUN live frames).

use std::{
    io::IsTerminal,
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pktgen::{
    afpacket::AfPacket,
    pcap,
    profile::{imix, Profile, VaryProfile},
    xdp::XdpEngine,
};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "pktgen", version, about = "TCP/UDP/ICMP traffic generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send traffic onto an interface.
    Send {
        #[command(flatten)]
        traffic: Traffic,
        #[command(flatten)]
        out: Output,
        /// Engine.
        #[arg(long, value_enum, default_value_t = Engine::Afpacket)]
        engine: Engine,
        /// Sending threads (each pinned to a CPU).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Write the traffic to a pcap file instead of sending it.
    Write {
        #[command(flatten)]
        traffic: Traffic,
        /// The pcap file.
        #[arg(long)]
        pcap: PathBuf,
        /// Frames to write.
        #[arg(long, default_value_t = 1000)]
        count: u64,
    },
    /// Send the frames of a pcap file onto an interface.
    Replay {
        /// The pcap file.
        pcap: PathBuf,
        #[command(flatten)]
        out: Output,
        /// How many times to send the whole file.
        #[arg(long = "loop", default_value_t = 1)]
        loops: u64,
        /// Keep the capture's own timing between frames.
        #[arg(long, conflicts_with = "rate")]
        timing: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// AF_PACKET socket, batched with sendmmsg (frames reach the peer as skbs).
    Afpacket,
    /// In-kernel generation with BPF_PROG_TEST_RUN live frames (frames reach the peer as
    /// XDP frames; on veth the peer needs a native XDP program or GRO). Linux 5.18+.
    Xdp,
    /// `xdp` where the kernel has live frames, else `afpacket` (and says so).
    Auto,
}

/// Where and how much to send.
#[derive(Args)]
struct Output {
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// Network namespace (under /run/netns) holding the interface.
    #[arg(long)]
    netns: Option<String>,
    /// Frames to send (default: until --duration ends, or 1,000 without it).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds to send for.
    #[arg(long)]
    duration: Option<f64>,
    /// Target rate in frames per second (default: flat out).
    #[arg(long)]
    rate: Option<u64>,
    /// Print the final statistics as JSON.
    #[arg(long)]
    json: bool,
}

/// What to send: a profile file, or flags.
#[derive(Args)]
struct Traffic {
    /// A TOML traffic profile (the flags below are then ignored).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Source address.
    #[arg(long, default_value = "192.168.1.1")]
    src: IpAddr,
    /// Destination address.
    #[arg(long, default_value = "192.168.1.2")]
    dst: IpAddr,
    /// udp, tcp or icmp.
    #[arg(long, default_value = "udp")]
    proto: String,
    /// Source port.
    #[arg(long, default_value_t = 1024)]
    sport: u16,
    /// Destination port.
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Frame size in bytes without FCS, or `imix` (64/594/1518 bytes on the wire, 7:4:1).
    #[arg(long, default_value = "64")]
    size: String,
    /// VLAN id (repeat for QinQ).
    #[arg(long)]
    vlan: Vec<u16>,
    /// Source address variation: fixed, a count (walks that many addresses), random:COUNT.
    #[arg(long)]
    vary_src: Option<String>,
    /// Destination address variation.
    #[arg(long)]
    vary_dst: Option<String>,
    /// Source port variation.
    #[arg(long)]
    vary_sport: Option<String>,
    /// Destination port variation.
    #[arg(long)]
    vary_dport: Option<String>,
    /// Seed for random variation (same seed, same frames).
    #[arg(long)]
    seed: Option<u64>,
}

impl Traffic {
    fn profile(&self) -> Result<Profile> {
        if let Some(p) = &self.profile {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            return Profile::parse(&text).with_context(|| format!("profile {}", p.display()));
        }
        let sizes = if self.size == "imix" {
            imix()
        } else {
            vec![(
                self.size
                    .parse()
                    .with_context(|| format!("--size {}: a byte count or imix", self.size))?,
                1,
            )]
        };
        let p = Profile {
            src: self.src,
            dst: self.dst,
            proto: self.proto.clone(),
            sport: self.sport,
            dport: self.dport,
            vlans: self.vlan.clone(),
            sizes,
            vary: VaryProfile {
                src: self.vary_src.clone(),
                dst: self.vary_dst.clone(),
                sport: self.vary_sport.clone(),
                dport: self.vary_dport.clone(),
                seed: self.seed,
            },
        };
        p.flows()?;
        p.templates()?;
        Ok(p)
    }
}

/// Final statistics.
#[derive(Serialize)]
struct Stats {
    engine: String,
    sent: u64,
    seconds: f64,
    pps: f64,
    mbps: f64,
    /// The rate asked for (`--rate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_pps: Option<u64>,
    /// Paced in the kernel (xdp engine with `--rate`): how evenly the frames left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pacing: Option<Pacing>,
}

/// Precision of in-kernel pacing: the gaps between consecutive frames of a sending CPU.
#[derive(serde::Serialize)]
struct Pacing {
    /// The gap asked for on each sending CPU, ns.
    gap_ns: u64,
    /// Median gap (upper edge of its histogram bucket, an eighth of the gap wide), ns.
    gap_p50_ns: Option<f64>,
    /// 1st and 99th percentile gaps, ns.
    gap_p1_ns: Option<f64>,
    /// 99th percentile gap.
    gap_p99_ns: Option<f64>,
    /// Share of gaps within an eighth of the gap asked for.
    on_time: f64,
    /// Frames more than 8 gaps late (the schedule restarted: the slots in between were given
    /// up rather than caught up in a longer burst).
    late: u64,
    /// Runs dropped unsent while waiting for the next frame's time.
    held: u64,
}

/// Splits a budget of frames between weighted templates, in rounds of `chunk` frames.
fn weighted_rounds(weights: &[u32], chunk: u64) -> Vec<u64> {
    let total: u64 = weights.iter().map(|&w| w as u64).sum::<u64>().max(1);
    weights
        .iter()
        .map(|&w| (chunk * w as u64 / total).max(1))
        .collect()
}

/// Runs the sending loop shared by every engine: `send(k, frames)` sends `frames` frames of
/// template `k`. Calls are sized by time (`slice` each, see [`pktgen::pace`]); stops at the
/// count or the duration, paces to the rate, shows progress.
fn drive(
    out: &Output,
    threads: usize,
    weights: &[u32],
    slice: Duration,
    send: impl Fn(usize, u64) -> Result<()> + Sync,
) -> Result<(u64, f64)> {
    drive_runs(out, threads, weights, slice, out.rate, send)
}

/// [`drive`], pacing in user space to `rate` (None when the engine paces itself).
fn drive_runs(
    out: &Output,
    threads: usize,
    weights: &[u32],
    slice: Duration,
    rate: Option<u64>,
    send: impl Fn(usize, u64) -> Result<()> + Sync,
) -> Result<(u64, f64)> {
    let count = match (out.count, out.duration) {
        (Some(c), _) => c,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1000,
    };
    let deadline = out.duration.map(Duration::from_secs_f64);
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let per_thread_rate = rate.map(|r| (r as f64 / threads as f64).max(1.0));
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (sent, stop, send) = (&sent, &stop, &send);
                s.spawn(move || -> Result<()> {
                    pktgen::pin_to_cpu(t);
                    let mut mine = 0u64;
                    let mut slicer = pktgen::pace::Slicer::new(slice, 1e6);
                    let t0 = Instant::now();
                    'outer: loop {
                        let left = deadline.map(|d| d.saturating_sub(start.elapsed()));
                        let mut chunk = slicer.next(left);
                        if let Some(r) = per_thread_rate {
                            chunk = chunk.min(((r * slice.as_secs_f64()) as u64).max(1));
                        }
                        let began = Instant::now();
                        let mut round = 0;
                        for (k, n) in weighted_rounds(weights, chunk).into_iter().enumerate() {
                            let claimed = sent.fetch_add(n, Ordering::Relaxed);
                            if claimed >= count || stop.load(Ordering::Relaxed) {
                                sent.fetch_sub(n, Ordering::Relaxed);
                                break 'outer;
                            }
                            let left = n.min(count - claimed);
                            sent.fetch_sub(n - left, Ordering::Relaxed);
                            send(k, left)?;
                            round += left;
                        }
                        slicer.record(round, began.elapsed());
                        mine += round;
                        if let Some(r) = per_thread_rate {
                            let due = Duration::from_secs_f64(mine as f64 / r);
                            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut last = Instant::now();
        let mut shown = false;
        let live = std::io::stderr().is_terminal();
        while workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if deadline.is_some_and(|d| start.elapsed() >= d) || INTERRUPTED.load(Ordering::SeqCst)
            {
                stop.store(true, Ordering::Relaxed);
            }
            // A live rate only on a terminal: in a log it would be escape codes.
            if live && last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                let n = sent.load(Ordering::Relaxed);
                eprint!(
                    "\r\x1b[2K{n} frames, {:.3} Mpps",
                    n as f64 / start.elapsed().as_secs_f64() / 1e6
                );
                shown = true;
            }
        }
        if shown {
            eprint!("\r\x1b[2K");
        }
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((sent.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}

fn report(
    engine: &str,
    sent: u64,
    secs: f64,
    avg_len: f64,
    out: &Output,
    pacing: Option<Pacing>,
) -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("pktgen: interrupted; {sent} frames were sent");
    }
    let json = out.json;
    let s = Stats {
        engine: engine.into(),
        sent,
        seconds: secs,
        pps: sent as f64 / secs.max(1e-9),
        mbps: sent as f64 * avg_len * 8.0 / secs.max(1e-9) / 1e6,
        requested_pps: out.rate,
        pacing,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("engine   sent        seconds  rate          throughput");
        println!(
            "{:<8} {:<11} {:<8.3} {:<13} {:.1} Mbit/s",
            s.engine,
            s.sent,
            s.seconds,
            format!("{:.3} Mpps", s.pps / 1e6),
            s.mbps
        );
        if let Some(r) = s.requested_pps {
            println!(
                "asked    {r} pps: achieved {:.2}% of it",
                s.pps / r as f64 * 100.0
            );
        }
        if let Some(p) = &s.pacing {
            let ns = |v: Option<f64>| v.map_or("> 4 gaps".into(), |v| format!("{v:.0} ns"));
            println!(
                "gaps     asked {} ns per CPU: p1 {}, p50 {}, p99 {}; {:.1}% within 1/8 of it; {} late, {} runs held",
                p.gap_ns,
                ns(p.gap_p1_ns),
                ns(p.gap_p50_ns),
                ns(p.gap_p99_ns),
                p.on_time * 100.0,
                p.late,
                p.held
            );
        }
    }
    Ok(())
}

/// Set by SIGINT, SIGTERM or SIGHUP: sending stops within one call slice and the statistics
/// of what was sent are still printed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("pktgen: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Write {
            traffic,
            pcap: path,
            count,
        } => {
            let p = traffic.profile()?;
            let flows = p.flows()?;
            let templates = p.templates()?;
            let weights: Vec<u32> = templates.iter().map(|t| t.1).collect();
            let rounds = weighted_rounds(&weights, 12);
            let mut rng = pktgen::flow::Rng::new(flows.seed);
            let mut w = pcap::Writer::create(&path)?;
            let mut n = 0u64;
            'outer: loop {
                for (k, &r) in rounds.iter().enumerate() {
                    for _ in 0..r {
                        if n == count {
                            break 'outer;
                        }
                        let f = flows.frame(&templates[k].0, n, &mut rng).build();
                        w.write(pcap::synthetic_timestamp(n as usize), &f)?;
                        n += 1;
                    }
                }
            }
            println!("wrote {n} frames to {}", path.display());
            Ok(())
        }
        Cmd::Send {
            traffic,
            out,
            engine,
            threads,
        } => {
            let p = traffic.profile()?;
            let flows = p.flows()?;
            let templates = p.templates()?;
            if let Some(ns) = &out.netns {
                xdpwall::netns::enter(ns)?;
            }
            let weights: Vec<u32> = templates.iter().map(|t| t.1).collect();
            let avg = templates
                .iter()
                .map(|(t, w)| (t.len() * *w as usize) as f64)
                .sum::<f64>()
                / weights.iter().sum::<u32>() as f64;
            let engine = match engine {
                Engine::Auto if xdpwall::features::xdp_live_frames() => Engine::Xdp,
                Engine::Auto => {
                    eprintln!(
                        "pktgen: this kernel ({}) has no BPF_PROG_TEST_RUN live frames (5.18+): \
                         sending with the afpacket engine",
                        xdpwall::features::kernel_release()
                    );
                    Engine::Afpacket
                }
                e => e,
            };
            match engine {
                Engine::Afpacket => {
                    let sock = AfPacket::open(&out.iface)
                        .with_context(|| format!("interface {}", out.iface))?;
                    let frames: Vec<Vec<Vec<u8>>> = templates
                        .iter()
                        .map(|(t, _)| flows.frames(t, 4096))
                        .collect();
                    let cursor: Vec<AtomicU64> =
                        (0..frames.len()).map(|_| AtomicU64::new(0)).collect();
                    let (sent, secs) =
                        drive(&out, threads, &weights, AfPacket::CALL_SLICE, |k, n| {
                            let at = cursor[k].fetch_add(n, Ordering::Relaxed) as usize;
                            Ok(sock.send_batch(&frames[k], at, n as usize)?)
                        })?;
                    report("afpacket", sent, secs, avg, &out, None)
                }
                Engine::Xdp => {
                    let mut engines = templates
                        .iter()
                        .map(|(t, _)| XdpEngine::new(t, &flows, &out.iface))
                        .collect::<Result<Vec<_>, _>>()?;
                    let Some(rate) = out.rate else {
                        let (sent, secs) =
                            drive(&out, threads, &weights, XdpEngine::CALL_SLICE, |k, n| {
                                engines[k].send(n.min(u32::MAX as u64) as u32, 64)?;
                                Ok(())
                            })?;
                        return report("xdp", sent, secs, avg, &out, None);
                    };
                    // Paced in the kernel: each sending CPU runs at rate / threads frames per
                    // second; the runs in between are dropped unsent, so the run count says
                    // nothing about frames and a frame count cannot end the run.
                    if out.count.is_some() || out.duration.is_none() {
                        bail!("--rate with the xdp engine needs --duration (and no --count)");
                    }
                    let per_cpu = rate as f64 / threads.max(1) as f64;
                    for e in &mut engines {
                        e.set_rate(Some(per_cpu))?;
                    }
                    let (_, secs) = drive_runs(
                        &out,
                        threads,
                        &weights,
                        XdpEngine::CALL_SLICE,
                        None,
                        |k, n| {
                            engines[k].send(n.min(u32::MAX as u64) as u32, 64)?;
                            Ok(())
                        },
                    )?;
                    let mut all = pktgen::xdp::PaceStats::default();
                    for e in &mut engines {
                        all.add(&e.pace_stats()?);
                    }
                    let pacing = Pacing {
                        gap_ns: all.gap_ns,
                        gap_p1_ns: all.gap_quantile_ns(0.01),
                        gap_p50_ns: all.gap_quantile_ns(0.5),
                        gap_p99_ns: all.gap_quantile_ns(0.99),
                        on_time: all.on_time(),
                        late: all.late,
                        held: all.held,
                    };
                    report("xdp", all.sent, secs, avg, &out, Some(pacing))
                }
                Engine::Auto => unreachable!("auto is resolved to xdp or afpacket above"),
            }
        }
        Cmd::Replay {
            pcap: path,
            out,
            loops,
            timing,
        } => {
            let frames = pcap::read_frames(&path)?;
            if frames.is_empty() {
                bail!("{}: no frames", path.display());
            }
            if let Some(ns) = &out.netns {
                xdpwall::netns::enter(ns)?;
            }
            let sock =
                AfPacket::open(&out.iface).with_context(|| format!("interface {}", out.iface))?;
            let avg =
                frames.iter().map(|f| f.data.len()).sum::<usize>() as f64 / frames.len() as f64;
            if timing {
                let t0 = Instant::now();
                let mut sent = 0;
                'loops: for _ in 0..loops {
                    let base = frames[0].timestamp;
                    let start = Instant::now();
                    for f in &frames {
                        if INTERRUPTED.load(Ordering::SeqCst) {
                            break 'loops;
                        }
                        if let Some(wait) =
                            (f.timestamp.saturating_sub(base)).checked_sub(start.elapsed())
                        {
                            std::thread::sleep(wait);
                        }
                        sock.send(&f.data)?;
                        sent += 1;
                    }
                }
                return report("replay", sent, t0.elapsed().as_secs_f64(), avg, &out, None);
            }
            let data: Vec<Vec<u8>> = frames.into_iter().map(|f| f.data).collect();
            let total = data.len() as u64 * loops;
            let out = Output {
                count: Some(out.count.unwrap_or(total).min(total)),
                ..out
            };
            let cursor = AtomicU64::new(0);
            let (sent, secs) = drive(&out, 1, &[1], AfPacket::CALL_SLICE, |_, n| {
                let at = cursor.fetch_add(n, Ordering::Relaxed) as usize;
                Ok(sock.send_batch(&data, at, n as usize)?)
            })?;
            report("replay", sent, secs, avg, &out, None)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn weights_split_rounds() {
        assert_eq!(super::weighted_rounds(&[7, 4, 1], 12), vec![7, 4, 1]);
        assert_eq!(super::weighted_rounds(&[1], 4096), vec![4096]);
    }
}
