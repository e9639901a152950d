//! `cargo xtask vmtest`: the kernel matrix. Boots Debian's current kernels (see [`kernels`]) in
//! QEMU with virtme-ng, which shares this machine's root file system read-only with the guest,
//! so the test binaries built here run there unchanged. Inside each guest a generated script
//! runs the parts below one after another and writes each one's exit status and log into a
//! folder the guest may write; the host's own kernel runs the same script directly. The run
//! ends with one table, kernel by kernel, also written as JSON to `results/vmtest.json`.

mod kernels;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{require_root, root, setup, step};
use kernels::{Kernel, Suite, SUITES};

/// Options of `cargo xtask vmtest`.
#[derive(clap::Args)]
pub struct Args {
    /// Kernels, comma-separated: Debian suites (bullseye, bookworm, trixie, trixie-backports)
    /// and `host`. Default: all of them.
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Parts to run, comma-separated (default: all; see the table's columns).
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// Guests that run at once (each gets one virtual CPU).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Memory of each guest.
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Rule sets of the differential property per kernel (about 200 frames each; the test
    /// checks at least 75% of 220 each, so 130 guarantees 21,450 frames).
    #[arg(long, default_value_t = 130)]
    prop_cases: u32,
}

/// One part of the check: a test binary of the workspace (or the features probe), with test
/// name filters.
struct Part {
    name: &'static str,
    /// (package, test target); `None` runs `xdpwall features --json`.
    test: Option<(&'static str, &'static str)>,
    /// Test name filters (a test runs if its name contains any); empty: every test.
    filters: &'static [&'static str],
    /// Seconds it may take in a guest before it is stopped.
    limit: u32,
}

/// The parts, in the order they run.
const PARTS: &[Part] = &[
    // Program load: verifier instructions, load time, the kernel's features.
    Part {
        name: "load",
        test: None,
        filters: &[],
        limit: 300,
    },
    // Every matcher in both families, VLAN/fragments/extension headers, truncation, 1,024
    // rules, live swaps under load, the verifier budget.
    Part {
        name: "test_run",
        test: Some(("harness", "test_run")),
        filters: &[],
        limit: 1200,
    },
    Part {
        name: "corpus",
        test: Some(("harness", "replay")),
        filters: &[
            "corpus_replays_to_its_golden_verdicts",
            "a_changed_verdict_is_reported",
        ],
        limit: 600,
    },
    Part {
        name: "differential",
        test: Some(("harness", "differential")),
        filters: &[],
        limit: 1500,
    },
    // Set membership at prefix boundaries, a million entries loaded and swapped live, swaps
    // under traffic. (The 100,000-entry model comparison and the pinned shrink/grow cycle, a
    // few hundred thousand test_runs each, run on the host only: they took minutes under
    // software emulation and check user-space logic, not the kernel.)
    Part {
        name: "sets",
        test: Some(("harness", "sets")),
        filters: &[
            "set_membership_at_prefix_boundaries",
            "million_entry_sets_load_and_swap_live",
            "set_swaps_under_traffic",
        ],
        limit: 1200,
    },
    Part {
        name: "rate_limit",
        test: Some(("harness", "rate_limit")),
        filters: &[],
        limit: 600,
    },
    Part {
        name: "events",
        test: Some(("harness", "events")),
        filters: &[],
        limit: 600,
    },
    // Real UDP over veth in native and generic mode, live update, detach.
    Part {
        name: "veth",
        test: Some(("harness", "veth_e2e")),
        filters: &[],
        limit: 900,
    },
    Part {
        name: "corpus_wire",
        test: Some(("harness", "replay")),
        filters: &["corpus_on_the_wire"],
        limit: 900,
    },
    Part {
        name: "flood",
        test: Some(("harness", "veth_flood")),
        filters: &[],
        // Two million-entry rule sets compiled and swapped under emulation.
        limit: 900,
    },
    // Both traffic engines (the xdp engine where the kernel has live frames).
    Part {
        name: "engines",
        test: Some(("harness", "engines")),
        filters: &[],
        limit: 600,
    },
    // pktgen as a user drives it: `--engine auto` picks the engine the kernel supports.
    Part {
        name: "pktgen",
        test: Some(("pktgen", "cli")),
        filters: &[],
        limit: 600,
    },
    // xdpwall as a user drives it: attach, status, update, trace --pcap, detach.
    Part {
        name: "cli",
        test: Some(("xdpwall", "cli")),
        filters: &[],
        limit: 900,
    },
];

/// Where a kernel runs.
enum Target {
    Host,
    Guest(Kernel),
}

/// Runs the matrix; fails if any kernel fails any part.
pub fn run(a: Args) -> Result<()> {
    require_root("`cargo xtask vmtest`")?;
    let t0 = Instant::now();
    let wanted = select(&a.kernels)?;
    let parts: Vec<&Part> = if a.parts.is_empty() {
        PARTS.iter().collect()
    } else {
        a.parts
            .iter()
            .map(|n| {
                PARTS.iter().find(|p| p.name == n).with_context(|| {
                    format!(
                        "unknown part '{n}': one of {}",
                        PARTS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let guests: Vec<&'static Suite> = wanted.iter().filter_map(|w| *w).collect();
    let mut packages = setup::APT_PACKAGES.to_vec();
    if !guests.is_empty() {
        packages.extend(VM_PACKAGES);
    }
    setup::run_with(&packages)?;
    if !guests.is_empty() {
        udev()?;
    }
    let vng = if guests.is_empty() {
        None
    } else {
        Some(virtme_ng()?)
    };
    let binaries = build_tests()?;
    let kernels = kernels::fetch(&guests)?;
    let mut targets: Vec<Target> = Vec::new();
    let mut guest_iter = kernels.into_iter();
    for w in &wanted {
        targets.push(match w {
            None => Target::Host,
            Some(_) => Target::Guest(guest_iter.next().expect("one kernel per suite")),
        });
    }
    let out_root = root().join("target/xdpwall-vm/out");
    let _ = fs::remove_dir_all(&out_root);
    let accel = accel();
    step(&format!(
        "running {} part(s) on {} kernel(s), {} guest(s) at once ({accel})",
        parts.len(),
        targets.len(),
        a.jobs.max(1)
    ));
    // The host goes first, alone: guests would slow it down, and it is the quickest to fail.
    let results: Mutex<BTreeMap<usize, Value>> = Default::default();
    for (i, t) in targets.iter().enumerate() {
        if let Target::Host = t {
            let out = out_root.join("host");
            fs::create_dir_all(&out)?;
            let script = write_script(&out, &parts, &binaries, a.prop_cases)?;
            step("host: running the parts on this machine's kernel");
            let t = Instant::now();
            let st = Command::new("sh").arg(&script).status()?;
            let v = collect(
                &out,
                "host",
                None,
                "host",
                t.elapsed(),
                st.success(),
                &parts,
            );
            report_line(&v);
            results.lock().unwrap().insert(i, v);
        }
    }
    let queue: Mutex<Vec<(usize, &Kernel)>> = Mutex::new(
        targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Target::Guest(k) => Some((i, k)),
                Target::Host => None,
            })
            .rev()
            .collect(),
    );
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..a.jobs.max(1) {
            let (queue, results, parts, binaries, out_root, vng, a, accel) = (
                &queue, &results, &parts, &binaries, &out_root, &vng, &a, &accel,
            );
            handles.push(s.spawn(move || -> Result<()> {
                loop {
                    let Some((i, k)) = queue.lock().unwrap().pop() else {
                        return Ok(());
                    };
                    let out = out_root.join(k.suite.name);
                    fs::create_dir_all(&out)?;
                    let script = write_script(&out, parts, binaries, a.prop_cases)?;
                    step(&format!(
                        "{}: booting {} ({})",
                        k.suite.name, k.release, k.version
                    ));
                    let t = Instant::now();
                    let limit: u32 = parts.iter().map(|p| p.limit).sum::<u32>() + 300;
                    let ok = boot(
                        vng.as_ref().expect("virtme-ng for guests"),
                        k,
                        &out,
                        &script,
                        a,
                        accel,
                        Duration::from_secs(limit as u64),
                    )?;
                    let v = collect(&out, k.suite.name, Some(k), accel, t.elapsed(), ok, parts);
                    report_line(&v);
                    results.lock().unwrap().insert(i, v);
                }
            }));
        }
        for h in handles {
            h.join().expect("guest thread")?;
        }
        Ok(())
    })?;
    let rows: Vec<Value> = results.lock().unwrap().values().cloned().collect();
    let all_ok = rows.iter().all(|r| r["ok"] == true);
    print_table(&rows, &parts);
    let json = json!({
        "cpu": cpu_model(),
        "parts": parts.iter().map(|p| p.name).collect::<Vec<_>>(),
        "kernels": rows,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    let path = root().join("results/vmtest.json");
    fs::create_dir_all(path.parent().unwrap())?;
    fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!(
        "vmtest: {} of {} kernels passed in {:.0} s; JSON in {}, logs in {}",
        rows.iter().filter(|r| r["ok"] == true).count(),
        rows.len(),
        t0.elapsed().as_secs_f64(),
        path.display(),
        out_root.display()
    );
    if !all_ok {
        bail!("the kernel matrix is not green (logs of the failed parts are named above)");
    }
    Ok(())
}

/// The kernels asked for: `None` is the host.
fn select(names: &[String]) -> Result<Vec<Option<&'static Suite>>> {
    if names.is_empty() {
        let mut v: Vec<Option<&'static Suite>> = SUITES.iter().map(Some).collect();
        v.push(None);
        return Ok(v);
    }
    names
        .iter()
        .map(|n| {
            if n == "host" {
                return Ok(None);
            }
            SUITES
                .iter()
                .find(|s| s.name == n)
                .map(Some)
                .with_context(|| {
                    format!(
                        "unknown kernel '{n}': one of {}, host",
                        SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect()
}

/// Debian packages that booting guests needs (udev is installed separately, pinned).
const VM_PACKAGES: &[&str] = &["qemu-system-x86", "kmod", "busybox-static"];

/// udev, pinned to the installed systemd's version (a plain install would upgrade systemd).
/// Without it the guest's output ports never appear and virtme-ng exits silently.
fn udev() -> Result<()> {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "udev"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    let v = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "systemd"])
        .output()
        .context("dpkg-query")?;
    let v = String::from_utf8_lossy(&v.stdout).trim().to_string();
    if v.is_empty() {
        bail!("systemd is not installed, so udev cannot be pinned to it: install udev by hand");
    }
    setup::apt(&[&format!("udev={v}")])
}

/// virtme-ng, in a virtual environment of its own under target/xdpwall-tools.
fn virtme_ng() -> Result<PathBuf> {
    const VERSION: &str = "1.42";
    let venv = setup::tools_dir().join("vng-venv");
    let vng = venv.join("bin/vng");
    let ok = Command::new(&vng)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(VERSION));
    if ok {
        return Ok(vng);
    }
    step(&format!(
        "installing virtme-ng {VERSION} into {} (boots kernels with this machine's files)",
        venv.display()
    ));
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        setup::apt(&["python3-venv"])?;
        let st = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()?;
        if !st.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", &format!("virtme-ng=={VERSION}")])
        .status()?;
    if !st.success() {
        bail!("pip install virtme-ng=={VERSION} failed");
    }
    Ok(vng)
}

/// Builds the test binaries and the `xdpwall` binary, optimised: under software emulation a
/// debug build's own code (the reference model, frame building) ran several times slower
/// than the kernel work it checks. Returns (package, target) -> executable.
fn build_tests() -> Result<BTreeMap<(String, String), PathBuf>> {
    step("building the test binaries (release)");
    let mut child = Command::new("cargo")
        .current_dir(root())
        .args([
            "test",
            "--release",
            "--package",
            "xdpwall",
            "--package",
            "harness",
            "--package",
            "pktgen",
            "--tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut map = BTreeMap::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(target)) = (v["executable"].as_str(), v["target"]["name"].as_str())
        else {
            continue;
        };
        // package_id: "path+file:///.../filter#xdpwall@0.1.0", or ".../harness#0.1.0" when
        // the package is named like its folder.
        let pkg = v["package_id"]
            .as_str()
            .and_then(|id| id.rsplit_once('#'))
            .map(|(url, frag)| match frag.split_once('@') {
                Some((name, _)) => name,
                None => url.rsplit('/').next().unwrap_or(url),
            })
            .unwrap_or_default()
            .to_string();
        map.insert((pkg, target.to_string()), PathBuf::from(exe));
    }
    if !child.wait()?.success() {
        bail!("building the tests failed");
    }
    let st = Command::new("cargo")
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "--package",
            "xdpwall",
            "--bin",
            "xdpwall",
        ])
        .status()?;
    if !st.success() {
        bail!("building xdpwall failed");
    }
    Ok(map)
}

/// Writes the script that runs `parts` and records them in `out`; returns its path.
fn write_script(
    out: &Path,
    parts: &[&Part],
    bins: &BTreeMap<(String, String), PathBuf>,
    prop_cases: u32,
) -> Result<PathBuf> {
    let q = |p: &Path| format!("'{}'", p.display());
    let mut s = format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask vmtest`: runs each part, records its exit status and time.\n\
         out={out}\n\
         cd {root} || exit 1\n\
         export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         export RUST_BACKTRACE=1 XDPWALL_PROP_CASES={prop_cases}\n\
         uname -r > \"$out/kernel\"\n\
         : > \"$out/parts\"\n\
         part() {{\n  name=$1; limit=$2; shift 2\n  start=$(date +%s%N)\n  \
         timeout -k 10 \"$limit\" \"$@\" > \"$out/$name.log\" 2>&1\n  rc=$?\n  \
         echo \"$name $rc $(( ($(date +%s%N) - start) / 1000000 ))\" >> \"$out/parts\"\n}}\n",
        out = q(out),
        root = q(&root()),
    );
    for p in parts {
        let cmd = match p.test {
            None => format!(
                "{} features --json",
                q(&root().join("target/release/xdpwall"))
            ),
            Some((pkg, target)) => {
                let exe = bins
                    .get(&(pkg.to_string(), target.to_string()))
                    .with_context(|| format!("no test binary {pkg}/{target} was built"))?;
                let mut c = q(exe);
                for f in p.filters {
                    c.push(' ');
                    c.push_str(f);
                }
                // One test at a time (one CPU), and every test's own lines in the log (the
                // differential test says how many frames it checked).
                c.push_str(" --test-threads 1 --nocapture");
                c
            }
        };
        s.push_str(&format!("part {} {} {cmd}\n", p.name, p.limit));
    }
    s.push_str("echo done > \"$out/finished\"\n");
    let path = out.join("run.sh");
    fs::write(&path, s)?;
    Ok(path)
}

/// How guests are accelerated: KVM where it works, QEMU's software emulation where not.
/// `/dev/kvm` alone says little: here it is provided by `kvm_pvm`, which boots only
/// PVM-enabled guest kernels, so KVM is used only with the hardware modules loaded.
fn accel() -> String {
    let hw = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| Path::new("/sys/module").join(m).exists());
    if hw && Path::new("/dev/kvm").exists() {
        "kvm".into()
    } else {
        "tcg".into()
    }
}

/// Modules the guest does not need: udev would load them for the emulated hardware (4-6 s).
const BLACKLIST: &str = "modprobe.blacklist=kvm_amd,kvm_intel,kvm,ccp,sr_mod,ahci,libata,\
psmouse,iTCO_wdt,i2c_i801,lpc_ich,serio_raw,pcspkr,evdev,i6300esb";

/// Boots `k` and runs `script` in it; false when the guest did not finish the script.
fn boot(
    vng: &Path,
    k: &Kernel,
    out: &Path,
    script: &Path,
    a: &Args,
    accel: &str,
    limit: Duration,
) -> Result<bool> {
    let mut cmd = Command::new(vng);
    if accel != "kvm" {
        cmd.arg("--disable-kvm");
    }
    cmd.args(["--force-9p", "--cpus", "1", "--memory", &a.memory])
        .args(["--append", BLACKLIST])
        .arg("--rwdir")
        .arg(out)
        .arg("--rwdir")
        .arg(failures_dir()?)
        .arg("--run")
        .arg(&k.image)
        .arg("--exec")
        .arg(format!("sh {}", script.display()))
        .env("PATH", path_with(vng.parent().expect("venv bin")))
        .stdin(Stdio::null())
        .stdout(fs::File::create(out.join("console.log"))?)
        .stderr(fs::File::create(out.join("vng.log"))?);
    let mut child = cmd.spawn().context("starting virtme-ng")?;
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            let finished = out.join("finished").exists();
            if !finished {
                eprintln!(
                    "{}: the guest ended early ({st}); see {}",
                    k.suite.name,
                    out.join("vng.log").display()
                );
            }
            return Ok(finished);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("{}: stopped after {} s", k.suite.name, limit.as_secs());
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Where failing property cases are written (the guest may write there too).
fn failures_dir() -> Result<PathBuf> {
    let d = root().join("target/xdpwall-failures");
    fs::create_dir_all(&d)?;
    Ok(d)
}

/// PATH with `dir` first (virtme-ng calls its own helper scripts by name).
fn path_with(dir: &Path) -> String {
    match std::env::var("PATH") {
        Ok(p) => format!("{}:{p}", dir.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// Reads what a run left in `out` into one JSON row.
fn collect(
    out: &Path,
    name: &str,
    k: Option<&Kernel>,
    how: &str,
    took: Duration,
    finished: bool,
    parts: &[&Part],
) -> Value {
    let recorded = fs::read_to_string(out.join("parts")).unwrap_or_default();
    let mut rows = Vec::new();
    for p in parts {
        let line = recorded
            .lines()
            .find(|l| l.split_whitespace().next() == Some(p.name));
        let (exit, ms) = match line {
            Some(l) => {
                let w: Vec<&str> = l.split_whitespace().collect();
                (
                    w.get(1).and_then(|x| x.parse::<i64>().ok()),
                    w.get(2).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0),
                )
            }
            None => (None, 0),
        };
        let log = out.join(format!("{}.log", p.name));
        let text = fs::read_to_string(&log).unwrap_or_default();
        rows.push(json!({
            "part": p.name,
            "ok": exit == Some(0),
            "exit": exit,
            "seconds": ms as f64 / 1e3,
            "tests": test_counts(&text),
            "log": log.display().to_string(),
        }));
    }
    let features: Value = fs::read_to_string(out.join("load.log"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let frames = fs::read_to_string(out.join("differential.log"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let rest = l.strip_prefix("differential: ")?;
                let (_, after) = rest.split_once(", ")?;
                after.split_whitespace().next()?.parse::<u64>().ok()
            })
        });
    let verified = features["program"]["verified_instructions"].as_u64();
    let over = verified.is_some_and(|v| Some(v) > features["verifier_budget"].as_u64());
    let ok = finished && !over && rows.iter().all(|r| r["ok"] == true);
    json!({
        "kernel": name,
        "release": fs::read_to_string(out.join("kernel")).map(|s| s.trim().to_string()).unwrap_or_default(),
        "debian": k.map(|k| format!("{} ({})", k.suite.release, k.version)),
        "how": how,
        "ok": ok,
        "finished": finished,
        "seconds": took.as_secs_f64(),
        "features": features,
        "verified_instructions": verified,
        "over_budget": over,
        "differential_frames": frames,
        "parts": rows,
    })
}

/// Passed and failed tests in a test binary's output, added up.
fn test_counts(log: &str) -> Value {
    let (mut passed, mut failed) = (0u64, 0u64);
    for l in log.lines() {
        if let Some(r) = l.strip_prefix("test result: ") {
            passed += crate::test::count(r, "passed");
            failed += crate::test::count(r, "failed");
        }
    }
    json!({"passed": passed, "failed": failed})
}

fn report_line(v: &Value) {
    let failed: Vec<String> = v["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["ok"] != true)
        .map(|p| {
            format!(
                "{} ({})",
                p["part"].as_str().unwrap_or(""),
                p["log"].as_str().unwrap_or("")
            )
        })
        .collect();
    step(&format!(
        "{}: {} in {:.0} s{}",
        v["kernel"].as_str().unwrap_or(""),
        if v["ok"] == true {
            "all parts passed"
        } else {
            "FAILED"
        },
        v["seconds"].as_f64().unwrap_or(0.0),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    ));
}

fn print_table(rows: &[Value], parts: &[&Part]) {
    println!();
    println!(
        "{:<17} {:<24} {:>5} {:>9} {:>7} {:>8} {:>5} {:>7} {:>7}  parts",
        "kernel", "release", "how", "verified", "budget", "load ms", "live", "frames", "secs"
    );
    for r in rows {
        let f = &r["features"];
        let live = match f["xdp_live_frames"].as_bool() {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        let verified = match (
            r["verified_instructions"].as_u64(),
            f["program"].is_object(),
        ) {
            (Some(n), _) if r["over_budget"] == true => format!("{n}!"),
            (Some(n), _) => n.to_string(),
            (None, true) => "n/r".into(),
            (None, false) => "-".into(),
        };
        let budget = f["verifier_budget"]
            .as_u64()
            .map_or("-".into(), |b| b.to_string());
        let load = f["program"]["load_ms"]
            .as_f64()
            .map_or("-".into(), |m| format!("{m:.0}"));
        let frames = r["differential_frames"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string());
        let marks: Vec<String> = parts
            .iter()
            .map(|p| {
                let ok = r["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["part"] == p.name)
                    .is_some_and(|x| x["ok"] == true);
                format!("{}:{}", p.name, if ok { "ok" } else { "FAIL" })
            })
            .collect();
        println!(
            "{:<17} {:<24} {:>5} {:>9} {:>7} {:>8} {:>5} {:>7} {:>7.0}  {}",
            r["kernel"].as_str().unwrap_or(""),
            r["release"].as_str().unwrap_or(""),
            r["how"].as_str().unwrap_or(""),
            verified,
            budget,
            load,
            live,
            frames,
            r["seconds"].as_f64().unwrap_or(0.0),
            marks.join(" ")
        );
    }
    println!(
        "(verified: instructions the verifier processed, ! over the kernel's budget; n/r: the kernel does not report it (before 5.16); live: BPF_PROG_TEST_RUN live frames; frames: differential frames checked against the model)"
    );
}

/// The CPU's model name, for the record (rates and times differ 3x between machines). The
/// same as `xdpwall::features::cpu_model`, which xtask cannot call: it runs before the BPF
/// toolchain that building the filter crate needs is installed.
fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
