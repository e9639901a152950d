//! Entering a named network namespace (the names `ip netns` uses, bind-mounted under
//! /run/netns): the one place xdpwall, pktgen and the harness do it. The harness creates and
//! removes namespaces and enters them for a scope (`harness::netns::NetnsGuard`) on top of
//! [`enter`].

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

/// Where named namespaces are bind-mounted (as iproute2 does).
pub const NETNS_DIR: &str = "/run/netns";

/// The path of the named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Why a namespace could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// No namespace of that name.
    #[error("network namespace '{name}' not found at {} (see `ip netns`)", path(.name).display())]
    NotFound {
        /// The name asked for.
        name: String,
        /// Opening it.
        #[source]
        source: io::Error,
    },
    /// setns(2) refused.
    #[error("entering network namespace '{name}' (run as root: it needs CAP_SYS_ADMIN)")]
    Setns {
        /// The namespace.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Moves the calling thread into the named namespace (for good: a process that enters one
/// before it starts threads runs in it entirely).
pub fn enter(name: &str) -> Result<(), EnterError> {
    let f = File::open(path(name)).map_err(|source| EnterError::NotFound {
        name: name.to_string(),
        source,
    })?;
    // SAFETY: a valid namespace fd; only this thread's namespace changes.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(EnterError::Setns {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
