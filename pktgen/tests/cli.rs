//! The `pktgen` binary over a real veth topology: the client/server example's traffic (client
//! 192.168.1.1, server 192.168.1.2, other hosts) sent with both engines is judged frame by
//! frame by the filter on the DUT; pcap writing reads back; errors are one line; Ctrl-C stops
//! a send and still reports. Needs root.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use harness::{Options, Topology};
use xdpwall::{Filter, Mode, RuleSet};

fn pktgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(args)
        .output()
        .expect("running pktgen")
}

/// A generator/DUT topology without IPv6 (the stack then sends nothing of its own).
fn topology(prefix: &str) -> Topology {
    let id = std::process::id() % 10000;
    Topology::standard(
        &format!("{prefix}-{id}"),
        &Options {
            ipv6: false,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn client_server_traffic_with_both_engines() {
    let topo = topology("pg");
    let set = RuleSet::parse(include_str!("../../examples/client-server.toml"), "example").unwrap();
    let mut filter = {
        let _ns = topo.dut.enter().unwrap();
        let mut f = Filter::with_rules(&set).unwrap();
        f.attach(&topo.dut.iface, Mode::Native).unwrap();
        f
    };
    filter.maps.reset_stats().unwrap();
    let n = 20_000u64;
    let count = n.to_string();
    // (engine, src, dst, expected rule index or None for the default drop); `auto` is the
    // xdp engine where the kernel has live frames (5.18+) and afpacket elsewhere.
    let live = xdpwall::features::xdp_live_frames();
    let flows = [
        ("auto", "192.168.1.1", "192.168.1.9", Some(0usize)),
        ("afpacket", "192.168.1.3", "192.168.1.2", Some(1)),
        ("auto", "192.168.1.3", "192.168.1.4", None),
        ("afpacket", "192.168.1.1", "192.168.1.2", Some(0)),
    ];
    // The counter a flow's frames must land in: its rule's, or the default's.
    let landed = |f: &xdpwall::Filter, rule: Option<usize>| {
        let s = f.maps.snapshot().unwrap();
        match rule {
            Some(i) => s.rules[i].hits.packets,
            None => s.default_hits.packets,
        }
    };
    for (engine, src, dst, rule) in flows {
        let before = landed(&filter, rule);
        let out = pktgen(&[
            "send",
            "--netns",
            &topo.gen.netns,
            "--iface",
            "gen0",
            "--engine",
            engine,
            "--count",
            &count,
            "--src",
            src,
            "--dst",
            dst,
            "--vary-sport",
            "random:5000",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["sent"], n, "{engine} {src} -> {dst}");
        if engine == "auto" {
            let want = if live { "xdp" } else { "afpacket" };
            assert_eq!(v["engine"], want, "auto picks {want} on this kernel");
        }
        // Every frame of the flow is judged by its expected rule (polled: frames sent
        // through the stack may still be on their way).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = landed(&filter, rule) - before;
        while got < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            got = landed(&filter, rule) - before;
        }
        assert_eq!(got, n, "{engine} {src} -> {dst}: frames judged by {rule:?}");
    }
    if !live {
        // The xdp engine asked for by name says in one line what the kernel lacks.
        let out = pktgen(&[
            "send",
            "--netns",
            &topo.gen.netns,
            "--iface",
            "gen0",
            "--engine",
            "xdp",
            "--count",
            "1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("5.18"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let s = filter.maps.snapshot().unwrap();
    assert_eq!(
        s.rules[0].hits.packets,
        2 * n,
        "from-client: one xdp and one afpacket flow"
    );
    assert_eq!(s.rules[1].hits.packets, n, "to-server");
    assert_eq!(s.default_hits.packets, n, "other hosts, dropped by default");
    assert_eq!(s.drop.packets, n);
}

#[test]
fn pcap_written_reads_back_and_errors_are_one_line() {
    let dir = std::env::temp_dir().join(format!("pktgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("imix.pcap");
    let out = pktgen(&[
        "write",
        "--pcap",
        p.to_str().unwrap(),
        "--count",
        "120",
        "--size",
        "imix",
        "--proto",
        "tcp",
        "--vary-dport",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = pktgen::pcap::read_frames(&p).unwrap();
    assert_eq!(frames.len(), 120);
    let sizes: std::collections::BTreeMap<usize, usize> =
        frames.iter().fold(Default::default(), |mut m, f| {
            *m.entry(f.data.len()).or_default() += 1;
            m
        });
    assert_eq!(
        sizes,
        [(60, 70), (590, 40), (1514, 10)].into_iter().collect()
    );
    let out = pktgen(&["send", "--iface", "xw-missing0", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xw-missing0") && err.lines().count() == 1,
        "{err}"
    );
    let out = pktgen(&[
        "send",
        "--iface",
        "lo",
        "--netns",
        "xw-no-such-ns",
        "--count",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xw-no-such-ns"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C stops sending within a call slice, and the statistics of what was sent still come.
#[test]
fn ctrl_c_stops_pktgen_send_and_it_reports_what_it_sent() {
    let topo = topology("int");
    let child = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args([
            "send",
            "--netns",
            &topo.gen.netns,
            "--iface",
            &topo.gen.iface,
            "--engine",
            "afpacket",
            "--duration",
            "60",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["sent"].as_u64().unwrap() > 0, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}
