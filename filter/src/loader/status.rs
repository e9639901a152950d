//! What the loader reports: counters, apply reports, snapshots of a running filter.

use std::time::Duration;

use serde::Serialize;

use crate::rules::{Action, Rule};

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// How long an update took and how big it was.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// The generation now active.
    pub generation: u32,
    /// Rules in the new set.
    pub rules: usize,
    /// Distinct bitmaps written.
    pub bitmaps: usize,
    /// Networks outside the address tables (both dimensions): IPv6 ones written to the LPM
    /// tries, IPv4 ones (/16 and shorter) folded into the block index.
    pub prefixes: usize,
    /// Networks in the address tables: IPv4 ones longer than /16 (cut into ranges) and the
    /// IPv6 ones of the hashed lengths or in blocks (cut into ranges).
    pub hashed: usize,
    /// Time to compile.
    pub compile: Duration,
    /// Time to write the maps and flip.
    pub write: Duration,
}

/// Counters of a running filter, summed over CPUs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Active generation.
    pub generation: u32,
    /// Policies of the active rule set.
    pub default: Action,
    /// Malformed-frame policy.
    pub malformed_action: Action,
    /// Non-IP policy.
    pub non_ip_action: Action,
    /// Packets passed.
    pub pass: Count,
    /// Packets dropped.
    pub drop: Count,
    /// Packets that matched no rule.
    pub default_hits: Count,
    /// Malformed frames.
    pub malformed: Count,
    /// Non-IP frames.
    pub non_ip: Count,
    /// Packets rate-limit rules dropped.
    pub rate_limited: Count,
    /// Verdict events lost to a full ring buffer.
    pub events_lost: Count,
    /// Verdict sampling in force.
    pub sampling: Sampling,
    /// The active rule set's address sets.
    pub sets: Vec<SetStatus>,
    /// The active rules with their counters.
    pub rules: Vec<RuleCounter>,
}

/// Which verdicts become events (see [`Maps::set_sampling`]).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Sampling {
    /// One drop in this many (0: none).
    pub drops: u32,
    /// One pass in this many (0: none).
    pub passes: u32,
    /// Leading frame bytes carried per event.
    pub snap_len: u32,
}

/// One address set of the active rule set.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SetStatus {
    /// Its name.
    pub name: String,
    /// Entries.
    pub entries: u32,
    /// Of which host entries (/32, /128).
    pub hosts: u32,
    /// Of which IPv6.
    pub v6: u32,
}

/// One rule and its counters.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleCounter {
    /// 0-based position.
    pub index: usize,
    /// The rule.
    pub rule: Rule,
    /// Packets and bytes it matched since it was applied.
    pub hits: Count,
    /// Of those, packets a rate limit dropped.
    pub limited: Count,
}
