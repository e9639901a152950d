//! Bootstrap, idempotent: everything the eBPF build and the tests need that a fresh machine
//! (rustup with stable and nightly) lacks. Each step checks first and says what it does.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::{root, step};

/// bpf-linker version known to build with aya 0.14 here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the tests use (tcpdump and tshark read back the pcaps the tools write;
/// netsniff-ng brings trafgen, the peer of pktgen's afpacket engine; prometheus scrapes
/// `xdpwall serve` in the service test; util-linux's setpriv and systemd's systemd-analyze
/// are on every Debian system).
pub const APT_PACKAGES: &[&str] = &["tcpdump", "tshark", "netsniff-ng", "prometheus"];
/// Debian packages the generator benchmark uses (trafgen). The filter benchmark needs none,
/// which keeps its first run on a fresh machine short.
pub const GENBENCH_PACKAGES: &[&str] = &["netsniff-ng"];

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Runs every bootstrap step.
pub fn run() -> Result<()> {
    run_with(APT_PACKAGES)
}

/// The toolchain steps (rust-src, bpf-linker) and the Debian `packages` given.
pub fn run_with(packages: &[&str]) -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    apt(packages)?;
    step("setup complete");
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context(
        "the nightly toolchain is needed for the eBPF build (`rustup toolchain install nightly`)",
    )?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    step("installing rust-src for the nightly toolchain (eBPF builds core from source)");
    status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The folder bpf-linker is installed into (`.cargo/config.toml` points the bpf target at it).
pub fn tools_dir() -> std::path::PathBuf {
    root().join("target/xdpwall-tools")
}

fn bpf_linker() -> Result<()> {
    let tools = tools_dir();
    let bin = tools.join("bin/bpf-linker");
    if bin.exists() {
        if let Ok(v) = output(Command::new(&bin).arg("--version")) {
            if v.contains(BPF_LINKER_VERSION) {
                return Ok(());
            }
        }
        step("the installed bpf-linker does not run (nightly updated?): reinstalling");
    }
    // bpf-linker must link the same LLVM major as rustc; nightly ships that LLVM as a shared
    // library with the full C API, so no LLVM package is needed.
    let verbose = output(Command::new("rustc").args(["+nightly", "--version", "--verbose"]))?;
    let major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("nightly rustc reports no LLVM version")?
        .to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let libdir = Path::new(sysroot.trim()).join("lib");
    let lib = std::fs::read_dir(&libdir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("libLLVM.so.{major}"))
                    || n.starts_with(&format!("libLLVM-{major}"))
            })
        })
        .with_context(|| format!("no libLLVM of version {major} in {}", libdir.display()))?;
    let prefix = tools.join("llvm");
    let plib = prefix.join("lib");
    std::fs::create_dir_all(&plib)?;
    for name in [
        "libLLVM.so".to_string(),
        lib.file_name().unwrap().to_string_lossy().into_owned(),
    ] {
        let link = plib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link)?;
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM {major} into {} (about a minute, once)",
        tools.display()
    ));
    status(
        Command::new("cargo")
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
                "--root",
            ])
            .arg(&tools)
            .env("LLVM_PREFIX", &prefix)
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
}

/// Installs missing Debian packages (apt-get update first, once).
pub fn apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::require_root("installing Debian packages")?;
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    wait_for_locks(&APT_LOCKS.map(Path::new), APT_LOCK_WAIT)?;
    // apt waits too, should another process take the lock between our check and its start.
    let wait = format!("DPkg::Lock::Timeout={}", APT_LOCK_WAIT.as_secs());
    status(Command::new("apt-get").args(["-o", &wait, "update", "-q"]))?;
    status(
        Command::new("apt-get")
            .args([
                "-o",
                &wait,
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
            ])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The locks apt and dpkg take (fcntl write locks on these files).
const APT_LOCKS: [&str; 3] = [
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
];

/// How long setup waits for another apt or dpkg (a fresh cloud machine runs unattended
/// upgrades at boot) before it gives up.
const APT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether another process holds a write lock on `path` (apt and dpkg use fcntl locks).
fn locked(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return false;
    };
    // SAFETY: a zeroed flock is a valid argument; the fd is open.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = libc::F_WRLCK as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    // F_GETLK only asks: it takes no lock.
    // SAFETY: valid fd and flock.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut l) };
    r == 0 && l.l_type != libc::F_UNLCK as libc::c_short
}

/// Waits until none of `locks` is held, saying once that it waits; fails after `limit`.
fn wait_for_locks(locks: &[&Path], limit: std::time::Duration) -> Result<()> {
    let t = std::time::Instant::now();
    let mut said = false;
    while let Some(held) = locks.iter().find(|p| locked(p)) {
        if !said {
            step(&format!(
                "waiting for another apt or dpkg to finish ({} is locked; up to {} s)",
                held.display(),
                limit.as_secs()
            ));
            said = true;
        }
        if t.elapsed() > limit {
            bail!(
                "{} stayed locked for {} s: another apt or dpkg is still running (see `ps -C apt-get,dpkg,unattended-upgr`)",
                held.display(),
                limit.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    /// Another process holds the lock for a while: the wait ends when it lets go.
    #[test]
    fn waits_for_a_held_lock() {
        let p = std::env::temp_dir().join(format!("xtask-lock-{}", std::process::id()));
        std::fs::write(&p, "").unwrap();
        assert!(!super::locked(&p));
        // fcntl locks are per process: a child holds it (flock(1) takes flock, not fcntl).
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1.5)",
            ])
            .arg(&p)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(super::locked(&p));
        let t = std::time::Instant::now();
        super::wait_for_locks(&[Path::new(&p)], Duration::from_secs(30)).unwrap();
        assert!(
            t.elapsed() > Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!(!super::locked(&p));
        child.wait().unwrap();
        assert!(super::wait_for_locks(&[Path::new(&p)], Duration::from_secs(1)).is_ok());
        std::fs::remove_file(&p).unwrap();
    }
}
