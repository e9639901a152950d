//! The committed regression corpus (harness/corpus/*: rules.toml, frames.pcap, golden.txt):
//! replayed through BPF_PROG_TEST_RUN it must give exactly the golden verdicts, and replayed on
//! the wire through the standard topology (native and generic XDP) the filter's counters must
//! add up to the same verdicts. Needs root; fails (never skips) without it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use harness::{netns, replay, Options, Topology};
use pktgen::afpacket::AfPacket;
use xdpwall::{Filter, Mode, RuleSet};

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("harness/corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("golden.txt").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "corpus cases: {dirs:?}");
    dirs
}

fn load_case(dir: &Path) -> (RuleSet, Vec<pktgen::pcap::Captured>, String) {
    let set = RuleSet::from_file(&dir.join("rules.toml")).unwrap();
    let frames = pktgen::pcap::read_frames(&dir.join("frames.pcap")).unwrap();
    let golden = std::fs::read_to_string(dir.join("golden.txt")).unwrap();
    (set, frames, golden)
}

#[test]
fn corpus_replays_to_its_golden_verdicts() {
    let mut total = 0;
    for dir in corpus() {
        let (set, frames, golden) = load_case(&dir);
        let results =
            replay::replay(&set, &frames).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let diffs = replay::diff_golden(&results, &golden);
        assert!(diffs.is_empty(), "{}:\n{}", dir.display(), diffs.join("\n"));
        total += results.len();
    }
    assert!(total > 2000, "{total} frames");
}

#[test]
fn a_changed_verdict_is_reported_with_its_frame_number() {
    let dir = &corpus()[0];
    let (set, frames, golden) = load_case(dir);
    let results = replay::replay(&set, &frames).unwrap();
    // Flip the action of frame 2 in the golden text.
    let edited: String = golden
        .lines()
        .map(|l| {
            if l.starts_with("2\t") {
                if l.contains("\tpass\t") {
                    l.replace("\tpass\t", "\tdrop\t")
                } else {
                    l.replace("\tdrop\t", "\tpass\t")
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let diffs = replay::diff_golden(&results, &edited);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with("frame 2: expected"), "{diffs:?}");
}

/// Sums of the golden verdicts for frames that can be sent (at least 14 bytes).
fn golden_sums(golden: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in golden.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() == 3 && f[1] != "skip" {
            *m.entry(f[1].to_string()).or_default() += 1;
            *m.entry(f[2].to_string()).or_default() += 1;
        }
    }
    m
}

fn wire(mode: Mode) {
    let id = std::process::id() % 10000;
    let tag = if mode == Mode::Native { "n" } else { "g" };
    let opts = Options {
        ipv6: false,
        ..Options::default()
    };
    let topo = Topology::standard(&format!("replay-{tag}-{id}"), &opts).unwrap();
    for dir in corpus() {
        let (set, frames, golden) = load_case(&dir);
        let mut filter = {
            let _ns = topo.dut.enter().unwrap();
            let mut f = Filter::with_rules(&set).unwrap();
            f.attach(&topo.dut.iface, mode).unwrap();
            f
        };
        filter.maps.reset_stats().unwrap();
        let sendable: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|c| c.data)
            .filter(|f| f.len() >= 14)
            .collect();
        let n = sendable.len() as u64;
        let iface = topo.gen.iface.clone();
        netns::run_in(&topo.gen.netns, move || {
            let s = AfPacket::open(&iface).unwrap();
            for (i, f) in sendable.iter().enumerate() {
                s.send(f).unwrap();
                if i % 64 == 63 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let snap = loop {
            let s = filter.maps.snapshot().unwrap();
            if s.pass.packets + s.drop.packets >= n || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let want = golden_sums(&golden);
        let mut got = BTreeMap::new();
        let mut put = |k: &str, v: u64| {
            if v > 0 {
                got.insert(k.to_string(), v);
            }
        };
        put("pass", snap.pass.packets);
        put("drop", snap.drop.packets);
        put("default", snap.default_hits.packets);
        put("malformed", snap.malformed.packets);
        put("non-ip", snap.non_ip.packets);
        for r in &snap.rules {
            put(
                &format!("rule {}", r.index),
                r.hits.packets - r.limited.packets,
            );
            put(&format!("rule {} rate-limited", r.index), r.limited.packets);
        }
        assert_eq!(got, want, "{} on the wire in {mode} mode", dir.display());
    }
}

#[test]
fn corpus_on_the_wire_native_matches_golden() {
    wire(Mode::Native);
}

#[test]
fn corpus_on_the_wire_generic_matches_golden() {
    wire(Mode::Generic);
}
