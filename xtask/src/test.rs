//! `cargo xtask test`: the one test command (README, .ci/run). Bootstraps, then runs the
//! stages in order and prints one summary line per stage and a closing
//! `tests: N passed, M failed` line.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Result};

use crate::{require_root, root, setup, step};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip the fmt and clippy stages.
    #[arg(long)]
    no_lint: bool,
    /// Extra arguments for `cargo test` (e.g. a test name filter), after `--`.
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

struct Stage {
    name: &'static str,
    ok: bool,
    secs: f64,
    detail: String,
}

/// Runs the stages; fails if any failed.
pub fn run(args: Args) -> Result<()> {
    require_root("`cargo xtask test`")?;
    setup::run()?;
    let mut stages = Vec::new();
    if !args.no_lint {
        stages.push(plain("fmt", &["fmt", "--all", "--", "--check"]));
        stages.push(plain(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ));
    }
    let (passed, failed, ignored, stage) = cargo_test(&args.cargo_args);
    stages.push(stage);
    eprintln!();
    for s in &stages {
        eprintln!(
            "stage {:<8} {:<4} {:>7.1}s  {}",
            s.name,
            if s.ok { "ok" } else { "FAIL" },
            s.secs,
            s.detail
        );
    }
    if ignored > 0 {
        eprintln!("{ignored} test(s) were ignored: every test must run here (CI is root)");
    }
    println!("tests: {passed} passed, {failed} failed");
    if stages.iter().any(|s| !s.ok) {
        bail!("some stages failed");
    }
    Ok(())
}

fn plain(name: &'static str, args: &[&str]) -> Stage {
    step(&format!("cargo {}", args.join(" ")));
    let t = Instant::now();
    let ok = Command::new("cargo")
        .current_dir(root())
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    Stage {
        name,
        ok,
        secs: t.elapsed().as_secs_f64(),
        detail: String::new(),
    }
}

/// Runs `cargo test --workspace`, echoing its output and adding up its result lines:
/// (passed, failed, ignored, the stage). An ignored test fails the stage.
fn cargo_test(extra: &[String]) -> (u64, u64, u64, Stage) {
    step("cargo test --workspace (unit, BPF test_run, property, replay, veth end-to-end)");
    let t = Instant::now();
    let child = Command::new("cargo")
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn();
    let (mut passed, mut failed, mut ignored, mut binaries) = (0u64, 0u64, 0u64, 0u64);
    let ok = match child {
        Ok(mut c) => {
            for line in BufReader::new(c.stdout.take().expect("piped"))
                .lines()
                .map_while(Result::ok)
            {
                println!("{line}");
                if let Some(rest) = line.strip_prefix("test result: ") {
                    binaries += 1;
                    passed += count(rest, "passed");
                    failed += count(rest, "failed");
                    ignored += count(rest, "ignored");
                }
            }
            c.wait().map(|s| s.success()).unwrap_or(false)
        }
        Err(e) => {
            eprintln!("running cargo test: {e}");
            false
        }
    };
    let stage = Stage {
        name: "test",
        ok: ok && failed == 0 && ignored == 0 && passed > 0,
        secs: t.elapsed().as_secs_f64(),
        detail: format!(
            "{passed} passed, {failed} failed, {ignored} ignored in {binaries} test binaries"
        ),
    };
    (passed, failed, ignored, stage)
}

/// The number before `what` in a cargo result line ("ok. 11 passed; 2 failed; ...").
pub(crate) fn count(result: &str, what: &str) -> u64 {
    result
        .split([';', '.'])
        .map(str::trim)
        .find_map(|part| part.strip_suffix(what))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_cargo_result_lines() {
        let l = "ok. 11 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 8.38s";
        assert_eq!(super::count(l, "passed"), 11);
        assert_eq!(super::count(l, "failed"), 2);
        let f = "FAILED. 5 passed; 6 failed; 0 ignored";
        assert_eq!(super::count(f, "passed"), 5);
        assert_eq!(super::count(f, "failed"), 6);
        let i = "ok. 3 passed; 0 failed; 2 ignored; 0 measured";
        assert_eq!(super::count(i, "ignored"), 2);
    }
}
