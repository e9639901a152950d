//! Network namespaces: created and removed like `ip netns add/del` (a bind mount under
//! /run/netns, so `ip netns` and `ip netns exec` see them), and entered per thread through
//! [`NetnsGuard`], which restores the thread's previous namespace on drop.

use std::{fs::File, io, marker::PhantomData, os::fd::AsRawFd};

pub use xdpwall::netns::{path as netns_path, NETNS_DIR};

/// Errors of namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call failed.
    #[error("{what} for namespace '{name}': {source}{hint}")]
    Sys {
        /// The namespace.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
        /// A hint for the user (may be empty).
        hint: &'static str,
    },
    /// The namespace exists already.
    #[error("network namespace '{0}' already exists (remove leftovers with `cargo xtask clean`)")]
    Exists(String),
}

fn sys(name: &str, what: &'static str, source: io::Error) -> NetnsError {
    let hint = if source.raw_os_error() == Some(libc::EPERM) {
        " (run as root: namespaces need CAP_SYS_ADMIN)"
    } else {
        ""
    };
    NetnsError::Sys {
        name: name.to_string(),
        what,
        source,
        hint,
    }
}

/// Namespaces this process created and has not removed (see [`crate::signals`]).
static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The namespaces this process created and has not removed yet.
pub fn created() -> Vec<String> {
    CREATED.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Creates the named namespace (fails if it exists).
pub fn create(name: &str) -> Result<(), NetnsError> {
    let path = netns_path(name);
    std::fs::create_dir_all(NETNS_DIR).map_err(|e| sys(name, "creating /run/netns", e))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::Exists(name.to_string()))
        }
        Err(e) => return Err(sys(name, "creating the mount point", e)),
    }
    // A fresh thread unshares its network namespace and bind-mounts it; the calling thread and
    // the rest of the process stay where they are.
    let name2 = name.to_string();
    let result = std::thread::spawn(move || -> Result<(), NetnsError> {
        // SAFETY: plain syscalls on this thread's own namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(sys(
                &name2,
                "unshare(CLONE_NEWNET)",
                io::Error::last_os_error(),
            ));
        }
        let src = c"/proc/thread-self/ns/net";
        let dst = std::ffi::CString::new(netns_path(&name2).into_os_string().into_encoded_bytes())
            .expect("no NUL in a namespace name");
        // SAFETY: valid C strings, no data argument.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(sys(
                &name2,
                "bind-mounting the namespace",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    })
    .join()
    .expect("namespace thread panicked");
    match &result {
        Ok(()) => {
            if let Ok(mut v) = CREATED.lock() {
                v.push(name.to_string());
            }
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
        }
    }
    result
}

/// Removes the named namespace; its interfaces go with it once nothing else holds it.
/// Removing a namespace that does not exist is not an error.
pub fn remove(name: &str) -> Result<(), NetnsError> {
    if let Ok(mut v) = CREATED.lock() {
        v.retain(|n| n != name);
    }
    let path = netns_path(name);
    if !path.exists() {
        return Ok(());
    }
    let c = std::ffi::CString::new(path.clone().into_os_string().into_encoded_bytes())
        .expect("no NUL in a namespace name");
    // SAFETY: valid C string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    std::fs::remove_file(&path).map_err(|e| sys(name, "removing the mount point", e))
}

/// Named namespaces that exist now.
pub fn list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// While alive, the current thread is inside another network namespace. Not `Send`: a
/// namespace belongs to a thread.
pub struct NetnsGuard {
    previous: File,
    name: String,
    _not_send: PhantomData<*const ()>,
}

impl NetnsGuard {
    /// Moves the current thread into the named namespace.
    pub fn enter(name: &str) -> Result<NetnsGuard, NetnsError> {
        let previous = File::open("/proc/thread-self/ns/net")
            .map_err(|e| sys(name, "opening the current namespace", e))?;
        xdpwall::netns::enter(name).map_err(|e| match e {
            xdpwall::netns::EnterError::NotFound { source, .. } => {
                sys(name, "opening the namespace", source)
            }
            xdpwall::netns::EnterError::Setns { source, .. } => sys(name, "setns", source),
        })?;
        Ok(NetnsGuard {
            previous,
            name: name.to_string(),
            _not_send: PhantomData,
        })
    }

    /// The namespace this guard entered.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // SAFETY: fd of the namespace this thread was in before.
        let r = unsafe { libc::setns(self.previous.as_raw_fd(), libc::CLONE_NEWNET) };
        if r != 0 {
            // The thread would keep running in the wrong namespace: that must not go unnoticed.
            panic!(
                "could not return from namespace {}: {}",
                self.name,
                io::Error::last_os_error()
            );
        }
    }
}

/// Runs `f` on a new thread inside the named namespace and returns its result.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let name = name.to_string();
    std::thread::spawn(move || {
        let _g = NetnsGuard::enter(&name)?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
