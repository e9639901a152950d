//! pktgen: builds Ethernet/IP/TCP/UDP/ICMP frames for xdpwall's tests and benchmarks.
#![deny(missing_docs)]

pub mod afpacket;
pub mod frame;
pub mod pcap;

pub use frame::{FrameSpec, IpSpec, Ipv6Ext, L4Spec};
