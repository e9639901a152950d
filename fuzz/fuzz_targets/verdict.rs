//! A rule set and a frame from the input; the frame runs through the real loaded XDP program
//! (BPF_PROG_TEST_RUN, rules applied through the live-update path) and through the reference
//! model. Any disagreement in verdict or counters, any XDP_ABORTED, or any panic is a crash.
#![no_main]

use std::sync::{LazyLock, Mutex};

use harness::verdict::Checker;
use libfuzzer_sys::fuzz_target;
use xdpwall::RuleSet;

static CHECKER: LazyLock<Mutex<Checker>> = LazyLock::new(|| {
    Mutex::new(Checker::new(RuleSet::default()).expect("loading the filter (needs root)"))
});

fuzz_target!(|data: &[u8]| {
    let Ok((set, frame)) = xdpwall_fuzz::decode(data) else {
        return;
    };
    let mut c = CHECKER.lock().unwrap();
    c.apply(set.clone()).expect("applying a valid rule set");
    if let Err(e) = c.check_batch(&[&frame]) {
        xdpwall_fuzz::save_failure(&set, &frame);
        panic!("{e}");
    }
});
