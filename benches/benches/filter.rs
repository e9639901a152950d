//! Micro-benchmarks (criterion; run as root: `cargo bench -p xdpwall-benches`):
//! - `test_run/*`: one BPF_PROG_TEST_RUN call of one run (syscall included) of the counting
//!   drop baseline and of the filter with 1 and 1,024 ordered rules, frame matching the last
//!   rule. One run per call on purpose: with `repeat > 1` the kernel switches the XDP
//!   dispatcher around the loop, which costs milliseconds per call;
//! - `test_run/set_N_{host,prefix,miss}`: the filter with one rule and an N-entry set
//!   (N = 10, 10,000, 1,000,000), frame sourced from a host entry, from inside a prefix entry,
//!   or from outside the set (see `harness::bench::set_probe_frames`);
//! - `model/verdict`: reference-model verdicts per second;
//! - `rules/*`: compiling and applying (live update path) 1,024 rules and a 1,000,000-entry
//!   set.
//!
//! Kernel-only ns/packet (without the syscall) is what `cargo xtask bench` reports.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use harness::{
    bench::{frame_for_last, ordered_rules, set_probe_frames, set_rules},
    verdict::Checker,
};
use pktgen::xdp::CountDrop;

fn test_run(c: &mut Criterion) {
    let mut g = c.benchmark_group("test_run");
    g.throughput(Throughput::Elements(1));
    let frame = frame_for_last(1, 64).build();
    let cd = CountDrop::load().expect("root needed");
    g.bench_function("baseline", |b| {
        b.iter(|| cd.ns_per_packet(&frame, 1, 1).unwrap())
    });
    for n in [1usize, 1024] {
        let checker = Checker::new(ordered_rules(n)).expect("root needed");
        let frame = frame_for_last(n, 64).build();
        g.bench_function(format!("filter_{n}_rules"), |b| {
            b.iter(|| checker.filter.test_run(&frame, 1).unwrap())
        });
    }
    for n in [10usize, 10_000, 1_000_000] {
        let set = set_rules(n);
        let checker = Checker::new(set.clone()).expect("root needed");
        for (what, frame) in set_probe_frames(&set, 64) {
            let frame = frame.build();
            g.bench_function(format!("set_{n}_{what}"), |b| {
                b.iter(|| checker.filter.test_run(&frame, 1).unwrap())
            });
        }
    }
    g.finish();
}

fn model(c: &mut Criterion) {
    let frame = frame_for_last(1024, 64).build();
    // Built once, as the differential tests and the fuzzer use it: `model::verdict` would
    // also clone the 1,024 rules for every verdict.
    let mut m = xdpwall::Model::new(ordered_rules(1024));
    let mut g = c.benchmark_group("model");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verdict_1024_rules", |b| b.iter(|| m.judge(&frame, 0)));
    g.finish();
}

fn rules(c: &mut Criterion) {
    let set = ordered_rules(1024);
    let mut g = c.benchmark_group("rules");
    g.sample_size(20);
    g.bench_function("compile_1024", |b| {
        b.iter(|| xdpwall::compile::compile(&set).unwrap())
    });
    let mut checker = Checker::new(ordered_rules(1)).expect("root needed");
    g.bench_function("apply_1024", |b| {
        b.iter(|| checker.filter.maps.apply(&set).unwrap())
    });
    let big = set_rules(1_000_000);
    g.sample_size(10);
    g.bench_function("compile_set_1000000", |b| {
        b.iter(|| xdpwall::compile::compile(&big).unwrap())
    });
    g.bench_function("apply_set_1000000", |b| {
        b.iter(|| checker.filter.maps.apply(&big).unwrap())
    });
    g.finish();
}

criterion_group!(benches, test_run, model, rules);
criterion_main!(benches);
