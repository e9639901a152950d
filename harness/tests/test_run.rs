//! Hand-built frames through the real, verifier-checked XDP program (BPF_PROG_TEST_RUN),
//! compared with the reference model: verdicts frame by frame, counters per batch.
//! Needs root and a BPF-capable kernel; fails (never skips) without them.

use std::net::IpAddr;

use harness::{
    corpus::{bad_field_frames, feature_frames, feature_sets, structural_frames, truncated_frames},
    verdict::{swaps_under_probes, Checker, XDP_DROP, XDP_PASS},
};
use pktgen::FrameSpec;
use xdpwall::{features, model, Action, Cause, Filter, RuleSet};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rules(text: &str) -> RuleSet {
    RuleSet::parse(text, "test").unwrap()
}

fn load(set: &RuleSet) -> Filter {
    Filter::with_rules(set).expect("loading the filter needs root and a BPF-capable kernel")
}

fn kernel_action(f: &Filter, frame: &[u8]) -> Action {
    let r = f.test_run(frame, 1).expect("test_run");
    match r.xdp_action {
        XDP_PASS => Action::Pass,
        XDP_DROP => Action::Drop,
        other => panic!("program returned XDP action {other} for {frame:02x?}"),
    }
}

/// Runs every frame through kernel and model (see harness::verdict): each verdict and, at the
/// end, every counter must agree.
fn check_batch(set: &RuleSet, frames: &[Vec<u8>]) {
    let mut c =
        Checker::new(set.clone()).expect("loading the filter needs root and a BPF-capable kernel");
    match c.check_batch(frames) {
        Ok(r) => assert!(r.frames > 0, "no frame was run"),
        Err(e) => panic!("{e}"),
    }
}

fn example() -> RuleSet {
    RuleSet::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/client-server.toml"),
    )
    .unwrap()
}

#[test]
fn client_server_example_verdicts() {
    let set = example();
    let f = load(&set);
    let client = ip("192.168.1.1");
    let server = ip("192.168.1.2");
    let other = ip("192.168.1.3");
    let cases = [
        (
            FrameSpec::udp(client, other, 5000, 53),
            Action::Pass,
            Cause::Rule(0),
        ),
        (
            FrameSpec::tcp(other, server, 40000, 80),
            Action::Pass,
            Cause::Rule(1),
        ),
        (
            FrameSpec::ping(client, server),
            Action::Pass,
            Cause::Rule(0),
        ),
        (
            FrameSpec::tcp(other, ip("192.168.1.4"), 1, 2),
            Action::Drop,
            Cause::Default,
        ),
        (
            FrameSpec::udp(server, client, 53, 5000),
            Action::Drop,
            Cause::Default,
        ),
    ];
    for (spec, action, cause) in cases {
        let frame = spec.build();
        assert_eq!(
            model::verdict(&set, &frame),
            xdpwall::Verdict { action, cause }
        );
        assert_eq!(kernel_action(&f, &frame), action, "{spec:?}");
    }
}

