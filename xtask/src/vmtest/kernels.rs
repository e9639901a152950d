//! The kernels of the matrix: Debian's current kernel of each suite, resolved from the suite's
//! `linux-image-amd64` metapackage (never a hard-coded version), downloaded with `apt-get
//! download` through a private apt configuration (the machine's own sources and state are left
//! alone), unpacked with `dpkg -x` and cached under `target/xdpwall-vm/kernels/`.
//!
//! The archive is the one the machine's own apt sources name (its `.../debian` and
//! `.../debian-security` URIs); `XDPWALL_DEBIAN_MIRROR` and `XDPWALL_DEBIAN_SECURITY_MIRROR`
//! override them.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context, Result};

use crate::{root, step};

/// A Debian suite whose kernel is part of the matrix.
pub struct Suite {
    /// The name users pass to `--kernels` (the suite's codename).
    pub name: &'static str,
    /// What a reader knows it by.
    pub release: &'static str,
    /// The apt suites its kernel can come from (the newest version among them wins).
    apt_suites: &'static [&'static str],
}

/// The matrix, oldest first (the host's own kernel runs too, as `host`).
pub const SUITES: &[Suite] = &[
    Suite {
        name: "bullseye",
        release: "Debian 11",
        apt_suites: &["bullseye", "bullseye-security"],
    },
    Suite {
        name: "bookworm",
        release: "Debian 12",
        apt_suites: &["bookworm", "bookworm-security"],
    },
    Suite {
        name: "trixie",
        release: "Debian 13",
        apt_suites: &["trixie", "trixie-security"],
    },
    Suite {
        name: "trixie-backports",
        release: "Debian 13 backports",
        apt_suites: &["trixie-backports"],
    },
];

/// A kernel unpacked and ready to boot.
pub struct Kernel {
    /// The suite it came from.
    pub suite: &'static Suite,
    /// The metapackage's version (e.g. 6.1.192-3).
    pub version: String,
    /// The kernel release (`uname -r`, e.g. 6.1.0-57-amd64).
    pub release: String,
    /// The image to boot; its modules lie in the same unpacked tree.
    pub image: PathBuf,
}

fn vm_dir() -> PathBuf {
    root().join("target/xdpwall-vm")
}

/// How the private apt configuration is passed to apt-get and apt-cache.
struct Apt {
    opts: Vec<String>,
}

