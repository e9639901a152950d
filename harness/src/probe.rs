//! Socket-level probes across a [`Topology`]: UDP datagrams sent through the generator's
//! kernel stack to ports on the DUT, and counted by sockets there. Slow (a few thousand
//! datagrams per second, paced below the veth queue) but exact: for checking verdicts on the
//! wire, not for measuring speed.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use crate::{netns, Topology};

/// Sends `n` datagrams from the generator to each `(v6, port)` target on the DUT and returns
/// how many arrived per target, in the same order. Waits until `quiet` passes with nothing
/// arriving.
pub fn udp_round(topo: &Topology, targets: &[(bool, u16)], n: u64, quiet: Duration) -> Vec<u64> {
    let dut = topo.dut.clone();
    let t: Vec<(bool, u16)> = targets.to_vec();
    let ready = Arc::new(Barrier::new(2));
    let r2 = ready.clone();
    let rx = std::thread::spawn(move || {
        let _ns = dut.enter().expect("entering the DUT namespace");
        let socks: Vec<UdpSocket> = t
            .iter()
            .map(|&(v6, port)| {
                let s = UdpSocket::bind(SocketAddr::new(dut.ip(v6), port)).expect("bind");
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        r2.wait();
        let mut counts = vec![0u64; socks.len()];
        let mut last = Instant::now();
        let mut buf = [0u8; 2048];
        while last.elapsed() < quiet {
            let mut any = false;
            for (i, s) in socks.iter().enumerate() {
                while s.recv(&mut buf).is_ok() {
                    counts[i] += 1;
                    any = true;
                }
            }
            if any {
                last = Instant::now();
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        counts
    });
    ready.wait();
    let (gen, dut) = (topo.gen.clone(), topo.dut.clone());
    let t: Vec<(bool, u16)> = targets.to_vec();
    netns::run_in(&gen.netns.clone(), move || {
        let s4 = UdpSocket::bind(SocketAddr::new(gen.ip(false), 0)).expect("bind v4");
        let s6 = UdpSocket::bind(SocketAddr::new(gen.ip(true), 0)).expect("bind v6");
        for i in 0..n {
            for &(v6, port) in &t {
                let s = if v6 { &s6 } else { &s4 };
                s.send_to(&i.to_be_bytes(), SocketAddr::new(dut.ip(v6), port))
                    .expect("send");
            }
            if i % 50 == 49 {
                // Stay below the veth and socket queues: probes are about verdicts.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
    .expect("entering the generator namespace");
    rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}
