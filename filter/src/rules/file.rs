//! Reading a rule file: TOML into a [`RuleSet`], every error with the file, the line and
//! what is wrong ([`RuleError`]); set files; the checks a rule must pass.

use std::{collections::BTreeMap, fmt, net::IpAddr, path::Path, str::FromStr};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;
use xdpwall_common::{MAX_BURST, MAX_RATE, MAX_RULES, MAX_SETS, MAX_SET_ENTRIES};

use super::{proto, Action, AddrMatch, AddrSet, PortRange, RateLimit, Rule, RuleAction, RuleSet};

/// A rule file that could not be read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is wrong at a line.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file (or `<input>`).
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl RuleError {
    /// The line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            RuleError::Invalid { line, .. } => Some(*line),
            RuleError::Io { .. } => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    default: Option<Spanned<String>>,
    malformed: Option<Spanned<String>>,
    non_ip: Option<Spanned<String>>,
    #[serde(default)]
    set: BTreeMap<String, Spanned<RawSet>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    entries: Option<Vec<Spanned<String>>>,
    file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    action: Option<Spanned<String>>,
    src: Option<Spanned<String>>,
    dst: Option<Spanned<String>>,
    proto: Option<Spanned<NumOrStr>>,
    sport: Option<Spanned<NumOrStr>>,
    dport: Option<Spanned<NumOrStr>>,
    rate: Option<Spanned<i64>>,
    burst: Option<Spanned<i64>>,
    rate_prefix4: Option<Spanned<i64>>,
    rate_prefix6: Option<Spanned<i64>>,
}

/// A port or protocol field: a whole number or a string.
enum NumOrStr {
    Num(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number or a string (e.g. 80, \"1000-2000\", \"tcp\")")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumOrStr, E> {
                i64::try_from(v)
                    .map(NumOrStr::Num)
                    .map_err(|_| E::custom(format!("{v} is out of range")))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RuleSet {
    /// Reads and validates a rule file.
    pub fn from_file(path: &Path) -> Result<RuleSet, RuleError> {
        let bytes = std::fs::read(path).map_err(|source| RuleError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            RuleError::Invalid {
                path: path.display().to_string(),
                line: bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
                message: format!(
                    "not UTF-8 text: byte 0x{:02x} at offset {at} (rule files are UTF-8)",
                    bytes[at]
                ),
            }
        })?;
        RuleSet::parse_in(
            &text,
            &path.display().to_string(),
            path.parent().unwrap_or(Path::new(".")),
        )
    }

    /// Parses and validates rule-file text; `origin` names it in errors. Set files are read
    /// relative to the current directory.
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        RuleSet::parse_in(text, origin, Path::new("."))
    }

    /// Like [`RuleSet::parse`], with set files read relative to `dir`.
    pub fn parse_in(text: &str, origin: &str, dir: &Path) -> Result<RuleSet, RuleError> {
        let err = |span: std::ops::Range<usize>, message: String| RuleError::Invalid {
            path: origin.to_string(),
            line: line_of(text, span.start),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            err(span.clone(), toml_message(text, span, e.message().trim()))
        })?;
        let mut set = RuleSet::default();
        if let Some(a) = &raw.default {
            set.default = parse_action(a).map_err(|m| err(a.span(), m))?;
        }
        if let Some(a) = &raw.malformed {
            set.malformed = parse_action(a).map_err(|m| err(a.span(), m))?;
        }
        if let Some(a) = &raw.non_ip {
            set.non_ip = parse_action(a).map_err(|m| err(a.span(), m))?;
        }
        if raw.rule.len() > MAX_RULES {
            let span = raw.rule[MAX_RULES].span();
            return Err(err(
                span,
                format!(
                    "too many rules: {} (at most {MAX_RULES} per rule set)",
                    raw.rule.len()
                ),
            ));
        }
        if raw.set.len() > MAX_SETS as usize {
            return Err(err(
                0..0,
                format!("{} sets: at most {MAX_SETS} per rule set", raw.set.len()),
            ));
        }
        let mut total = 0;
        for (name, rs) in &raw.set {
            let at = |m: String| err(rs.span(), format!("set {}: {m}", shown(name)));
            if name.is_empty()
                || name.len() > 31
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(at("a set name has 1-31 letters, digits, '_' or '-'".into()));
            }
            let raw_set = rs.get_ref();
            let mut nets = Vec::new();
            for e in raw_set.entries.iter().flatten() {
                nets.push(
                    parse_net(e.get_ref())
                        .map_err(|m| err(e.span(), format!("set {}: {m}", shown(name))))?,
                );
            }
            if let Some(f) = &raw_set.file {
                let path = dir.join(f.get_ref());
                nets.extend(read_set_file(&path).map_err(|e| match e {
                    e @ RuleError::Invalid { .. } => e,
                    RuleError::Io { source, .. } => err(
                        f.span(),
                        format!(
                            "set {}: cannot read {}: {source}",
                            shown(name),
                            path.display()
                        ),
                    ),
                })?);
            }
            if raw_set.entries.is_none() && raw_set.file.is_none() {
                return Err(at("needs `entries = [...]` or `file = \"...\"`".into()));
            }
            total += nets.len();
            if total > MAX_SET_ENTRIES {
                return Err(at(format!(
                    "sets hold more than {MAX_SET_ENTRIES} entries together"
                )));
            }
            set.sets.insert(name.clone(), AddrSet::new(nets));
        }
        for (i, r) in raw.rule.iter().enumerate() {
            let rule = parse_rule(r.get_ref(), &set.sets).map_err(|(span, m)| {
                err(
                    span.unwrap_or(r.span()),
                    format!("rule {i} ({}): {m}", rule_label(r.get_ref())),
                )
            })?;
            set.rules.push(rule);
        }
        Ok(set)
    }
}

