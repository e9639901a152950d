//! The traffic engines over a real veth pair: every frame the `xdp` (live frames) and
//! `afpacket` engines send arrives (the `xdp` engine's: or is counted by the kernel as dropped
//! in the veth ring, at most 2% of them), and frames whose flow fields the kernel rewrote still carry
//! valid checksums (the DUT's own IPv4/IPv6 and UDP stacks accept them). On a kernel without
//! live frames (before 5.18) the `xdp` engine must refuse with its one-line reason instead,
//! and `afpacket` still delivers every frame. Latency probes cross a forwarding DUT and are
//! measured at the far end. Needs root.

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use aya::programs::XdpMode;
use harness::{netns, Options, Topology};
use pktgen::{
    afpacket::AfPacket,
    xdp::{CountDrop, XdpEngine, XdpEngineError},
    Flows, FrameSpec, Vary,
};
use xdpwall::{Filter, Mode, RuleSet};

/// Whether this kernel runs the `xdp` engine. Where it does not, the engine's refusal is
/// checked: it must name the missing feature, not fail somewhere inside.
fn live_frames(iface: &str) -> bool {
    if xdpwall::features::xdp_live_frames() {
        return true;
    }
    let template = FrameSpec::udp(
        "198.18.0.1".parse().unwrap(),
        "198.18.0.2".parse().unwrap(),
        1,
        2,
    );
    match XdpEngine::new(&template, &Flows::default(), iface) {
        Err(e @ XdpEngineError::NoLiveFrames(_)) => {
            assert!(e.to_string().contains("5.18"), "{e}");
            eprintln!("this kernel has no live frames; checked the xdp engine's refusal: {e}");
            false
        }
        Err(e) => panic!("the xdp engine failed otherwise on a kernel without live frames: {e}"),
        Ok(_) => panic!("the xdp engine loaded although the probe found no live frames"),
    }
}

/// A topology (no IPv6, so nothing but the test's frames arrives) whose DUT end counts and
/// drops every frame in native mode.
fn counting_receiver(name: &str) -> (Topology, CountDrop) {
    let id = std::process::id() % 10000;
    let opts = Options {
        ipv6: false,
        ..Options::default()
    };
    let topo = Topology::standard(&format!("{name}-{id}"), &opts).unwrap();
    let cd = {
        let _ns = topo.dut.enter().unwrap();
        let mut cd = CountDrop::load().unwrap();
        cd.program()
            .attach(&topo.dut.iface, XdpMode::Driver)
            .unwrap();
        cd
    };
    (topo, cd)
}

