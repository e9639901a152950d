//! pktgen: builds Ethernet/IP/TCP/UDP/ICMP frames, varies them as flows, writes and reads
//! pcap files, and sends them: through AF_PACKET sockets ([`afpacket`]) or generated in the
//! kernel with BPF_PROG_TEST_RUN live frames ([`xdp`]).
#![deny(missing_docs)]

pub mod afpacket;
pub mod flow;
pub mod frame;
pub mod latency;
pub mod pace;
pub mod pcap;
pub mod profile;
pub mod xdp;

pub use flow::{Flows, Vary};
pub use frame::{FrameSpec, IpSpec, Ipv6Ext, L4Spec, PROBE_LEN};
pub use latency::{Latency, LatencyReceiver};

/// Pins the calling thread to one CPU (modulo the CPUs there are): sending threads that stay on
/// their CPU keep their per-CPU state (and, for the `xdp` engine, their veth queue).
pub fn pin_to_cpu(cpu: usize) {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // SAFETY: a zeroed cpu_set_t with one bit set, passed with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