impl FromStr for RuleSet {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleSet::parse(s, "<input>")
    }
}

fn rule_label(r: &RawRule) -> String {
    match &r.name {
        Some(n) => shown(n.get_ref()),
        None => "unnamed".into(),
    }
}

/// Most characters of a value an error message echoes.
const SHOWN_CHARS: usize = 40;

/// `value` as an error message may show it: quoted, with control and other invisible
/// characters escaped (a rule file must not be able to rewrite the operator's terminal), and
/// cut to [`SHOWN_CHARS`] characters (a 10 MB value makes no 10 MB error).
pub fn shown(value: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push_str(&format!("\"... ({} bytes)", value.len()));
            return out;
        }
        if c.is_control() || is_format_char(c) || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Unicode format characters that reorder or hide text (bidirectional overrides, isolates
/// and marks, zero-width characters, the byte-order mark).
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{061c}' | '\u{feff}')
}

/// The toml crate's message, with a hint for the mistakes it words least helpfully.
fn toml_message(text: &str, span: std::ops::Range<usize>, message: &str) -> String {
    let at = text.get(span.clone()).unwrap_or("");
    if message.contains("invalid type: map, expected a sequence") && at.contains("rule") {
        return "rules are an array of tables: write [[rule]] (two brackets), not [rule]".into();
    }
    if message.contains("invalid type: sequence, expected a string") {
        return format!(
            "{message}: a field holds one network; several go in a set ([set.NAME] with \
             entries = [...], then \"@NAME\")"
        );
    }
    if message.starts_with("duplicate key") {
        let key = at
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim();
        return format!(
            "duplicate key: {} is defined a second time here",
            shown(key)
        );
    }
    message.to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_action(s: &Spanned<String>) -> Result<Action, String> {
    match s.get_ref().as_str() {
        "pass" => Ok(Action::Pass),
        "drop" => Ok(Action::Drop),
        other => Err(format!(
            "unknown action {} (expected \"pass\" or \"drop\")",
            shown(other)
        )),
    }
}

/// Reads a set file: one network per line; blank lines and `#` comments are ignored.
pub fn read_set_file(path: &Path) -> Result<Vec<IpNet>, RuleError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        nets.push(parse_net(entry).map_err(|message| RuleError::Invalid {
            path: path.display().to_string(),
            line: i + 1,
            message,
        })?);
    }
    Ok(nets)
}

type FieldError = (Option<std::ops::Range<usize>>, String);

/// A field that is a number within `lo..=hi`.
fn bounded(f: &Spanned<i64>, what: &str, lo: i64, hi: i64) -> Result<i64, FieldError> {
    let v = *f.get_ref();
    if v < lo || v > hi {
        return Err((
            Some(f.span()),
            format!("{what} {v} is out of range {lo}-{hi}"),
        ));
    }
    Ok(v)
}

