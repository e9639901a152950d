//! pcap regression replay: every frame of a capture through the loaded filter
//! (BPF_PROG_TEST_RUN), with the kernel's verdict and cause (read from its counters), checked
//! against the reference model and, optionally, against a golden verdict file.
//!
//! Golden files are text, one line per frame: `FRAME<TAB>ACTION<TAB>CAUSE`, e.g.
//! `7<TAB>drop<TAB>rule 2`, `8<TAB>pass<TAB>default`, `9<TAB>skip<TAB>shorter than an Ethernet header`,
//! `10<TAB>drop<TAB>rule 0 rate-limited`. Lines starting with `#` are comments.
//!
//! Each frame is judged at its capture time, by kernel and model alike, so rate limits replay
//! the way the capture's timing makes them, every time.

use std::{collections::BTreeMap, fmt, path::Path};

use pktgen::pcap::Captured;
use serde::Serialize;
use xdpwall::{loader::Snapshot, Cause, LoadError, RuleSet};

use crate::verdict::{Checker, MIN_FRAME};

/// One frame's replay result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameResult {
    /// 1-based frame number in the capture.
    pub frame: usize,
    /// Frame length.
    pub len: usize,
    /// `pass`, `drop`, or `skip` (frames the kernel cannot run).
    pub action: String,
    /// Why, as the kernel's counters tell it: `rule N`, `rule N rate-limited`, `default`,
    /// `malformed`, `non-ip`.
    pub cause: String,
}

impl fmt::Display for FrameResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}\t{}", self.frame, self.action, self.cause)
    }
}

/// Replay failures.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Kernel side.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The kernel and the model disagree.
    #[error("frame {frame}: kernel {kernel}, model {model}")]
    ModelDisagrees {
        /// Frame number.
        frame: usize,
        /// Kernel result.
        kernel: String,
        /// Model result.
        model: String,
    },
    /// The counters did not move as one frame should move them.
    #[error("frame {0}: the kernel counters did not show exactly one cause")]
    Counters(usize),
}

/// What changed between two snapshots: the one cause a single frame produced.
fn cause_between(before: &Snapshot, after: &Snapshot) -> Option<Cause> {
    let mut causes = Vec::new();
    if after.default_hits.packets > before.default_hits.packets {
        causes.push(Cause::Default);
    }
    if after.malformed.packets > before.malformed.packets {
        causes.push(Cause::Malformed);
    }
    if after.non_ip.packets > before.non_ip.packets {
        causes.push(Cause::NonIp);
    }
    for (a, b) in after.rules.iter().zip(&before.rules) {
        if a.limited.packets > b.limited.packets {
            causes.push(Cause::RateLimited(a.index));
        } else if a.hits.packets > b.hits.packets {
            causes.push(Cause::Rule(a.index));
        }
    }
    (causes.len() == 1).then(|| causes[0])
}

/// Replays captured `frames` through a filter running `set`, each at its capture time.
pub fn replay(set: &RuleSet, frames: &[Captured]) -> Result<Vec<FrameResult>, ReplayError> {
    let mut checker = Checker::new(set.clone())?;
    let mut out = Vec::with_capacity(frames.len());
    let mut before = checker.filter.maps.snapshot()?;
    for (i, captured) in frames.iter().enumerate() {
        let frame = &captured.data[..];
        let n = i + 1;
        if frame.len() < MIN_FRAME {
            out.push(FrameResult {
                frame: n,
                len: frame.len(),
                action: "skip".into(),
                cause: "shorter than an Ethernet header".into(),
            });
            continue;
        }
        // Capture times are since the epoch: never 0 (which would mean the kernel's clock).
        let at = (captured.timestamp.as_nanos() as u64).max(1);
        let o = checker.run_at(frame, at)?;
        let after = checker.filter.maps.snapshot()?;
        let cause = cause_between(&before, &after).ok_or(ReplayError::Counters(n))?;
        before = after;
        let action = match o.kernel {
            Some(a) => a.to_string(),
            None => format!("xdp-code-{}", o.xdp_action),
        };
        if o.kernel != Some(o.model.action) || cause != o.model.cause {
            return Err(ReplayError::ModelDisagrees {
                frame: n,
                kernel: format!("{action} ({cause})"),
                model: format!("{} ({})", o.model.action, o.model.cause),
            });
        }
        out.push(FrameResult {
            frame: n,
            len: frame.len(),
            action,
            cause: cause.to_string(),
        });
    }
    Ok(out)
}

/// Renders results as a golden file.
pub fn golden_text(results: &[FrameResult], rules: &Path, pcap: &Path) -> String {
    let mut s = format!(
        "# xdpwall golden verdicts: rules {}, capture {}\n# frame\taction\tcause\n",
        file_name(rules),
        file_name(pcap)
    );
    for r in results {
        s.push_str(&format!("{r}\n"));
    }
    s
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Differences between results and a golden file, one line each, naming frame numbers.
pub fn diff_golden(results: &[FrameResult], golden: &str) -> Vec<String> {
    let expected: BTreeMap<usize, (String, String)> = golden
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split('\t');
            let n = it.next()?.trim().parse().ok()?;
            Some((n, (it.next()?.to_string(), it.next()?.to_string())))
        })
        .collect();
    let mut diffs = Vec::new();
    for r in results {
        match expected.get(&r.frame) {
            Some((a, c)) if *a == r.action && *c == r.cause => {}
            Some((a, c)) => diffs.push(format!(
                "frame {}: expected {a} ({c}), got {} ({})",
                r.frame, r.action, r.cause
            )),
            None => diffs.push(format!("frame {}: not in the golden file", r.frame)),
        }
    }
    for n in expected.keys() {
        if *n > results.len() {
            diffs.push(format!(
                "frame {n}: in the golden file but not in the capture"
            ));
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(frame: usize, action: &str, cause: &str) -> FrameResult {
        FrameResult {
            frame,
            len: 60,
            action: action.into(),
            cause: cause.into(),
        }
    }

    #[test]
    fn golden_round_trip_and_diffs_name_frames() {
        let results = vec![r(1, "pass", "rule 0"), r(2, "drop", "default")];
        let g = golden_text(&results, Path::new("a/rules.toml"), Path::new("a/f.pcap"));
        assert!(diff_golden(&results, &g).is_empty());
        let changed = vec![r(1, "pass", "rule 0"), r(2, "pass", "rule 1")];
        let d = diff_golden(&changed, &g);
        assert_eq!(
            d,
            vec!["frame 2: expected drop (default), got pass (rule 1)".to_string()]
        );
        let shorter = vec![r(1, "pass", "rule 0")];
        assert_eq!(diff_golden(&shorter, &g).len(), 1);
    }
}
