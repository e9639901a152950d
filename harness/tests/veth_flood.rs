//! Flood defence on the wire: a rate-limit rule on the DUT's veth (native XDP) caps a flood
//! from one source near the configured rate while another source's traffic through the same
//! rule passes untouched. Datagrams are counted by UDP sockets behind the filter. Under the
//! same load, sampled verdict events arrive at the configured rate (one drop in 1,000 per
//! CPU). And a million-entry set swapped live under a flood gives no frame a wrong verdict.
//! Needs root; fails (never skips) without it.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use harness::{Options, Topology};
use pktgen::{afpacket::AfPacket, FrameSpec};
use xdpwall::{Filter, Mode, RuleSet};

const RATE: u64 = 500;
const BURST: u64 = 50;

fn count(sock: &UdpSocket) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while sock.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_flood_is_capped_near_the_rate_and_other_sources_pass() {
    let id = std::process::id() % 10000;
    let topo = Topology::standard(&format!("fl-{id}"), &Options::default())
        .expect("topology (root needed)");
    let set = RuleSet::parse(
        &format!(
            "[[rule]]\nname = \"udp-limit\"\naction = \"rate-limit\"\nrate = {RATE}\nburst = {BURST}\nproto = \"udp\"\n"
        ),
        "flood",
    )
    .unwrap();
    let (mut filter, flood_sock, legit_sock) = {
        let _ns = topo.dut.enter().unwrap();
        let mut f = Filter::with_rules(&set).unwrap();
        assert_eq!(
            f.attach(&topo.dut.iface, Mode::Native).unwrap(),
            Mode::Native
        );
        let bind = |port| {
            let s = UdpSocket::bind((topo.dut.ip4, port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            // Room for everything that may pass.
            let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
            let size: libc::c_int = 64 << 20;
            // SAFETY: valid socket and option buffer.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &size as *const _ as *const libc::c_void,
                    4,
                )
            };
            s
        };
        (f, bind(9000), bind(9001))
    };
    // Flooder: the generator's own address. Legitimate: another on-link address.
    let frame = |src: std::net::Ipv4Addr, dport| {
        let mut spec = FrameSpec::udp(src.into(), topo.dut.ip4.into(), 5000, dport).payload(18);
        spec.src_mac = topo.gen.mac;
        spec.dst_mac = topo.dut.mac;
        spec.build()
    };
    let flood = frame(topo.gen.ip4, 9000);
    let legit = frame(std::net::Ipv4Addr::new(198, 18, 0, 3), 9001);
    let (sent, legit_sent, elapsed) = {
        let _ns = topo.gen.enter().unwrap();
        let tx = AfPacket::open(&topo.gen.iface).unwrap();
        let batch = vec![flood.clone(); 256];
        let (mut sent, mut legit_sent) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            tx.send_batch(&batch, 0, batch.len()).unwrap();
            sent += batch.len() as u64;
            // About 100 legitimate packets per second, far below the limit.
            if start.elapsed().as_millis() as u64 / 10 > legit_sent {
                tx.send(&legit).unwrap();
                legit_sent += 1;
            }
        }
        (sent, legit_sent, start.elapsed())
    };
    let mut tracer = xdpwall::trace::Tracer::new(filter.maps.take_events().unwrap());
    let mut events = Vec::new();
    while let Some(e) = tracer.next(Duration::from_millis(100)) {
        events.push(e);
    }
    let flood_got = count(&flood_sock);
    let legit_got = count(&legit_sock);
    let snap = filter.maps.snapshot().unwrap();
    let expected = RATE as f64 * elapsed.as_secs_f64() + BURST as f64;
    eprintln!(
        "flood: sent {sent} in {:.2} s, {flood_got} passed (expected about {expected:.0}), {} rate-limited; legitimate: {legit_got}/{legit_sent}",
        elapsed.as_secs_f64(),
        snap.rate_limited.packets
    );
    // Five times the limit is a flood to cap (a slow machine, a guest under software
    // emulation, sends some 13,000 frames a second here; the host a million).
    assert!(
        sent > 5 * expected as u64,
        "the flood was not a flood: {sent}"
    );
    assert!(
        (flood_got as f64) > 0.8 * expected && (flood_got as f64) < 1.2 * expected,
        "{flood_got} passed, expected about {expected:.0}"
    );
    assert_eq!(legit_got, legit_sent, "legitimate traffic untouched");
    assert_eq!(snap.rules[0].limited.packets, snap.rate_limited.packets);
    assert!(snap.rate_limited.packets + flood_got + legit_got >= sent * 9 / 10);

    // Default sampling: one drop in 1,000 per CPU, so each CPU leaves fewer than 1,000 unsampled.
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let drops = snap.drop.packets;
    assert_eq!(snap.events_lost.packets, 0);
    assert!(
        events.len() as u64 <= drops / 1000 && events.len() as u64 + cpus >= drops / 1000,
        "{} events for {drops} drops",
        events.len()
    );
    assert!(events
        .iter()
        .all(|e| e.cause == xdpwall_common::cause::RATE_LIMITED && e.rule == 0 && e.dport == 9000));
}

