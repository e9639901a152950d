//! The benchmark behind `cargo xtask bench`.
//!
//! This first version measures the filter's per-packet cost in BPF_PROG_TEST_RUN for rule sets
//! of 1 and 1,024 rules and shows the client/server demo on the wire in the requested modes.

use anyhow::Result;
use pktgen::FrameSpec;
use xdpwall::{Mode, RuleSet};

use crate::{demo, verdict::Checker};

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
    /// XDP mode(s) for the on-wire part.
    #[arg(long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Repetitions per measurement (median, min and max are reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// A short smoke run.
    #[arg(long)]
    pub quick: bool,
}

/// Rule sets of `n` rules where only the last one matches `frame_for_last`.
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

/// A UDP frame that the last of [`ordered_rules`]`(n)` matches.
pub fn frame_for_last(n: usize) -> Vec<u8> {
    let i = n.saturating_sub(1);
    let src = format!("10.{}.{}.7", (i / 256) % 256, i % 256);
    FrameSpec::udp(
        src.parse().unwrap(),
        "198.18.0.2".parse().unwrap(),
        5000,
        1000 + i as u16,
    )
    .payload(18)
    .build()
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let repeat = if args.quick { 20_000 } else { 200_000 };
    println!(
        "test_run ns/packet (kernel-measured, {} rounds x {repeat} runs; median [min-max]):",
        args.repeats
    );
    for n in [0usize, 1, 1024] {
        let c = Checker::new(ordered_rules(n))?;
        let v = c.ns_per_packet(&frame_for_last(n.max(1)), repeat, args.repeats.max(1))?;
        println!(
            "  {:>5} rules, frame matching the last rule: {:>6.1} ns [{:.1}-{:.1}]",
            n,
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
    demo::run(args.mode)
}
