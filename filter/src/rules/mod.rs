//! The rule model: what a rule set is, and how it is read from a TOML rule file.
//!
//! A [`RuleSet`] is an ordered list of [`Rule`]s plus the default, malformed and non-IP
//! policies. Reading never panics; every error names the file, the line and what is wrong
//! ([`RuleError`], in `file`). Semantics are written down in filter/README.md.

mod file;

use file::parse_net;
pub use file::{read_set_file, shown, RuleError};

use std::{collections::BTreeMap, fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What happens to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let it through (`XDP_PASS`).
    Pass,
    /// Drop it (`XDP_DROP`).
    Drop,
}

impl Action {
    /// The code the kernel tables use.
    pub fn code(self) -> u8 {
        match self {
            Action::Pass => xdpwall_common::action::PASS,
            Action::Drop => xdpwall_common::action::DROP,
        }
    }

    /// The action for a kernel code (unknown codes read as `Pass`, like the program does).
    pub fn from_code(code: u8) -> Action {
        if code == xdpwall_common::action::DROP {
            Action::Drop
        } else {
            Action::Pass
        }
    }
}

impl Action {
    /// The action's name in rule files (`pass`, `drop`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// IP protocol numbers with a name in rule files.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;

    /// The rule-file name of a protocol number.
    pub fn name(p: u8) -> String {
        match p {
            ICMP => "icmp".into(),
            TCP => "tcp".into(),
            UDP => "udp".into(),
            ICMPV6 => "icmpv6".into(),
            n => n.to_string(),
        }
    }
}

/// A rate limit: a token bucket per source key (see filter/README.md, "Rate limiting").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// Tokens added per second (packets per second allowed in the long run).
    pub rate: u32,
    /// Bucket size: packets allowed back to back.
    pub burst: u32,
    /// IPv4 sources are grouped by this prefix length (32: per address).
    pub prefix4: u8,
    /// IPv6 sources are grouped by this prefix length (128: per address).
    pub prefix6: u8,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/s burst {} per src/{} src/{}",
            self.rate, self.burst, self.prefix4, self.prefix6
        )
    }
}

/// What a rule does with a packet it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Let it through.
    Pass,
    /// Drop it.
    Drop,
    /// Pass it while its source's bucket has tokens, drop it otherwise.
    RateLimit(RateLimit),
}

impl RuleAction {
    /// The action's name in rule files (`pass`, `drop`, `rate-limit`), without the limit.
    pub fn name(&self) -> &'static str {
        match self {
            RuleAction::Pass => "pass",
            RuleAction::Drop => "drop",
            RuleAction::RateLimit(_) => "rate-limit",
        }
    }

    /// The rate limit, for a rate-limit rule.
    pub fn limit(&self) -> Option<RateLimit> {
        match self {
            RuleAction::RateLimit(l) => Some(*l),
            RuleAction::Pass | RuleAction::Drop => None,
        }
    }
}

impl From<Action> for RuleAction {
    fn from(a: Action) -> RuleAction {
        match a {
            Action::Pass => RuleAction::Pass,
            Action::Drop => RuleAction::Drop,
        }
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleAction::RateLimit(l) => write!(f, "{} {l}", self.name()),
            a => f.write_str(a.name()),
        }
    }
}

/// Which addresses a rule's `src` or `dst` matches: one network, or a named set.
///
/// Written (and serialized) the way a rule file writes it: `10.0.0.0/8` or `@name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddrMatch {
    /// One network (a host is a /32 or /128).
    Net(IpNet),
    /// A key of [`RuleSet::sets`].
    Set(String),
}

impl fmt::Display for AddrMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrMatch::Net(n) => write!(f, "{n}"),
            AddrMatch::Set(name) => write!(f, "@{name}"),
        }
    }
}

impl Serialize for AddrMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AddrMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AddrMatch, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl FromStr for AddrMatch {
    type Err = String;

    /// `@name` names a set (not checked here: [`RuleSet::parse`] does); anything else must be
    /// an address or a network without host bits.
    fn from_str(s: &str) -> Result<AddrMatch, String> {
        match s.strip_prefix('@') {
            Some(name) => Ok(AddrMatch::Set(name.to_string())),
            None => parse_net(s).map(AddrMatch::Net),
        }
    }
}

