//! Loading the XDP object (the kernel verifier runs here), attaching it to interfaces,
//! BPF_PROG_TEST_RUN.

use std::{fs, path::Path, time::Duration};

use aya::{
    programs::{
        links::FdLink, xdp::XdpLinkId, ProgramError, TestRun, TestRunOptions, Xdp, XdpMode,
    },
    Ebpf,
};
use serde::Serialize;
use xdpwall_common::{Config, Divisor, ABI_VERSION, DEFAULT_SAMPLE_DROPS, PROGRAM_NAME};

use crate::rules::RuleSet;

use super::*;

/// The XDP object, built by ebpf/build.rs.
static OBJECT: &[u8] = xdpwall_ebpf::FILTER;

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// In the driver (`xdpdrv`); fails if the driver has no XDP support.
    Native,
    /// In the generic network stack path (`xdpgeneric`); works everywhere, slower.
    Generic,
    /// Native, falling back to generic with a message.
    Auto,
}

impl Mode {
    /// The kernel attach flag: generic is `xdpgeneric` (skb), native and auto try the driver.
    pub fn xdp_mode(self) -> XdpMode {
        if self == Mode::Generic {
            XdpMode::Skb
        } else {
            XdpMode::Driver
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
            Mode::Auto => "auto",
        })
    }
}

/// A loaded (not necessarily attached) filter.
pub struct Filter {
    ebpf: Ebpf,
    /// The filter's maps.
    pub maps: Maps,
    link: Option<XdpLinkId>,
}

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    /// The XDP action code (`XDP_DROP` = 1, `XDP_PASS` = 2).
    pub xdp_action: u32,
    /// Kernel-measured time per run.
    pub duration: Duration,
}

/// Kernel-side size figures of the loaded program.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProgramStats {
    /// Instructions after the verifier's rewrites.
    pub xlated_instructions: u32,
    /// Instructions the verifier processed (explored) to prove the program safe.
    pub verified_instructions: Option<u32>,
    /// Bytes of JITed machine code.
    pub jited_bytes: u32,
    /// Nanoseconds spent in the program while BPF run-time statistics were on
    /// (`BPF_ENABLE_STATS` / `kernel.bpf_stats_enabled`); 0 if they never were.
    pub run_time_ns: u64,
    /// Runs counted while they were on.
    pub run_count: u64,
}

impl Filter {
    /// Loads the XDP object into the kernel (runs the verifier) with an empty rule set that
    /// passes everything.
    pub fn load() -> Result<Filter, LoadError> {
        Filter::load_inner(None)
    }

    /// Like [`Filter::load`], and pins the maps under [`PIN_ROOT`]/`name` at once so other
    /// processes can steer the filter; [`Filter::pin_link`] later pins the attachment.
    /// On error nothing stays pinned.
    pub fn load_pinned(name: &str) -> Result<Filter, LoadError> {
        let _lock = BpffsLock::take()?;
        ensure_bpffs()?;
        let dir = pin_dir(name);
        if dir.exists() {
            return Err(LoadError::AlreadyRunning {
                name: name.to_string(),
                dir,
            });
        }
        fs::create_dir_all(&dir).map_err(pin_err("creating", &dir))?;
        let r = Filter::load_inner(Some(&dir));
        if r.is_err() {
            let _ = remove_pins_locked(name);
        }
        r
    }

