//! Prometheus metrics of every running filter, in the text exposition format (version
//! 0.0.4), over plain HTTP (`GET /metrics`). A scrape opens each filter's pinned maps and reads
//! every per-CPU counter once (user space reading a map never touches the XDP program's
//! path); nothing is cached between scrapes.
//!
//! Names follow Prometheus' conventions: counters end in `_total`, sizes in `_bytes`, times in
//! `_seconds`; every series has a `filter` label. See [`METRICS`] for the list.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::{
    loader::{pinned_filters, Snapshot},
    Maps,
};

use super::Record;

/// Every metric family: name, type, help.
pub const METRICS: &[(&str, &str, &str)] = &[
    ("xdpwall_up", "gauge", "1 when the filter's maps could be read."),
    ("xdpwall_packets_total", "counter", "Packets judged, by verdict (pass or drop)."),
    ("xdpwall_bytes_total", "counter", "Bytes of the packets judged, by verdict."),
    (
        "xdpwall_cause_packets_total",
        "counter",
        "Packets judged by a cause other than a rule (default policy, malformed, non-IP, rate-limited), with the verdict that cause gives.",
    ),
    (
        "xdpwall_rule_packets_total",
        "counter",
        "Packets a rule matched (first match) since its rule set was applied.",
    ),
    ("xdpwall_rule_bytes_total", "counter", "Bytes of the packets a rule matched."),
    (
        "xdpwall_rule_rate_limited_packets_total",
        "counter",
        "Packets a rate-limit rule matched and dropped over its rate.",
    ),
    (
        "xdpwall_events_lost_total",
        "counter",
        "Verdict events lost to a full ring buffer.",
    ),
    ("xdpwall_active_generation", "gauge", "The rule-set generation packets use (0 or 1)."),
    ("xdpwall_rules", "gauge", "Rules in the active rule set."),
    ("xdpwall_set_entries", "gauge", "Entries of each address set of the active rule set."),
    (
        "xdpwall_sample_every",
        "gauge",
        "Verdict sampling: one verdict of this kind in N becomes an event (0: none).",
    ),
    (
        "xdpwall_last_update_timestamp_seconds",
        "gauge",
        "When the rules were last written (Unix time).",
    ),
    (
        "xdpwall_last_update_duration_seconds",
        "gauge",
        "How long compiling and writing the last rules took.",
    ),
];

