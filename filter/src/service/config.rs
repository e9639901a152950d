//! The declarative configuration of `xdpwall apply` and `xdpwall serve`: which filters run
//! on which interfaces, with which rule files, mode and sampling.
//!
//! ```toml
//! metrics = "127.0.0.1:9742"      # `xdpwall serve` exposes /metrics here (optional)
//!
//! [[filter]]
//! iface = "eth0"                  # required
//! rules = "eth0.rules.toml"       # required; relative to this file
//! mode = "auto"                   # native | generic | auto (default)
//! name = "eth0"                   # the filter's name (default: the interface)
//! netns = "edge"                  # the interface's network namespace (default: xdpwall's)
//! sample_drops = 1000             # one drop in N becomes an event (0: none; default: as loaded)
//! sample_passes = 0               # one pass in N (default: as loaded)
//! allow_empty = false             # accept a rule file without rules
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Mode;

/// A configuration that cannot be used: the file and line, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    /// The configuration file.
    pub path: String,
    /// 1-based line (of the filter entry, for errors about one).
    pub line: usize,
    /// What is wrong, naming the entry.
    pub message: String,
}

/// One filter of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterEntry {
    /// The filter's name (its pins, `xdpwall status NAME`).
    pub name: String,
    /// The interface.
    pub iface: String,
    /// Its network namespace (None: xdpwall's own).
    pub netns: Option<String>,
    /// The rule file (resolved against the configuration's folder).
    pub rules: PathBuf,
    /// The mode to attach in.
    pub mode: Mode,
    /// Sampling of drops and passes, when set.
    pub sampling: Option<(u32, u32)>,
    /// Accept a rule file without rules.
    pub allow_empty: bool,
    /// Line of the entry in the file.
    pub line: usize,
}

impl FilterEntry {
    /// How errors name the entry: `filter 'eth0' (line 4)`.
    pub fn label(&self) -> String {
        format!("filter '{}' (line {})", self.name, self.line)
    }
}

/// A whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Where `xdpwall serve` exposes metrics (`host:port`).
    pub metrics: Option<String>,
    /// The filters, in file order.
    pub filters: Vec<FilterEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    metrics: Option<String>,
    #[serde(default)]
    filter: Vec<toml::Spanned<RawFilter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    iface: String,
    rules: PathBuf,
    mode: Option<String>,
    name: Option<String>,
    netns: Option<String>,
    sample_drops: Option<u32>,
    sample_passes: Option<u32>,
    #[serde(default)]
    allow_empty: bool,
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors and anchors relative rule files.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let err = |line, message| ConfigError {
            path: path.display().to_string(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            err(line, e.message().trim().to_string())
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut filters: Vec<FilterEntry> = Vec::new();
        for spanned in raw.filter {
            let line = line_of(text, spanned.span().start);
            let f = spanned.into_inner();
            let name = f.name.clone().unwrap_or_else(|| f.iface.clone());
            let mode = match f.mode.as_deref() {
                None | Some("auto") => Mode::Auto,
                Some("native") => Mode::Native,
                Some("generic") => Mode::Generic,
                Some(m) => {
                    return Err(err(
                        line,
                        format!("filter '{name}': mode '{m}' is none of native, generic, auto"),
                    ))
                }
            };
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                || name.starts_with('.')
            {
                return Err(err(
                    line,
                    format!("filter '{name}': a name is 1 to 64 of [A-Za-z0-9._-], not starting with '.'"),
                ));
            }
            if let Some(other) = filters.iter().find(|o| o.name == name) {
                return Err(err(
                    line,
                    format!(
                        "filter '{name}': the name is already used by the filter on line {}",
                        other.line
                    ),
                ));
            }
            if let Some(other) = filters
                .iter()
                .find(|o| o.iface == f.iface && o.netns == f.netns)
            {
                return Err(err(
                    line,
                    format!(
                        "filter '{name}': interface {} already has filter '{}' (line {})",
                        f.iface, other.name, other.line
                    ),
                ));
            }
            let sampling = match (f.sample_drops, f.sample_passes) {
                (None, None) => None,
                (d, p) => Some((
                    d.unwrap_or(xdpwall_common::DEFAULT_SAMPLE_DROPS),
                    p.unwrap_or(0),
                )),
            };
            filters.push(FilterEntry {
                name,
                rules: dir.join(&f.rules),
                iface: f.iface,
                netns: f.netns,
                mode,
                sampling,
                allow_empty: f.allow_empty,
                line,
            });
        }
        if let Some(m) = &raw.metrics {
            if m.parse::<std::net::SocketAddr>().is_err() {
                let line = text
                    .lines()
                    .position(|l| l.trim_start().starts_with("metrics"))
                    .map_or(1, |i| i + 1);
                return Err(err(
                    line,
                    format!("metrics = \"{m}\": an address and port such as 127.0.0.1:9742"),
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            metrics: raw.metrics,
            filters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/xdpwall/xdpwall.toml"))
    }

    #[test]
    fn reads_filters_with_their_defaults() {
        let c = parse(
            "metrics = \"127.0.0.1:9742\"\n\n[[filter]]\niface = \"eth0\"\nrules = \"eth0.toml\"\n\n\
             [[filter]]\niface = \"eth1\"\nname = \"edge\"\nrules = \"/srv/r.toml\"\nmode = \"generic\"\n\
             netns = \"blue\"\nsample_drops = 10\n",
        )
        .unwrap();
        assert_eq!(c.metrics.as_deref(), Some("127.0.0.1:9742"));
        assert_eq!(c.filters.len(), 2);
        let (a, b) = (&c.filters[0], &c.filters[1]);
        assert_eq!((a.name.as_str(), a.mode, a.line), ("eth0", Mode::Auto, 3));
        assert_eq!(a.rules, Path::new("/etc/xdpwall/eth0.toml"));
        assert_eq!(a.sampling, None);
        assert_eq!(
            (b.name.as_str(), b.mode, b.line),
            ("edge", Mode::Generic, 7)
        );
        assert_eq!(b.rules, Path::new("/srv/r.toml"));
        assert_eq!(b.netns.as_deref(), Some("blue"));
        assert_eq!(b.sampling, Some((10, 0)));
    }

    #[test]
    fn errors_name_the_line_and_the_entry() {
        let two = "[[filter]]\niface = \"eth0\"\nrules = \"a\"\n\n[[filter]]\niface = \"eth0\"\nrules = \"b\"\n";
        let e = parse(two).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.to_string()
                .contains("the name is already used by the filter on line 1"),
            "{e}"
        );
        let e =
            parse("[[filter]]\niface = \"eth0\"\nrules = \"a\"\nmode = \"fast\"\n").unwrap_err();
        assert!(e.to_string().contains("mode 'fast'"), "{e}");
        let e = parse("[[filter]]\niface = \"eth0\"\n").unwrap_err();
        assert!(e.to_string().contains("rules"), "{e}");
        let e = parse("[[filter]]\niface = \"eth0\"\nrules = \"a\"\nrule = \"b\"\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = parse("metrics = \"localhost\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/xdpwall/xdpwall.toml:1: metrics"),
            "{e}"
        );
    }
}
