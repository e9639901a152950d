//! Verdict checking through BPF_PROG_TEST_RUN: run frames through the real loaded filter and
//! compare each verdict, and the counters after a batch, with the reference model.

use std::time::Duration;

use xdpwall::{
    loader::{ApplyReport, Count},
    model::Counts,
    Action, Cause, Filter, LoadError, Model, RuleSet, Verdict,
};
use xdpwall_common::stat;

// The XDP action codes (enum xdp_action in the kernel's uapi), the one place user space
// names them.
/// `XDP_ABORTED`.
pub const XDP_ABORTED: u32 = 0;
/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`.
pub const XDP_TX: u32 = 3;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;
/// The kernel refuses test_run frames shorter than an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// A disagreement between the kernel and the model.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// One frame's verdict differs.
    #[error("frame #{index} ({len} bytes): kernel {kernel}, model {model:?}; frame {hex}")]
    Verdict {
        /// Position in the batch.
        index: usize,
        /// Frame length.
        len: usize,
        /// What the kernel did (`aborted`/unknown codes are named).
        kernel: String,
        /// What the model says.
        model: Verdict,
        /// The frame in hex.
        hex: String,
    },
    /// Counters after the batch differ.
    #[error("counter {what}: kernel {kernel:?}, model {model:?}")]
    Counter {
        /// Which counter.
        what: String,
        /// Kernel (packets, bytes).
        kernel: (u64, u64),
        /// Model (packets, bytes).
        model: (u64, u64),
    },
    /// BPF_PROG_TEST_RUN refused a frame shorter than an Ethernet header and the model did
    /// not call it malformed.
    #[error("frame #{index} ({len} bytes, shorter than an Ethernet header): {what}")]
    ShortFrame {
        /// Position in the batch.
        index: usize,
        /// Frame length.
        len: usize,
        /// What went wrong.
        what: String,
    },
    /// The kernel side failed.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// One frame's result.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// The kernel's action, if it was pass or drop.
    pub kernel: Option<Action>,
    /// The raw XDP return code.
    pub xdp_action: u32,
    /// The model's verdict.
    pub model: Verdict,
    /// Kernel-measured run time.
    pub duration: Duration,
}

/// Summary of a checked batch.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Frames run through the kernel.
    pub frames: usize,
    /// Frames shorter than [`MIN_FRAME`] the kernel refused to inject (XDP never sees them):
    /// the model's "malformed" was checked instead of a verdict.
    pub too_short: usize,
}

/// A loaded filter plus the model of the rule set it runs, for differential checks.
///
/// Kernel and model share one clock: the kernel's rate limiter reads the time the checker
/// writes into the filter's config ([`CHECKER_START_NS`] until [`Checker::run_at`] moves it),
/// and the model judges every frame at that same time. (The kernel reading its own clock while
/// the model judged at time 0 made rate-limit verdicts disagree.)
pub struct Checker {
    /// The loaded filter.
    pub filter: Filter,
    model: Model,
    now_ns: u64,
}

/// The time a checker starts at (any non-zero time works: 0 means "the kernel's own clock").
pub const CHECKER_START_NS: u64 = 1_000_000_000;

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn action_of(code: u32) -> Option<Action> {
    match code {
        XDP_PASS => Some(Action::Pass),
        XDP_DROP => Some(Action::Drop),
        _ => None,
    }
}

fn name_of(code: u32) -> String {
    match code {
        XDP_ABORTED => "XDP_ABORTED".into(),
        XDP_DROP => "drop".into(),
        XDP_PASS => "pass".into(),
        XDP_TX => "XDP_TX".into(),
        XDP_REDIRECT => "XDP_REDIRECT".into(),
        n => format!("unknown XDP code {n}"),
    }
}

impl Checker {
    /// Loads the filter with `set`.
    pub fn new(set: RuleSet) -> Result<Checker, LoadError> {
        let mut filter = Filter::with_rules(&set)?;
        filter.maps.set_clock(CHECKER_START_NS)?;
        Ok(Checker {
            filter,
            model: Model::new(set),
            now_ns: CHECKER_START_NS,
        })
    }

    /// The rule set the filter runs.
    pub fn set(&self) -> &RuleSet {
        self.model.rules()
    }

    /// Replaces the rule set through the live-update path users use (the model starts
    /// afresh, as the kernel's token buckets do with a new generation).
    pub fn apply(&mut self, set: RuleSet) -> Result<ApplyReport, LoadError> {
        let report = self.filter.maps.apply(&set)?;
        self.model = Model::new(set);
        Ok(report)
    }

    /// Runs one frame (at least [`MIN_FRAME`] bytes) through kernel and model, at the
    /// checker's current time.
    pub fn run(&mut self, frame: &[u8]) -> Result<Outcome, LoadError> {
        let r = self.filter.test_run(frame, 1)?;
        Ok(Outcome {
            kernel: action_of(r.xdp_action),
            xdp_action: r.xdp_action,
            model: self.model.judge(frame, self.now_ns),
            duration: r.duration,
        })
    }

    /// Runs one frame as if it arrived at `now_ns` (nanoseconds, not 0), which becomes the
    /// checker's time: the kernel's rate limiter reads it from the filter's config, the model
    /// gets the same timestamp.
    pub fn run_at(&mut self, frame: &[u8], now_ns: u64) -> Result<Outcome, LoadError> {
        if now_ns != self.now_ns {
            self.filter.maps.set_clock(now_ns)?;
            self.now_ns = now_ns;
        }
        self.run(frame)
    }

    /// Runs a batch: every verdict and then every counter must match the model. Global
    /// counters are zeroed first; rule counters count from the last apply (call this once per
    /// applied rule set). Frames shorter than [`MIN_FRAME`] are left out (they cannot reach XDP).
    pub fn check_batch<F: AsRef<[u8]>>(&mut self, frames: &[F]) -> Result<BatchReport, Mismatch> {
        self.filter.maps.reset_stats()?;
        let mut expect = Counts::new(self.set().rules.len());
        let mut report = BatchReport::default();
        for (index, frame) in frames.iter().enumerate() {
            let frame = frame.as_ref();
            let o = match self.run(frame) {
                Ok(o) => o,
                // Shorter than an Ethernet header: newer kernels refuse to inject it (XDP never
                // sees such a frame); then the model must call it malformed. (5.10 runs it,
                // and its verdict is checked like any other.)
                Err(LoadError::TestRun(_)) if frame.len() < MIN_FRAME => {
                    if self.model.judge(frame, self.now_ns).cause != Cause::Malformed {
                        return Err(Mismatch::ShortFrame {
                            index,
                            len: frame.len(),
                            what: "the model did not call it malformed".into(),
                        });
                    }
                    report.too_short += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if o.kernel != Some(o.model.action) {
                return Err(Mismatch::Verdict {
                    index,
                    len: frame.len(),
                    kernel: name_of(o.xdp_action),
                    model: o.model,
                    hex: hex(frame),
                });
            }
            expect.record(frame.len(), &o.model);
            report.frames += 1;
        }
        self.compare_counters(&expect)?;
        Ok(report)
    }

    fn compare_counters(&self, expect: &Counts) -> Result<(), Mismatch> {
        let snap = self.filter.maps.snapshot()?;
        let pair = |c: Count| (c.packets, c.bytes);
        let globals = [
            ("pass", snap.pass, stat::PASS),
            ("drop", snap.drop, stat::DROP),
            ("default", snap.default_hits, stat::DEFAULT),
            ("malformed", snap.malformed, stat::MALFORMED),
            ("non-ip", snap.non_ip, stat::NON_IP),
            ("rate-limited", snap.rate_limited, stat::RATE_LIMITED),
        ];
        for (what, got, idx) in globals {
            if pair(got) != expect.stats[idx as usize] {
                return Err(Mismatch::Counter {
                    what: what.into(),
                    kernel: pair(got),
                    model: expect.stats[idx as usize],
                });
            }
        }
        for (i, r) in snap.rules.iter().enumerate() {
            if pair(r.hits) != expect.rules[i] {
                return Err(Mismatch::Counter {
                    what: format!("rule {i} ({})", r.rule),
                    kernel: pair(r.hits),
                    model: expect.rules[i],
                });
            }
        }
        Ok(())
    }

    /// Kernel-measured nanoseconds per run of `frame`: `rounds` runs of `repeat` repetitions,
    /// sorted (so callers can take median, min, max).
    pub fn ns_per_packet(
        &self,
        frame: &[u8],
        repeat: u32,
        rounds: usize,
    ) -> Result<Vec<f64>, LoadError> {
        let mut v = (0..rounds)
            .map(|_| {
                self.filter
                    .test_run(frame, repeat)
                    .map(|r| r.duration.as_nanos() as f64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        v.sort_by(|a, b| a.total_cmp(b));
        Ok(v)
    }
}

/// Removes the pins of a filter when dropped (also when a test panics).
pub struct PinGuard(pub String);

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = xdpwall::loader::remove_pins(&self.0);
    }
}

/// Loads a filter pinned as `name` with `sets[0]`, then applies `sets[1]`, `sets[0]`, ...
/// `swaps` times through the pins (as `xdpwall update` does from another process) while
/// another thread runs `probe` through the program (16 runs per call) and asserts each result
/// is `want` (an XDP action). Returns how many probe calls ran alongside the swaps; the pins
/// are removed afterwards, also when an assertion fails.
pub fn swaps_under_probes(
    name: &str,
    sets: [&RuleSet; 2],
    probe: &[u8],
    want: u32,
    swaps: usize,
) -> u64 {
    let _cleanup = PinGuard(name.to_string());
    let mut f = Filter::load_pinned(name).expect("load and pin (root needed)");
    f.maps.apply(sets[0]).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let f = &f;
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let mut runs = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = f.test_run(probe, 16).unwrap();
                assert_eq!(r.xdp_action, want, "after {runs} runs");
                runs += 1;
            }
            runs
        });
        let mut writer = xdpwall::Maps::open_pinned(name).unwrap();
        for i in 0..swaps {
            // The probe only ends early by failing; join() below reports how.
            if runner.is_finished() {
                break;
            }
            writer.apply(sets[(i + 1) % 2]).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        runner.join().unwrap()
    })
}
