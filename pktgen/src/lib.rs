//! pktgen: builds Ethernet/IP/TCP/UDP/ICMP frames, varies them as flows, writes and reads
//! pcap files, and sends them: through AF_PACKET sockets ([`afpacket`]) or generated in the
//! kernel with BPF_PROG_TEST_RUN live frames ([`xdp`]).
#![deny(missing_docs)]

pub mod afpacket;
pub mod flow;
pub mod frame;
pub mod pcap;
pub mod profile;
pub mod xdp;

pub use flow::{Flows, Vary};
pub use frame::{FrameSpec, IpSpec, Ipv6Ext, L4Spec};