fn wait_count(cd: &CountDrop, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = cd.count().unwrap().packets;
        if c >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn both_engines_deliver_every_frame_to_a_native_receiver() {
    let (topo, cd) = counting_receiver("eng");
    let template = FrameSpec::udp(topo.gen.ip(false), topo.dut.ip(false), 1000, 9).payload(18);
    let flows = Flows {
        sport: Vary::Range { count: 1000 },
        dst: Vary::Random { count: 50 },
        ..Flows::default()
    };
    let (t, f, iface) = (template.clone(), flows, topo.gen.iface.clone());
    let link0 = topo.gen.link_stats().unwrap();
    let sent = netns::run_in(&topo.gen.netns, move || {
        if !live_frames(&iface) {
            return 0;
        }
        const N: u32 = 200_000;
        let e = XdpEngine::new(&t, &f, &iface).unwrap();
        e.send(N, 64).unwrap();
        N as u64
    })
    .unwrap();
    // Every frame arrives or is counted by the kernel as dropped in the veth ring (the
    // generator side's tx_dropped: under emulation, with one vCPU for both ends, the DUT's
    // NAPI can fall behind a 64-frame burst; 1,792 of 200,000 once did), and nearly all arrive.
    let ring = (topo.gen.link_stats().unwrap() - link0).tx_dropped;
    let arrived = wait_count(&cd, sent - ring);
    assert_eq!(
        arrived + ring,
        sent,
        "xdp engine: arrived + dropped in the ring"
    );
    assert!(
        ring * 50 <= sent,
        "xdp engine: {ring} of {sent} dropped in the ring"
    );
    let frames = flows.frames(&template, 256);
    let iface = topo.gen.iface.clone();
    netns::run_in(&topo.gen.netns, move || {
        let s = AfPacket::open(&iface).unwrap();
        for chunk in 0..40 {
            s.send_batch(&frames, chunk * 256, 256).unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        wait_count(&cd, arrived + 40 * 256),
        arrived + 40 * 256,
        "afpacket engine"
    );
    drop(cd);
}

/// A topology (with IPv6) whose DUT passes everything to its stack (an empty xdpwall filter,
/// native); None where the kernel has no live frames (the refusal checked instead).
fn passing_dut(name: &str) -> Option<(Topology, Filter)> {
    let id = std::process::id() % 10000;
    let topo = Topology::standard(&format!("{name}-{id}"), &Options::default()).unwrap();
    let iface = topo.gen.iface.clone();
    if !netns::run_in(&topo.gen.netns, move || live_frames(&iface)).unwrap() {
        return None;
    }
    let filter = {
        let _ns = topo.dut.enter().unwrap();
        let mut f = Filter::with_rules(&RuleSet::default()).unwrap();
        f.attach(&topo.dut.iface, Mode::Native).unwrap();
        f
    };
    Some((topo, filter))
}

/// Frames rewritten in the kernel pass the DUT's IP and UDP checksum checks.
#[test]
fn kernel_rewritten_frames_have_valid_checksums() {
    let Some((topo, _filter)) = passing_dut("csum") else {
        return;
    };
    // Latency probes too: their timestamp, written as they leave, updates the UDP checksum.
    for (v6, probe) in [(false, false), (true, false), (false, true), (true, true)] {
        // Vary the low bits of the source address (x.100 to x.199: never the DUT's own) and
        // the source port: every rewrite touches the IPv4 header checksum and the UDP checksum
        // (mandatory in IPv6).
        let src = if v6 {
            "2001:db8:18::100"
        } else {
            "198.18.0.100"
        };
        let mut template =
            FrameSpec::udp(src.parse().unwrap(), topo.dut.ip(v6), 2000, 7000).payload(32);
        if probe {
            template = template.latency_probe();
        }
        let flows = Flows {
            src: Vary::Range { count: 100 },
            sport: Vary::Random { count: 3000 },
            ..Flows::default()
        };
        assert_eq!(
            accepted(&topo, v6, template, flows, &[]),
            1000,
            "datagrams accepted by the DUT's stack (v6: {v6}, probe: {probe})"
        );
    }
}

/// Whole source addresses from a list (the patterns benchmark's sources drawn from a set):
/// every word of the address is rewritten (an IPv6 one from 8 bytes into the header, not over
/// the destination) and both checksums follow, so the DUT's stack accepts every datagram.
#[test]
fn sources_from_a_list_replace_the_whole_address() {
    let Some((topo, _filter)) = passing_dut("srcl") else {
        return;
    };
    for v6 in [false, true] {
        let sources: Vec<std::net::IpAddr> = (0..7u16)
            .map(|i| {
                if v6 {
                    std::net::Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0xa1,
                        0xb2 + i,
                        0xc3,
                        0xd4,
                        0xe5,
                        0x100 + i,
                    )
                    .into()
                } else {
                    std::net::Ipv4Addr::new(198, 18, 0, 100 + i as u8).into()
                }
            })
            .collect();
        let src = if v6 { "2001:db8:18::7" } else { "198.18.0.7" };
        let template =
            FrameSpec::udp(src.parse().unwrap(), topo.dut.ip(v6), 2000, 7000).payload(32);
        let flows = Flows {
            sport: Vary::Random { count: 3000 },
            ..Flows::default()
        };
        assert_eq!(
            accepted(&topo, v6, template, flows, &sources),
            1000,
            "datagrams from listed sources accepted by the DUT's stack (v6: {v6})"
        );
    }
}

/// Sends 1,000 frames of `template` varied by `flows` with the `xdp` engine (in 50 calls of
/// 20) to UDP port 7000 of the DUT and returns how many datagrams its stack accepted.
fn accepted(
    topo: &Topology,
    v6: bool,
    mut template: FrameSpec,
    flows: Flows,
    sources: &[std::net::IpAddr],
) -> u64 {
    let dut = topo.dut.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let _ns = dut.enter().unwrap();
        let s = UdpSocket::bind(SocketAddr::new(dut.ip(v6), 7000)).unwrap();
        let size: libc::c_int = 8 << 20;
        // SAFETY: int option on our socket (root may exceed rmem_max).
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const _ as *const libc::c_void,
                4,
            )
        };
        // The first datagram may take a while (the sender loads its program first: seconds
        // in a guest under software emulation); after it, 700 ms of quiet ends the count.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        if s.recv(&mut buf).is_err() {
            return 0;
        }
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut n = 1u64;
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    rx.recv().unwrap();
    template.dst_mac = topo.dut.mac;
    template.src_mac = topo.gen.mac;
    let iface = topo.gen.iface.clone();
    let sources = sources.to_vec();
    netns::run_in(&topo.gen.netns, move || {
        let e = XdpEngine::with_sources(&template, &flows, &iface, &sources).unwrap();
        for _ in 0..50 {
            e.send(20, 16).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .unwrap();
    receiver.join().unwrap()
}

/// A UDP checksum the kernel's rewrite computes as 0 is sent as 0xffff (0 means "none", and an
/// IPv6 stack drops such a datagram): the source port alternates between one whose checksum
/// is ordinary and the one whose checksum comes out 0.
#[test]
fn a_rewritten_udp_checksum_of_zero_is_sent_as_ffff() {
    let Some((topo, _filter)) = passing_dut("csum0") else {
        return;
    };
    let frame = |sport: u16| {
        FrameSpec::udp(
            "2001:db8:18::100".parse().unwrap(),
            topo.dut.ip(true),
            sport,
            7000,
        )
        .payload(32)
    };
    // The UDP checksum sits at 14 + 40 + 6; all ones or all zeros: the data sums to zero.
    let zero = (2..=u16::MAX)
        .find(|&p| matches!(frame(p).build()[60..62], [0xff, 0xff] | [0, 0]))
        .expect("one source port makes the checksum zero");
    let flows = Flows {
        sport: Vary::Range { count: 2 },
        ..Flows::default()
    };
    assert_eq!(
        accepted(&topo, true, frame(zero - 1), flows, &[]),
        1000,
        "half the frames have source port {zero}, whose checksum is zero"
    );
}

/// Paced in the kernel, the `xdp` engine never sends faster than asked, every frame it counts
/// arrives, and most gaps between frames are the gap asked for. (Where the kernel has no live
/// frames, the refusal is checked instead.)
#[test]
fn the_paced_xdp_engine_keeps_its_rate_and_counts_what_it_sent() {
    let (topo, cd) = counting_receiver("pace");
    let template = FrameSpec::udp(topo.gen.ip(false), topo.dut.ip(false), 1000, 9);
    let iface = topo.gen.iface.clone();
    const RATE: f64 = 20_000.0;
    let run = netns::run_in(&topo.gen.netns, move || {
        if !live_frames(&iface) {
            return None;
        }
        pktgen::pin_to_cpu(0);
        let mut e = XdpEngine::new(&template, &Flows::default(), &iface).unwrap();
        e.set_rate(Some(RATE)).unwrap();
        // One second of calls sized by time (a call costs milliseconds of set-up besides
        // its runs; a held run is one the engine spun through waiting).
        let mut slicer = pktgen::pace::Slicer::new(Duration::from_millis(250), 1e6);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            let left = Duration::from_secs(1).saturating_sub(t.elapsed());
            let n = slicer.next(Some(left)).min(u32::MAX as u64);
            let took = e.send(n as u32, 64).unwrap();
            slicer.record(n, took);
        }
        let secs = t.elapsed().as_secs_f64();
        Some((e.pace_stats().unwrap(), secs))
    })
    .unwrap();
    let Some((stats, secs)) = run else {
        return;
    };
    let rate = stats.sent as f64 / secs;
    eprintln!(
        "asked {RATE} pps, sent {} in {secs:.3} s ({rate:.0} pps), {} held, {} late, gaps p50 {:?} ns, {:.1}% on time",
        stats.sent,
        stats.held,
        stats.late,
        stats.gap_quantile_ns(0.5),
        stats.on_time() * 100.0
    );
    assert!(stats.held > 0, "the engine never waited: {stats:?}");
    assert!(rate <= RATE * 1.02, "faster than asked: {rate:.0} pps");
    // Each call costs milliseconds of set-up (much more under emulation), in which nothing
    // is sent: the rate falls short by that much, never above.
    assert!(rate >= RATE * 0.1, "far slower than asked: {rate:.0} pps");
    assert_eq!(stats.gap_ns, 50_000);
    let p50 = stats.gap_quantile_ns(0.5).expect("a median gap");
    assert!(
        (50_000.0..=50_000.0 + 2.0 * stats.bucket_ns as f64).contains(&p50),
        "median gap {p50} ns"
    );
    assert_eq!(
        wait_count(&cd, stats.sent),
        stats.sent,
        "every sent frame arrives"
    );
    drop(cd);
}

/// Probes stamped as they leave the generator cross a DUT that passes and forwards them, and
/// the receiver behind it measures every one on the host's clock (and passes frames that are
/// not probes). (Where the kernel has no live frames, the refusal is checked instead.)
#[test]
fn latency_probes_cross_a_forwarding_dut_and_are_measured() {
    let id = std::process::id() % 10000;
    let opts = Options {
        ipv6: false,
        receiver: true,
        ..Options::default()
    };
    let topo = Topology::standard(&format!("lat-{id}"), &opts).unwrap();
    let r = topo.receiver.clone().unwrap();
    let iface = topo.gen.iface.clone();
    if !netns::run_in(&topo.gen.netns, move || live_frames(&iface)).unwrap() {
        return;
    }
    let dut = {
        let _ns = topo.dut.enter().unwrap();
        let mut cd = CountDrop::passing().unwrap();
        cd.program()
            .attach(&topo.dut.iface, XdpMode::Driver)
            .unwrap();
        cd
    };
    let mut template = FrameSpec::udp(topo.gen.ip(false), r.rcv.ip(false), 1000, 9).latency_probe();
    template.dst_mac = topo.dut.mac;
    template.src_mac = topo.gen.mac;
    let marker = template.probe_offset().unwrap();
    let mut rcv = {
        let _ns = r.rcv.enter().unwrap();
        pktgen::LatencyReceiver::attach(&r.rcv.iface, marker, XdpMode::Driver).unwrap()
    };
    // Source ports vary: the kernel rewrites them and stamps each frame. The DUT's
    // forwarding rewrites MACs and TTL in pages the engine reuses: the probes restore them.
    let flows = Flows {
        sport: Vary::Range { count: 500 },
        ..Flows::default()
    };
    let (t, iface) = (template.clone(), topo.gen.iface.clone());
    let sent = netns::run_in(&topo.gen.netns, move || {
        let mut e = XdpEngine::new(&t, &flows, &iface).unwrap();
        e.set_rate(Some(20_000.0)).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(500) {
            e.send(200_000, 1).unwrap();
        }
        e.pace_stats().unwrap().sent
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut l = rcv.latency().unwrap();
    while l.count < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        l = rcv.latency().unwrap();
    }
    let (p50, p99) = (l.quantile_ns(0.5).unwrap(), l.quantile_ns(0.99).unwrap());
    eprintln!(
        "{sent} probes: min {} ns, p50 {p50}, p99 {p99}, max {} ns, mean {:.0}",
        l.min_ns,
        l.max_ns,
        l.mean_ns().unwrap()
    );
    assert!(sent > 100, "the generator sent {sent} probes");
    assert_eq!(
        dut.count().unwrap().packets,
        sent,
        "the DUT saw every probe"
    );
    assert_eq!(l.count, sent, "every probe was forwarded and measured");
    assert_eq!(l.other, 0, "no frame but the probes arrived");
    assert_eq!(l.buckets.iter().sum::<u64>(), sent);
    assert!(l.min_ns > 0 && l.min_ns <= p50 && p50 <= p99 && p99 <= l.max_ns);
    // One clock at both ends: a stamp read wrongly would look minutes old or from the future.
    assert!(l.max_ns < 1_000_000_000, "max {} ns", l.max_ns);

    // A frame without the marker is passed on (the receiver's stack answers nothing: no
    // socket), counted as other, and measured as nothing.
    rcv.reset().unwrap();
    let mut plain = FrameSpec::udp(topo.gen.ip(false), r.rcv.ip(false), 1000, 9).payload(16);
    plain.dst_mac = topo.dut.mac;
    plain.src_mac = topo.gen.mac;
    let iface = topo.gen.iface.clone();
    netns::run_in(&topo.gen.netns, move || {
        AfPacket::open(&iface)
            .unwrap()
            .send_batch(&[plain.build()], 0, 10)
            .unwrap();
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rcv.latency().unwrap().other < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let l = rcv.latency().unwrap();
    assert_eq!((l.count, l.other), (0, 10), "plain frames");
}
