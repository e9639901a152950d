//! Peer tools the benchmarks measure beside xdpwall whenever a working one is on PATH. The
//! project never installs or builds them; it prints the version it used and says plainly why a
//! peer was skipped. xdp-tools must be 1.6 or later: Debian's 1.3.1 does not run on kernel 6.18.
//!
//! [`XdpFilter`] runs `xdp-filter` on the DUT with a deny list of source addresses (its default
//! `allow` policy: listed sources are dropped, the rest passes) and reads its own per-action
//! counters from its pinned `xdp_stats_map`, so it is judged like xdpwall is. [`PeerSender`]
//! runs the generators pktgen is compared with: `xdp-trafficgen` (xdp-tools) and `trafgen`
//! (netsniff-ng).

use std::{net::Ipv4Addr, os::unix::process::CommandExt, path::Path, process::Command};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{MapData, PerCpuArray},
    programs::{xdp::XdpLinkId, Xdp},
};
use xdpwall::{loader::BpffsHold, Mode};
use xdpwall_common::Counter;

use crate::topo::Endpoint;

/// Where xdp-filter pins its maps (in the host's bpffs).
const PIN_DIR: &str = "/sys/fs/bpf/xdp-filter";
/// libxdp's own folder in the bpffs, left behind empty by xdp-filter.
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";
/// Present while the benchmark has xdp-filter loaded (crash cleanup removes its pins).
const MARK: &str = "/run/xdpwall/peer-xdp-filter";

/// The version of an xdp-tools program on PATH (`tool sub --version`), or why it cannot be
/// used: absent, unreadable, or older than 1.6.
pub fn xdp_tools_version(tool: &str, sub: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .args([sub, "--version"])
        .output()
        .map_err(|_| {
            format!("{tool}: not on PATH (install xdp-tools 1.6 or later to compare; Debian's 1.3.1 does not run on this kernel)")
        })?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    usable_version(tool, &text)
}

/// Reads `TOOL version X.Y.Z ...` and accepts xdp-tools 1.6 or later.
fn usable_version(tool: &str, text: &str) -> Result<String, String> {
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .ok_or_else(|| format!("{tool}: no version in its --version output"))?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (1, 6) {
        return Err(format!(
            "{tool} {version}: too old (xdp-tools 1.6 or later runs on this kernel; Debian's 1.3.1 fails)"
        ));
    }
    Ok(format!("{tool} {version}"))
}

/// Runs `cmd`; a failure says `what` failed, with the command's stderr.
fn checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn xdp_filter(args: &[&str]) -> Result<()> {
    checked(
        Command::new("xdp-filter")
            .args(args)
            .env("LIBXDP_SKIP_DISPATCHER", "1"),
        &format!("xdp-filter {}", args.join(" ")),
    )
}

/// xdp-filter loaded for the DUT's interface, its program not attached until
/// [`XdpFilter::attach`]; unloaded (pins removed) on drop.
pub struct XdpFilter {
    netns: String,
    iface: String,
    mode: Mode,
    stats: Option<PerCpuArray<MapData, Counter>>,
    /// The pinned program and its attachment, once attached by [`XdpFilter::attach`].
    prog: Option<Xdp>,
    link: Option<XdpLinkId>,
    made_libxdp_dir: bool,
    _bpffs: BpffsHold,
}

