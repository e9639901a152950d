//! What every benchmark measures with: generator threads, rates (median, min, max), where
//! and when it ran, progress lines.

use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use pktgen::{
    afpacket::AfPacket,
    pace::Slicer,
    xdp::{PaceStats, XdpEngine},
    Flows, FrameSpec,
};
use serde::Serialize;

use crate::{netns, Topology};

/// When and where a benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Unix time of the start.
    pub started: u64,
    /// Kernel release.
    pub kernel: String,
    /// CPUs online.
    pub cpus: usize,
    /// The CPU model (`model name` in /proc/cpuinfo): absolute rates differ 3x between the
    /// machines this runs on.
    pub cpu: String,
}

impl RunInfo {
    /// This machine, now.
    pub fn now() -> Result<RunInfo> {
        Ok(RunInfo {
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            kernel: xdpwall::features::kernel_release(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu: xdpwall::features::cpu_model(),
        })
    }

    /// `CPU, kernel K, N CPUs`: the line every report starts with.
    pub fn machine(&self) -> String {
        format!("{}, kernel {}, {} CPUs", self.cpu, self.kernel, self.cpus)
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

/// One measurement window, the same for every benchmark: waits `settle` for the traffic to
/// reach its steady state, reads, waits `len`, reads again. Returns both readings and the
/// seconds that really passed between them (a sleep may oversleep).
pub(crate) fn window<C>(
    settle: Duration,
    len: Duration,
    mut read: impl FnMut() -> Result<C>,
) -> Result<(C, C, f64)> {
    std::thread::sleep(settle);
    let a = read()?;
    let t = Instant::now();
    std::thread::sleep(len);
    let b = read()?;
    Ok((a, b, t.elapsed().as_secs_f64()))
}

/// Median, min and max.
pub(crate) fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Where benchmark traffic comes from: a pktgen engine (and the source of a case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Frames generated in the kernel (BPF_PROG_TEST_RUN live frames) and redirected into
    /// the veth: the DUT receives XDP frames.
    Xdp,
    /// Frames sent through AF_PACKET sockets: the DUT receives skbs.
    Afpacket,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad: tables give the name a width.
        f.pad(match self {
            Source::Xdp => "xdp",
            Source::Afpacket => "afpacket",
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
        source: Source,
        template: FrameSpec,
        flows: Flows,
        threads: usize,
        until: Instant,
    ) -> Generator {
        Self::start_from(
            topo,
            source,
            template,
            flows,
            Arc::new(Vec::new()),
            threads,
            until,
        )
    }

    /// Like [`Generator::start`], with whole source addresses taken from `sources` in turn
    /// (empty: none; the `afpacket` engine cycles through the first 1000).
    pub(crate) fn start_from(
        topo: &Topology,
        source: Source,
        template: FrameSpec,
        flows: Flows,
        sources: Arc<Vec<std::net::IpAddr>>,
        threads: usize,
        until: Instant,
    ) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        // Engines ready to send (a million-source list takes a second to write).
        let ready = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..threads.max(1))
            .map(|cpu| {
                let (s2, c2, r2) = (stop.clone(), sent.clone(), ready.clone());
                let (ns, iface, source) = (topo.gen.netns.clone(), topo.gen.iface.clone(), source);
                let template = template.clone();
                let sources = sources.clone();
                std::thread::spawn(move || -> Result<()> {
                    netns::run_in(&ns, move || -> Result<()> {
                        pktgen::pin_to_cpu(cpu);
                        if source == Source::Xdp {
                            let e = XdpEngine::with_sources(&template, &flows, &iface, &sources);
                            r2.fetch_add(1, Ordering::Relaxed);
                            let e = e?;
                            let mut slicer = Slicer::new(XdpEngine::CALL_SLICE, 1e6);
                            while !s2.load(Ordering::Relaxed) {
                                let left = until.saturating_duration_since(Instant::now());
                                let n = slicer.next(Some(left)).min(u32::MAX as u64) as u32;
                                let took = e.send(n, 64)?;
                                slicer.record(n as u64, took);
                                c2.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        } else {
                            let frames = if sources.is_empty() {
                                flows.frames(&template, 1000)
                            } else {
                                sources
                                    .iter()
                                    .take(1000)
                                    .map(|&a| template.clone().with_source(a).build())
                                    .collect()
                            };
                            let s = AfPacket::open(&iface);
                            r2.fetch_add(1, Ordering::Relaxed);
                            let s = s?;
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready.load(Ordering::Relaxed) < handles.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// What one trial of a [`TrialGenerator`] sent.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// Frames sent (redirected into the veth).
    pub(crate) frames: u64,
    /// Seconds from the first call to the end of the last.
    pub(crate) secs: f64,
    /// Paced trials: how evenly the frames left.
    pub(crate) pacing: Option<PaceStats>,
}

enum TrialCmd {
    Run(Option<f64>, Duration),
}

/// A live-frames generator on its own thread in the generator's namespace, pinned to one CPU,
/// that runs trials on request: a rate (paced in the kernel) or flat out, for a duration.
/// Loaded once for all the trials of a case.
pub(crate) struct TrialGenerator {
    cmd: Option<std::sync::mpsc::Sender<TrialCmd>>,
    done: std::sync::mpsc::Receiver<Result<Sent>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl TrialGenerator {
    /// Loads the generator of `templates` (each with its weight: calls take turns, each
    /// template's share of a round of calls by weight) varied by `flows` on `cpu`, running
    /// live frames in batches of `batch` (a sent frame leaves when its batch ends: latency
    /// probes use 1); fails as loading does.
    pub(crate) fn start(
        topo: &Topology,
        templates: Vec<(FrameSpec, u32)>,
        flows: Flows,
        cpu: usize,
        batch: u32,
    ) -> Result<TrialGenerator> {
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<TrialCmd>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<Sent>>();
        let (ns, iface) = (topo.gen.netns.clone(), topo.gen.iface.clone());
        let handle = std::thread::spawn(move || {
            let done = done_tx.clone();
            let r = netns::run_in(&ns, move || {
                pktgen::pin_to_cpu(cpu);
                let engines: Result<Vec<(XdpEngine, u32)>, _> = templates
                    .iter()
                    .map(|(t, w)| XdpEngine::new(t, &flows, &iface).map(|e| (e, *w)))
                    .collect();
                let mut e = match engines {
                    Ok(e) => {
                        let _ = done.send(Ok(Sent {
                            frames: 0,
                            secs: 0.0,
                            pacing: None,
                        }));
                        e
                    }
                    Err(err) => {
                        let _ = done.send(Err(err.into()));
                        return;
                    }
                };
                let mut slicer = Slicer::new(Duration::from_millis(250), 1e6);
                while let Ok(TrialCmd::Run(rate, len)) = cmd_rx.recv() {
                    let _ = done.send(trial(&mut e, &mut slicer, rate, len, batch));
                }
            });
            if let Err(e) = r {
                let _ = done_tx.send(Err(e.into()));
            }
        });
        let g = TrialGenerator {
            cmd: Some(cmd_tx),
            done: done_rx,
            handle: Some(handle),
        };
        g.done
            .recv()
            .map_err(|_| anyhow::anyhow!("the generator thread ended"))??;
        Ok(g)
    }

    /// Sends at `rate` frames per second (None: flat out) for `len`.
    pub(crate) fn run(&self, rate: Option<f64>, len: Duration) -> Result<Sent> {
        self.cmd
            .as_ref()
            .expect("present until drop")
            .send(TrialCmd::Run(rate, len))
            .map_err(|_| anyhow::anyhow!("the generator thread ended"))?;
        self.done
            .recv()
            .map_err(|_| anyhow::anyhow!("the generator thread ended"))?
    }
}

impl Drop for TrialGenerator {
    fn drop(&mut self) {
        self.cmd.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One trial on the generator's thread: rounds of calls sized by time until `len` has
/// passed, each template's call its weight's share of the round.
fn trial(
    engines: &mut [(XdpEngine, u32)],
    slicer: &mut Slicer,
    rate: Option<f64>,
    len: Duration,
    batch: u32,
) -> Result<Sent> {
    for (e, _) in engines.iter_mut() {
        e.set_rate(rate)?;
    }
    let total: u64 = engines.iter().map(|(_, w)| *w as u64).sum::<u64>().max(1);
    let t = Instant::now();
    let mut runs = 0u64;
    while t.elapsed() < len {
        let left = len.saturating_sub(t.elapsed());
        let n = slicer.next(Some(left)).min(u32::MAX as u64);
        let began = Instant::now();
        let mut round = 0;
        for (e, w) in engines.iter() {
            let k = (n * *w as u64 / total).max(1);
            e.send(k as u32, batch)?;
            round += k;
        }
        slicer.record(round, began.elapsed());
        runs += round;
    }
    let secs = t.elapsed().as_secs_f64();
    let pacing = match rate {
        Some(_) => {
            let mut all = PaceStats::default();
            for (e, _) in engines.iter_mut() {
                all.add(&e.pace_stats()?);
            }
            Some(all)
        }
        None => None,
    };
    Ok(Sent {
        frames: pacing.as_ref().map_or(runs, |p| p.sent),
        secs,
        pacing,
    })
}