/// A label value escaped for the exposition format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Samples of one scrape, grouped by family.
#[derive(Default)]
struct Families(Vec<(&'static str, Vec<String>)>);

impl Families {
    fn add(
        &mut self,
        family: &'static str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let line = format!("{family}{{{}}} {value}", l.join(","));
        match self.0.iter_mut().find(|(f, _)| *f == family) {
            Some((_, v)) => v.push(line),
            None => self.0.push((family, vec![line])),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let Some((_, lines)) = self.0.iter().find(|(f, _)| f == name) else {
                continue;
            };
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn add_filter(m: &mut Families, name: &str, s: &Snapshot, rec: Option<&Record>) {
    let f = ("filter", name);
    m.add("xdpwall_up", &[f], 1);
    for (v, c) in [("pass", s.pass), ("drop", s.drop)] {
        m.add("xdpwall_packets_total", &[f, ("verdict", v)], c.packets);
        m.add("xdpwall_bytes_total", &[f, ("verdict", v)], c.bytes);
    }
    for (cause, v, c) in [
        ("default", s.default.name(), s.default_hits),
        ("malformed", s.malformed_action.name(), s.malformed),
        ("non_ip", s.non_ip_action.name(), s.non_ip),
        ("rate_limited", "drop", s.rate_limited),
    ] {
        m.add(
            "xdpwall_cause_packets_total",
            &[f, ("cause", cause), ("verdict", v)],
            c.packets,
        );
    }
    for r in &s.rules {
        let index = r.index.to_string();
        let rule_name = r.rule.name.clone().unwrap_or_default();
        let action = r.rule.action.name();
        let labels = [
            f,
            ("rule", index.as_str()),
            ("name", rule_name.as_str()),
            ("action", action),
        ];
        m.add("xdpwall_rule_packets_total", &labels, r.hits.packets);
        m.add("xdpwall_rule_bytes_total", &labels, r.hits.bytes);
        if r.rule.action.limit().is_some() {
            m.add(
                "xdpwall_rule_rate_limited_packets_total",
                &labels,
                r.limited.packets,
            );
        }
    }
    m.add("xdpwall_events_lost_total", &[f], s.events_lost.packets);
    m.add("xdpwall_active_generation", &[f], s.generation);
    m.add("xdpwall_rules", &[f], s.rules.len());
    for set in &s.sets {
        m.add(
            "xdpwall_set_entries",
            &[f, ("set", set.name.as_str())],
            set.entries,
        );
    }
    m.add(
        "xdpwall_sample_every",
        &[f, ("verdict", "drop")],
        s.sampling.drops,
    );
    m.add(
        "xdpwall_sample_every",
        &[f, ("verdict", "pass")],
        s.sampling.passes,
    );
    if let Some(r) = rec {
        m.add(
            "xdpwall_last_update_timestamp_seconds",
            &[f],
            format!("{:.3}", r.updated_unix),
        );
        m.add(
            "xdpwall_last_update_duration_seconds",
            &[f],
            format!("{:.6}", r.update_seconds),
        );
    }
}

/// The metrics of every running filter, in the text exposition format. A filter whose maps
/// cannot be read reports `xdpwall_up 0` (and the reason on standard error).
pub fn render() -> String {
    let mut m = Families::default();
    for name in pinned_filters() {
        match Maps::open_pinned(&name).and_then(|maps| maps.snapshot()) {
            Ok(s) => add_filter(&mut m, &name, &s, Record::read(&name).as_ref()),
            // Detached between listing and reading: not a filter any more.
            Err(_) if !super::is_running(&name) => {}
            Err(e) => {
                eprintln!("xdpwall: metrics of '{name}': {:#}", anyhow::Error::new(e));
                m.add("xdpwall_up", &[("filter", &name)], 0);
            }
        }
    }
    m.render()
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken.
    #[error("metrics address {0} is in use: another exporter (or xdpwall serve) listens there; choose another with --metrics or `metrics =`")]
    InUse(String),
    /// Any other failure to listen.
    #[error("listening on {addr} for metrics: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the metrics endpoint (`host:port`).
pub fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    let l = TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::InUse(addr.to_string())
        } else {
            ServeError::Listen {
                addr: addr.to_string(),
                source,
            }
        }
    })?;
    l.set_nonblocking(true)
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    Ok(l)
}

/// Answers one HTTP request: `GET /metrics` with the metrics, `GET /` with a pointer to
/// them, anything else 404 (or 405 for other methods).
fn answer(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers, up to the blank line (their content does not matter here).
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "xdpwall: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// Serves metrics on `listener` until `stop` is set; between requests, calls `idle` (the
/// service reloads its configuration there). Requests are answered one at a time.
pub fn serve(listener: &TcpListener, stop: &AtomicBool, mut idle: impl FnMut()) {
    while !stop.load(Ordering::SeqCst) {
        idle();
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn) {
                    eprintln!("xdpwall: answering a metrics request: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("xdpwall: accepting a metrics connection: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::{Count, RuleCounter, Sampling, SetStatus};
    use crate::{Action, Rule, RuleSet};

    fn snapshot() -> Snapshot {
        let set = RuleSet::parse(
            "[[rule]]\nname = \"ssh \\\"admin\\\"\"\naction = \"pass\"\ndport = 22\nproto = \"tcp\"\n\n\
             [[rule]]\naction = \"drop\"\nsrc = \"10.0.0.0/8\"\n",
            "t",
        )
        .unwrap();
        let c = |p, b| Count {
            packets: p,
            bytes: b,
        };
        Snapshot {
            generation: 1,
            default: Action::Pass,
            malformed_action: Action::Drop,
            non_ip_action: Action::Pass,
            pass: c(10, 1000),
            drop: c(5, 500),
            default_hits: c(3, 300),
            malformed: c(1, 60),
            non_ip: c(2, 120),
            rate_limited: c(0, 0),
            events_lost: c(0, 0),
            sampling: Sampling {
                drops: 1000,
                passes: 0,
                snap_len: 128,
            },
            sets: vec![SetStatus {
                name: "blocklist".into(),
                entries: 42,
                hosts: 40,
                v6: 2,
            }],
            rules: set
                .rules
                .iter()
                .cloned()
                .enumerate()
                .map(|(index, rule): (usize, Rule)| RuleCounter {
                    index,
                    rule,
                    hits: c(7 + index as u64, 700),
                    limited: c(0, 0),
                })
                .collect(),
        }
    }

    #[test]
    fn renders_every_family_once_with_escaped_labels() {
        let mut m = Families::default();
        add_filter(&mut m, "eth0", &snapshot(), None);
        let text = m.render();
        assert!(text.contains("xdpwall_rule_packets_total{filter=\"eth0\",rule=\"0\",name=\"ssh \\\"admin\\\"\",action=\"pass\"} 7\n"), "{text}");
        assert!(text.contains(
            "xdpwall_rule_packets_total{filter=\"eth0\",rule=\"1\",name=\"\",action=\"drop\"} 8\n"
        ));
        assert!(text.contains("xdpwall_packets_total{filter=\"eth0\",verdict=\"drop\"} 5\n"));
        assert!(text.contains(
            "xdpwall_cause_packets_total{filter=\"eth0\",cause=\"malformed\",verdict=\"drop\"} 1\n"
        ));
        assert!(text.contains("xdpwall_set_entries{filter=\"eth0\",set=\"blocklist\"} 42\n"));
        assert_eq!(
            text.matches("# TYPE xdpwall_rule_packets_total counter\n")
                .count(),
            1
        );
        // No update record: no update metrics.
        assert!(!text.contains("xdpwall_last_update"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(
                METRICS.iter().any(|(n, _, _)| *n == name),
                "{name} undeclared"
            );
            if name.ends_with("_total") {
                let (_, kind, _) = METRICS.iter().find(|(n, _, _)| *n == name).unwrap();
                assert_eq!(*kind, "counter", "{name}");
            }
        }
    }
}
