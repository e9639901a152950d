//! Builds the XDP object (ebpf/, binary `xdpwall-xdp`) with the nightly toolchain and the
//! project-local bpf-linker, so `include_bytes_aligned!` in src/loader.rs finds it in OUT_DIR.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().expect("filter/ has a parent");
    let linker = root.join("target/xdpwall-tools/bin/bpf-linker");
    println!("cargo:rerun-if-changed={}", linker.display());
    if !linker.exists() && std::env::var_os("AYA_BUILD_SKIP").is_none() {
        anyhow::bail!(
            "bpf-linker is missing at {}: run `cargo xtask setup` once \
             (`cargo xtask test` and `cargo xtask bench` do it for you)",
            linker.display()
        );
    }
    let ebpf = root.join("ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "xdpwall-ebpf",
            root_dir: ebpf.to_str().expect("UTF-8 path"),
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