impl From<IpNet> for AddrMatch {
    fn from(n: IpNet) -> AddrMatch {
        AddrMatch::Net(n)
    }
}

/// A named set of networks that a rule's `src` or `dst` can name as `"@name"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrSet {
    /// The networks, sorted, without duplicates.
    pub nets: Vec<IpNet>,
}

impl AddrSet {
    /// A set of `nets` (sorted and deduplicated here).
    pub fn new(mut nets: Vec<IpNet>) -> AddrSet {
        nets.sort_unstable();
        nets.dedup();
        AddrSet { nets }
    }
}

/// One rule: the AND of its matchers; `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Optional name, shown in status output (at most 31 bytes are kept in the kernel).
    pub name: Option<String>,
    /// What to do with a matching packet.
    pub action: RuleAction,
    /// Source network or set.
    pub src: Option<AddrMatch>,
    /// Destination network or set.
    pub dst: Option<AddrMatch>,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: Option<u8>,
    /// Source port range (only TCP and UDP packets carrying ports can match).
    pub sport: Option<PortRange>,
    /// Destination port range (only TCP and UDP packets carrying ports can match).
    pub dport: Option<PortRange>,
}

impl Rule {
    /// A rule with no matchers (matches every IP packet).
    pub fn new(action: impl Into<RuleAction>) -> Rule {
        Rule {
            name: None,
            action: action.into(),
            src: None,
            dst: None,
            proto: None,
            sport: None,
            dport: None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if let Some(s) = &self.src {
            write!(f, " src {s}")?;
        }
        if let Some(d) = &self.dst {
            write!(f, " dst {d}")?;
        }
        if let Some(p) = self.proto {
            write!(f, " proto {}", proto::name(p))?;
        }
        if let Some(p) = &self.sport {
            write!(f, " sport {p}")?;
        }
        if let Some(p) = &self.dport {
            write!(f, " dport {p}")?;
        }
        if self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.sport.is_none()
            && self.dport.is_none()
        {
            write!(f, " all")?;
        }
        Ok(())
    }
}

/// An ordered rule set with its policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Action when no rule matches (default `pass`).
    pub default: Action,
    /// Action for malformed packets (default `drop`).
    pub malformed: Action,
    /// Action for frames that are not IPv4/IPv6 (default `pass`).
    pub non_ip: Action,
    /// Named address sets.
    pub sets: BTreeMap<String, AddrSet>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            sets: BTreeMap::new(),
            rules: Vec::new(),
            default: Action::Pass,
            malformed: Action::Drop,
            non_ip: Action::Pass,
        }
    }
}

impl RuleSet {
    /// Renders the rule set as a rule file that [`RuleSet::parse`] reads back unchanged.
    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "default = \"{}\"\nmalformed = \"{}\"\nnon_ip = \"{}\"\n",
            self.default, self.malformed, self.non_ip
        );
        for (name, set) in &self.sets {
            s.push_str(&format!("\n[set.{name}]\nentries = [\n"));
            for n in &set.nets {
                s.push_str(&format!("  \"{n}\",\n"));
            }
            s.push_str("]\n");
        }
        for r in &self.rules {
            s.push_str("\n[[rule]]\n");
            if let Some(n) = &r.name {
                s.push_str(&format!("name = {}\n", toml_string(n)));
            }
            match &r.action {
                RuleAction::RateLimit(l) => s.push_str(&format!(
                    "action = \"rate-limit\"\nrate = {}\nburst = {}\nrate_prefix4 = {}\nrate_prefix6 = {}\n",
                    l.rate, l.burst, l.prefix4, l.prefix6
                )),
                RuleAction::Pass => s.push_str("action = \"pass\"\n"),
                RuleAction::Drop => s.push_str("action = \"drop\"\n"),
            }
            if let Some(n) = &r.src {
                s.push_str(&format!("src = \"{n}\"\n"));
            }
            if let Some(n) = &r.dst {
                s.push_str(&format!("dst = \"{n}\"\n"));
            }
            if let Some(p) = r.proto {
                s.push_str(&format!("proto = \"{}\"\n", proto::name(p)));
            }
            if let Some(p) = &r.sport {
                s.push_str(&format!("sport = \"{p}\"\n"));
            }
            if let Some(p) = &r.dport {
                s.push_str(&format!("dport = \"{p}\"\n"));
            }
        }
        s
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
