//! `xdpwall apply CONFIG`: makes the running filters match a [`Config`]. Idempotent: a
//! filter whose interface, mode, rules and sampling are as configured is left untouched;
//! changed rules or sampling are updated live and atomically (the generation flip of
//! [`crate::Maps::apply`]); a changed interface or mode re-attaches; filters that an earlier
//! `apply` of the same configuration file attached, and that the file no longer names, are
//! detached. Filters attached by hand, or by another configuration file, are never touched
//! unless this configuration names them.
//!
//! Everything is checked before anything changes: every rule file is read and compiled and
//! every interface looked up in its namespace, so a configuration with one bad entry changes
//! nothing and says which entry is wrong.

use std::{path::Path, time::Instant};

use crate::{
    compile::compile,
    loader::{if_index, pinned_filters, Sampling},
    Maps, Mode, RuleSet,
};

use super::{
    attach_pinned,
    config::{Config, FilterEntry},
    detach, fingerprint, is_running, lock, Record,
};

/// What `apply` did to one filter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum Change {
    /// It was not running: attached.
    Attached {
        /// The mode the kernel took.
        mode: Mode,
    },
    /// Its rules or sampling changed: updated live (no packet saw a mix).
    Updated {
        /// The generation now active.
        generation: u32,
    },
    /// Its interface, namespace or mode changed: detached and attached again.
    Reattached {
        /// The mode the kernel took.
        mode: Mode,
    },
    /// Running as configured: untouched.
    Unchanged,
    /// Attached by an earlier `apply` of this file, no longer in it: detached.
    Detached,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Attached { mode } => write!(f, "attached ({mode} mode)"),
            Change::Updated { generation } => write!(f, "updated live (generation {generation})"),
            Change::Reattached { mode } => write!(f, "re-attached ({mode} mode)"),
            Change::Unchanged => write!(f, "unchanged"),
            Change::Detached => write!(f, "detached (no longer configured)"),
        }
    }
}

/// Why a configuration was not applied (or only in part).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An entry is unusable; nothing was changed.
    #[error("{path}: {entry}: {message}; nothing was changed")]
    Invalid {
        /// The configuration file.
        path: String,
        /// The entry, with its line.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// Changing a filter failed; the filters before it in the list were changed already.
    #[error("{entry}: {message} (filters listed before it were applied: {done})")]
    Failed {
        /// The entry, with its line.
        entry: String,
        /// What failed.
        message: String,
        /// The changes made before.
        done: String,
    },
}

/// One entry, checked: its rules read and compiled.
struct Checked<'a> {
    entry: &'a FilterEntry,
    set: RuleSet,
    fingerprint: String,
}

/// Runs `f` in the network namespace `netns` (on a thread of its own) or here.
fn in_netns<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    match netns {
        None => f(),
        Some(ns) => std::thread::scope(|s| {
            s.spawn(|| {
                crate::netns::enter(ns).map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err("the namespace thread panicked".into()))
        }),
    }
}

fn text(e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

/// Checks every entry of `config` (rule files, interfaces) without changing anything.
fn check(config: &Config) -> Result<Vec<Checked<'_>>, ApplyError> {
    let invalid = |entry: &FilterEntry, message: String| ApplyError::Invalid {
        path: config.path.display().to_string(),
        entry: entry.label(),
        message,
    };
    let mut checked = Vec::new();
    for e in &config.filters {
        let set = RuleSet::from_file(&e.rules).map_err(|x| invalid(e, text(x)))?;
        if set.rules.is_empty() && !e.allow_empty {
            return Err(invalid(
                e,
                format!(
                    "{} has no rules (it would {} every packet by the default policy; set \
                     allow_empty = true if that is what you want)",
                    e.rules.display(),
                    set.default
                ),
            ));
        }
        compile(&set).map_err(|x| invalid(e, format!("{}: {}", e.rules.display(), text(x))))?;
        let iface = e.iface.clone();
        in_netns(e.netns.as_deref(), move || {
            if_index(&iface)
                .map(|_| ())
                .ok_or_else(|| format!("interface {iface} does not exist (see `ip link`)"))
        })
        .map_err(|m| invalid(e, m))?;
        checked.push(Checked {
            fingerprint: fingerprint(&set, e.sampling),
            entry: e,
            set,
        });
    }
    Ok(checked)
}

