//! `cargo xtask bench`: bootstraps, builds the harness in release mode and runs its benchmark.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{require_root, root, setup, step};

/// Options, passed through to `harness bench`.
#[derive(clap::Args)]
pub struct Args {
    /// native, generic or both.
    #[arg(long, default_value = "native")]
    mode: String,
    /// A short smoke run (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Benchmark pktgen's engines against xdp-trafficgen and trafgen instead of the filter.
    #[arg(long)]
    generators: bool,
    /// Search each case's NDR and PDR (and sweep frame sizes) instead of Mpps flat out.
    #[arg(long, conflicts_with = "generators")]
    search: bool,
    /// Run the sets and deny lists under traffic patterns (random sources over the address
    /// space, sources drawn from the set, IPv6) instead of the default cases.
    #[arg(long, conflicts_with_all = ["generators", "search"])]
    patterns: bool,
    /// Further options for `harness bench` (see `harness bench --help`), after `--`.
    #[arg(last = true)]
    rest: Vec<String>,
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    require_root("`cargo xtask bench`")?;
    setup::run_with(if a.generators {
        setup::GENBENCH_PACKAGES
    } else {
        &[]
    })?;
    step("building the harness (release)");
    let st = Command::new("cargo")
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "harness",
            "--bin",
            "harness",
        ])
        .status()?;
    if !st.success() {
        bail!("building the harness failed");
    }
    let quick = if a.quick { ", quick" } else { "" };
    let mut cmd = Command::new(root().join("target/release/harness"));
    if a.generators {
        step(&format!("benchmarking the traffic generators{quick}"));
        cmd.args(["bench", "--generators"]);
    } else if a.search {
        step(&format!("searching NDR and PDR ({} mode{quick})", a.mode));
        cmd.args(["bench", "--search", "--mode", &a.mode]);
    } else if a.patterns {
        step(&format!(
            "traffic patterns against big sets ({} mode{quick})",
            a.mode
        ));
        cmd.args(["bench", "--patterns", "--mode", &a.mode]);
    } else {
        step(&format!("benchmarking ({} mode{quick})", a.mode));
        cmd.args(["bench", "--mode", &a.mode]);
    }
    if a.quick {
        cmd.arg("--quick");
    }
    let st = cmd.args(&a.rest).status()?;
    if !st.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}