/// Two sets of a million entries that share `shared` hosts and nothing of `outside`.
fn million_sets(shared: &[std::net::IpAddr]) -> [RuleSet; 2] {
    [42, 43].map(|seed| {
        let mut nets = harness::blocklist::blocklist(1_000_000 - shared.len(), seed).nets;
        nets.extend(shared.iter().map(|&a| ipnet::IpNet::from(a)));
        let mut text = String::from("[set.big]\nentries = [\"192.0.2.1\"]\n");
        // S frames go to port 7000, P frames to 7001: each verdict has its own rule, so a
        // wrong one is counted by name, whatever the veth ring loses.
        for (name, set, dport, action) in [
            ("wrong-p", true, 7001, "drop"),
            ("s", true, 7000, "drop"),
            ("p", false, 7001, "pass"),
            ("wrong-s", false, 7000, "pass"),
        ] {
            text.push_str(&format!(
                "[[rule]]\nname = \"{name}\"\naction = \"{action}\"\nproto = \"udp\"\ndport = {dport}\n{}",
                if set { "src = \"@big\"\n" } else { "" }
            ));
        }
        let mut r = RuleSet::parse(&text, "swap").unwrap();
        r.sets.insert("big".into(), xdpwall::AddrSet::new(nets));
        r
    })
}

#[test]
fn swapping_a_million_entry_set_under_a_flood_gives_no_frame_a_wrong_verdict() {
    let id = std::process::id() % 10000;
    let topo = Topology::standard(&format!("sw-{id}"), &Options::default())
        .expect("topology (root needed)");
    // S: hosts in both sets; P: hosts in neither (the topology's own /15, which the
    // synthetic blocklists never cover).
    let s_hosts: Vec<std::net::IpAddr> = (0..1000u32)
        .map(|i| std::net::Ipv4Addr::from(0x6440_0000 + i * 97).into())
        .collect();
    let p_hosts: Vec<std::net::IpAddr> = (0..1000u32)
        .map(|i| std::net::Ipv4Addr::from(0xc613_1000 + i).into())
        .collect();
    let sets = million_sets(&s_hosts);
    // Addressed to another MAC: the DUT's stack drops what passes at once.
    let frames: Vec<Vec<u8>> = s_hosts
        .iter()
        .zip(&p_hosts)
        .flat_map(|(&s, &p)| {
            [(s, 7000), (p, 7001)].map(|(src, dport)| {
                let mut f = FrameSpec::udp(src, topo.dut.ip4.into(), 5000, dport);
                f.dst_mac = harness::topo::OTHER_HOST_MAC;
                f.build()
            })
        })
        .collect();
    let mut filter = {
        let _ns = topo.dut.enter().unwrap();
        let mut f = Filter::with_rules(&sets[0]).unwrap();
        f.attach(&topo.dut.iface, Mode::Native).unwrap();
        f
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (stop, ns, iface) = (stop.clone(), topo.gen.netns.clone(), topo.gen.iface.clone());
        std::thread::spawn(move || {
            harness::netns::run_in(&ns, move || {
                let s = AfPacket::open(&iface).unwrap();
                let mut at = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    s.send_batch(&frames, at, 256).unwrap();
                    at += 256;
                }
            })
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut hits = [0u64; 4];
    let mut add = |f: &Filter, gen: u32| {
        for (h, c) in hits.iter_mut().zip(f.maps.rule_hits(gen, 4).unwrap()) {
            *h += c.packets;
        }
    };
    for k in 1..=2 {
        let t = Instant::now();
        let report = filter.maps.apply(&sets[k % 2]).unwrap();
        eprintln!(
            "swap {k} under the flood: {:.2} s (compile {:.2} s, write and flip {:.2} s)",
            t.elapsed().as_secs_f64(),
            report.compile.as_secs_f64(),
            report.write.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(300));
        // The set just replaced counted into the other generation while it was active; the
        // next swap zeroes it, so read it now.
        add(&filter, 1 - report.generation);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    add(&filter, filter.maps.active_generation().unwrap());
    let default = filter
        .maps
        .stat(xdpwall_common::stat::DEFAULT)
        .unwrap()
        .packets;
    eprintln!(
        "judged: {} S frames dropped, {} P frames passed; wrong: {} P dropped, {} S passed; {default} IP frames matched no rule (the interfaces' own IPv6 chatter)",
        hits[1], hits[2], hits[0], hits[3]
    );
    assert!(
        hits[1] > 10_000 && hits[2] > 10_000,
        "the flood reached the filter: {hits:?}"
    );
    assert_eq!(hits[0], 0, "P frames (in neither set) dropped");
    assert_eq!(hits[3], 0, "S frames (in both sets) passed");
    filter.detach().unwrap();
}