fn parse_rule(r: &RawRule, sets: &BTreeMap<String, AddrSet>) -> Result<Rule, FieldError> {
    let at = |s: std::ops::Range<usize>| move |m: String| (Some(s.clone()), m);
    let plain = match &r.action {
        Some(a) if a.get_ref() == "rate-limit" => None,
        Some(a) => Some(parse_action(a).map_err(at(a.span()))?),
        None => {
            return Err((
                None,
                "missing `action` (\"pass\", \"drop\" or \"rate-limit\")".into(),
            ))
        }
    };
    let action = match plain {
        None => {
            let Some(rate) = &r.rate else {
                return Err((
                    r.action.as_ref().map(|a| a.span()),
                    "action \"rate-limit\" needs `rate` (packets per second)".into(),
                ));
            };
            let rate = bounded(rate, "rate", 1, MAX_RATE as i64)? as u32;
            let burst = match &r.burst {
                Some(b) => bounded(b, "burst", 1, MAX_BURST as i64)? as u32,
                None => rate.min(MAX_BURST),
            };
            let prefix4 = match &r.rate_prefix4 {
                Some(p) => bounded(p, "rate_prefix4", 0, 32)? as u8,
                None => 32,
            };
            let prefix6 = match &r.rate_prefix6 {
                Some(p) => bounded(p, "rate_prefix6", 0, 128)? as u8,
                None => 128,
            };
            RuleAction::RateLimit(RateLimit {
                rate,
                burst,
                prefix4,
                prefix6,
            })
        }
        Some(plain) => {
            if let Some(f) = [&r.rate, &r.burst, &r.rate_prefix4, &r.rate_prefix6]
                .into_iter()
                .flatten()
                .next()
            {
                return Err((
                    Some(f.span()),
                    "`rate`, `burst` and `rate_prefix4/6` belong to action \"rate-limit\"".into(),
                ));
            }
            plain.into()
        }
    };
    let name = match &r.name {
        Some(n) if n.get_ref().len() > 31 => {
            return Err((
                Some(n.span()),
                "name is longer than 31 bytes (the kernel keeps 31)".into(),
            ))
        }
        Some(n)
            if n.get_ref()
                .chars()
                .any(|c| c.is_control() || is_format_char(c)) =>
        {
            return Err((
                Some(n.span()),
                format!(
                    "name {} holds control or invisible formatting characters (escape \
                     sequences, bidirectional overrides): names are printed to terminals",
                    shown(n.get_ref())
                ),
            ))
        }
        Some(n) => Some(n.get_ref().clone()),
        None => None,
    };
    let net = |f: &Option<Spanned<String>>, what: &str| -> Result<Option<AddrMatch>, FieldError> {
        match f {
            Some(s) => match s.get_ref().strip_prefix('@') {
                Some(name) if sets.contains_key(name) => Ok(Some(AddrMatch::Set(name.to_string()))),
                Some(name) => Err((
                    Some(s.span()),
                    format!(
                        "{what}: no set named {} (define it with [set.NAME])",
                        shown(name)
                    ),
                )),
                None => parse_net(s.get_ref())
                    .map(|n| Some(AddrMatch::Net(n)))
                    .map_err(|m| (Some(s.span()), format!("{what}: {m}"))),
            },
            None => Ok(None),
        }
    };
    let src = net(&r.src, "src")?;
    let dst = net(&r.dst, "dst")?;
    // The families each side can match: a network's own, a set's entries', or both.
    let families = |m: &Option<AddrMatch>| -> [bool; 2] {
        match m {
            Some(AddrMatch::Net(n)) => [n.addr().is_ipv4(), n.addr().is_ipv6()],
            Some(AddrMatch::Set(name)) => {
                let nets = &sets[name].nets;
                [
                    nets.iter().any(|n| n.addr().is_ipv4()),
                    nets.iter().any(|n| n.addr().is_ipv6()),
                ]
            }
            None => [true, true],
        }
    };
    let (fs, fd) = (families(&src), families(&dst));
    if !(fs[0] && fd[0] || fs[1] && fd[1]) {
        let span = r.dst.as_ref().map(|d| d.span());
        let side = |m: &Option<AddrMatch>, f: [bool; 2]| match m {
            Some(AddrMatch::Set(name)) => format!(
                "@{name} (holding {})",
                match f {
                    [true, false] => "only IPv4 networks",
                    [false, true] => "only IPv6 networks",
                    _ => "no networks",
                }
            ),
            Some(net) => net.to_string(),
            None => "any".into(),
        };
        return Err((
            span,
            format!(
                "src {} and dst {} are of different address families: the rule could never match",
                side(&src, fs),
                side(&dst, fd)
            ),
        ));
    }
    let proto = match &r.proto {
        Some(p) => Some(parse_proto(p.get_ref()).map_err(at(p.span()))?),
        None => None,
    };
    let port = |f: &Option<Spanned<NumOrStr>>, what: &str| -> Result<_, FieldError> {
        match f {
            Some(p) => parse_ports(p.get_ref())
                .map(Some)
                .map_err(|m| (Some(p.span()), format!("{what}: {m}"))),
            None => Ok(None),
        }
    };
    let sport = port(&r.sport, "sport")?;
    let dport = port(&r.dport, "dport")?;
    if sport.is_some() || dport.is_some() {
        if let Some(p) = proto {
            if p != proto::TCP && p != proto::UDP {
                let span = r.proto.as_ref().map(|p| p.span());
                return Err((
                    span,
                    format!(
                        "ports need protocol tcp or udp (or no `proto`, which matches both), not {}",
                        proto::name(p)
                    ),
                ));
            }
        }
    }
    Ok(Rule {
        name,
        action,
        src,
        dst,
        proto,
        sport,
        dport,
    })
}

