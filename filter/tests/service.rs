//! xdpwall as a service, driven as an operator would: `xdpwall apply` on the veth topology
//! (idempotent, live updates, re-attach, detach of what it attached, bad entries changing
//! nothing), `xdpwall serve` scraped by a real Prometheus server (Debian's `prometheus`,
//! started by the test) with per-rule counters read back through Prometheus' query API and
//! compared with `xdpwall status --json`, the Grafana dashboard's metrics checked against a
//! real scrape, and every command run with only the capabilities the documentation names
//! (and refused, with a one-line reason, without them). Needs root; fails (never skips)
//! without it or without Prometheus (`cargo xtask test` installs it).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use harness::{probe::udp_round, Options, Topology};

fn xdpwall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdpwall"))
        .args(args)
        .output()
        .expect("running xdpwall")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch(dir: &str, name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xdpwall-svc-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Detaches the named filters when dropped (also when a test fails half way).
struct Detach(Vec<String>);
impl Drop for Detach {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = xdpwall(&["detach", n]);
        }
    }
}

fn topology(prefix: &str) -> (Topology, String) {
    let id = std::process::id() % 10000;
    let topo = Topology::standard(&format!("{prefix}-{id}"), &Options::default()).unwrap();
    (topo, format!("xw-{prefix}-{id}"))
}

/// The program id attached to `iface` in `netns` (`ip -j link`), to tell a live update (same
/// program) from a re-attach.
fn prog_id(netns: &str, iface: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j", "link", "show", iface])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["xdp"]["prog"]["id"].as_u64()
}

fn status(name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&xdpwall(&["status", name, "--json"]))).unwrap();
    v[0]["status"].clone()
}

const DROP_7000: &str =
    "[[rule]]\nname = \"no-7000\"\naction = \"drop\"\nproto = \"udp\"\ndport = 7000\n";
const DROP_7001: &str =
    "[[rule]]\nname = \"no-7001\"\naction = \"drop\"\nproto = \"udp\"\ndport = 7001\n";

fn config(topo: &Topology, name: &str, rules: &Path, mode: &str) -> String {
    format!(
        "[[filter]]\nname = \"{name}\"\niface = \"{}\"\nnetns = \"{}\"\nrules = \"{}\"\nmode = \"{mode}\"\n",
        topo.dut.iface,
        topo.dut.netns,
        rules.display()
    )
}

