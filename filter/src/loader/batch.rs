//! The BPF map batch update command (`BPF_MAP_UPDATE_BATCH`), which aya does not wrap: a
//! table of many entries is written in a few syscalls instead of one per entry.
//!
//! Keys and values are passed as raw bytes, `count` elements back to back (for per-CPU maps a
//! value is one `round_up(size, 8)` slot per possible CPU).
//!
//! Kernels that cannot batch a map type (5.10 has no batch operations for per-CPU arrays: it
//! answers ENOTSUPP) get the same writes one element at a time (`BPF_MAP_UPDATE_ELEM`).

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::MapData;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// The kernel's "operation not supported" (not in libc: it is internal to the kernel, but
/// returned to user space by the map operations a map type lacks).
const ENOTSUPP: i32 = 524;

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn fd(map: &MapData) -> u32 {
    map.fd().as_fd().as_raw_fd() as u32
}

fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<()> {
    // SAFETY: attr is the command's attribute struct and points at buffers the caller keeps
    // alive for the whole call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, std::mem::size_of::<A>()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs an update or delete batch to the end; a partial batch reports how far it got, and the
/// rest is retried on `EAGAIN`/`EINTR`.
fn run(
    cmd: libc::c_long,
    map: &MapData,
    keys: &[u8],
    values: Option<&[u8]>,
    count: usize,
) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let ks = keys.len() / count;
    let vs = values.map_or(0, |v| v.len() / count);
    let mut done = 0usize;
    while done < count {
        let mut attr = BatchAttr {
            keys: keys[done * ks..].as_ptr() as u64,
            values: values.map_or(0, |v| v[done * vs..].as_ptr() as u64),
            count: (count - done) as u32,
            map_fd: fd(map),
            ..Default::default()
        };
        match bpf(cmd, &mut attr) {
            Ok(()) => done = count,
            // The map type has no batch operations: nothing was written (and the count was
            // left as it was sent).
            Err(e) if e.raw_os_error() == Some(ENOTSUPP) && cmd == BPF_MAP_UPDATE_BATCH => {
                return one_by_one(
                    map,
                    &keys[done * ks..],
                    values.map(|v| &v[done * vs..]),
                    count - done,
                );
            }
            Err(e) => {
                done += attr.count as usize;
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// The writes of an update batch, one `BPF_MAP_UPDATE_ELEM` each.
fn one_by_one(map: &MapData, keys: &[u8], values: Option<&[u8]>, count: usize) -> io::Result<()> {
    let ks = keys.len() / count;
    let values = values.unwrap_or_default();
    let vs = values.len() / count;
    for i in 0..count {
        let mut attr = ElemAttr {
            map_fd: fd(map),
            key: keys[i * ks..].as_ptr() as u64,
            value: values[i * vs..].as_ptr() as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    }
    Ok(())
}

/// Writes `count` key/value pairs.
pub(crate) fn update(map: &MapData, keys: &[u8], values: &[u8], count: usize) -> io::Result<()> {
    run(BPF_MAP_UPDATE_BATCH, map, keys, Some(values), count)
}
