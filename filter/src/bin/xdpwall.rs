//! `xdpwall`: attach the filter to an interface, replace its rules live, show its counters,
//! detach it. Filters are pinned under /sys/fs/bpf/xdpwall/NAME (NAME defaults to the
//! interface), so every command after `attach` may run in another process.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xdpwall::{
    loader::{self, Snapshot},
    service::{self, apply::Change, config::Config, Record},
    Filter, Maps, Mode, RuleSet,
};
use xdpwall_common::stat;

#[derive(Parser)]
#[command(
    name = "xdpwall",
    version,
    about = "XDP packet filter with live, atomic rule updates"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the filter with a rule file and attach it to an interface.
    Attach {
        /// The interface.
        iface: String,
        /// The rule file (TOML; see filter/README.md).
        #[arg(short, long)]
        rules: PathBuf,
        /// XDP mode.
        #[arg(short, long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        /// Name to pin the filter under (default: the interface name).
        #[arg(long)]
        name: Option<String>,
        /// Network namespace (under /run/netns) that holds the interface.
        #[arg(long)]
        netns: Option<String>,
        /// Stay in the foreground and detach on Ctrl-C (otherwise the filter stays attached
        /// after this command returns, until `xdpwall detach`).
        #[arg(short, long)]
        foreground: bool,
        /// Accept a rule file without rules (it applies only the default policy).
        #[arg(long)]
        allow_empty: bool,
        /// With --foreground: print the counters every this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        interval: u64,
    },
    /// Replace the rules of a running filter, atomically. A bad file changes nothing.
    Update {
        /// The filter's name (its interface, unless --name was given to attach).
        name: String,
        /// The new rule file.
        #[arg(short, long)]
        rules: PathBuf,
        /// Accept a rule file without rules (it applies only the default policy).
        #[arg(long)]
        allow_empty: bool,
        /// Roll the previous rules back unless `yes` is typed within this many seconds (a
        /// rule that cuts off the operator's own session undoes itself).
        #[arg(long, value_name = "SECONDS")]
        confirm: Option<u64>,
    },
    /// Show the rules and counters of running filters.
    Status {
        /// One filter (default: all).
        name: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Detach a filter and remove its pins (also cleans up after a crashed run).
    Detach {
        /// The filter's name.
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Every xdpwall filter on this machine.
        #[arg(long)]
        all: bool,
    },
    /// Stream sampled verdicts of a running filter (one drop in 1,000 by default).
    Trace {
        /// The filter's name.
        name: String,
        /// Sample one drop in this many (0: no drops); default: leave the filter's setting.
        #[arg(long)]
        every: Option<u32>,
        /// Sample one pass in this many (0: no passes); default: leave the filter's setting.
        #[arg(long)]
        passes: Option<u32>,
        /// Leading bytes of each sampled frame to capture (at most 256).
        #[arg(long)]
        snap: Option<u32>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the sampled frames to this pcapng file, the verdict as each packet's
        /// comment.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Show what the running kernel supports and what loading the filter costs on it.
    Features {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a rule file without touching any filter.
    Check {
        /// The rule file.
        rules: PathBuf,
    },
    /// Make the running filters match a configuration file (see filter/README.md, "Running
    /// as a service"): unchanged filters are left alone, changed rules updated live, filters
    /// the file no longer names (that apply attached) detached. A bad entry changes nothing.
    Apply {
        /// The configuration (TOML).
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The service: apply a configuration (again on SIGHUP), serve Prometheus metrics, and on
    /// SIGTERM exit leaving the filters attached (a restart finds them running).
    Serve {
        /// The configuration to apply (optional: without it, only metrics are served).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve metrics at http://ADDR/metrics (overrides the configuration's `metrics`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);
/// Set by SIGHUP under `xdpwall serve` (which reloads instead of stopping).
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Refuses a rule set without rules unless `allow` (an empty or truncated file would
/// otherwise silently leave only the default policy).
fn refuse_empty(set: &RuleSet, path: &Path, allow: bool) -> Result<()> {
    if set.rules.is_empty() && !allow {
        bail!(
            "{} has no rules: it would {} every packet by the default policy; pass \
             --allow-empty if that is what you want",
            path.display(),
            set.default
        );
    }
    Ok(())
}

/// Waits up to `limit` for a line `yes` on standard input. Anything else, the end of input, a
/// signal (SIGINT, SIGTERM, SIGHUP: the operator's session went away) or the time running out
/// is a no.
fn confirmed(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || STOP.load(Ordering::SeqCst) {
            return false;
        }
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(100) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut fds, 1, ms) } > 0 {
            let mut line = String::new();
            return match std::io::stdin().read_line(&mut line) {
                Ok(n) if n > 0 => line.trim() == "yes",
                _ => false,
            };
        }
    }
}

/// Detaches the filter `name` (pins, lock file, record); false when none was running.
fn detach(name: &str) -> Result<bool> {
    Ok(service::detach(name)?)
}

/// Serialises updates of one filter between processes.
fn lock(name: &str) -> Result<File> {
    service::lock(name).with_context(|| format!("locking {}", service::lock_path(name).display()))
}

fn main() {
    // Output into a closed pipe (`xdpwall status | head`) ends the process quietly, as it
    // does for other Unix tools, instead of a panic; commands that must clean up catch it.
    // SAFETY: restoring a default disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("xdpwall: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Attach {
            iface,
            rules,
            mode,
            name,
            netns,
            foreground,
            interval,
            allow_empty,
        } => {
            let set = RuleSet::from_file(&rules)?;
            refuse_empty(&set, &rules, allow_empty)?;
            if let Some(ns) = &netns {
                xdpwall::netns::enter(ns)?;
            }
            let name = name.unwrap_or_else(|| iface.clone());
            attach(
                &iface,
                netns.as_deref(),
                &rules,
                &set,
                mode,
                &name,
                foreground,
                interval,
            )
        }
        Cmd::Update {
            name,
            rules,
            allow_empty,
            confirm,
        } => {
            let set = RuleSet::from_file(&rules)?;
            refuse_empty(&set, &rules, allow_empty)?;
            // Held until the command ends: through the confirmation window too, so the
            // generation a roll-back returns to is still the previous rule set.
            let _lock = lock(&name)?;
            let mut maps = Maps::open_pinned(&name)?;
            let r = maps.apply(&set)?;
            if let Some(mut rec) = Record::read(&name) {
                rec.rules = rules.clone();
                rec.fingerprint = service::fingerprint(&set, None);
                rec.updated_unix = Record::now();
                rec.update_seconds = (r.compile + r.write).as_secs_f64();
                // A filter of a configuration updated by hand: its next `apply` puts the
                // configured rules back.
                rec.write(&name)
                    .with_context(|| format!("writing {}", Record::path(&name).display()))?;
            }
            println!(
                "updated '{name}': {} rules, {} set entries from {} (generation {}, compiled in {:.1} ms, written in {:.1} ms)",
                r.rules,
                set.sets.values().map(|s| s.nets.len()).sum::<usize>(),
                rules.display(),
                r.generation,
                r.compile.as_secs_f64() * 1e3,
                r.write.as_secs_f64() * 1e3
            );
            if let Some(secs) = confirm {
                install_signal_handlers();
                println!(
                    "type yes within {secs} s to keep these rules; anything else, no answer, \
                     Ctrl-C or a hang-up rolls them back"
                );
                if !confirmed(Duration::from_secs(secs)) {
                    let g = maps.roll_back()?;
                    bail!("not confirmed: rolled back to the previous rules (generation {g})");
                }
                println!("kept the new rules");
            }
            Ok(())
        }
        Cmd::Status { name, json } => {
            let names = match name {
                Some(n) => vec![n],
                None => loader::pinned_filters(),
            };
            let mut all = Vec::new();
            for n in &names {
                let snap = Maps::open_pinned(n)?.snapshot()?;
                all.push((n.clone(), snap));
            }
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|(n, s)| serde_json::json!({ "name": n, "status": s }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if all.is_empty() {
                println!("no xdpwall filter is running");
            } else {
                for (n, s) in &all {
                    print_status(n, s);
                }
            }
            Ok(())
        }
        Cmd::Detach { name, all } => {
            let names = if all {
                loader::pinned_filters()
            } else {
                name.into_iter().collect()
            };
            for n in names {
                if detach(&n)? {
                    println!("detached '{n}'");
                } else if !all {
                    bail!("no xdpwall filter named '{n}' is running");
                }
            }
            if all {
                // After a crash the bpffs xdpwall mounted may be all that is left.
                loader::release_bpffs()?;
            }
            Ok(())
        }
        Cmd::Trace {
            name,
            every,
            passes,
            snap,
            json,
            pcap,
            count,
            duration,
        } => trace(
            &name,
            every,
            passes,
            snap,
            json,
            pcap.as_deref(),
            count,
            duration,
        ),
        Cmd::Features { json } => {
            let f = xdpwall::features::probe();
            if json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                for l in f.lines() {
                    println!("{l}");
                }
            }
            if let Some(e) = f.load_error {
                bail!("the filter does not load on this kernel: {e}");
            }
            Ok(())
        }
        Cmd::Apply { config, json } => {
            let config = Config::from_file(&config)?;
            let changes = service::apply::apply(&config)?;
            print_changes(&changes, json)
        }
        Cmd::Serve { config, metrics } => serve(config.as_deref(), metrics),
        Cmd::Check { rules } => {
            let set = RuleSet::from_file(&rules)?;
            xdpwall::compile::compile(&set)?;
            println!(
                "{}: {} rules, default {}, malformed {}, non-ip {}",
                rules.display(),
                set.rules.len(),
                set.default,
                set.malformed,
                set.non_ip
            );
            for (i, r) in set.rules.iter().enumerate() {
                println!("  {i:>4}  {:<20} {r}", r.name.as_deref().unwrap_or("-"));
            }
            for (name, s) in &set.sets {
                println!("  set {name}: {} entries", s.nets.len());
            }
            Ok(())
        }
    }
}

fn print_changes(changes: &[(String, Change)], json: bool) -> Result<()> {
    if json {
        let v: Vec<_> = changes
            .iter()
            .map(|(n, c)| serde_json::json!({ "name": n, "result": c }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if changes.is_empty() {
        println!("nothing configured, nothing to detach");
    } else {
        for (n, c) in changes {
            println!("{n}: {c}");
        }
    }
    Ok(())
}

/// `xdpwall serve`: apply the configuration, then serve metrics (or just wait), applying it
/// again on SIGHUP; SIGTERM or Ctrl-C ends the process and leaves the filters attached.
fn serve(config: Option<&Path>, metrics: Option<String>) -> Result<()> {
    let load = |path: &Path| -> Result<Config> { Ok(Config::from_file(path)?) };
    let cfg = config.map(load).transpose()?;
    let addr = metrics.or_else(|| cfg.as_ref().and_then(|c| c.metrics.clone()));
    if cfg.is_none() && addr.is_none() {
        bail!("nothing to serve: give --config FILE and/or --metrics ADDR");
    }
    // Bind first: a port in use is reported before any filter changes.
    let listener = addr.as_deref().map(service::metrics::bind).transpose()?;
    if let Some(c) = &cfg {
        let changes = service::apply::apply(c)?;
        for (n, ch) in &changes {
            eprintln!("xdpwall: {n}: {ch}");
        }
        eprintln!(
            "xdpwall: applied {} ({} filters)",
            c.path.display(),
            c.filters.len()
        );
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t) };
    if let Some(a) = &addr {
        eprintln!("xdpwall: serving metrics at http://{a}/metrics");
    }
    let reload = || {
        if !HUP.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some(path) = config else {
            eprintln!("xdpwall: SIGHUP: no configuration to reload");
            return;
        };
        match load(path).and_then(|c| Ok(service::apply::apply(&c)?)) {
            Ok(changes) => {
                for (n, ch) in &changes {
                    eprintln!("xdpwall: reload: {n}: {ch}");
                }
                eprintln!("xdpwall: reloaded {}", path.display());
            }
            Err(e) => eprintln!("xdpwall: reload failed, the running filters are as before: {e:#}"),
        }
    };
    match &listener {
        Some(l) => service::metrics::serve(l, &STOP, reload),
        None => {
            while !STOP.load(Ordering::SeqCst) {
                reload();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    eprintln!("xdpwall: stopping; the filters stay attached (`xdpwall detach NAME` removes one)");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn attach(
    iface: &str,
    netns: Option<&str>,
    rules: &Path,
    set: &RuleSet,
    mode: Mode,
    name: &str,
    foreground: bool,
    interval: u64,
) -> Result<()> {
    let t = Instant::now();
    let record = |used: Mode| Record {
        iface: iface.to_string(),
        netns: netns.map(str::to_string),
        mode,
        attached_mode: used,
        rules: rules.to_path_buf(),
        fingerprint: service::fingerprint(set, None),
        config: None,
        updated_unix: Record::now(),
        update_seconds: t.elapsed().as_secs_f64(),
    };
    let said = |used: Mode| {
        if let Err(e) = record(used).write(name) {
            eprintln!(
                "xdpwall: could not write {} ({e}): metrics will lack its update time",
                Record::path(name).display()
            );
        }
        println!(
            "xdpwall attached to {iface} in {used} mode: {} rules from {}; pinned at {}",
            set.rules.len(),
            rules.display(),
            loader::pin_dir(name).display()
        );
    };
    if !foreground {
        said(service::attach_pinned(iface, set, mode, name)?);
        println!("(`xdpwall status {name}` shows counters, `xdpwall detach {name}` removes it)");
        return Ok(());
    }
    install_signal_handlers();
    let mut filter = Filter::load_pinned(name)?;
    // From here on, any failure must leave nothing pinned or attached.
    let result = (|| -> Result<Mode> {
        filter.maps.apply(set)?;
        Ok(filter.attach(iface, mode)?)
    })();
    let used = match result {
        Ok(m) => m,
        Err(e) => {
            drop(filter);
            let _ = detach(name);
            return Err(e);
        }
    };
    said(used);
    println!("running in the foreground; Ctrl-C detaches");
    let mut last = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if interval > 0 && last.elapsed() >= Duration::from_secs(interval) {
            last = Instant::now();
            match filter.maps.snapshot() {
                Ok(s) => print_status(name, &s),
                Err(e) => eprintln!("xdpwall: reading counters: {:#}", anyhow::Error::new(e)),
            }
        }
    }
    drop(filter);
    detach(name)?;
    println!("detached from {iface}");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn trace(
    name: &str,
    every: Option<u32>,
    passes: Option<u32>,
    snap: Option<u32>,
    json: bool,
    pcap: Option<&Path>,
    count: Option<u64>,
    duration: Option<f64>,
) -> Result<()> {
    use xdpwall::trace::{describe, monotonic_now, monotonic_to_wall, PcapngSink, Tracer};
    install_signal_handlers();
    let mut maps = Maps::open_pinned(name)?;
    let before = maps.sampling()?;
    let wanted = loader::Sampling {
        drops: every.unwrap_or(before.drops),
        passes: passes.unwrap_or(before.passes),
        snap_len: snap.unwrap_or(before.snap_len),
    };
    let mut tracer = Tracer::new(maps.take_events()?);
    let mut sink = match pcap {
        Some(p) => Some(
            PcapngSink::create(p, wanted.snap_len)
                .with_context(|| format!("creating {}", p.display()))?,
        ),
        None => None,
    };
    // The config word also holds the active generation: change it under the update lock so
    // that a concurrent `xdpwall update` cannot be undone by this read-modify-write.
    {
        let _lock = lock(name)?;
        maps.set_sampling(wanted)?;
    }
    if wanted.drops == 0 && wanted.passes == 0 {
        eprintln!("xdpwall: sampling is off for '{name}' (use --every N and/or --passes N)");
    }
    // The ring fills up whenever nobody reads it; what counts is what is lost from now on.
    let lost_before = maps.stat(stat::EVENTS_LOST)?.packets;
    let start = monotonic_now();
    // Say that tracing is on only now that events count from `start`: a script (or test) that
    // sends once it reads this line must not send before `start` (a trace descheduled between
    // the two skipped all of that traffic's events as older than itself).
    let every = |n: u32| match n {
        0 => "none".to_string(),
        n => format!("1 in {n}"),
    };
    eprintln!(
        "xdpwall: tracing '{name}': drops {}, passes {}; Ctrl-C stops",
        every(wanted.drops),
        every(wanted.passes)
    );
    let offset = monotonic_to_wall();
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut names = (u32::MAX, Vec::<Option<String>>::new());
    let mut seen = 0u64;
    let result = (|| -> Result<()> {
        while !STOP.load(Ordering::SeqCst)
            && count.is_none_or(|c| seen < c)
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            let Some(e) = tracer.next(Duration::from_millis(200)) else {
                continue;
            };
            // Events from before this trace started were sampled under other settings.
            if e.ts_ns < start {
                continue;
            }
            if names.0 != e.gen {
                let rules = maps.active_rules()?.1;
                names = (e.gen, rules.into_iter().map(|r| r.name).collect());
            }
            let ev = describe(&e, offset, |_, i| {
                names.1.get(i as usize).cloned().flatten()
            });
            let line = if json {
                serde_json::to_string(&ev)?
            } else {
                ev.to_string()
            };
            // A reader that went away (`xdpwall trace ... | head`) ends the trace like Ctrl-C:
            // the filter's sampling is still restored below.
            match writeln!(std::io::stdout(), "{line}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                r => r?,
            }
            if let Some(s) = sink.as_mut() {
                s.write(&ev)?;
            }
            seen += 1;
        }
        Ok(())
    })();
    // Leave the filter sampling as it was, whatever happened.
    let restored = lock(name).and_then(|_lock| Ok(maps.set_sampling(before)?));
    if let Some(s) = sink {
        s.finish()?;
        eprintln!(
            "xdpwall: wrote {seen} sampled frames to {}",
            pcap.unwrap().display()
        );
    }
    let lost = maps
        .stat(stat::EVENTS_LOST)
        .map(|c| c.packets.saturating_sub(lost_before));
    result?;
    restored?;
    let lost = lost?;
    eprintln!(
        "xdpwall: {seen} sampled verdicts shown, {lost} lost to a full ring buffer while tracing{}",
        if lost > 0 {
            " (sample fewer: --every N with a larger N)"
        } else {
            ""
        }
    );
    Ok(())
}

fn print_status(name: &str, s: &Snapshot) {
    println!(
        "filter '{name}': generation {}, default {}, malformed {}, non-ip {}",
        s.generation, s.default, s.malformed_action, s.non_ip_action
    );
    println!(
        "  {:>4}  {:<20} {:<50} {:>12} {:>14}",
        "#", "name", "rule", "packets", "bytes"
    );
    for r in &s.rules {
        println!(
            "  {:>4}  {:<20} {:<50} {:>12} {:>14}",
            r.index,
            r.rule.name.as_deref().unwrap_or("-"),
            r.rule.to_string(),
            r.hits.packets,
            r.hits.bytes
        );
    }
    for r in s.rules.iter().filter(|r| r.rule.action.limit().is_some()) {
        println!(
            "  rule {} over its rate limit: {} packets dropped",
            r.index, r.limited.packets
        );
    }
    for set in &s.sets {
        println!(
            "  set {:<20} {:>9} entries ({} hosts, {} IPv6)",
            set.name, set.entries, set.hosts, set.v6
        );
    }
    println!(
        "  sampling: 1 in {} drops, 1 in {} passes (0: off), {} bytes per frame",
        s.sampling.drops, s.sampling.passes, s.sampling.snap_len
    );
    for (label, c) in [
        ("passed", s.pass),
        ("dropped", s.drop),
        ("no rule (default)", s.default_hits),
        ("malformed", s.malformed),
        ("non-IP", s.non_ip),
        ("rate-limited", s.rate_limited),
        ("events lost", s.events_lost),
    ] {
        println!(
            "  {label:<18} {:>12} packets {:>14} bytes",
            c.packets, c.bytes
        );
    }
}
