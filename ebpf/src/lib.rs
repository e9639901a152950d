//! On the host, the built XDP objects (see build.rs): [`FILTER`] holds the `xdpwall` filter
//! program and its maps, [`GEN`] the live-frames traffic generator and the counting drop
//! baseline. On the bpf target this library is empty; the programs are this package's binaries.
#![no_std]

#[cfg(not(target_arch = "bpf"))]
mod objects {
    /// Keeps the object bytes 32-byte aligned, as the ELF parser expects.
    #[repr(C, align(32))]
    struct Aligned<B: ?Sized>(B);

    static FILTER_ALIGNED: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/xdpwall-xdp")));
    static GEN_ALIGNED: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/xdpwall-gen")));

    /// The filter object (program `xdpwall`).
    pub static FILTER: &[u8] = &FILTER_ALIGNED.0;
    /// The generator object (programs `xdpwall_gen` and `xdpwall_count_drop`).
    pub static GEN: &[u8] = &GEN_ALIGNED.0;
}

#[cfg(not(target_arch = "bpf"))]
pub use objects::{FILTER, GEN};