/// Parses `addr` or `addr/len`; host bits must be zero.
pub(super) fn parse_net(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        IpNet::from_str(s).map_err(|_| {
            format!(
                "{} is not an IP network (e.g. 10.0.0.0/8, 2001:db8::/32)",
                shown(s)
            )
        })?
    } else {
        let a = IpAddr::from_str(s)
            .map_err(|_| format!("{} is not an IP address or network", shown(s)))?;
        IpNet::from(a)
    };
    if net.trunc() != net {
        return Err(format!(
            "\"{s}\" has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn parse_proto(p: &NumOrStr) -> Result<u8, String> {
    match p {
        NumOrStr::Num(n) => u8::try_from(*n)
            .map_err(|_| format!("protocol number {n} is out of range 0-255")),
        NumOrStr::Str(s) => match s.as_str() {
            "tcp" => Ok(proto::TCP),
            "udp" => Ok(proto::UDP),
            "icmp" => Ok(proto::ICMP),
            "icmpv6" => Ok(proto::ICMPV6),
            other => other.parse::<u8>().map_err(|_| {
                format!("unknown protocol {} (tcp, udp, icmp, icmpv6 or a number 0-255; leave it out for any)", shown(other))
            }),
        },
    }
}

fn parse_ports(p: &NumOrStr) -> Result<PortRange, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("{} is not a port (0-65535)", shown(s)))
    };
    let r = match p {
        NumOrStr::Num(n) => {
            let v = u16::try_from(*n).map_err(|_| format!("port {n} is out of range 0-65535"))?;
            PortRange { lo: v, hi: v }
        }
        NumOrStr::Str(s) => match s.split_once('-') {
            Some((a, b)) => PortRange {
                lo: port(a)?,
                hi: port(b)?,
            },
            None => {
                let v = port(s)?;
                PortRange { lo: v, hi: v }
            }
        },
    };
    if r.lo > r.hi {
        return Err(format!(
            "empty range {}-{} (low end above high end)",
            r.lo, r.hi
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RuleSet, RuleError> {
        RuleSet::parse(s, "t.toml")
    }

    #[test]
    fn full_rule_parses() {
        let set = parse(
            "default = \"drop\"\nnon_ip = \"drop\"\n[[rule]]\nname = \"web\"\naction = \"pass\"\n\
             src = \"10.0.0.0/8\"\ndst = \"192.168.1.2\"\nproto = \"tcp\"\nsport = \"1024-65535\"\ndport = 443\n",
        )
        .unwrap();
        assert_eq!(set.default, Action::Drop);
        assert_eq!(set.non_ip, Action::Drop);
        assert_eq!(set.malformed, Action::Drop);
        let r = &set.rules[0];
        assert_eq!(r.src, Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(r.dst, Some("192.168.1.2/32".parse().unwrap()));
        assert_eq!(r.proto, Some(6));
        assert_eq!(
            r.sport,
            Some(PortRange {
                lo: 1024,
                hi: 65535
            })
        );
        assert_eq!(r.dport, Some(PortRange { lo: 443, hi: 443 }));
    }

    #[test]
    fn defaults_apply_when_policies_are_missing() {
        let set = parse("").unwrap();
        assert_eq!(set, RuleSet::default());
    }

    fn err_line(s: &str) -> (usize, String) {
        let e = parse(s).unwrap_err();
        (e.line().unwrap(), e.to_string())
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases = [
            (
                "[[rule]]\naction = \"pass\"\nsrc = \"10.0.0.1/8\"\n",
                3,
                "host bits set",
            ),
            (
                "[[rule]]\naction = \"pass\"\n\nsrc = \"nonsense\"\n",
                4,
                "not an IP address",
            ),
            ("[[rule]]\naction = \"allow\"\n", 2, "unknown action"),
            ("[[rule]]\nsrc = \"1.2.3.4\"\n", 1, "missing `action`"),
            (
                "[[rule]]\naction = \"drop\"\nproto = \"icmp\"\ndport = 80\n",
                3,
                "ports need protocol",
            ),
            (
                "[[rule]]\naction = \"drop\"\ndport = \"90-80\"\n",
                3,
                "empty range",
            ),
            (
                "[[rule]]\naction = \"drop\"\ndport = 70000\n",
                3,
                "out of range",
            ),
            (
                "[[rule]]\naction = \"drop\"\nproto = \"gre\"\n",
                3,
                "unknown protocol",
            ),
            (
                "[[rule]]\naction = \"drop\"\nsrc = \"1.2.3.4\"\ndst = \"::1\"\n",
                4,
                "different address families",
            ),
            (
                "default = \"drop\"\n[[rule]]\naction = \"drop\"\nsprt = 5\n",
                4,
                "unknown field",
            ),
            ("default = \"drop\"\n\n[[rule]\n", 3, ""),
            (
                "[[rule]]\naction = \"drop\"\nproto = \"tcp\"\ndport = 80.0\n",
                4,
                "expected a whole number or a string",
            ),
            ("[rule]\naction = \"drop\"\n", 1, "write [[rule]]"),
            (
                "[[rule]]\naction = \"drop\"\nsrc = [\"10.0.0.0/8\"]\n",
                3,
                "several go in a set",
            ),
            (
                "[set.a]\nentries = []\n[set.a]\nentries = []\n",
                3,
                "duplicate key: \"a\"",
            ),
            (
                "[[rule]]\naction = \"drop\"\nproto = \"icmp\"\ndport = 80\n",
                3,
                "or no `proto`",
            ),
            (
                "[set.v6]\nentries = [\"2001:db8::/32\"]\n[[rule]]\naction = \"drop\"\nsrc = \"@v6\"\ndst = \"10.0.0.0/8\"\n",
                6,
                "could never match",
            ),
            // Rules are numbered from 0 here as in `check`, `status` and golden files.
            (
                "[[rule]]\naction = \"drop\"\n[[rule]]\nname = \"web\"\naction = \"nope\"\n",
                5,
                "rule 1 (\"web\"): unknown action",
            ),
            (
                "[[rule]]\naction = \"drop\"\nname = \"a\\u001b[2Jb\"\n",
                3,
                "control or invisible",
            ),
            (
                "[[rule]]\naction = \"drop\"\nname = \"left\\u202eright\"\n",
                3,
                "control or invisible",
            ),
        ];
        for (text, line, what) in cases {
            let (l, msg) = err_line(text);
            assert_eq!(l, line, "{text:?} -> {msg}");
            assert!(msg.contains(what), "{text:?} -> {msg}");
            assert!(msg.starts_with(&format!("t.toml:{line}: ")), "{msg}");
        }
    }

    #[test]
    fn errors_escape_and_cap_what_they_echo() {
        let long = "x".repeat(1_000_000);
        let msg = parse(&format!("[[rule]]\naction = \"drop\"\nsrc = \"{long}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 200, "{} bytes", msg.len());
        assert!(msg.contains("(1000000 bytes)"), "{msg}");
        let msg = parse("[[rule]]\naction = \"a\\u001b[31m\"\n")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains('\u{1b}') && msg.contains("\\u{1b}"), "{msg}");
        assert_eq!(shown("ok"), "\"ok\"");
    }

    #[test]
    fn a_file_that_is_not_utf8_names_the_line_and_offset() {
        let dir = std::env::temp_dir().join(format!("xw-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.toml");
        std::fs::write(&p, b"[[rule]]\naction = \"drop\"\nname = \"\xff\"\n").unwrap();
        let e = RuleSet::from_file(&p).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(e.line(), Some(3));
        let msg = e.to_string();
        assert!(
            msg.contains("not UTF-8") && msg.contains("offset 33"),
            "{msg}"
        );
    }

    #[test]
    fn too_many_rules_is_rejected_with_the_limit() {
        let mut s = String::new();
        for _ in 0..=MAX_RULES {
            s.push_str("[[rule]]\naction = \"drop\"\n");
        }
        let e = parse(&s).unwrap_err().to_string();
        assert!(e.contains("too many rules: 1025"), "{e}");
        assert!(e.contains(&format!(":{}:", 2 * MAX_RULES + 1)), "{e}");
        s.truncate(s.len() - "[[rule]]\naction = \"drop\"\n".len());
        assert_eq!(parse(&s).unwrap().rules.len(), MAX_RULES);
    }

    #[test]
    fn sets_and_rate_limits_parse_and_round_trip() {
        let dir = std::env::temp_dir().join(format!("xw-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("bl.txt"),
            "# blocklist\n10.0.0.0/8\n\n192.0.2.7 # one host\n2001:db8::/32\n",
        )
        .unwrap();
        let text = "[set.bl]\nfile = \"bl.txt\"\nentries = [\"198.51.100.1\"]\n\
                    [[rule]]\naction = \"drop\"\nsrc = \"@bl\"\n\
                    [[rule]]\naction = \"rate-limit\"\nrate = 100\nburst = 5\nrate_prefix4 = 24\ndst = \"@bl\"\nproto = \"udp\"\n";
        let set = RuleSet::parse_in(text, "t.toml", &dir).unwrap();
        assert_eq!(set.sets["bl"].nets.len(), 4);
        assert_eq!(set.rules[0].src, Some(AddrMatch::Set("bl".into())));
        assert_eq!(
            set.rules[1].action,
            RuleAction::RateLimit(RateLimit {
                rate: 100,
                burst: 5,
                prefix4: 24,
                prefix6: 128
            })
        );
        assert_eq!(parse(&set.to_toml()).unwrap(), set);

        std::fs::write(dir.join("bad.txt"), "10.0.0.0/8\n10.0.0.1/8\n").unwrap();
        let e = RuleSet::parse_in("[set.x]\nfile = \"bad.txt\"\n", "t.toml", &dir).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("bad.txt:2: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);

        let cases = [
            (
                "[[rule]]\naction = \"drop\"\nsrc = \"@nope\"\n",
                3,
                "no set named \"nope\"",
            ),
            ("[[rule]]\naction = \"rate-limit\"\n", 2, "needs `rate`"),
            (
                "[[rule]]\naction = \"rate-limit\"\nrate = 0\n",
                3,
                "out of range",
            ),
            (
                "[[rule]]\naction = \"drop\"\nburst = 3\n",
                3,
                "belong to action",
            ),
            ("[set.a]\nfile = \"/nonexistent/x\"\n", 2, "cannot read"),
            (
                "[set.a]\nentries = [\"1.2.3.4\", \"x\"]\n",
                2,
                "set \"a\": \"x\" is not",
            ),
        ];
        for (text, line, what) in cases {
            let (l, msg) = err_line(text);
            assert_eq!(l, line, "{text:?} -> {msg}");
            assert!(msg.contains(what), "{text:?} -> {msg}");
        }
    }

    #[test]
    fn to_toml_round_trips() {
        let text = "default = \"drop\"\n[[rule]]\nname = \"a \\\"b\\\"\"\naction = \"pass\"\nsrc = \"2001:db8::/32\"\nproto = 47\n\
                    [[rule]]\naction = \"drop\"\ndst = \"10.1.0.0/16\"\nproto = \"udp\"\nsport = 53\ndport = \"1-1023\"\n";
        let set = parse(text).unwrap();
        assert_eq!(parse(&set.to_toml()).unwrap(), set);
    }
}
