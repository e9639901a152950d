//! The client/server demo: real frames with the example's addresses are injected on the
//! generator's veth end and judged by the filter attached to the DUT end; the filter's own
//! counters are printed next to the reference model's prediction.

use anyhow::{bail, Context, Result};
use pktgen::{afpacket::AfPacket, FrameSpec};
use xdpwall::{model, Filter, Mode, RuleSet};

use crate::{bench::ModeArg, netns, Options, Topology};

/// The example rule file, as shipped in examples/.
pub const CLIENT_SERVER: &str = include_str!("../../examples/client-server.toml");

/// Frames sent per flow.
const PER_FLOW: u64 = 1000;

/// Runs the demo in the given mode(s).
pub fn run(mode: ModeArg) -> Result<()> {
    let set = RuleSet::parse(CLIENT_SERVER, "examples/client-server.toml")?;
    for m in mode.modes() {
        one(&set, m)?;
    }
    Ok(())
}

fn flows() -> Vec<(&'static str, Vec<u8>)> {
    let ip = |s: &str| s.parse().unwrap();
    let mut arp = FrameSpec::udp(ip("192.168.1.3"), ip("192.168.1.2"), 1, 2).build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    vec![
        (
            "client 192.168.1.1 -> 192.168.1.9 udp/53",
            FrameSpec::udp(ip("192.168.1.1"), ip("192.168.1.9"), 5353, 53)
                .payload(18)
                .build(),
        ),
        (
            "host 192.168.1.3 -> server 192.168.1.2 tcp/80",
            FrameSpec::tcp(ip("192.168.1.3"), ip("192.168.1.2"), 40000, 80).build(),
        ),
        (
            "host 192.168.1.3 -> host 192.168.1.4 udp/9",
            FrameSpec::udp(ip("192.168.1.3"), ip("192.168.1.4"), 9, 9).build(),
        ),
        (
            "server 192.168.1.2 -> client 192.168.1.1 icmp",
            FrameSpec::ping(ip("192.168.1.2"), ip("192.168.1.1")).build(),
        ),
        ("ARP (not IP)", arp),
    ]
}

fn one(set: &RuleSet, mode: Mode) -> Result<()> {
    let topo = Topology::standard(&format!("demo-{mode}"), &Options::default())?;
    let mut filter = {
        let _ns = topo.dut.enter()?;
        let mut f = Filter::with_rules(set)?;
        f.attach(&topo.dut.iface, mode)?;
        f
    };
    println!(
        "\nclient/server example, {mode} XDP on {} ({} frames per flow):",
        topo.dut.iface, PER_FLOW
    );
    println!("  {:<46} {:>6}  {:>10}", "flow", "model", "kernel");
    for (label, frame) in flows() {
        filter.maps.reset_stats()?;
        let iface = topo.gen.iface.clone();
        let f2 = frame.clone();
        netns::run_in(&topo.gen.netns, move || -> Result<()> {
            let sock = AfPacket::open(&iface)?;
            for _ in 0..PER_FLOW {
                sock.send(&f2)?;
            }
            Ok(())
        })??;
        // Frames are judged as they arrive; give the last ones a moment.
        let want = model::verdict(set, &frame);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let snap = loop {
            let s = filter.maps.snapshot()?;
            if s.pass.packets + s.drop.packets >= PER_FLOW || std::time::Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let judged = match want.action {
            xdpwall::Action::Pass => snap.pass.packets,
            xdpwall::Action::Drop => snap.drop.packets,
        };
        let why = match want.cause {
            model::Cause::Rule(i) => {
                format!("rule {}", set.rules[i].name.as_deref().unwrap_or("?"))
            }
            model::Cause::RateLimited(i) => format!(
                "rule {} over its limit",
                set.rules[i].name.as_deref().unwrap_or("?")
            ),
            other => other.to_string(),
        };
        println!(
            "  {label:<46} {:>6}  {judged:>5}/{PER_FLOW} {} ({why})",
            want.action.to_string(),
            want.action
        );
        if judged < PER_FLOW {
            bail!("only {judged} of {PER_FLOW} frames of '{label}' got the model's verdict");
        }
    }
    drop(filter);
    topo.teardown().context("removing the demo topology")?;
    Ok(())
}
