//! BPF map batch commands (`BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`,
//! `BPF_MAP_LOOKUP_BATCH`), which aya does not wrap: a million-entry table is written in a few
//! syscalls instead of a million.
//!
//! Keys and values are passed as raw bytes, `count` elements back to back (for per-CPU maps a
//! value is one `round_up(size, 8)` slot per possible CPU).

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::MapData;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

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

/// Deletes `count` keys (all must exist).
pub(crate) fn delete(map: &MapData, keys: &[u8], count: usize) -> io::Result<()> {
    run(BPF_MAP_DELETE_BATCH, map, keys, None, count)
}

/// Every key of a hash map, `key_size` bytes each, back to back.
pub(crate) fn keys(map: &MapData, key_size: usize, value_size: usize) -> io::Result<Vec<u8>> {
    let mut chunk = 1 << 16;
    let mut keys = Vec::new();
    let mut values = Vec::new();
    // The batch token is opaque: a bucket index for hash maps, a key for others.
    let mut token_in = vec![0u8; key_size.max(8)];
    let mut token_out = vec![0u8; key_size.max(8)];
    let mut first = true;
    loop {
        let have = keys.len();
        keys.resize(have + chunk * key_size, 0);
        values.resize(chunk * value_size.next_multiple_of(8), 0);
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token_in.as_ptr() as u64 },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys[have..].as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd(map),
            ..Default::default()
        };
        let r = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        keys.truncate(have + attr.count as usize * key_size);
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            // One bucket holds more entries than the chunk: retry with a bigger one.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                chunk *= 2;
                continue;
            }
            Err(e) => return Err(e),
        }
        first = false;
        std::mem::swap(&mut token_in, &mut token_out);
    }
}