#[test]
fn every_matcher_in_both_families_agrees_with_the_model() {
    let frames = feature_frames();
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

#[test]
fn vlan_options_fragments_and_extension_headers_agree_with_the_model() {
    let frames: Vec<Vec<u8>> = structural_frames().iter().map(FrameSpec::build).collect();
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

#[test]
fn truncation_at_every_length_agrees_with_the_model() {
    let frames = truncated_frames();
    // Truncated frames must be classified malformed (not judged by rules) by both sides.
    let set = &feature_sets()[0];
    let malformed = frames
        .iter()
        .filter(|f| model::verdict(set, f).cause == Cause::Malformed)
        .count();
    assert!(
        malformed > frames.len() / 2,
        "{malformed} of {}",
        frames.len()
    );
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

#[test]
fn bad_header_fields_are_malformed() {
    let frames = bad_field_frames();
    let set = &feature_sets()[1];
    let malformed = frames
        .iter()
        .filter(|f| model::verdict(set, f).cause == Cause::Malformed)
        .count();
    assert!(malformed >= 15, "{malformed}");
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

#[test]
fn non_ip_frames_follow_their_policy() {
    let mut arp = FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2).build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut lldp = arp.clone();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    // Shorter than an Ethernet header: refused by BPF_PROG_TEST_RUN on newer kernels (the
    // model must call them malformed), run on 5.10 (the verdict must be the model's).
    let frames = vec![
        arp.clone(),
        lldp,
        arp[..14].to_vec(),
        arp[..13].to_vec(),
        Vec::new(),
    ];
    let short = Checker::new(rules("default = \"drop\"\n"))
        .unwrap()
        .check_batch(&frames)
        .unwrap();
    assert_eq!(short.frames + short.too_short, 5);
    assert!(short.frames >= 3, "{short:?}");
    let pass = rules("default = \"drop\"\n");
    let drop = rules("default = \"pass\"\nnon_ip = \"drop\"\n");
    assert_eq!(kernel_action(&load(&pass), &arp), Action::Pass);
    assert_eq!(kernel_action(&load(&drop), &arp), Action::Drop);
    check_batch(&pass, &frames);
    check_batch(&drop, &frames);
}

/// Deterministic pseudo-random bytes, and mutations of real frames: the program must agree
/// with the model and never return XDP_ABORTED (kernel_action panics on any other code).
#[test]
fn random_and_mutated_frames_agree_with_the_model() {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base: Vec<Vec<u8>> = structural_frames().iter().map(FrameSpec::build).collect();
    let mut frames = Vec::new();
    for _ in 0..3000 {
        let r = next();
        let mut f = base[(r % base.len() as u64) as usize].clone();
        for _ in 0..(r >> 8) % 4 + 1 {
            let x = next();
            let at = (x % f.len() as u64) as usize;
            f[at] = (x >> 16) as u8;
        }
        frames.push(f);
        let len = 14 + (next() % 120) as usize;
        let mut g: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 {
            g[12..14].copy_from_slice(if next() % 2 == 0 {
                &[8, 0]
            } else {
                &[0x86, 0xdd]
            });
        }
        frames.push(g);
    }
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

#[test]
fn the_full_1024_rules_fit_and_word_boundaries_hold() {
    // Rule i drops UDP to port 1000 + i; each frame must be counted against exactly its rule.
    let mut text = String::from("default = \"pass\"\n");
    for i in 0..xdpwall_common::MAX_RULES {
        text.push_str(&format!(
            "[[rule]]\naction = \"drop\"\nproto = \"udp\"\ndport = {}\n",
            1000 + i
        ));
    }
    let set = rules(&text);
    assert_eq!(set.rules.len(), 1024);
    let frames: Vec<Vec<u8>> = [
        0usize, 1, 62, 63, 64, 65, 127, 128, 511, 512, 1022, 1023, 1024,
    ]
    .iter()
    .map(|&i| FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.2"), 9, 1000 + i as u16).build())
    .collect();
    check_batch(&set, &frames);
}

#[test]
fn live_update_switches_whole_rule_sets() {
    let a = rules("default = \"pass\"\n[[rule]]\naction = \"drop\"\ndst = \"10.0.0.2\"\n");
    let b = rules(
        "default = \"drop\"\n[[rule]]\naction = \"pass\"\ndst = \"10.0.0.2\"\nproto = \"udp\"\n",
    );
    let mut f = load(&a);
    let to = FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2).build();
    let other = FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.3"), 1, 2).build();
    for round in 0..4 {
        let (set, want_to, want_other) = if round % 2 == 0 {
            (&a, Action::Drop, Action::Pass)
        } else {
            (&b, Action::Pass, Action::Drop)
        };
        let report = f.maps.apply(set).unwrap();
        assert_eq!(f.maps.active_generation().unwrap(), report.generation);
        assert_eq!(kernel_action(&f, &to), want_to, "round {round}");
        assert_eq!(kernel_action(&f, &other), want_other, "round {round}");
        let snap = f.maps.snapshot().unwrap();
        assert_eq!(snap.rules.len(), 1);
        assert_eq!(snap.rules[0].rule, set.rules[0]);
        assert_eq!(
            snap.rules[0].hits.packets, 1,
            "rule counters restart with a new set"
        );
    }
}

#[test]
fn swaps_under_traffic_never_show_a_half_written_table() {
    // Both rule sets drop the probe frame, through different rules at different positions and
    // with a pass default. A packet that saw a half-written or cleared table would fall through
    // to a default and pass.
    let mut a_text = String::from("default = \"pass\"\n");
    let mut b_text = String::from("default = \"pass\"\n");
    for i in 0..200 {
        a_text.push_str(&format!(
            "[[rule]]\naction = \"pass\"\nsrc = \"172.16.{i}.0/24\"\ndport = {}\n",
            2000 + i
        ));
        b_text.push_str(&format!(
            "[[rule]]\naction = \"pass\"\ndst = \"172.17.{i}.1\"\nsport = {}\n",
            3000 + i
        ));
    }
    a_text.push_str(
        "[[rule]]\naction = \"drop\"\nsrc = \"10.9.0.0/16\"\nproto = \"udp\"\ndport = 53\n",
    );
    b_text = format!(
        "{b_text}[[rule]]\naction = \"drop\"\ndst = \"10.8.0.0/16\"\nsport = \"5000-6000\"\n"
    );
    let (a, b) = (rules(&a_text), rules(&b_text));
    let probe = FrameSpec::udp(ip("10.9.1.1"), ip("10.8.1.1"), 5353, 53).build();
    assert_eq!(model::verdict(&a, &probe).action, Action::Drop);
    assert_eq!(model::verdict(&b, &probe).action, Action::Drop);
    // The writer steers the filter through its pins, as `xdpwall update` does from another
    // process, while this process keeps running the probe through the program.
    let runs = swaps_under_probes(
        &format!("test-swap-{}", std::process::id()),
        [&a, &b],
        &probe,
        XDP_DROP,
        40,
    );
    eprintln!("{runs} probe runs (x16) during 40 live swaps");
    assert!(runs > 10, "the probe did not run alongside the swaps");
}

#[test]
fn program_is_small_enough_to_verify() {
    let f = load(&example());
    let stats = f.program_stats().unwrap();
    let kernel = features::kernel_release();
    let budget = features::verifier_budget(&kernel);
    eprintln!("program stats on {kernel}: {stats:?}; verifier budget {budget}");
    assert!(
        stats.xlated_instructions <= features::XLATED_BUDGET,
        "{} translated instructions, budget {}",
        stats.xlated_instructions,
        features::XLATED_BUDGET
    );
    // Kernels before 5.16 do not report the count; the translated size above still holds.
    if let Some(n) = stats.verified_instructions {
        assert!(
            n <= budget,
            "the verifier processed {n} instructions on {kernel}, over its budget of {budget} \
             (filter/src/features.rs)"
        );
    }
}
