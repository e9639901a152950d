//! Flood defence on the wire: a rate-limit rule on the DUT's veth (native XDP) caps a flood
//! from one source near the configured rate while another source's traffic through the same
//! rule passes untouched. Datagrams are counted by UDP sockets behind the filter. Under the
//! same load, sampled verdict events arrive at the configured rate (one drop in 1,000 per
//! CPU). Needs root; fails (never skips) without it.

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
