//! Hand-built frames through the real, verifier-checked XDP program (BPF_PROG_TEST_RUN),
//! compared with the reference model: verdicts frame by frame, counters per batch.
//! Needs root and a BPF-capable kernel; fails (never skips) without them.

use std::net::IpAddr;

use harness::verdict::Checker;
use pktgen::{frame::Fragment, FrameSpec, IpSpec, Ipv6Ext, L4Spec};
use xdpwall::{model, Action, Cause, Filter, RuleSet};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

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

/// Rule sets exercising every matcher, both families, overlapping prefixes and port ranges.
fn feature_sets() -> Vec<RuleSet> {
    vec![
        rules(
            "default = \"drop\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"10.0.0.0/8\"\ndst = \"10.1.2.3\"\n\
             [[rule]]\naction = \"drop\"\nsrc = \"10.1.0.0/16\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"10.0.0.0/8\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"2001:db8::/32\"\nproto = \"tcp\"\ndport = \"1000-2000\"\n\
             [[rule]]\naction = \"drop\"\ndst = \"2001:db8:1::/48\"\n\
             [[rule]]\naction = \"pass\"\nproto = \"icmpv6\"\n",
        ),
        rules(
            "default = \"pass\"\nmalformed = \"pass\"\nnon_ip = \"drop\"\n\
             [[rule]]\naction = \"drop\"\nproto = \"udp\"\nsport = 53\n\
             [[rule]]\naction = \"drop\"\nproto = \"tcp\"\nsport = \"0-1023\"\ndport = \"1024-65535\"\n\
             [[rule]]\naction = \"drop\"\ndport = 65535\n\
             [[rule]]\naction = \"pass\"\nproto = 47\n\
             [[rule]]\naction = \"drop\"\nproto = \"icmp\"\nsrc = \"192.168.0.0/24\"\n\
             [[rule]]\naction = \"drop\"\ndst = \"0.0.0.0/0\"\nproto = 47\n\
             [[rule]]\naction = \"drop\"\nsrc = \"::/0\"\nproto = \"udp\"\n",
        ),
        rules(
            "default = \"drop\"\n\
             [[rule]]\naction = \"pass\"\ndst = \"::ffff:0:0/96\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"192.168.1.128/25\"\ndport = \"80-80\"\n\
             [[rule]]\naction = \"pass\"\nsrc = \"fe80::1\"\n\
             [[rule]]\naction = \"pass\"\nsport = 0\n",
        ),
        RuleSet::default(),
    ]
}

/// Frames around the boundaries of the rules above, in both families.
fn feature_frames() -> Vec<Vec<u8>> {
    let v4 = [
        "10.0.0.0",
        "10.1.2.3",
        "10.1.0.1",
        "10.1.255.255",
        "10.2.0.0",
        "9.255.255.255",
        "11.0.0.0",
        "192.168.0.1",
        "192.168.1.127",
        "192.168.1.128",
        "192.168.1.255",
    ];
    let v6 = [
        "2001:db8::1",
        "2001:db8:1::1",
        "2001:db8:1:ffff::1",
        "2001:db9::",
        "fe80::1",
        "fe80::2",
        "::ffff:1.2.3.4",
        "::1",
    ];
    let ports = [
        0u16, 1, 53, 79, 80, 81, 999, 1000, 1023, 1024, 2000, 2001, 65534, 65535,
    ];
    let mut out = Vec::new();
    for family in [&v4[..], &v6[..]] {
        for (i, s) in family.iter().enumerate() {
            let d = family[(i * 7 + 3) % family.len()];
            let (s, d) = (ip(s), ip(d));
            for (j, &p) in ports.iter().enumerate() {
                let q = ports[(j * 5 + 1) % ports.len()];
                out.push(FrameSpec::udp(s, d, p, q).build());
                out.push(FrameSpec::tcp(s, d, q, p).payload(3).build());
                out.push(FrameSpec::udp(d, s, q, p).build());
            }
            out.push(FrameSpec::ping(s, d).build());
            out.push(
                FrameSpec::new(s, d, L4Spec::Other { proto: 47 })
                    .payload(8)
                    .build(),
            );
            let wrong_icmp = if s.is_ipv4() {
                L4Spec::Icmpv6 { ty: 1, code: 0 }
            } else {
                L4Spec::Icmp { ty: 3, code: 0 }
            };
            out.push(FrameSpec::new(s, d, wrong_icmp).build());
        }
    }
    out
}

#[test]
fn every_matcher_in_both_families_agrees_with_the_model() {
    let frames = feature_frames();
    for set in feature_sets() {
        check_batch(&set, &frames);
    }
}

