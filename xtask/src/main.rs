//! `cargo xtask`: the project's entry points. `setup` bootstraps the toolchain pieces the eBPF
//! build needs (idempotently); `test` runs every check; `bench` runs the main job; `clean`
//! removes whatever a crashed run left behind; `fuzz` runs the fuzzers.

mod bench;
mod clean;
mod fuzz;
mod setup;
mod test;
mod vmtest;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build needs: nightly rust-src, a project-local bpf-linker, Debian packages.
    Setup,
    /// Run every check: fmt, clippy, unit, BPF test_run, property, replay and veth tests (root).
    Test(test::Args),
    /// The main job: benchmark the filter on a veth topology (root).
    Bench(bench::Args),
    /// Run the cargo-fuzz targets (nightly; the verdict target needs root).
    Fuzz(fuzz::Args),
    /// The kernel matrix: boot Debian's kernels in QEMU and run the checks in each (root).
    Vmtest(vmtest::Args),
    /// Detach every xdpwall filter and remove the harness's namespaces.
    Clean,
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Prints a progress line.
pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// Fails with a hint unless running as root.
pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("{what} needs root (BPF, XDP and network namespaces): run it with sudo");
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Test(a) => test::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Fuzz(a) => fuzz::run(a),
        Cmd::Vmtest(a) => vmtest::run(a),
        Cmd::Clean => clean::run(),
    };
    if let Err(e) = r {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}
