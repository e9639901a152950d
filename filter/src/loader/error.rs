//! The loader's errors: each says what a user needs to act on it.

use std::path::PathBuf;

use aya::maps::MapError;
use xdpwall_common::ABI_VERSION;

use super::*;

/// Errors of the loader, each with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The caller lacks the privileges for BPF or XDP.
    #[error("permission denied while {what}: run as root (needs CAP_BPF, CAP_NET_ADMIN)")]
    Permission {
        /// What was being done.
        what: String,
    },
    /// The kernel refused the program.
    #[error("the kernel verifier rejected the XDP program: {0}")]
    Verifier(String),
    /// Loading failed for another reason.
    #[error("loading the XDP object failed: {0}")]
    Load(String),
    /// The interface does not exist.
    #[error("interface '{0}' does not exist (see `ip link`; in another namespace? run inside it)")]
    NoInterface(String),
    /// Attaching failed.
    #[error("attaching to '{iface}' in {mode} mode failed: {reason}")]
    Attach {
        /// Interface.
        iface: String,
        /// Requested mode.
        mode: Mode,
        /// Why, with a hint.
        reason: String,
    },
    /// Detaching failed.
    #[error("detaching the filter failed: {0}")]
    Detach(String),
    /// A map operation failed.
    #[error("map {map}: {}", full_chain(source))]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        source: MapError,
    },
    /// No filter is pinned under that name.
    #[error("no xdpwall filter named '{0}' is running (nothing pinned at {PIN_ROOT}/{0}); start one with `xdpwall attach`")]
    NotRunning(String),
    /// The pinned maps were made by an incompatible version.
    #[error("the filter pinned at {0} uses map layout {1}, this xdpwall uses {ABI_VERSION}: detach it first")]
    Abi(PathBuf, u32),
    /// Pinning or bpffs problems.
    #[error("{0}")]
    Pin(String),
    /// The rule set does not fit the tables.
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    /// A kernel table is too small for the rule set; nothing was changed.
    #[error("{0}")]
    Capacity(String),
    /// BPF_PROG_TEST_RUN failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(String),
}

pub(super) fn map_err(map: &'static str) -> impl Fn(MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

pub(super) fn is_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

pub(super) fn full_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}
