//! The loader's errors: each says what a user needs to act on it.

use std::path::PathBuf;

use aya::{maps::MapError, programs::ProgramError};
use xdpwall_common::ABI_VERSION;

use super::*;

/// Errors of the loader, each with what a user needs to act on it.
///
/// The message says what failed and, where one helps, what to do; the cause (a system call's
/// errno, aya's error) is kept as the [`std::error::Error::source`], so `{:#}` with anyhow
/// prints the whole chain and a caller can match on it ([`LoadError::errno`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The caller lacks the privileges for BPF or XDP.
    #[error("permission denied while {what}: run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON")]
    Permission {
        /// What was being done.
        what: String,
    },
    /// The kernel refused the program.
    #[error("the kernel verifier rejected the XDP program: {log}")]
    Verifier {
        /// The verifier's log.
        log: String,
    },
    /// The object (its maps, relocations) could not be loaded.
    #[error("loading the XDP object failed")]
    Object(#[source] Box<aya::EbpfError>),
    /// The object lacks a program or map this loader expects (a build mismatch).
    #[error("the XDP object has no {0}: rebuild xdpwall")]
    Missing(String),
    /// An operation on the loaded program failed.
    #[error("{what} failed")]
    Program {
        /// What was being done.
        what: &'static str,
        /// aya's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// The interface does not exist.
    #[error("interface '{0}' does not exist (see `ip link`; in another namespace? run inside it)")]
    NoInterface(String),
    /// Attaching failed.
    #[error("attaching to '{iface}' in {mode} mode failed{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Attach {
        /// Interface.
        iface: String,
        /// Requested mode.
        mode: Mode,
        /// What to do about it, when the cause is a known one.
        hint: Option<&'static str>,
        /// aya's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// A map operation failed.
    #[error("map {map}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        #[source]
        source: MapError,
    },
    /// No filter is pinned under that name.
    #[error("no xdpwall filter named '{0}' is running (nothing pinned at {PIN_ROOT}/{0}); start one with `xdpwall attach`")]
    NotRunning(String),
    /// A filter of that name is pinned already.
    #[error("{} already exists: a filter named '{name}' is running (`xdpwall detach {name}` removes it)", dir.display())]
    AlreadyRunning {
        /// The filter's name.
        name: String,
        /// Its pin folder.
        dir: PathBuf,
    },
    /// The pinned maps were made by an incompatible version.
    #[error("the filter pinned at {0} uses map layout {1}, this xdpwall uses {ABI_VERSION}: detach it first")]
    Abi(PathBuf, u32),
    /// A file operation on the BPF filesystem or xdpwall's lock failed.
    #[error("{what} {}", path.display())]
    Pin {
        /// What was being done ("creating", "removing", ...).
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system call's error.
        #[source]
        source: std::io::Error,
    },
    /// Pinning a map or the link failed.
    #[error("pinning {}", path.display())]
    PinObject {
        /// Where it was to be pinned.
        path: PathBuf,
        /// aya's error.
        #[source]
        source: aya::pin::PinError,
    },
    /// No bpffs is mounted and mounting one failed.
    #[error("no BPF filesystem at /sys/fs/bpf and mounting one failed: run as root (mounting needs CAP_SYS_ADMIN), or `mount -t bpf bpf /sys/fs/bpf` first")]
    NoBpffs(#[source] std::io::Error),
    /// [`Filter::pin_link`] before [`Filter::attach`].
    #[error("not attached: nothing to pin")]
    NotAttached,
    /// The kernel attached without a BPF link (before Linux 5.9), so it cannot be pinned.
    #[error("the kernel attached without a BPF link, which cannot be pinned")]
    NoLink(#[source] aya::programs::links::LinkError),
    /// The rule set does not fit the tables.
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    /// A kernel table is too small for the rule set; nothing was changed.
    #[error("{0}")]
    Capacity(String),
    /// BPF_PROG_TEST_RUN failed.
    #[error("BPF_PROG_TEST_RUN failed")]
    TestRun(#[source] Box<ProgramError>),
    /// [`Maps::take_events`] was called twice.
    #[error("the event ring buffer is already taken")]
    EventsTaken,
    /// The possible CPUs could not be read (per-CPU maps need their number).
    #[error("reading the number of CPUs ({what})")]
    Cpus {
        /// What was read.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl LoadError {
    /// The OS error number underneath, when a system call failed (EPERM, EBUSY, ENOENT, ...).
    pub fn errno(&self) -> Option<i32> {
        errno_of(self)
    }
}

/// The first OS error number in `e`'s chain of sources.
pub(super) fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Some(code);
        }
        cur = err.source();
    }
    None
}

/// A [`LoadError::Pin`] maker for `what` on `path`.
pub(super) fn pin_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> LoadError {
    let path = path.into();
    move |source| LoadError::Pin { what, path, source }
}

pub(super) fn map_err(map: &'static str) -> impl Fn(MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

pub(super) fn is_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(errno_of(e), Some(libc::EPERM | libc::EACCES))
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