impl XdpFilter {
    /// Loads xdp-filter on `dut` in `mode` (all features, allow policy), lists every address
    /// of `deny_src` as a source to drop, and detaches the program again (`xdp-filter load`
    /// always attaches), so that its runs can come and go like every other case's.
    pub fn load(dut: &Endpoint, mode: Mode, deny_src: &[Ipv4Addr]) -> Result<XdpFilter> {
        let bpffs = BpffsHold::take()?;
        if Path::new(PIN_DIR).exists() {
            bail!("{PIN_DIR} exists: xdp-filter is loaded elsewhere (unload it first)");
        }
        let mut peer = XdpFilter {
            netns: dut.netns.clone(),
            iface: dut.iface.clone(),
            mode,
            stats: None,
            prog: None,
            link: None,
            made_libxdp_dir: !Path::new(LIBXDP_DIR).exists(),
            _bpffs: bpffs,
        };
        std::fs::create_dir_all("/run/xdpwall")?;
        std::fs::write(MARK, format!("{} {}\n", dut.netns, dut.iface))?;
        let _ns = dut.enter()?;
        let m = match mode {
            Mode::Generic => "skb",
            _ => "native",
        };
        xdp_filter(&["load", "-m", m, &dut.iface])?;
        for a in deny_src {
            xdp_filter(&["ip", "-m", "src", &a.to_string()])?;
        }
        // Attached by libxdp through netlink: detached the same way.
        let off = if mode == Mode::Generic {
            "xdpgeneric"
        } else {
            "xdpdrv"
        };
        checked(
            Command::new("ip").args(["link", "set", "dev", &dut.iface, off, "off"]),
            &format!("detaching xdp-filter from {} (ip link)", dut.iface),
        )?;
        let map = MapData::from_pin(Path::new(PIN_DIR).join("xdp_stats_map"))
            .context("opening xdp-filter's xdp_stats_map")?;
        peer.stats = Some(
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(map))
                .context("xdp-filter's xdp_stats_map")?,
        );
        Ok(peer)
    }

    /// Kernel-measured ns per run of `frame` through the loaded xdp-filter program
    /// (BPF_PROG_TEST_RUN, `repeat` runs), `rounds` times.
    pub fn ns_per_packet(&self, frame: &[u8], repeat: u32, rounds: usize) -> Result<Vec<f64>> {
        let prog = self.pinned_program()?;
        Ok(pktgen::xdp::ns_per_run(&prog, frame, repeat, rounds)?)
    }

    /// xdp-filter's program, from its pin.
    fn pinned_program(&self) -> Result<Xdp> {
        let dir = Path::new(PIN_DIR).join("programs").join(&self.iface);
        let pin = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .next()
            .with_context(|| format!("no program pinned in {}", dir.display()))?
            .path();
        Xdp::from_pin(&pin, aya_obj::programs::XdpAttachType::Interface)
            .with_context(|| format!("opening {}", pin.display()))
    }

    /// Detaches the program from the interface; it stays loaded with its deny list.
    pub fn detach(&mut self) -> Result<()> {
        if let (Some(prog), Some(id)) = (self.prog.as_mut(), self.link.take()) {
            let _ns = crate::netns::NetnsGuard::enter(&self.netns)?;
            prog.detach(id).context("detaching xdp-filter")?;
        }
        Ok(())
    }

    /// Attaches xdp-filter's pinned program to the interface (a no-op while attached).
    pub fn attach(&mut self) -> Result<()> {
        if self.link.is_some() {
            return Ok(());
        }
        let _ns = crate::netns::NetnsGuard::enter(&self.netns)?;
        let (iface, mode) = (self.iface.clone(), self.mode.xdp_mode());
        let prog = self.program()?;
        self.link = Some(
            prog.attach(&iface, mode)
                .context("attaching xdp-filter's program again")?,
        );
        Ok(())
    }

    /// xdp-filter's program (opened from its pin the first time).
    pub fn program(&mut self) -> Result<&mut Xdp> {
        if self.prog.is_none() {
            self.prog = Some(self.pinned_program()?);
        }
        Ok(self.prog.as_mut().expect("set above"))
    }

    /// Frames xdp-filter dropped so far.
    pub fn dropped(&self) -> Result<u64> {
        let stats = self.stats.as_ref().context("xdp-filter is not loaded")?;
        // XDP_DROP is action 1.
        Ok(stats.get(&1, 0)?.iter().map(|c| c.packets).sum())
    }

    /// Frames xdp-filter judged so far (aborted + dropped + passed, summed over CPUs).
    pub fn judged(&self) -> Result<u64> {
        let stats = self.stats.as_ref().context("xdp-filter is not loaded")?;
        let mut n = 0;
        for action in 0..3u32 {
            n += stats
                .get(&action, 0)?
                .iter()
                .map(|c| c.packets)
                .sum::<u64>();
        }
        Ok(n)
    }
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        self.stats = None;
        if let Ok(_ns) = crate::netns::NetnsGuard::enter(&self.netns) {
            // Our own attachment ends with the program handle; xdp-filter's with its unload.
            if let (Some(prog), Some(id)) = (self.prog.as_mut(), self.link.take()) {
                let _ = prog.detach(id);
            }
            self.prog = None;
            // Also ends xdp-filter's own state if it never got as far as being detached.
            let _ = xdp_filter(&["unload", &self.iface]);
        }
        remove_pins(self.made_libxdp_dir);
    }
}

fn remove_pins(libxdp_dir: bool) {
    let _ = std::fs::remove_dir_all(PIN_DIR);
    if libxdp_dir {
        let _ = std::fs::remove_dir(LIBXDP_DIR);
    }
    let _ = std::fs::remove_file(MARK);
}

/// After a crashed benchmark: removes the pins of the xdp-filter it loaded (the interface went
/// with its namespace). Returns whether there was anything to remove.
pub fn clean_leftovers() -> bool {
    if !Path::new(MARK).exists() {
        return false;
    }
    remove_pins(true);
    let _ = xdpwall::loader::release_bpffs();
    true
}