/// Frames with VLAN tags, IPv4 options, fragments and IPv6 extension headers.
fn structural_frames() -> Vec<FrameSpec> {
    let a4 = ip("10.1.0.1");
    let b4 = ip("10.1.2.3");
    let a6 = ip("2001:db8::1");
    let b6 = ip("2001:db8:1::1");
    let mut specs = vec![
        FrameSpec::udp(a4, b4, 53, 1000).vlan(0x8100, 5),
        FrameSpec::tcp(a6, b6, 1, 1500)
            .vlan(0x88a8, 5)
            .vlan(0x8100, 6),
        FrameSpec::tcp(a4, b4, 80, 1024).payload(10),
    ];
    let mut opts = FrameSpec::tcp(a4, b4, 80, 1024);
    if let IpSpec::V4 { options, .. } = &mut opts.ip {
        *options = vec![0x94, 0x04, 0, 0, 1, 1, 1, 0];
    }
    specs.push(opts);
    for (offset, more) in [(0, true), (1, true), (185, false)] {
        let mut s = FrameSpec::udp(a4, b4, 53, 53).payload(16);
        if let IpSpec::V4 { frag, .. } = &mut s.ip {
            *frag = Fragment { offset, more };
        }
        specs.push(s);
        let mut s = FrameSpec::udp(a6, b6, 53, 53).payload(16);
        if let IpSpec::V6 { ext, .. } = &mut s.ip {
            ext.push(Ipv6Ext::Fragment { offset, more });
        }
        specs.push(s);
    }
    let chains: [&[Ipv6Ext]; 4] = [
        &[
            Ipv6Ext::HopByHop(0),
            Ipv6Ext::Routing(1),
            Ipv6Ext::DestOpts(0),
        ],
        &[Ipv6Ext::Ah(1), Ipv6Ext::DestOpts(2)],
        &[Ipv6Ext::DestOpts(0); 8],
        &[Ipv6Ext::DestOpts(0); 9],
    ];
    for chain in chains {
        let mut s = FrameSpec::tcp(a6, b6, 1000, 2000);
        if let IpSpec::V6 { ext, .. } = &mut s.ip {
            ext.extend_from_slice(chain);
        }
        specs.push(s);
    }
    specs.push(FrameSpec::ping(a6, b6).vlan(0x8100, 1));
    specs.push(
        FrameSpec::udp(a4, b4, 1, 2)
            .vlan(0x8100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3),
    );
    specs
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
    let mut frames = Vec::new();
    for spec in structural_frames() {
        let full = spec.build();
        for cut in 14..=full.len() {
            frames.push(full[..cut].to_vec());
        }
    }
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
    let good = FrameSpec::udp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2)
        .payload(4)
        .build();
    let mut frames = Vec::new();
    let mut edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut fr = good.clone();
        f(&mut fr);
        frames.push(fr);
    };
    edit(&|f| f[14] = 0x44); // IHL 4
    edit(&|f| f[14] = 0x4f); // IHL 15: options beyond the packet
    edit(&|f| f[14] = 0x55); // version 5
    edit(&|f| f[16..18].copy_from_slice(&19u16.to_be_bytes())); // total < header
    edit(&|f| f[16..18].copy_from_slice(&1500u16.to_be_bytes())); // total beyond frame
    edit(&|f| f[16..18].copy_from_slice(&27u16.to_be_bytes())); // UDP header cut by total
    edit(&|f| f[38..40].copy_from_slice(&7u16.to_be_bytes())); // UDP length < 8
    edit(&|f| f[38..40].copy_from_slice(&13u16.to_be_bytes())); // UDP length > packet
    edit(&|f| f.extend_from_slice(&[0xee; 10])); // Ethernet padding: fine
    let tcp = FrameSpec::tcp(ip("10.0.0.1"), ip("10.0.0.2"), 1, 2).build();
    for doff in [0u8, 4, 5, 6, 15] {
        let mut t = tcp.clone();
        t[14 + 20 + 12] = doff << 4;
        frames.push(t);
    }
    let v6 = FrameSpec::udp(ip("::1"), ip("::2"), 1, 2).build();
    for plen in [0u16, 7, 8, 9, 100] {
        let mut t = v6.clone();
        t[18..20].copy_from_slice(&plen.to_be_bytes());
        frames.push(t);
    }
    let mut ver = v6.clone();
    ver[14] = 0x40;
    frames.push(ver);
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
    let frames = vec![arp.clone(), lldp, arp[..14].to_vec()];
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
    let name = format!("test-swap-{}", std::process::id());
    let _cleanup = PinGuard(name.clone());
    let mut f = Filter::load_pinned(&name).expect("load and pin (root needed)");
    f.maps.apply(&a).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (runs, swaps) = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let mut runs = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = f.test_run(&probe, 16).unwrap();
                assert_eq!(r.xdp_action, XDP_DROP, "after {runs} runs");
                runs += 1;
            }
            runs
        });
        let mut writer = xdpwall::Maps::open_pinned(&name).unwrap();
        let mut swaps = 0;
        for i in 0..40 {
            writer.apply(if i % 2 == 0 { &b } else { &a }).unwrap();
            swaps += 1;
            if runner.is_finished() {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (runner.join().unwrap(), swaps)
    });
    eprintln!("{runs} probe runs (x16) during {swaps} live swaps");
    assert_eq!(swaps, 40);
    assert!(runs > 10, "the probe did not run alongside the swaps");
}

struct PinGuard(String);

impl Drop for PinGuard {
    fn drop(&mut self) {
        xdpwall::loader::remove_pins(&self.0).unwrap();
    }
}

#[test]
fn program_is_small_enough_to_verify() {
    let f = load(&example());
    let stats = f.program_stats().unwrap();
    eprintln!("program stats: {stats:?}");
    assert!(stats.xlated_instructions > 100);
    assert!(stats.verified_instructions.unwrap_or(0) < 1_000_000);
}
