//! The BPF filesystem: pinning a filter mounts one at /sys/fs/bpf when there is none, and
//! removing the last pin unmounts it again, so a run leaves the machine as it found it. A
//! bpffs that holds someone else's pins is left alone. Needs root; fails (never skips) without.

use std::path::Path;

use xdpwall::{loader::remove_pins, Filter};

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn bpffs_mounted() -> bool {
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Entries of /sys/fs/bpf besides the kernel's own iterators.
fn foreign_entries() -> Vec<String> {
    std::fs::read_dir("/sys/fs/bpf")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "maps.debug" && n != "progs.debug")
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_last_unpin_unmounts_the_bpffs_xdpwall_mounted() {
    let was_mounted = bpffs_mounted();
    let foreign = was_mounted && !foreign_entries().is_empty();
    if was_mounted && !foreign {
        // An empty bpffs: start as on a fresh machine, and put it back at the end.
        // SAFETY: constant C string.
        assert_eq!(unsafe { libc::umount(c"/sys/fs/bpf".as_ptr()) }, 0);
    }
    let name = format!("test-bpffs-{}", std::process::id());
    let f = Filter::load_pinned(&name).expect("load and pin (root needed)");
    assert!(bpffs_mounted());
    assert!(Path::new("/sys/fs/bpf/xdpwall").join(&name).is_dir());
    drop(f);
    assert!(remove_pins(&name).unwrap());
    assert!(!Path::new("/sys/fs/bpf/xdpwall").exists());
    if foreign {
        assert!(bpffs_mounted(), "someone else's bpffs must stay");
    } else {
        assert!(!bpffs_mounted(), "the bpffs xdpwall mounted is gone");
        assert!(!Path::new("/run/xdpwall/bpffs-mounted").exists());
        if was_mounted {
            // SAFETY: constant C strings, no data argument.
            let r = unsafe {
                libc::mount(
                    c"bpf".as_ptr(),
                    c"/sys/fs/bpf".as_ptr(),
                    c"bpf".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            assert_eq!(r, 0);
        }
    }
}
