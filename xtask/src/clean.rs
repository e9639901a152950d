//! Removes leftovers of a crashed run: every xdpwall filter (pins and attachments) and every
//! namespace the harness created. The same as `xdpwall detach --all` plus `harness topo down --all`.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{require_root, root, step};

/// Runs the cleanup through the project's own binaries.
pub fn run() -> Result<()> {
    require_root("cleaning up")?;
    step("detaching every xdpwall filter and removing the harness's namespaces");
    for (pkg, bin, args) in [
        ("xdpwall", "xdpwall", &["detach", "--all"][..]),
        ("harness", "harness", &["topo", "down", "--all"][..]),
    ] {
        let st = Command::new("cargo")
            .current_dir(root())
            .args(["run", "--quiet", "--package", pkg, "--bin", bin, "--"])
            .args(args)
            .status()?;
        if !st.success() {
            bail!("{bin} {} failed", args.join(" "));
        }
    }
    Ok(())
}
