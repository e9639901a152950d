//! The BPF map batch update command (`BPF_MAP_UPDATE_BATCH`), which aya does not wrap: a
//! table of many entries is written in a few syscalls instead of one per entry.
//!
//! Keys and values are passed as raw bytes, `count` elements back to back (for per-CPU maps a
//! value is one `round_up(size, 8)` slot per possible CPU).

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::MapData;

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

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

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: attr points at buffers the caller keeps alive for `attr.count` elements.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
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

/// Writes `count` key/value pairs.
pub(crate) fn update(map: &MapData, keys: &[u8], values: &[u8], count: usize) -> io::Result<()> {
    run(BPF_MAP_UPDATE_BATCH, map, keys, Some(values), count)
}