    fn load_inner(pin: Option<&Path>) -> Result<Filter, LoadError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| {
            if is_eperm(&e) {
                LoadError::Permission {
                    what: "creating BPF maps".into(),
                }
            } else {
                LoadError::Object(Box::new(e))
            }
        })?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| LoadError::Missing(format!("program {PROGRAM_NAME}")))?
            .try_into()
            .map_err(|e| LoadError::Program {
                what: "reading the program's type",
                source: Box::new(e),
            })?;
        prog.load().map_err(|e| match &e {
            // Loading an XDP program takes CAP_NET_ADMIN besides CAP_BPF: EPERM, no log.
            _ if errno_of(&e) == Some(libc::EPERM) => LoadError::Permission {
                what: "loading the XDP program".into(),
            },
            // Without CAP_PERFMON the verifier refuses the packet-pointer arithmetic every
            // parser does: say which capability, not the whole log.
            ProgramError::LoadError { verifier_log, .. }
                if !has_capability(CAP_PERFMON) && !has_capability(CAP_SYS_ADMIN) =>
            {
                LoadError::Permission {
                    what: format!(
                        "loading the XDP program (without CAP_PERFMON the verifier refuses it: {})",
                        verifier_log
                            .to_string()
                            .lines()
                            .rev()
                            .find(|l| {
                                !l.trim().is_empty()
                                    && !["processed", "stack depth", "verification time"]
                                        .iter()
                                        .any(|p| l.starts_with(p))
                            })
                            .unwrap_or("")
                            .trim()
                    ),
                }
            }
            ProgramError::LoadError { verifier_log, .. } => LoadError::Verifier {
                log: verifier_log.to_string(),
            },
            _ if is_eperm(&e) => LoadError::Permission {
                what: "loading the XDP program".into(),
            },
            _ => LoadError::Program {
                what: "loading the XDP program",
                source: Box::new(e),
            },
        })?;
        let mut maps = Maps::from_source(|name| {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| LoadError::Missing(format!("map {name}")))?;
            if let Some(dir) = pin {
                let path = dir.join(name);
                map.pin(&path)
                    .map_err(|source| LoadError::PinObject { path, source })?;
            }
            Ok(map)
        })?;
        // Pinned maps can be steered by other processes while packets flow; private ones only
        // see packets once attached.
        maps.live = pin.is_some();
        if pin.is_none() {
            maps.addr_used = Some(Default::default());
        }
        maps.set_config(Config {
            active_gen: 0,
            abi: ABI_VERSION,
            snap_len: DEFAULT_SNAP_LEN,
            drop_every: Divisor::new(DEFAULT_SAMPLE_DROPS),
            ..Config::default()
        })?;
        maps.apply(&RuleSet::default())?;
        Ok(Filter {
            ebpf,
            maps,
            link: None,
        })
    }

    /// Loads the filter and applies `set`.
    pub fn with_rules(set: &RuleSet) -> Result<Filter, LoadError> {
        let mut f = Filter::load()?;
        f.maps.apply(set)?;
        Ok(f)
    }

    fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in Filter::load")
    }

    fn program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in Filter::load")
    }

    /// Size figures the kernel reports for the loaded program.
    pub fn program_stats(&self) -> Result<ProgramStats, LoadError> {
        let info = self.program().info().map_err(|source| LoadError::Program {
            what: "reading the program's info",
            source: Box::new(source),
        })?;
        Ok(ProgramStats {
            xlated_instructions: info.size_translated().unwrap_or(0) / 8,
            verified_instructions: info.verified_instruction_count(),
            jited_bytes: info.size_jitted(),
            run_time_ns: info.run_time().as_nanos() as u64,
            run_count: info.run_count(),
        })
    }

    /// Runs one frame through the loaded program with BPF_PROG_TEST_RUN, `repeat` times.
    /// Frames shorter than an Ethernet header cannot be injected (the kernel refuses them).
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<RunResult, LoadError> {
        let mut out = vec![0u8; frame.len() + 512];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        let r = self
            .program()
            .test_run(opts)
            .map_err(|e| LoadError::TestRun(Box::new(e)))?;
        Ok(RunResult {
            xdp_action: r.return_value,
            duration: r.duration,
        })
    }

    /// Attaches to `iface`. With [`Mode::Auto`], native is tried first and generic is used
    /// (and reported in the returned mode) when the driver refuses.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> Result<Mode, LoadError> {
        if if_index(iface).is_none() {
            return Err(LoadError::NoInterface(iface.to_string()));
        }
        // From the first attach on, packets may be mid-run during any update.
        self.maps.live = true;
        let try_mode = |f: &mut Filter, m: Mode| {
            f.program_mut().attach(iface, m.xdp_mode()).map(|id| f.link = Some(id)).map_err(|e| {
                let hint = if errno_of(&e) == Some(libc::EBUSY) {
                    Some("another XDP program is attached: `xdpwall status` names xdpwall's filters, `xdpwall detach NAME` removes one")
                } else if is_eperm(&e) {
                    Some("permission denied: run as root, or with CAP_NET_ADMIN")
                } else if m == Mode::Native {
                    Some("the driver may lack native XDP: try --mode generic or auto")
                } else {
                    None
                };
                LoadError::Attach {
                    iface: iface.to_string(),
                    mode: m,
                    hint,
                    source: Box::new(e),
                }
            })
        };
        let used = match mode {
            Mode::Auto => match try_mode(self, Mode::Native) {
                Ok(()) => Mode::Native,
                Err(e) => {
                    eprintln!(
                        "xdpwall: native XDP unavailable on {iface} ({}); using generic mode",
                        full_chain(&e)
                    );
                    try_mode(self, Mode::Generic)?;
                    Mode::Generic
                }
            },
            m => {
                try_mode(self, m)?;
                m
            }
        };
        Ok(used)
    }

    /// Detaches from the interface of the last [`Filter::attach`] (call in the namespace it
    /// was attached in); the program and its maps stay loaded, ready to attach again. A filter
    /// that is not attached is left as it is.
    pub fn detach(&mut self) -> Result<(), LoadError> {
        if let Some(id) = self.link.take() {
            self.program_mut()
                .detach(id)
                .map_err(|e| LoadError::Program {
                    what: "detaching the filter",
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    /// Pins the attachment under [`PIN_ROOT`]/`name`/link, so it outlives this process
    /// (`xdpwall detach` or [`remove_pins`] ends it). Call after [`Filter::attach`].
    pub fn pin_link(&mut self, name: &str) -> Result<(), LoadError> {
        let dir = pin_dir(name);
        let id = self.link.take().ok_or(LoadError::NotAttached)?;
        let link = self
            .program_mut()
            .take_link(id)
            .map_err(|e| LoadError::Program {
                what: "taking the link",
                source: Box::new(e),
            })?;
        let fd_link = FdLink::try_from(link).map_err(LoadError::NoLink)?;
        let path = dir.join(LINK_PIN);
        fd_link
            .pin(&path)
            .map_err(|source| LoadError::PinObject { path, source })?;
        Ok(())
    }
}

/// CAP_SYS_ADMIN's number.
const CAP_SYS_ADMIN: u32 = 21;
/// CAP_PERFMON's number.
const CAP_PERFMON: u32 = 38;

/// Whether this process has capability `cap` in its effective set (from /proc/self/status).
fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|eff| eff & (1 << cap) != 0)
}

/// The index of `iface` in the current thread's network namespace (sysfs would show the
/// namespace it was mounted in instead).
pub fn if_index(iface: &str) -> Option<u32> {
    let c = std::ffi::CString::new(iface).ok()?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}
