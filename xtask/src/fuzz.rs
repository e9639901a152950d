//! `cargo xtask fuzz [TARGET] --time SECS`: runs the cargo-fuzz targets in fuzz/ (its own
//! workspace, nightly) from the committed seeds (fuzz/seeds/TARGET) into a working corpus
//! (fuzz/corpus/TARGET). A crash fails the command; libFuzzer keeps the reproducer in
//! fuzz/artifacts/TARGET/, and `verdict` also writes the failing rule set and frame as
//! fuzz/artifacts/verdict/last-failure/{rules.toml,frame.pcap}.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{bail, Result};

use crate::{require_root, root, setup, step};

/// The targets, in the order they run.
pub const TARGETS: [&str; 4] = ["rules", "pcap", "profile", "verdict"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Args {
    /// One target (rules, pcap, profile, verdict); all when left out.
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    time: u64,
}

fn cargo_fuzz() -> Result<()> {
    let bin = setup::tools_dir().join("bin/cargo-fuzz");
    if bin.exists() {
        return Ok(());
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} into {} (once)",
        setup::tools_dir().display()
    ));
    let st = Command::new("cargo")
        .args([
            "install",
            &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
            "--locked",
            "--root",
        ])
        .arg(setup::tools_dir())
        .status()?;
    if !st.success() {
        bail!("installing cargo-fuzz failed");
    }
    Ok(())
}

/// Runs the fuzzers.
pub fn run(a: Args) -> Result<()> {
    require_root("`cargo xtask fuzz` (the verdict target loads the XDP program)")?;
    setup::run()?;
    cargo_fuzz()?;
    let targets: Vec<&str> = match &a.target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("unknown fuzz target '{t}' (one of {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    let path = format!(
        "{}:{}",
        setup::tools_dir().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failed = Vec::new();
    for t in targets {
        let corpus = root().join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        step(&format!("fuzzing {t} for {} s", a.time));
        // libFuzzer reports every new input; keep the log to its summary, and its whole tail
        // when the target fails.
        let mut child = Command::new("cargo")
            .current_dir(root())
            .env("PATH", &path)
            .args(["+nightly", "fuzz", "run", t])
            .arg(&corpus)
            .arg(root().join("fuzz/seeds").join(t))
            .args([
                "--",
                &format!("-max_total_time={}", a.time),
                "-print_final_stats=1",
                "-print_funcs=0",
            ])
            .stderr(Stdio::piped())
            .spawn()?;
        let mut tail: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(child.stderr.take().expect("piped"))
            .lines()
            .map_while(Result::ok)
        {
            let keep = [
                "Done ",
                "stat::",
                "ERROR",
                "panicked",
                "SUMMARY",
                "failing case",
                "crash-",
                "error",
            ]
            .iter()
            .any(|k| line.contains(k));
            if keep {
                eprintln!("  {line}");
            }
            tail.push_back(line);
            if tail.len() > 60 {
                tail.pop_front();
            }
        }
        if !child.wait()?.success() {
            for l in &tail {
                eprintln!("  | {l}");
            }
            eprintln!("fuzz target {t} failed: reproducers in fuzz/artifacts/{t}/");
            failed.push(t);
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}
