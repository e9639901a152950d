//! On the host: builds this package's XDP binaries for the bpf target (nightly toolchain,
//! project-local bpf-linker) so that src/lib.rs can hand their bytes to user space. When cargo
//! builds this package for the bpf target itself (the nested build), there is nothing to do.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_CFG_TARGET_ARCH");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        return Ok(());
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().expect("ebpf/ has a parent");
    let linker = root.join("target/xdpwall-tools/bin/bpf-linker");
    println!("cargo:rerun-if-changed={}", linker.display());
    // The programs compile the shared map layout too: a change there must rebuild them (the
    // nested build is invisible to this package's own dependency tracking).
    println!(
        "cargo:rerun-if-changed={}",
        root.join("common/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("common/Cargo.toml").display()
    );
    if !linker.exists() && std::env::var_os("AYA_BUILD_SKIP").is_none() {
        anyhow::bail!(
            "bpf-linker is missing at {}: run `cargo xtask setup` once \
             (`cargo xtask test` and `cargo xtask bench` do it for you)",
            linker.display()
        );
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "xdpwall-ebpf",
            root_dir: &manifest,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
