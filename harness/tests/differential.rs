//! The differential property: for random rule sets and random frames near them, the real XDP
//! program (BPF_PROG_TEST_RUN) agrees with the reference model on every verdict, and on every
//! counter after each batch. Rule sets are applied through the live-update path users use.
//!
//! Sizes: XDPWALL_PROP_CASES rule sets (default 2,000) x XDPWALL_PROP_FRAMES frames each
//! (default 220: batches of 1 to 439 frames, so a failure shrinks to one frame), rule sets of up to XDPWALL_PROP_RULES rules (default 48). A failing case is
//! shrunk and written to target/xdpwall-failures/differential/ as rules.toml + frames.pcap
//! (`harness replay --rules ... --pcap ...` reproduces it); proptest also records its seed in
//! harness/proptest-regressions/.

mod strategy;

use std::{cell::RefCell, path::PathBuf, time::Instant};

use harness::verdict::{Checker, Mismatch};
use proptest::{
    prelude::*,
    test_runner::{Config, FileFailurePersistence, TestRunner},
};
use xdpwall::RuleSet;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn failure_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/xdpwall-failures/differential")
}

#[test]
fn kernel_agrees_with_the_model_on_random_rule_sets_and_frames() {
    let cases = env("XDPWALL_PROP_CASES", 2000) as u32;
    let frames = env("XDPWALL_PROP_FRAMES", 220);
    let max_rules = env("XDPWALL_PROP_RULES", 48);
    let checker =
        RefCell::new(Checker::new(RuleSet::default()).expect("loading the filter (root needed)"));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        max_shrink_iters: 2000,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let checked = RefCell::new(0usize);
    let t = Instant::now();
    let result = runner.run(&strategy::case(max_rules, frames), |(set, cases)| {
        let bytes: Vec<Vec<u8>> = cases.iter().map(|c| c.bytes()).collect();
        let mut c = checker.borrow_mut();
        c.apply(set.clone())
            .map(drop)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match c.check_batch(&bytes) {
            Ok(r) => {
                *checked.borrow_mut() += r.frames;
                Ok(())
            }
            Err(e) => {
                // Written on every failing attempt; the last one written is the shrunk case.
                // A verdict mismatch needs only its frame; a counter mismatch the whole batch.
                let dir = failure_dir();
                std::fs::create_dir_all(&dir).ok();
                std::fs::write(dir.join("rules.toml"), set.to_toml()).ok();
                let frames = match &e {
                    Mismatch::Verdict { index, .. } => &bytes[*index..=*index],
                    _ => &bytes[..],
                };
                pktgen::pcap::write_frames(&dir.join("frames.pcap"), frames).ok();
                Err(TestCaseError::fail(format!(
                    "{e}\n(rules and frames written to {})",
                    dir.display()
                )))
            }
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let n = *checked.borrow();
    eprintln!(
        "differential: {cases} rule sets, {n} frames checked in {secs:.1}s ({:.0} frames/s)",
        n as f64 / secs
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // A floor against a strategy that stopped generating: batches average a little under
    // `frames` (about 92%), and a run of a hundred rule sets varies by several percent.
    assert!(
        n as u64 >= cases as u64 * frames as u64 * 3 / 4,
        "too few frames were checked: {n}"
    );
}
