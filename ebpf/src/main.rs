//! The xdpwall XDP filter: parse the frame, look up one rule bitmap per matcher dimension in the
//! active generation's tables, AND them, and apply the first matching rule's action (see
//! common/src/lib.rs for the table layout and filter/README.md for the semantics).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod filter;
#[cfg(target_arch = "bpf")]
mod parse;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