/// Makes the running filters match `config` (see the module docs); returns what happened to
/// each filter, configured ones first, in file order.
pub fn apply(config: &Config) -> Result<Vec<(String, Change)>, ApplyError> {
    let checked = check(config)?;
    let source = std::fs::canonicalize(&config.path).unwrap_or_else(|_| config.path.clone());
    let mut done: Vec<(String, Change)> = Vec::new();
    let failed = |entry: String, message: String, done: &[(String, Change)]| ApplyError::Failed {
        entry,
        message,
        done: if done.is_empty() {
            "none".into()
        } else {
            done.iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    for c in &checked {
        let e = c.entry;
        let change = apply_one(c, &source).map_err(|m| failed(e.label(), m, &done))?;
        done.push((e.name.clone(), change));
    }
    for name in pinned_filters() {
        if config.filters.iter().any(|e| e.name == name) {
            continue;
        }
        if Record::read(&name).is_some_and(|r| r.config.as_deref() == Some(source.as_path())) {
            detach(&name).map_err(|x| failed(format!("filter '{name}'"), text(x), &done))?;
            done.push((name, Change::Detached));
        }
    }
    Ok(done)
}

fn record(c: &Checked<'_>, source: &Path, attached_mode: Mode, secs: f64) -> Record {
    Record {
        iface: c.entry.iface.clone(),
        netns: c.entry.netns.clone(),
        mode: c.entry.mode,
        attached_mode,
        rules: c.entry.rules.clone(),
        fingerprint: c.fingerprint.clone(),
        config: Some(source.to_path_buf()),
        updated_unix: Record::now(),
        update_seconds: secs,
    }
}

fn set_sampling(maps: &mut Maps, sampling: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((drops, passes)) = sampling {
        let s = maps.sampling().map_err(text)?;
        maps.set_sampling(Sampling {
            drops,
            passes,
            snap_len: s.snap_len,
        })
        .map_err(text)?;
    }
    Ok(())
}

fn attach_new(c: &Checked<'_>, source: &Path) -> Result<Mode, String> {
    let e = c.entry;
    let t = Instant::now();
    let (iface, set, mode, name) = (e.iface.clone(), &c.set, e.mode, e.name.clone());
    let used = in_netns(e.netns.as_deref(), move || {
        attach_pinned(&iface, set, mode, &name).map_err(text)
    })?;
    let mut maps = Maps::open_pinned(&e.name).map_err(text)?;
    set_sampling(&mut maps, e.sampling)?;
    record(c, source, used, t.elapsed().as_secs_f64())
        .write(&e.name)
        .map_err(|x| format!("writing {}: {x}", Record::path(&e.name).display()))?;
    Ok(used)
}

fn apply_one(c: &Checked<'_>, source: &Path) -> Result<Change, String> {
    let e = c.entry;
    if !is_running(&e.name) {
        return attach_new(c, source).map(|mode| Change::Attached { mode });
    }
    let old = Record::read(&e.name);
    let moved = old
        .as_ref()
        .is_some_and(|r| r.iface != e.iface || r.netns != e.netns || r.mode != e.mode);
    if moved {
        detach(&e.name).map_err(text)?;
        return attach_new(c, source).map(|mode| Change::Reattached { mode });
    }
    let _lock = lock(&e.name).map_err(|x| format!("taking the update lock: {x}"))?;
    let mut maps = Maps::open_pinned(&e.name).map_err(text)?;
    let same = old.as_ref().is_some_and(|r| r.fingerprint == c.fingerprint)
        && maps
            .active_rules()
            .is_ok_and(|(_, rules)| rules.len() == c.set.rules.len());
    if same {
        // Named by this file now: this file detaches it once it no longer names it.
        if let Some(mut r) = old.filter(|r| r.config.as_deref() != Some(source)) {
            r.config = Some(source.to_path_buf());
            r.write(&e.name)
                .map_err(|x| format!("writing {}: {x}", Record::path(&e.name).display()))?;
        }
        return Ok(Change::Unchanged);
    }
    // Running, but not as configured (or attached by hand: no record). Live update.
    let t = Instant::now();
    let r = maps.apply(&c.set).map_err(text)?;
    set_sampling(&mut maps, e.sampling)?;
    let attached_mode = old.as_ref().map_or(e.mode, |r| r.attached_mode);
    record(c, source, attached_mode, t.elapsed().as_secs_f64())
        .write(&e.name)
        .map_err(|x| format!("writing {}: {x}", Record::path(&e.name).display()))?;
    Ok(Change::Updated {
        generation: r.generation,
    })
}