/// A peer traffic generator running in the generator's namespace until stopped.
pub struct PeerSender {
    child: Option<std::process::Child>,
    _conf: Option<tempfile_path::TempPath>,
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl PeerSender {
    /// Starts `xdp-trafficgen udp` (IPv6 only) on `gen`'s interface with `threads` threads:
    /// frames of `size` bytes from `src` to `dst` (MACs from `frame`).
    pub fn xdp_trafficgen(
        gen: &Endpoint,
        frame: &pktgen::FrameSpec,
        src: std::net::Ipv6Addr,
        dst: std::net::Ipv6Addr,
        size: usize,
        threads: usize,
    ) -> Result<PeerSender> {
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let _ns = gen.enter()?;
        let child = Command::new("xdp-trafficgen")
            .args(["udp", "-m", &mac(frame.dst_mac), "-M", &mac(frame.src_mac)])
            .args(["-A", &src.to_string(), "-a", &dst.to_string()])
            .args([
                "-s",
                &size.to_string(),
                "-t",
                &threads.to_string(),
                &gen.iface,
            ])
            .env("LIBXDP_SKIP_DISPATCHER", "1")
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting xdp-trafficgen")?;
        Ok(PeerSender {
            child: Some(child),
            _conf: None,
        })
    }

    /// Starts `trafgen` on `gen`'s interface with `cpus` processes, sending exactly the bytes
    /// of `frame` over and over.
    pub fn trafgen(gen: &Endpoint, frame: &[u8], cpus: usize) -> Result<PeerSender> {
        let path = std::env::temp_dir().join(format!("xdpwall-trafgen-{}.cfg", std::process::id()));
        let bytes: Vec<String> = frame.iter().map(|b| format!("0x{b:02x}")).collect();
        std::fs::write(&path, format!("{{ {} }}\n", bytes.join(", ")))?;
        let conf = tempfile_path::TempPath(path);
        let _ns = gen.enter()?;
        let child = Command::new("trafgen")
            .args(["--dev", &gen.iface, "--conf"])
            .arg(&conf.0)
            .args(["--cpus", &cpus.to_string(), "--no-sock-mem"])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting trafgen")?;
        Ok(PeerSender {
            child: Some(child),
            _conf: Some(conf),
        })
    }

    /// Whether it is still running (a peer that failed to start exits at once).
    pub fn check_running(&mut self) -> Result<()> {
        let c = self.child.as_mut().context("stopped")?;
        if let Some(st) = c.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            bail!(
                "exited ({st}): {}",
                err.lines().last().unwrap_or("no message").trim()
            );
        }
        Ok(())
    }

    /// Stops it (SIGINT to its process group, as Ctrl-C would: trafgen forks one sender per
    /// CPU) and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.interrupt()
    }

    fn interrupt(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGINT) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while c.try_wait()?.is_none() {
                if std::time::Instant::now() > deadline {
                    // SAFETY: as above.
                    unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                    c.wait()?;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for PeerSender {
    fn drop(&mut self) {
        let _ = self.interrupt();
    }
}

/// `count` distinct IPv4 sources for a deny list: `first` and the addresses after it (the
/// benchmark traffic's sources), then 10.1.0.0 upwards.
pub fn deny_list(first: Ipv4Addr, traffic: usize, count: usize) -> Vec<Ipv4Addr> {
    let base = u32::from(first);
    let mut v: Vec<Ipv4Addr> = (0..traffic.min(count) as u32)
        .map(|i| Ipv4Addr::from(base + i))
        .collect();
    let fill = u32::from(Ipv4Addr::new(10, 1, 0, 0));
    v.extend((0..(count - v.len()) as u32).map(|i| Ipv4Addr::from(fill + i)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_xdp_tools_1_6_or_later_is_used() {
        let v = |t: &str| usable_version("xdp-filter", t);
        assert_eq!(
            v("xdp-filter version 1.6.3 using libbpf version 1.5.0"),
            Ok("xdp-filter 1.6.3".into())
        );
        assert_eq!(v("xdp-filter version 2.0"), Ok("xdp-filter 2.0".into()));
        assert!(v("xdp-filter version 1.3.1 using libbpf version 1.1.0")
            .unwrap_err()
            .contains("too old"));
        assert!(v("Command '--version' is unknown").is_err());
        assert!(xdp_tools_version("xdpwall-no-such-tool", "load")
            .unwrap_err()
            .contains("not on PATH"));
    }

    #[test]
    fn the_deny_list_starts_with_the_traffic_and_has_no_duplicates() {
        let l = deny_list(Ipv4Addr::new(10, 0, 0, 7), 200, 1024);
        assert_eq!(l.len(), 1024);
        assert_eq!(l[0], Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(l[199], Ipv4Addr::new(10, 0, 0, 206));
        assert_eq!(l[200], Ipv4Addr::new(10, 1, 0, 0));
        let set: std::collections::HashSet<_> = l.iter().collect();
        assert_eq!(set.len(), 1024);
        assert_eq!(deny_list(Ipv4Addr::new(10, 0, 0, 7), 200, 10).len(), 10);
    }
}
