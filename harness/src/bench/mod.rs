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
//!
//! One way in: `measure` (what every benchmark measures with: generators, rates, progress),
//! `filter` (the filter cases, the main job), `patterns` (the sets under traffic patterns:
//! random sources over the address space, sources drawn from the set, IPv6), `generators`
//! (pktgen's engines against their peers), `report` (the report, its table) and `chart` (the
//! SVG of a report). Nothing imports back up.

mod chart;
mod filter;
mod generators;
mod latency;
mod measure;
mod patterns;
mod report;
mod search;

pub use filter::{
    deny_list, deny_rules, frame_for_last, ordered_rules, set_probe_frames, set_rules,
    SET_TRAFFIC_PREFIX,
};
pub use measure::{Rates, RunInfo, Source};
pub use report::{
    Bound, Case, ProgramTime, Report, SearchCase, SearchReport, Settings, TestRunCost, Trial,
};

use std::path::PathBuf;

use anyhow::Result;
use xdpwall::Mode;

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
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Source::Xdp, Source::Afpacket])]
    pub sources: Vec<Source>,
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
    /// for the `--sources` given (see `generators`).
    #[arg(long, conflicts_with = "test_run_only")]
    pub generators: bool,
    /// Sending threads per generator case (`--generators`; `--quick` uses 1).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    pub gen_threads: Vec<usize>,
    /// Instead of Mpps flat out: search each case's NDR (highest rate without loss) and PDR
    /// (highest rate within `--pdr-loss`), the DUT on its own CPU (`--dut-cpu`, default 1),
    /// the xdp engine paced in the kernel (see `search`).
    #[arg(long, conflicts_with_all = ["test_run_only", "generators"])]
    pub search: bool,
    /// Traffic patterns against the sets and a 10,000-host deny list (and xdp-filter's): 200
    /// sources in one /24, 65,536 and 1,000,000 random sources, sources drawn from the set,
    /// IPv6 likewise; program time over the baseline and Mpps per mode (see `patterns`).
    #[arg(long, conflicts_with_all = ["test_run_only", "generators", "search"])]
    pub patterns: bool,
    /// Loss ratio the PDR allows.
    #[arg(long, default_value_t = 0.005)]
    pub pdr_loss: f64,
    /// Seconds per search trial (`--quick`: 0.5).
    #[arg(long, default_value_t = 1.0)]
    pub trial: f64,
    /// Seconds of the trial that confirms each bound (`--quick`: 1).
    #[arg(long, default_value_t = 2.0)]
    pub final_trial: f64,
    /// The search stops when the interval between the highest passing and the lowest failing
    /// rate is narrower than this fraction of the latter (`--quick`: 0.1).
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Frame sizes of the search's flat-out sweep (bytes with FCS, 64 to 1518, or `imix`;
    /// `--quick`: 64,1518,imix).
    #[arg(long, value_delimiter = ',', default_values_t = ["64", "128", "256", "512", "1024", "1280", "1518", "imix"].map(String::from))]
    pub sizes: Vec<String>,
}

impl Args {
    /// The options as the benchmarks use them: `--quick` applied.
    fn resolved(mut self) -> Args {
        if self.quick {
            self.duration = 0.5;
            self.repeats = 2;
            self.rules = vec![1, 1024];
            self.sets = vec![10, 1_000_000];
            self.program_time_rounds = self.program_time_rounds.min(2);
            self.trial = self.trial.min(0.5);
            self.final_trial = self.final_trial.min(1.0);
            self.precision = self.precision.max(0.1);
            self.sizes = ["64", "1518", "imix"].map(String::from).to_vec();
        }
        self
    }
}

/// Runs the benchmark the options ask for and writes its report.
pub fn run(args: Args) -> Result<()> {
    let args = args.resolved();
    if args.generators {
        return generators::run(&args);
    }
    if args.search {
        return search::run(&args);
    }
    if args.patterns {
        return patterns::run(&args);
    }
    filter::run(args)
}
