//! End to end on the wire: the filter attached to a real veth inside namespaces this test
//! creates, in native and in generic mode, judging real UDP traffic sent through the kernel
//! stack. Needs root; fails (never skips) without it.

use std::time::Duration;

use harness::{netns, Options, Topology};
use xdpwall::{Filter, LoadError, Mode, RuleSet};

const N: u64 = 200;

fn rules(topo: &Topology) -> RuleSet {
    let (g4, g6) = (topo.gen.ip4, topo.gen.ip6);
    let text = format!(
        "default = \"pass\"\n\
         [[rule]]\nname = \"drop-7001-v4\"\naction = \"drop\"\nsrc = \"{g4}\"\nproto = \"udp\"\ndport = 7001\n\
         [[rule]]\nname = \"pass-7000-v4\"\naction = \"pass\"\nsrc = \"{g4}\"\nproto = \"udp\"\ndport = 7000\n\
         [[rule]]\nname = \"drop-7001-v6\"\naction = \"drop\"\nsrc = \"{g6}\"\nproto = \"udp\"\ndport = 7001\n\
         [[rule]]\nname = \"pass-7000-v6\"\naction = \"pass\"\nsrc = \"{g6}\"\nproto = \"udp\"\ndport = 7000\n"
    );
    RuleSet::parse(&text, "e2e").unwrap()
}

const TARGETS: [(bool, u16); 4] = [(false, 7000), (false, 7001), (true, 7000), (true, 7001)];

fn round(topo: &Topology, n: u64) -> Vec<u64> {
    harness::probe::udp_round(topo, &TARGETS, n, Duration::from_millis(500))
}

fn run(mode: Mode, name: &str) {
    let topo = Topology::standard(name, &Options::default()).expect("topology (root needed)");
    let set = rules(&topo);
    let mut filter = {
        let _ns = topo.dut.enter().unwrap();
        let mut f = Filter::with_rules(&set).unwrap();
        assert_eq!(f.attach(&topo.dut.iface, mode).unwrap(), mode);
        // A second filter finds the interface taken: the error keeps its errno and says
        // what to do.
        let mut second = Filter::with_rules(&set).unwrap();
        let e = second.attach(&topo.dut.iface, mode).unwrap_err();
        assert!(matches!(e, LoadError::Attach { .. }), "{e:?}");
        assert_eq!(e.errno(), Some(libc::EBUSY), "{e:?}");
        assert!(
            e.to_string().contains("another XDP program is attached"),
            "{e}"
        );
        f
    };
    filter.maps.reset_stats().unwrap();
    let got = round(&topo, N);
    assert_eq!(
        got,
        vec![N, 0, N, 0],
        "datagrams received on v4:7000, v4:7001, v6:7000, v6:7001"
    );
    let snap = filter.maps.snapshot().unwrap();
    let hits: Vec<u64> = snap.rules.iter().map(|r| r.hits.packets).collect();
    assert_eq!(hits, vec![N, N, N, N], "per-rule counters in {mode} mode");
    assert!(snap.drop.packets >= 2 * N);
    assert!(snap.pass.packets >= 2 * N);

    // Rules change live: now 7000 is dropped and 7001 passes, without detaching.
    let flipped = RuleSet::parse(
        &set.to_toml()
            .replace("7001", "TMP")
            .replace("7000", "7001")
            .replace("TMP", "7000"),
        "flipped",
    )
    .unwrap();
    filter.maps.apply(&flipped).unwrap();
    assert_eq!(round(&topo, N), vec![0, N, 0, N], "after the live update");

    // Detaching restores plain delivery.
    drop(filter);
    assert_eq!(round(&topo, 20), vec![20, 20, 20, 20], "after detaching");
    let (gen_ns, dut_ns) = (topo.gen.netns.clone(), topo.dut.netns.clone());
    drop(topo);
    let left = netns::list();
    assert!(
        !left.contains(&gen_ns) && !left.contains(&dut_ns),
        "namespaces left: {left:?}"
    );
}

#[test]
fn native_mode_on_veth_judges_real_traffic() {
    run(
        Mode::Native,
        &format!("e2e-nat-{}", std::process::id() % 10000),
    );
}

#[test]
fn generic_mode_on_veth_judges_real_traffic() {
    run(
        Mode::Generic,
        &format!("e2e-gen-{}", std::process::id() % 10000),
    );
}
