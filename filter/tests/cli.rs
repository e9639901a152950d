//! The `xdpwall` binary as a user drives it: check, attach into a namespace, status --json,
//! a rejected update that changes nothing, a live update, detach, and a foreground attach
//! ended by SIGINT. Needs root; fails (never skips) without it.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use harness::{probe::udp_round, Options, Topology};

fn xdpwall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdpwall"))
        .args(args)
        .output()
        .expect("running xdpwall")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpwall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_accepts_the_example_and_names_the_bad_line() {
    let ok = xdpwall(&["check", &example("client-server.toml")]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 rules"));
    let bad = scratch(
        "bad.toml",
        "default = \"drop\"\n[[rule]]\naction = \"pass\"\nsrc = \"10.0.0.300\"\n",
    );
    let out = xdpwall(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:4:") && err.contains("10.0.0.300"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn missing_interface_is_one_clear_line() {
    let out = xdpwall(&[
        "attach",
        "xw-nonexistent0",
        "--rules",
        &example("client-server.toml"),
        "--name",
        "xw-missing-if",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'xw-nonexistent0' does not exist"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !Path::new("/sys/fs/bpf/xdpwall/xw-missing-if").exists(),
        "pins left after a failed attach"
    );
}

struct Detach(String);
impl Drop for Detach {
    fn drop(&mut self) {
        let _ = xdpwall(&["detach", &self.0]);
    }
}

/// A standard topology named `prefix-ID` and a filter name `xw-prefix-ID` detached on drop.
fn setup(prefix: &str) -> (Topology, String, Detach) {
    let id = std::process::id() % 10000;
    let topo = Topology::standard(&format!("{prefix}-{id}"), &Options::default()).unwrap();
    let name = format!("xw-{prefix}-{id}");
    (topo, name.clone(), Detach(name))
}

/// `xdpwall attach dut0` in the topology's DUT namespace as filter `name`; fails the test if
/// it fails.
fn attach(topo: &Topology, name: &str, mode: &str, rules: &str) {
    let out = xdpwall(&[
        "attach",
        "dut0",
        "--netns",
        &topo.dut.netns,
        "--mode",
        mode,
        "--name",
        name,
        "--rules",
        rules,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn attach_status_update_detach_and_foreground_sigint() {
    let (topo, name, _cleanup) = setup("cli");
    let targets = [(false, 7000u16)];
    let quiet = Duration::from_millis(400);

    // The client/server example drops everything between the topology's own addresses.
    attach(&topo, &name, "generic", &example("client-server.toml"));
    assert_eq!(udp_round(&topo, &targets, 50, quiet), vec![0]);

    let status = xdpwall(&["status", &name, "--json"]);
    assert!(status.status.success());
    // Into a pipe whose reader is gone (it exits at once; status starts later): a quiet end,
    // not a panic.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 0.3; '{}' status '{name}') | true",
            env!("CARGO_BIN_EXE_xdpwall")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let s = &v[0]["status"];
    assert_eq!(s["rules"].as_array().unwrap().len(), 2);
    assert_eq!(s["rules"][0]["rule"]["name"], "from-client");
    assert!(s["default_hits"]["packets"].as_u64().unwrap() >= 50, "{s}");

    // A bad file is rejected with its line, and the running rules stay.
    let bad = scratch(
        "bad2.toml",
        "default = \"pass\"\n[[rule]]\naction = \"drop\"\ndport = \"9-1\"\n",
    );
    let out = xdpwall(&["update", &name, "--rules", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad2.toml:4:"));
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![0],
        "still the old rules"
    );

    // A file without rules is refused unless asked for: an empty or truncated file must not
    // silently open (or close) everything.
    let open = scratch("open.toml", "default = \"pass\"\n");
    let out = xdpwall(&["update", &name, "--rules", open.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no rules") && err.contains("--allow-empty"),
        "{err}"
    );
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![0],
        "still the old rules"
    );
    let out = xdpwall(&[
        "update",
        &name,
        "--rules",
        open.to_str().unwrap(),
        "--allow-empty",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![20],
        "new rules are live"
    );

    let out = xdpwall(&["detach", &name]);
    assert!(out.status.success());
    assert!(!Path::new("/sys/fs/bpf/xdpwall").join(&name).exists());
    assert!(
        !Path::new("/run/xdpwall")
            .join(format!("{name}.lock"))
            .exists(),
        "the update lock file goes with the filter"
    );
    let out = xdpwall(&["status", &name]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "status of a detached filter fails"
    );

    // Foreground: runs until SIGINT, then detaches and removes its pins.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdpwall"))
        .args([
            "attach",
            "dut0",
            "--netns",
            &topo.dut.netns,
            "--mode",
            "generic",
            "--name",
            &name,
            "--rules",
            &example("client-server.toml"),
            "--foreground",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines
            .next()
            .expect("foreground attach ended early")
            .unwrap();
        if l.contains("Ctrl-C detaches") {
            break;
        }
    }
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![0],
        "foreground filter is live"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !Path::new("/sys/fs/bpf/xdpwall").join(&name).exists(),
        "pins left after Ctrl-C"
    );
    assert_eq!(
        udp_round(&topo, &targets, 20, quiet),
        vec![20],
        "detached after Ctrl-C"
    );
}

/// `xdpwall trace` on a running filter: JSON lines for sampled drops and a pcapng file that
/// tshark reads, each packet commented with its verdict and rule.
#[test]
fn trace_streams_sampled_verdicts_to_json_and_pcapng() {
    let (topo, name, _cleanup) = setup("tr");
    let rules = scratch(
        "trace.toml",
        "[[rule]]\nname = \"no-7000\"\naction = \"drop\"\nproto = \"udp\"\ndport = 7000\n",
    );
    attach(&topo, &name, "native", rules.to_str().unwrap());
    let pcap = std::env::temp_dir().join(format!("{name}.pcapng"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdpwall"))
        .args([
            "trace", &name, "--every", "1", "--snap", "96", "--json", "--count", "20",
        ])
        .arg("--pcap")
        .arg(&pcap)
        .args(["--duration", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Traffic only once trace says sampling is on.
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    loop {
        let l = err_lines.next().expect("trace ended early").unwrap();
        err.push_str(&l);
        err.push('\n');
        if l.contains("tracing '") {
            assert!(l.contains("drops 1 in 1"), "{l}");
            break;
        }
    }
    let got = udp_round(&topo, &[(false, 7000)], 30, Duration::from_millis(300));
    assert_eq!(got, vec![0], "all dropped");
    let out = child.wait_with_output().unwrap();
    for l in err_lines.map_while(Result::ok) {
        err.push_str(&l);
        err.push('\n');
    }
    assert!(out.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20, "{err}");
    // 30 events in a 2 MiB ring that trace drains: none lost, and trace says so.
    assert!(
        err.contains("20 sampled verdicts shown, 0 lost to a full ring buffer while tracing"),
        "{err}"
    );
    for l in &lines {
        assert_eq!(l["action"], "drop");
        assert_eq!(l["rule"], 0);
        assert_eq!(l["rule_name"], "no-7000");
        assert_eq!(l["dport"], 7000);
        assert_eq!(l["src"], topo.gen.ip4.to_string());
    }
    // The sampling setting is back to the filter's default after trace exits.
    let status = xdpwall(&["status", &name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v[0]["status"]["sampling"]["drops"], 1000);

    // Ctrl-C ends an open-ended trace cleanly, and puts the sampling back too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdpwall"))
        .args(["trace", &name, "--every", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while !err_lines
        .next()
        .expect("trace ended early")
        .unwrap()
        .contains("tracing '")
    {}
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success(), "trace after Ctrl-C");
    let status = xdpwall(&["status", &name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        v[0]["status"]["sampling"]["drops"], 1000,
        "sampling restored"
    );

    let tshark = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "udp.dstport",
            "-e",
            "frame.comment",
        ])
        .output()
        .expect("tshark (installed by `cargo xtask setup`)");
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let text = String::from_utf8_lossy(&tshark.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 20, "{text}");
    for r in rows {
        assert!(
            r.starts_with("7000\txdpwall: drop (rule 0 \"no-7000\")"),
            "{r}"
        );
    }
    let _ = std::fs::remove_file(&pcap);
}

/// `update --confirm`: the new rules are live while the command waits; no answer rolls them
/// back, `yes` keeps them.
#[test]
fn update_with_confirm_rolls_back_unless_confirmed() {
    let (topo, name, _cleanup) = setup("confirm");
    let targets = [(false, 7000u16)];
    let quiet = Duration::from_millis(400);
    attach(&topo, &name, "generic", &example("client-server.toml"));
    assert_eq!(udp_round(&topo, &targets, 20, quiet), vec![0]);
    let open = scratch(
        "confirm-open.toml",
        "default = \"drop\"\n[[rule]]\naction = \"pass\"\nproto = \"udp\"\ndport = 7000\n",
    );
    for answer in [None, Some("yes")] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xdpwall"))
            .args([
                "update",
                &name,
                "--rules",
                open.to_str().unwrap(),
                "--confirm",
                "6",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kept open and silent until the answer (closing it would be an answer: no).
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let l = lines.next().expect("update ended before asking").unwrap();
            if l.starts_with("type yes within 6 s") {
                break;
            }
        }
        assert_eq!(
            udp_round(&topo, &targets, 20, quiet),
            vec![20],
            "the new rules are live while the command waits"
        );
        if let Some(a) = answer {
            use std::io::Write;
            writeln!(stdin, "{a}").unwrap();
        }
        let status = child.wait().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        drop(stdin);
        match answer {
            None => {
                assert_eq!(status.code(), Some(1), "{rest:?} {err}");
                assert!(err.contains("rolled back to the previous rules"), "{err}");
                assert_eq!(
                    udp_round(&topo, &targets, 20, quiet),
                    vec![0],
                    "no answer: the previous rules are back"
                );
            }
            Some(_) => {
                assert!(status.success(), "{rest:?} {err}");
                assert!(
                    rest.iter().any(|l| l.contains("kept the new rules")),
                    "{rest:?}"
                );
                assert_eq!(
                    udp_round(&topo, &targets, 20, quiet),
                    vec![20],
                    "confirmed: the new rules stay"
                );
            }
        }
    }
}