impl Apt {
    fn new() -> Result<Apt> {
        let dir = vm_dir().join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "parts", "prefs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let (main, security) = mirrors()?;
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        if !Path::new(keyring).exists() {
            crate::setup::apt(&["debian-archive-keyring"])?;
        }
        let mut list = String::new();
        for s in SUITES {
            for a in s.apt_suites {
                let uri = if a.ends_with("-security") {
                    &security
                } else {
                    &main
                };
                list.push_str(&format!("deb [signed-by={keyring}] {uri} {a} main\n"));
            }
        }
        let sources = dir.join("sources.list");
        let changed = fs::read_to_string(&sources).ok().as_deref() != Some(list.as_str());
        fs::write(&sources, list)?;
        let d = |p: &str| dir.join(p).display().to_string();
        let opts = [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("parts")),
            ("Dir::Etc::Preferences", d("prefs/none")),
            ("Dir::Etc::PreferencesParts", d("prefs")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            ("APT::Architecture", "amd64".into()),
            ("Acquire::Languages", "none".into()),
        ]
        .into_iter()
        .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
        .collect();
        let apt = Apt { opts };
        // The index is refreshed once a day (or when the sources changed): "current" kernels
        // move with security updates, but a run an hour later needs no new download.
        let stamp = dir.join("updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < Duration::from_secs(24 * 3600));
        if changed || !fresh {
            step("refreshing the private Debian package index for the kernels (about 15 s)");
            apt.run("apt-get", &["update", "-q"], None)?;
            fs::write(&stamp, "")?;
        }
        Ok(apt)
    }

    fn run(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> Result<String> {
        let mut cmd = Command::new(tool);
        cmd.args(&self.opts).args(args);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {tool} {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "{tool} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The machine's Debian archive and security archive, from its apt sources.
fn mirrors() -> Result<(String, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut uris = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    for f in files {
        let name = f.display().to_string();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if line.starts_with("deb ") {
                line.split_whitespace()
                    .filter(|w| w.contains("://"))
                    .collect()
            } else {
                continue;
            };
            uris.extend(
                words
                    .into_iter()
                    .map(|w| w.trim_end_matches('/').to_string()),
            );
        }
    }
    let main = env("XDPWALL_DEBIAN_MIRROR")
        .or_else(|| uris.iter().find(|u| u.ends_with("/debian")).cloned());
    let Some(main) = main else {
        bail!(
            "no Debian archive among this machine's apt sources: set XDPWALL_DEBIAN_MIRROR \
             (and XDPWALL_DEBIAN_SECURITY_MIRROR) to the archive's URI"
        );
    };
    let security = env("XDPWALL_DEBIAN_SECURITY_MIRROR")
        .or_else(|| {
            uris.iter()
                .find(|u| u.ends_with("/debian-security"))
                .cloned()
        })
        .unwrap_or_else(|| format!("{main}-security"));
    Ok((main, security))
}

/// Whether Debian version `a` is newer than `b` (dpkg decides).
fn newer(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// The newest version of `linux-image-amd64` in any of `suite`'s apt suites.
fn resolve(apt: &Apt, suite: &Suite) -> Result<String> {
    let madison = apt.run("apt-cache", &["madison", "linux-image-amd64"], None)?;
    let mut best: Option<String> = None;
    for line in madison.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, version, source] = cols[..] else {
            continue;
        };
        let in_suite = suite
            .apt_suites
            .iter()
            .any(|a| source.contains(&format!(" {a}/main ")));
        if in_suite && best.as_deref().is_none_or(|b| newer(version, b)) {
            best = Some(version.to_string());
        }
    }
    best.with_context(|| format!("no linux-image-amd64 in {}", suite.apt_suites.join(", ")))
}

/// The packages that make up the kernel of metapackage `version`: every `linux-*` dependency
/// pinned to that same version, followed from the metapackage down (7.x splits its image into
/// binary, modules and base packages; older kernels are one package).
fn packages(apt: &Apt, version: &str) -> Result<Vec<String>> {
    let mut todo = vec!["linux-image-amd64".to_string()];
    let mut found: Vec<String> = Vec::new();
    while let Some(p) = todo.pop() {
        if found.contains(&p) {
            continue;
        }
        let show = apt.run("apt-cache", &["show", &format!("{p}={version}")], None)?;
        let depends = show
            .lines()
            .find_map(|l| l.strip_prefix("Depends:"))
            .unwrap_or("");
        for dep in depends.split(',').map(str::trim) {
            if dep.contains('|') {
                continue;
            }
            if let Some((name, rest)) = dep.split_once(' ') {
                if name.starts_with("linux-") && rest.trim() == format!("(= {version})") {
                    todo.push(name.to_string());
                }
            }
        }
        found.push(p);
    }
    Ok(found)
}

/// Makes sure the current kernel of every suite in `wanted` is unpacked; returns them in the
/// order given. Older cached versions of those suites are removed.
pub fn fetch(wanted: &[&'static Suite]) -> Result<Vec<Kernel>> {
    let apt = Apt::new()?;
    let base = vm_dir().join("kernels");
    let debs = vm_dir().join("debs");
    fs::create_dir_all(&debs)?;
    let mut kernels = Vec::new();
    for suite in wanted {
        let version = resolve(&apt, suite)?;
        let dir = base.join(format!(
            "{}_{}",
            suite.name,
            version.replace(['~', '+'], "-")
        ));
        let done = dir.join(".unpacked");
        if !done.exists() {
            let pkgs = packages(&apt, &version)?;
            step(&format!(
                "downloading the {} kernel {version} ({})",
                suite.name,
                pkgs.join(", ")
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let specs: Vec<String> = pkgs.iter().map(|p| format!("{p}={version}")).collect();
            let mut args = vec!["download", "-q"];
            args.extend(specs.iter().map(String::as_str));
            apt.run("apt-get", &args, Some(&debs))?;
            for p in &pkgs {
                let deb = fs::read_dir(&debs)?
                    .flatten()
                    .map(|e| e.path())
                    .find(|f| {
                        f.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{p}_")))
                    })
                    .with_context(|| format!("{p} was not downloaded"))?;
                let st = Command::new("dpkg")
                    .arg("-x")
                    .arg(&deb)
                    .arg(&dir)
                    .status()?;
                if !st.success() {
                    bail!("unpacking {} failed", deb.display());
                }
                fs::remove_file(&deb)?;
            }
            fs::write(&done, &version)?;
        }
        // Older versions of this suite's kernel are of no further use.
        if let Ok(rd) = fs::read_dir(&base) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&format!("{}_", suite.name)) && e.path() != dir {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let (release, image) = find_image(&dir)?;
        kernels.push(Kernel {
            suite,
            version,
            release,
            image,
        });
    }
    Ok(kernels)
}

/// The kernel image in an unpacked tree (`boot/vmlinuz-REL`, or `usr/lib/modules/REL/vmlinuz`
/// in the split 7.x packages) and its release.
fn find_image(dir: &Path) -> Result<(String, PathBuf)> {
    if let Ok(rd) = fs::read_dir(dir.join("boot")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(rel) = n.strip_prefix("vmlinuz-") {
                return Ok((rel.to_string(), e.path()));
            }
        }
    }
    for mods in ["usr/lib/modules", "lib/modules"] {
        if let Ok(rd) = fs::read_dir(dir.join(mods)) {
            for e in rd.flatten() {
                let image = e.path().join("vmlinuz");
                if image.exists() {
                    return Ok((e.file_name().to_string_lossy().into_owned(), image));
                }
            }
        }
    }
    bail!("no kernel image in {}", dir.display())
}
