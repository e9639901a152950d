//! Ctrl-C (SIGINT) in the harness's long-running commands: the benchmark and the demo remove
//! the namespaces they created before they exit. Each command is started for real,
//! interrupted once its work is under way, and the machine is checked afterwards (pktgen's own
//! interruption is tested in pktgen/tests/cli.rs). Needs root.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use harness::netns;

fn interrupt(child: &Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

/// Waits for `child` to exit, at most `limit`; kills it and fails past that.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("no exit within {limit:?} of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `harness ARGS`, waits until namespaces named with `prefix` exist and then `settle`,
/// interrupts it and checks that none is left.
fn interrupted_harness_leaves_nothing(args: &[&str], prefix: &str, settle: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !netns::list().iter().any(|n| n.starts_with(prefix)) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "harness {args:?} ended before creating its namespaces"
        );
        assert!(Instant::now() < deadline, "no {prefix}* namespace appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it get into its work (loading, attaching, sending).
    std::thread::sleep(settle);
    interrupt(&child);
    let st = wait(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    for l in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        err.push_str(&l);
        err.push('\n');
    }
    assert_eq!(st.code(), Some(128 + libc::SIGINT), "{err}");
    assert!(err.contains("interrupted: removing"), "{err}");
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}\n{err}");
}

#[test]
fn ctrl_c_in_the_benchmark_removes_its_namespaces() {
    interrupted_harness_leaves_nothing(
        &["bench", "--mode", "generic", "--quick"],
        "xw-bench-generic",
        Duration::from_millis(700),
    );
}

#[test]
fn ctrl_c_in_the_demo_removes_its_namespaces() {
    // The demo is short: its filter loads in about half a second after the namespaces
    // appear, and the whole native run can end within 0.7 s of them; the signal must come
    // while it still works.
    interrupted_harness_leaves_nothing(
        &["demo", "--mode", "both"],
        "xw-demo-native",
        Duration::from_millis(100),
    );
}
