//! What the running kernel supports, probed at run time (never inferred from the version
//! number: distributions backport features), and what loading the filter costs on it.
//!
//! `xdpwall features` prints this; `cargo xtask vmtest` collects it from every kernel of the
//! matrix. The filter itself needs only what 5.10 has (ring buffers, per-CPU and mmapable
//! arrays, BPF-to-BPF calls, bounded loops); the rest is reported so that tools built on it
//! (the `xdp` traffic engine, the benchmark's program-time phase) can degrade with a clear
//! line where a kernel lacks something.

use std::time::Instant;

use aya::{
    maps::MapType,
    programs::{ProgramType, TestRun, TestRunAttrs, TestRunOptions, Xdp},
    sys::{is_helper_supported, is_map_supported, BpfHelper},
    Ebpf,
};
use serde::Serialize;

use crate::Filter;

/// Verifier budgets: the most instructions the verifier may process to prove the filter safe,
/// per kernel line of the matrix (verifiers prune differently, so the counts differ: 6.1 needs
/// about 2.5 times what 6.18 does, 7.3 about 1.4 times). Each is about 1.3 times the count
/// measured when it was set; a change that grows verification past it fails the test_run
/// suite and `cargo xtask vmtest`. The kernel's own limit is 1,000,000.
pub const VERIFIER_BUDGETS: &[(&str, u32)] = &[
    // Measured 2026-12-01 with the IPv6 blocks (processed instructions): 6.1.0-57 458,273;
    // 6.12.118 113,151; 6.18.44 118,563; 7.3.4 176,361. 5.10 does not report the count.
    // (2026-11-30, before the IPv4 lists: 387,088; 146,419; 155,635; 212,518.)
    ("6.1.", 500_000),
    ("6.12.", 200_000),
    ("6.18.", 200_000),
    ("7.", 280_000),
];

/// The budget of a kernel not in [`VERIFIER_BUDGETS`].
pub const VERIFIER_BUDGET_OTHER: u32 = 600_000;

/// Translated (post-verifier) instructions the program may have on any kernel: a budget that
/// also holds where the kernel does not report the verifier's count (before 5.16).
pub const XLATED_BUDGET: u32 = 3_600;

/// The verifier budget of the kernel with release `release` (`uname -r`).
pub fn verifier_budget(release: &str) -> u32 {
    VERIFIER_BUDGETS
        .iter()
        .find(|(prefix, _)| release.starts_with(prefix))
        .map_or(VERIFIER_BUDGET_OTHER, |&(_, b)| b)
}

/// The kernel's answers, one field per feature.
#[derive(Clone, Debug, Serialize)]
pub struct Features {
    /// `uname -r`.
    pub kernel: String,
    /// BPF ring buffers (5.8): verdict events. Without them the filter cannot load.
    pub ring_buffer: bool,
    /// `bpf_xdp_load_bytes` (5.18). Not used by the filter (it copies sampled frames by direct
    /// packet access on every kernel); reported for comparison with other tools.
    pub xdp_load_bytes: bool,
    /// BPF_PROG_TEST_RUN with live frames (5.18): what the `xdp` traffic engine needs.
    pub xdp_live_frames: bool,
    /// The verifier's processed-instruction count in the program info (5.16).
    pub verified_insns_reported: bool,
    /// The filter program as this kernel loads it.
    pub program: Option<ProgramLoad>,
    /// This kernel's [`verifier_budget`], for readers of the JSON.
    pub verifier_budget: u32,
    /// Why the filter did not load, if it did not.
    pub load_error: Option<String>,
}

/// What loading the filter program cost.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramLoad {
    /// Instructions the verifier processed, where the kernel reports it (5.16+).
    pub verified_instructions: Option<u32>,
    /// Instructions after the verifier's rewrites.
    pub xlated_instructions: u32,
    /// Bytes of JITed code.
    pub jited_bytes: u32,
    /// Wall time of the whole load (object, maps, verifier, the empty rule set), ms.
    pub load_ms: f64,
}

impl Features {
    /// The features of this kernel, one line each, for people.
    pub fn lines(&self) -> Vec<String> {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut v = vec![
            format!("kernel                 {}", self.kernel),
            format!(
                "ring buffers           {} (verdict events; required)",
                yes(self.ring_buffer)
            ),
            format!(
                "live frames            {} (pktgen's xdp engine; 5.18+, else it falls back to afpacket)",
                yes(self.xdp_live_frames)
            ),
            format!(
                "bpf_xdp_load_bytes     {} (not needed: sampled frames are copied directly)",
                yes(self.xdp_load_bytes)
            ),
            format!(
                "verifier count in info {} (5.16+)",
                yes(self.verified_insns_reported)
            ),
        ];
        match (&self.program, &self.load_error) {
            (Some(p), _) => v.push(format!(
                "filter program         loads in {:.1} ms: {} verified, {} translated instructions, {} bytes JITed",
                p.load_ms,
                p.verified_instructions
                    .map_or("(count not reported)".to_string(), |n| n.to_string()),
                p.xlated_instructions,
                p.jited_bytes
            )),
            (None, Some(e)) => v.push(format!("filter program         does NOT load: {e}")),
            (None, None) => {}
        }
        v
    }
}

/// Probes the running kernel and loads the filter once (needs root).
pub fn probe() -> Features {
    let t = Instant::now();
    let (program, load_error) = match Filter::load().and_then(|f| {
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        f.program_stats().map(|s| ProgramLoad {
            verified_instructions: s.verified_instructions,
            xlated_instructions: s.xlated_instructions,
            jited_bytes: s.jited_bytes,
            load_ms,
        })
    }) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(format!("{:#}", anyhow::Error::new(e)))),
    };
    let kernel = kernel_release();
    Features {
        verifier_budget: verifier_budget(&kernel),
        kernel,
        ring_buffer: is_map_supported(MapType::RingBuf).unwrap_or(false),
        xdp_load_bytes: is_helper_supported(ProgramType::Xdp, BpfHelper::BPF_FUNC_xdp_load_bytes)
            .unwrap_or(false),
        xdp_live_frames: xdp_live_frames(),
        verified_insns_reported: program
            .as_ref()
            .is_some_and(|p| p.verified_instructions.is_some()),
        program,
        load_error,
    }
}

/// The CPU's model name (`model name` in /proc/cpuinfo), or `unknown CPU`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether BPF_PROG_TEST_RUN runs XDP programs on live frames (5.18+).
///
/// Probed with the counting drop program and one frame, so nothing leaves the program. The
/// batch size is set on purpose: kernels before 5.18 ignore the live-frames flag alone but
/// refuse the attribute that carries the batch size (EINVAL).
pub fn xdp_live_frames() -> bool {
    let Ok(mut ebpf) = Ebpf::load(xdpwall_ebpf::GEN) else {
        return false;
    };
    let Some(prog) = ebpf
        .program_mut("xdpwall_count_drop")
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
    else {
        return false;
    };
    if prog.load().is_err() {
        return false;
    }
    let frame = [0u8; 64];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(&frame);
    opts.repeat = 1;
    opts.attrs = TestRunAttrs::new().xdp_live_frames(1);
    prog.test_run(opts).is_ok()
}
