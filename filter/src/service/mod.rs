//! Running filters as a service: the operations every command shares (attach and pin,
//! detach, the per-filter update lock), the record of how each running filter was set up
//! ([`Record`]), the declarative configuration ([`config`]) that `xdpwall apply` and
//! `xdpwall serve` make the running state match ([`apply`]), and the Prometheus metrics
//! ([`metrics`]).

pub mod apply;
pub mod config;
pub mod metrics;

use std::{
    fs::File,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::{
    loader::{pin_dir, remove_pins},
    Filter, LoadError, Mode, RuleSet,
};

/// Where xdpwall keeps its run-time files: locks, records, marks.
pub const RUN_DIR: &str = "/run/xdpwall";

/// The lock file that serialises updates of the filter `name` between processes.
pub fn lock_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.lock"))
}

/// Takes the update lock of the filter `name` (held until the file is dropped).
pub fn lock(name: &str) -> std::io::Result<File> {
    std::fs::create_dir_all(RUN_DIR)?;
    let f = File::create(lock_path(name))?;
    f.lock()?;
    Ok(f)
}

/// Loads the filter with `set`, attaches it to `iface` (in the calling thread's network
/// namespace) in `mode` and pins it as `name`, so it outlives the process. On error nothing
/// stays pinned or attached. Returns the mode used.
pub fn attach_pinned(
    iface: &str,
    set: &RuleSet,
    mode: Mode,
    name: &str,
) -> Result<Mode, LoadError> {
    let mut filter = Filter::load_pinned(name)?;
    let result = (|| {
        filter.maps.apply(set)?;
        let used = filter.attach(iface, mode)?;
        filter.pin_link(name)?;
        Ok(used)
    })();
    if result.is_err() {
        drop(filter);
        let _ = detach(name);
    }
    result
}

/// Detaches the filter `name`, removes its pins, its lock file and its record; false when
/// none was running.
pub fn detach(name: &str) -> Result<bool, LoadError> {
    let was = remove_pins(name)?;
    // A process still waiting on the old lock file gets it, then finds no filter: harmless.
    let _ = std::fs::remove_file(lock_path(name));
    let _ = std::fs::remove_file(Record::path(name));
    Ok(was)
}

/// Whether a filter called `name` is pinned (running, or left by a crash).
pub fn is_running(name: &str) -> bool {
    pin_dir(name).exists()
}

/// How a running filter was set up and last updated, kept in `/run/xdpwall/state/NAME.json`
/// by every command that attaches or updates one (and removed by detach). `apply` compares
/// it with the configuration; the metrics report its update time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The interface.
    pub iface: String,
    /// The network namespace of the interface (None: xdpwall's own).
    pub netns: Option<String>,
    /// The mode asked for.
    pub mode: Mode,
    /// The mode the kernel took.
    pub attached_mode: Mode,
    /// The rule file.
    pub rules: PathBuf,
    /// Fingerprint of the rules and sampling in force ([`fingerprint`]).
    pub fingerprint: String,
    /// The configuration file (canonical path) whose `xdpwall apply` (or `serve`) attached
    /// the filter: applying that file again detaches it once the file no longer names it.
    /// None: attached by hand, left to the operator.
    pub config: Option<PathBuf>,
    /// When the rules were last written (Unix seconds).
    pub updated_unix: f64,
    /// How long compiling and writing them took, seconds.
    pub update_seconds: f64,
}

impl Record {
    /// The record's file for filter `name`.
    pub fn path(name: &str) -> PathBuf {
        Path::new(RUN_DIR)
            .join("state")
            .join(format!("{name}.json"))
    }

    /// The record of filter `name`, if there is a readable one.
    pub fn read(name: &str) -> Option<Record> {
        let text = std::fs::read_to_string(Record::path(name)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record of filter `name` (atomically: a reader sees the old or the new one).
    pub fn write(&self, name: &str) -> std::io::Result<()> {
        let path = Record::path(name);
        let dir = path.parent().expect("records live in a folder");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}.json.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path)
    }

    /// The time now, for [`Record::updated_unix`].
    pub fn now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }
}

/// A fingerprint of a rule set and sampling (FNV-1a, 64 bits, over the rule set's canonical
/// text): equal fingerprints mean nothing to update.
pub fn fingerprint(set: &RuleSet, sampling: Option<(u32, u32)>) -> String {
    let mut text = set.to_toml();
    if let Some((d, p)) = sampling {
        text.push_str(&format!("\n# sampling {d} {p}\n"));
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_rules_and_sampling_only() {
        let a = RuleSet::parse("[[rule]]\naction = \"drop\"\nsrc = \"10.0.0.0/8\"\n", "a").unwrap();
        let same = RuleSet::parse(
            "# a comment\n[[rule]]\nsrc = \"10.0.0.0/8\"\naction = \"drop\"\n",
            "b",
        )
        .unwrap();
        let other =
            RuleSet::parse("[[rule]]\naction = \"drop\"\nsrc = \"10.0.0.0/9\"\n", "c").unwrap();
        assert_eq!(fingerprint(&a, None), fingerprint(&same, None));
        assert_ne!(fingerprint(&a, None), fingerprint(&other, None));
        assert_ne!(fingerprint(&a, None), fingerprint(&a, Some((1000, 0))));
        assert_eq!(fingerprint(&a, None).len(), 16);
    }
}
