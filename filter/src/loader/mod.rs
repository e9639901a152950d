//! The loader: loads the XDP object (the real kernel verifier runs here), owns the map handles,
//! writes compiled tables into a generation and flips to it, reads counters, attaches to
//! interfaces and pins everything under `/sys/fs/bpf/xdpwall/<name>/` so that a second process
//! can steer a running filter.
//!
//! # Live, atomic updates
//! [`Maps::apply`] writes the whole new rule set into the inactive generation, then flips
//! [`Config::active_gen`] with one map write. Each packet reads the generation once, so it is
//! judged entirely by the old or entirely by the new rule set. Before the inactive generation
//! is rewritten, [`wait_for_readers`] waits for an RCU grace period (XDP programs run inside
//! RCU read-side sections), so no packet that started before the previous flip still reads it.

//!
//! One file per concern: `program` loads and attaches the XDP program, `maps` writes
//! generations and reads counters, `status` holds what they report, `mmap` the shared
//! mappings of the mmapable arrays, `batch` the batched map writes, `pin` the bpffs pins
//! and their lock, `error` the errors.

mod batch;
mod error;
mod maps;
mod mmap;
mod pin;
mod program;
mod status;

use error::{errno_of, full_chain, is_eperm, map_err, pin_err};
use mmap::MmapArray;
use pin::{ensure_bpffs, remove_pins_locked, BpffsLock, LINK_PIN};

pub use error::LoadError;
pub use maps::{wait_for_readers, Maps};
pub use pin::{pin_dir, pinned_filters, release_bpffs, remove_pins, BpffsHold, PIN_ROOT};
pub use program::{if_index, Filter, Mode, ProgramStats, RunResult};
pub use status::{ApplyReport, Count, RuleCounter, Sampling, SetStatus, Snapshot};

/// Leading frame bytes a verdict event carries unless configured otherwise.
pub const DEFAULT_SNAP_LEN: u32 = 128;