#[test]
fn apply_is_idempotent_updates_live_and_detaches_what_it_attached() {
    let (topo, name) = topology("apply");
    let _cleanup = Detach(vec![name.clone()]);
    let targets = [(false, 7000u16), (false, 7001)];
    let quiet = Duration::from_millis(400);
    let rules = scratch("apply", "rules.toml", DROP_7000);
    let cfg = scratch(
        "apply",
        "xdpwall.toml",
        &config(&topo, &name, &rules, "generic"),
    );
    let cfg_s = cfg.to_str().unwrap();

    let first = ok(&xdpwall(&["apply", cfg_s]));
    assert_eq!(first.trim(), format!("{name}: attached (generic mode)"));
    assert_eq!(udp_round(&topo, &targets, 20, quiet), vec![0, 20]);
    let id = prog_id(&topo.dut.netns, &topo.dut.iface).expect("a program attached");
    let gen = status(&name)["generation"].clone();

    // Twice in a row: the second run changes nothing.
    let again = ok(&xdpwall(&["apply", cfg_s, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v[0]["result"]["change"], "unchanged", "{again}");
    assert_eq!(prog_id(&topo.dut.netns, &topo.dut.iface), Some(id));
    assert_eq!(status(&name)["generation"], gen, "no generation flip");
    assert!(
        status(&name)["rules"][0]["hits"]["packets"]
            .as_u64()
            .unwrap()
            >= 20,
        "counters kept"
    );

    // Changed rules: a live update (same program, the other generation).
    std::fs::write(&rules, DROP_7001).unwrap();
    let upd = ok(&xdpwall(&["apply", cfg_s]));
    assert!(upd.contains(&format!("{name}: updated live")), "{upd}");
    assert_eq!(prog_id(&topo.dut.netns, &topo.dut.iface), Some(id));
    assert_ne!(status(&name)["generation"], gen);
    assert_eq!(udp_round(&topo, &targets, 20, quiet), vec![20, 0]);
    assert!(ok(&xdpwall(&["apply", cfg_s])).contains("unchanged"));

    // A bad rule file, and a missing interface: nothing changes, the entry is named.
    let bad_rules = scratch(
        "apply",
        "bad.toml",
        "[[rule]]\naction = \"drop\"\ndport = \"9-1\"\n",
    );
    let bad = scratch(
        "apply",
        "bad-rules.toml",
        &config(&topo, &name, &bad_rules, "generic"),
    );
    let out = xdpwall(&["apply", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("filter '{name}' (line 1)"))
            && err.contains("bad.toml:3:")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let missing = scratch(
        "apply",
        "missing.toml",
        &format!(
            "{}\n[[filter]]\nname = \"xw-nope\"\niface = \"nope0\"\nnetns = \"{}\"\nrules = \"{}\"\n",
            config(&topo, &name, &rules, "generic"),
            topo.dut.netns,
            rules.display()
        ),
    );
    let out = xdpwall(&["apply", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("filter 'xw-nope' (line 8)") && err.contains("interface nope0 does not exist"),
        "{err}"
    );
    assert!(!Path::new("/sys/fs/bpf/xdpwall/xw-nope").exists());
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![20, 0],
        "still running as before"
    );

    // Another configuration file without the filter leaves it alone (it is this file's).
    let other = scratch("apply", "other.toml", "# no filters\n");
    let out = ok(&xdpwall(&["apply", other.to_str().unwrap()]));
    assert_eq!(out.trim(), "nothing configured, nothing to detach");
    assert!(prog_id(&topo.dut.netns, &topo.dut.iface).is_some());

    // The file edited: a mode change re-attaches; the entry removed detaches the filter.
    std::fs::write(&cfg, config(&topo, &name, &rules, "native")).unwrap();
    let out = ok(&xdpwall(&["apply", cfg_s]));
    assert_eq!(out.trim(), format!("{name}: re-attached (native mode)"));
    std::fs::write(&cfg, "# no filters\n").unwrap();
    let out = ok(&xdpwall(&["apply", cfg_s]));
    assert_eq!(
        out.trim(),
        format!("{name}: detached (no longer configured)")
    );
    assert!(prog_id(&topo.dut.netns, &topo.dut.iface).is_none());
    assert!(!Path::new("/sys/fs/bpf/xdpwall").join(&name).exists());
}

/// A filter attached by hand is not the configuration's to remove.
#[test]
fn apply_leaves_filters_it_did_not_attach() {
    let (topo, name) = topology("hand");
    let _cleanup = Detach(vec![name.clone()]);
    let rules = scratch("hand", "rules.toml", DROP_7000);
    ok(&xdpwall(&[
        "attach",
        "dut0",
        "--netns",
        &topo.dut.netns,
        "--mode",
        "generic",
        "--name",
        &name,
        "--rules",
        rules.to_str().unwrap(),
    ]));
    let none = scratch("hand", "none.toml", "");
    let out = ok(&xdpwall(&["apply", none.to_str().unwrap()]));
    assert_eq!(out.trim(), "nothing configured, nothing to detach");
    assert!(Path::new("/sys/fs/bpf/xdpwall").join(&name).exists());
}

/// Kills a child process when dropped.
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from 127.0.0.1:`port`: (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prometheus' instant query: the first sample's value, if any.
fn prom_query(port: u16, query: &str) -> Option<f64> {
    let enc: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={enc}"))?;
    // 503 until Prometheus is ready.
    if !status.contains(" 200 ") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn start_serve(args: &[&str]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_xdpwall"))
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting xdpwall serve"),
    )
}

#[test]
fn prometheus_scrapes_per_rule_counters_that_match_status() {
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.exists(),
        "Debian's prometheus is not installed (cargo xtask test installs it: apt-get install prometheus)"
    );
    let (topo, name) = topology("prom");
    let _cleanup = Detach(vec![name.clone()]);
    let rules = scratch("prom", "rules.toml", &format!("{DROP_7000}\n[[rule]]\nname = \"web\"\naction = \"pass\"\nproto = \"udp\"\ndport = 7001\n"));
    let cfg = scratch(
        "prom",
        "xdpwall.toml",
        &config(&topo, &name, &rules, "generic"),
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let serve = start_serve(&["--config", cfg.to_str().unwrap(), "--metrics", &addr]);
    wait_for("the metrics endpoint", Duration::from_secs(20), || {
        http_get(port, "/metrics").is_some_and(|(s, b)| s.contains("200") && b.contains(&name))
    });

    // A second server on the same port says so in one line and changes nothing.
    let out = xdpwall(&["serve", "--metrics", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("metrics address {addr} is in use")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        http_get(port, "/nothing").unwrap().0.split(' ').nth(1),
        Some("404")
    );

    // Traffic: 30 datagrams to each port (the first rule drops 7000, the second passes 7001).
    assert_eq!(
        udp_round(
            &topo,
            &[(false, 7000), (false, 7001)],
            30,
            Duration::from_millis(400)
        ),
        vec![0, 30]
    );

    // A real Prometheus scraping the endpoint every second.
    let dir = std::env::temp_dir().join(format!("xdpwall-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: xdpwall\n    static_configs:\n      - targets: ['{addr}']\n"),
    )
    .unwrap();
    let _prom = Kill(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );
    let s = status(&name);
    let want = |i: usize| s["rules"][i]["hits"]["packets"].as_u64().unwrap() as f64;
    assert!(want(0) >= 30.0 && want(1) >= 30.0, "{s}");
    let q = |rule: &str| format!("xdpwall_rule_packets_total{{filter=\"{name}\",rule=\"{rule}\"}}");
    wait_for(
        "Prometheus to scrape the counters",
        Duration::from_secs(60),
        || {
            prom_query(prom_port, &q("0")) == Some(want(0))
                && prom_query(prom_port, &q("1")) == Some(want(1))
        },
    );
    eprintln!(
        "Prometheus: {} = {:?}, {} = {:?} (status --json: {}, {})",
        q("0"),
        prom_query(prom_port, &q("0")),
        q("1"),
        prom_query(prom_port, &q("1")),
        want(0),
        want(1)
    );
    let dropped = format!("xdpwall_packets_total{{filter=\"{name}\",verdict=\"drop\"}}");
    assert_eq!(
        prom_query(prom_port, &dropped),
        Some(s["drop"]["packets"].as_u64().unwrap() as f64)
    );
    let web =
        format!("xdpwall_rule_packets_total{{filter=\"{name}\",name=\"web\",action=\"pass\"}}");
    assert_eq!(prom_query(prom_port, &web), Some(want(1)));

    // Every metric the Grafana dashboard queries exists in Prometheus now.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/xdpwall.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut names: Vec<String> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("xdpwall_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    // A rate-limit rule and a set make their families appear (reloaded on SIGHUP).
    let limited = scratch(
        "prom",
        "limited.toml",
        "[set.blocklist]\nentries = [\"192.0.2.0/24\"]\n\n[[rule]]\naction = \"drop\"\nsrc = \"@blocklist\"\n\n\
         [[rule]]\nname = \"slow\"\naction = \"rate-limit\"\nrate = 10\nburst = 10\nproto = \"udp\"\n",
    );
    std::fs::write(&cfg, config(&topo, &name, &limited, "generic")).unwrap();
    // SAFETY: signalling our own child: reload.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGHUP) };
    for n in &names {
        wait_for(
            &format!("{n} in Prometheus"),
            Duration::from_secs(30),
            || {
                prom_query(
                    prom_port,
                    &format!("count({{__name__=\"{n}\",filter=\"{name}\"}})"),
                )
                .is_some()
            },
        );
    }
    eprintln!(
        "the dashboard's {} metrics all exist: {names:?}",
        names.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `setpriv` with exactly `caps` (as root's uid: the pins and /run/xdpwall belong to it).
fn with_caps(caps: &[&str], args: &[&str]) -> Output {
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    Command::new("setpriv")
        .arg(format!("--bounding-set={set}"))
        .arg(format!("--inh-caps={set}"))
        .arg(env!("CARGO_BIN_EXE_xdpwall"))
        .args(args)
        .output()
        .expect("running setpriv (util-linux)")
}

#[test]
fn each_command_runs_with_the_capabilities_the_docs_name_and_says_what_is_missing() {
    let (topo, name) = topology("caps");
    let _cleanup = Detach(vec![name.clone()]);
    // The BPF filesystem mounted, as systemd mounts it at boot (mounting one takes
    // CAP_SYS_ADMIN; xdpwall does it itself when run as root). Unmounted again at the end if
    // this mounted it and nothing is pinned.
    let _bpffs = xdpwall::loader::BpffsHold::take().unwrap();
    let rules = scratch("caps", "rules.toml", DROP_7000);
    let rules_s = rules.to_str().unwrap();
    // The interface in xdpwall's own namespace: move the test into the DUT's (a filter in
    // another namespace also needs CAP_SYS_ADMIN for setns, checked below).
    let base = ["bpf", "net_admin", "perfmon"];
    // `--netns NS`, or (without it) the whole command run inside the namespace by nsenter,
    // which switches only the network namespace (`ip netns exec` also gives the command a
    // mount namespace of its own, without the host's BPF filesystem).
    let attach = |netns: bool| -> Vec<String> {
        let mut v: Vec<String> = [
            "attach", "dut0", "--mode", "generic", "--name", &name, "--rules", rules_s,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if netns {
            v.extend(["--netns".to_string(), topo.dut.netns.clone()]);
        } else {
            v.insert(0, format!("--net=/run/netns/{}", topo.dut.netns));
        }
        v
    };
    let run = |caps: &[&str], args: &[String]| {
        if args[0].starts_with("--net=") {
            // nsenter --net=... setpriv ... xdpwall ...
            let set = std::iter::once("-all".to_string())
                .chain(caps.iter().map(|c| format!("+{c}")))
                .collect::<Vec<_>>()
                .join(",");
            Command::new("nsenter")
                .arg(&args[0])
                .arg("setpriv")
                .arg(format!("--bounding-set={set}"))
                .arg(format!("--inh-caps={set}"))
                .arg(env!("CARGO_BIN_EXE_xdpwall"))
                .args(&args[1..])
                .output()
                .unwrap()
        } else {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            with_caps(caps, &a)
        }
    };
    // Without one of the three, attach fails with one line naming what is missing.
    for missing in base {
        // (Not with CAP_SYS_ADMIN: it stands in for CAP_BPF and CAP_PERFMON.)
        let caps: Vec<&str> = base.iter().copied().filter(|c| *c != missing).collect();
        let out = run(&caps, &attach(false));
        eprintln!(
            "attach without {missing}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "attach without {missing} succeeded"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "without {missing}: {err}");
        assert!(err.contains("CAP_"), "without {missing}: {err}");
        assert!(
            !Path::new("/sys/fs/bpf/xdpwall").join(&name).exists(),
            "pins left without {missing}"
        );
    }
    // --netns needs CAP_SYS_ADMIN too.
    let out = run(&base, &attach(true));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("attach --netns without sys_admin: {}", err.trim());
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    // With the three, in the interface's namespace: every command works.
    let out = run(&base, &attach(false));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        vec!["status", name.as_str(), "--json"],
        vec!["update", name.as_str(), "--rules", rules_s],
        vec!["trace", name.as_str(), "--duration", "0.2"],
    ] {
        let out = with_caps(&base, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // status only reads the pins: CAP_BPF is enough; from Linux 6.5 on, opening pins and
    // reading maps needs no capability at all (only creating maps and programs does), so
    // root's uid without capabilities reads them too.
    let out = with_caps(&["bpf"], &["status", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = xdpwall::features::kernel_release();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse::<u32>().ok());
    let (major, minor) = (v.next().unwrap(), v.next().unwrap());
    let out = with_caps(&[], &["status", &name]);
    if (major, minor) >= (6, 5) {
        assert!(
            out.status.success(),
            "{release}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "{release}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("CAP_BPF") && err.lines().count() == 1, "{err}");
    }
    // Metrics: CAP_BPF to read the maps.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let set = "-all,+bpf";
    let _serve = Kill(
        Command::new("setpriv")
            .args([format!("--bounding-set={set}"), format!("--inh-caps={set}")])
            .arg(env!("CARGO_BIN_EXE_xdpwall"))
            .args(["serve", "--metrics", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("metrics with CAP_BPF only", Duration::from_secs(20), || {
        http_get(port, "/metrics")
            .is_some_and(|(_, b)| b.contains(&format!("xdpwall_up{{filter=\"{name}\"}} 1")))
    });
    let out = with_caps(&base, &["detach", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!Path::new("/sys/fs/bpf/xdpwall").join(&name).exists());
}

/// The shipped unit passes systemd's own checks (this machine does not run systemd as PID 1,
/// so the unit itself cannot be started here; `xdpwall serve` is what it runs, tested above).
#[test]
fn the_systemd_unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/xdpwall.service");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    // The binary's path is where the unit installs it, not this build's.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("/usr/local/bin/xdpwall") && !l.contains("ConditionPathExists"))
        .collect();
    assert!(problems.is_empty(), "{err}");
    let text = std::fs::read_to_string(&unit).unwrap();
    for key in [
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecReload=",
    ] {
        assert!(text.contains(key), "{key}");
    }
}
