//! The harness: what makes every claim about the filter checkable.
//!
//! - [`netns`]: named network namespaces and a per-thread guard to enter them;
//! - [`topo`]: veth topologies built with rtnetlink, removed on drop;
//! - [`probe`]: exact socket-level UDP probes across a topology;
//! - [`verdict`]: frames through the loaded filter (BPF_PROG_TEST_RUN) against the model;
//! - [`replay`]: pcap regression replay against golden verdict files;
//! - [`corpus`]: the named regression cases (rule sets and frames);
//! - [`blocklist`]: reproducible synthetic address sets of any size;
//! - [`peer`]: peer tools (xdp-tools) the benchmarks compare with, when installed;
//! - [`signals`]: Ctrl-C removes what a run created.
#![deny(missing_docs)]

pub mod bench;
pub mod blocklist;
pub mod corpus;
pub mod demo;
pub mod netns;
pub mod peer;
pub mod probe;
pub mod replay;
pub mod signals;
pub mod topo;
pub mod verdict;

pub use topo::{Options, Topology};
