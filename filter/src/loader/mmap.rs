//! Shared mappings of the `BPF_F_MMAPABLE` arrays the tables are copied into.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{MapData, MapError};

use super::*;

/// A shared mapping of a `BPF_F_MMAPABLE` array: element `i` lives at `i * stride`.
pub(super) struct MmapArray {
    ptr: *mut u8,
    len: usize,
    stride: usize,
}

impl MmapArray {
    pub(super) fn new(
        map: &MapData,
        entries: u32,
        value_size: usize,
        name: &'static str,
    ) -> Result<MmapArray, LoadError> {
        let stride = value_size.div_ceil(8) * 8;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (entries as usize * stride).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's value area; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(LoadError::Map {
                map: name,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "mmap",
                    io_error: std::io::Error::last_os_error(),
                }),
            });
        }
        Ok(MmapArray {
            ptr: ptr as *mut u8,
            len,
            stride,
        })
    }

    /// The first word of element `index`.
    pub(super) fn first_word(&self, index: u32) -> u32 {
        assert!((index as usize + 1) * self.stride <= self.len);
        // SAFETY: in bounds (asserted above); the element is at least 4 bytes, 8-aligned.
        unsafe { std::ptr::read_volatile(self.ptr.add(index as usize * self.stride) as *const u32) }
    }

    /// Copies `values` into consecutive elements from `first`.
    pub(super) fn write<V: aya::Pod>(&mut self, first: u32, values: &[V]) {
        let size = std::mem::size_of::<V>();
        assert!(size <= self.stride && (first as usize + values.len()) * self.stride <= self.len);
        if size == self.stride {
            // Packed: one copy (the block index alone is 1 MiB per generation).
            // SAFETY: in bounds (asserted above); V is Pod; the kernel side only reads.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    values.as_ptr() as *const u8,
                    self.ptr.add(first as usize * self.stride),
                    std::mem::size_of_val(values),
                );
            }
            return;
        }
        for (i, v) in values.iter().enumerate() {
            // SAFETY: in bounds (asserted above); V is Pod; the kernel side only reads.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    v as *const V as *const u8,
                    self.ptr.add((first as usize + i) * self.stride),
                    size,
                );
            }
        }
    }

    /// [`MmapArray::write`] for `u32` elements in 8-byte slots, widened so that a port table
    /// (65,537 entries) is one copy instead of one per entry.
    pub(super) fn write_u32s(&mut self, first: u32, values: &[u32]) {
        if self.stride == 8 && cfg!(target_endian = "little") {
            // The u32 is the low half of its slot; the high half is padding.
            let wide: Vec<u64> = values.iter().map(|&v| v as u64).collect();
            self.write(first, &wide);
        } else {
            self.write(first, values);
        }
    }
}

impl Drop for MmapArray {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

// SAFETY: the mapping is owned memory; it is only written through &mut self.
unsafe impl Send for MmapArray {}
// SAFETY: shared references cannot write or read through the pointer.
unsafe impl Sync for MmapArray {}
