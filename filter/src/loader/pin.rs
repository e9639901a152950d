//! Pins under /sys/fs/bpf/xdpwall/NAME, the bpffs they live in (mounted when missing,
//! unmounted again when xdpwall mounted it) and the lock that serialises both.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use aya::programs::links::PinnedLink;

use super::*;

/// Where filters are pinned: one folder per filter name (by default the interface name).
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdpwall";
/// The attachment's pin inside a filter's folder.
pub(super) const LINK_PIN: &str = "link";

/// The pin folder of the filter called `name`.
pub fn pin_dir(name: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(name)
}

/// Where the BPF filesystem lives.
const BPFFS: &str = "/sys/fs/bpf";
/// Present while a bpffs that xdpwall mounted is mounted (xdpwall unmounts only its own).
const MOUNT_MARK: &str = "/run/xdpwall/bpffs-mounted";
/// Serialises mounting, pinning, unpinning and unmounting between xdpwall processes.
const BPFFS_LOCK: &str = "/run/xdpwall/bpffs.lock";
/// What the kernel itself puts into every new bpffs (the bpf_preload iterators).
const KERNEL_ENTRIES: [&str; 2] = ["maps.debug", "progs.debug"];

/// An exclusive lock on [`BPFFS_LOCK`], released on drop.
pub(super) struct BpffsLock {
    _file: fs::File,
}

impl BpffsLock {
    pub(super) fn take() -> Result<BpffsLock, LoadError> {
        fs::create_dir_all("/run/xdpwall").map_err(pin_err("creating", "/run/xdpwall"))?;
        let f = fs::File::create(BPFFS_LOCK).map_err(pin_err("creating", BPFFS_LOCK))?;
        f.lock().map_err(pin_err("locking", BPFFS_LOCK))?;
        Ok(BpffsLock { _file: f })
    }
}

/// Makes sure a bpffs is mounted at /sys/fs/bpf, mounting one (and remembering that xdpwall
/// did) if not. Call with the [`BpffsLock`] held.
pub(super) fn ensure_bpffs() -> Result<(), LoadError> {
    let path = c"/sys/fs/bpf";
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    if r == 0 && st.f_type == libc::BPF_FS_MAGIC {
        return Ok(());
    }
    fs::create_dir_all(BPFFS).ok();
    // SAFETY: constant C strings, no data argument.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            path.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(LoadError::NoBpffs(std::io::Error::last_os_error()));
    }
    fs::write(MOUNT_MARK, b"mounted by xdpwall\n").map_err(pin_err("writing", MOUNT_MARK))
}

/// Unmounts the bpffs at /sys/fs/bpf if xdpwall mounted it and nothing but the kernel's own
/// entries is left in it. Call with the [`BpffsLock`] held.
fn release_bpffs_locked() -> Result<(), LoadError> {
    if !Path::new(MOUNT_MARK).exists() {
        return Ok(());
    }
    remove_stale_holds();
    let in_use = fs::read_dir(BPFFS)
        .map_err(pin_err("reading", BPFFS))?
        .flatten()
        .any(|e| !KERNEL_ENTRIES.iter().any(|k| e.file_name() == *k));
    if in_use {
        return Ok(());
    }
    // SAFETY: constant C string.
    if unsafe { libc::umount(c"/sys/fs/bpf".as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            // Running without CAP_SYS_ADMIN: an empty bpffs stays mounted (its mark too, so
            // the next xdpwall run as root unmounts it); the filter itself is gone.
            return Ok(());
        }
        return Err(pin_err("unmounting", BPFFS)(e));
    }
    fs::remove_file(MOUNT_MARK).map_err(pin_err("removing", MOUNT_MARK))
}

/// Unmounts the bpffs xdpwall mounted, once no pin of anyone is left in it (`xdpwall detach
/// --all` calls this after a crash; [`remove_pins`] does it by itself).
pub fn release_bpffs() -> Result<(), LoadError> {
    let _lock = BpffsLock::take()?;
    release_bpffs_locked()
}

/// Keeps a bpffs mounted at /sys/fs/bpf for another tool that pins there (the benchmark's
/// xdp-filter peer) or a process that drops the capability to mount one, with the same
/// bookkeeping as xdpwall's own pins: while it lives, a folder `xdpwall-hold-PID` in the
/// bpffs keeps other xdpwall processes from unmounting it; on drop the folder goes and the
/// bpffs is unmounted if xdpwall mounted it and nothing but the kernel's entries is left.
/// (The folder of a process that died is removed by the next release.)
pub struct BpffsHold(PathBuf);

/// Prefix of the folders of [`BpffsHold`]s.
const HOLD_PREFIX: &str = "xdpwall-hold-";

impl BpffsHold {
    /// Mounts a bpffs at /sys/fs/bpf unless one is there, and holds it.
    pub fn take() -> Result<BpffsHold, LoadError> {
        let _lock = BpffsLock::take()?;
        ensure_bpffs()?;
        let dir = Path::new(BPFFS).join(format!("{HOLD_PREFIX}{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(pin_err("creating", &dir))?;
        Ok(BpffsHold(dir))
    }
}

/// Removes the hold folders of processes that no longer run.
fn remove_stale_holds() {
    for e in fs::read_dir(BPFFS).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(HOLD_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir(e.path());
        }
    }
}

impl Drop for BpffsHold {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
        let _ = release_bpffs();
    }
}

/// Detaches and removes the filter pinned under `name`: unpinning the link detaches the
/// program, unpinning the maps frees them once nothing else holds them. Idempotent.
pub fn remove_pins(name: &str) -> Result<bool, LoadError> {
    let _lock = BpffsLock::take()?;
    remove_pins_locked(name)
}

pub(super) fn remove_pins_locked(name: &str) -> Result<bool, LoadError> {
    let dir = pin_dir(name);
    if !dir.exists() {
        release_bpffs_locked()?;
        return Ok(false);
    }
    let link = dir.join(LINK_PIN);
    if link.exists() {
        match PinnedLink::from_pin(&link) {
            Ok(l) => {
                let _ = l.unpin();
            }
            Err(_) => {
                let _ = fs::remove_file(&link);
            }
        }
    }
    let entries = fs::read_dir(&dir).map_err(pin_err("reading", &dir))?;
    for entry in entries.flatten() {
        if let Err(e) = fs::remove_file(entry.path()) {
            if e.kind() != ErrorKind::NotFound {
                return Err(pin_err("removing", entry.path())(e));
            }
        }
    }
    fs::remove_dir(&dir).map_err(pin_err("removing", &dir))?;
    // The root folder goes too once no filter is left (another one may race us: ignore), and
    // the bpffs when xdpwall mounted it and nothing else is pinned there.
    let _ = fs::remove_dir(PIN_ROOT);
    release_bpffs_locked()?;
    Ok(true)
}

/// Names of every pinned filter.
pub fn pinned_filters() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(PIN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}
