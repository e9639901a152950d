//! `harness`: topologies by hand (`topo up/down/list`), the client/server demo on the wire, and
//! the benchmark that `cargo xtask bench` runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harness::{bench, corpus, demo, netns, replay, topo, Options, Topology};

#[derive(Parser)]
#[command(name = "harness", about = "xdpwall test harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create, remove or list topologies.
    Topo {
        #[command(subcommand)]
        cmd: TopoCmd,
    },
    /// Show the client/server example's verdicts on real frames over a veth topology.
    Demo {
        /// XDP mode(s).
        #[arg(long, value_enum, default_value_t = bench::ModeArg::Both)]
        mode: bench::ModeArg,
    },
    /// Benchmark the filter (what `cargo xtask bench` runs).
    Bench(bench::Args),
    /// Run every frame of a pcap through the filter (BPF_PROG_TEST_RUN) and print verdicts.
    Replay {
        /// Rule file.
        #[arg(long)]
        rules: PathBuf,
        /// Capture (Ethernet pcap).
        #[arg(long)]
        pcap: PathBuf,
        /// Golden verdict file to compare with (fails on any difference).
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Write the results to the --expect file instead of comparing.
        #[arg(long, requires = "expect")]
        bless: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the fuzzers' seed corpora (from the regression corpus and pktgen) into a folder.
    Seeds {
        /// Target folder (fuzz/seeds in the repository).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the regression corpus (rules.toml + frames.pcap per case) into a folder.
    Corpus {
        /// Target folder (harness/corpus in the repository).
        #[arg(long)]
        write: PathBuf,
    },
}

#[derive(Subcommand)]
enum TopoCmd {
    /// Create the standard generator/DUT topology and leave it (remove it with `down`).
    Up {
        /// Topology name (namespaces xw-NAME-gen and xw-NAME-dut).
        name: String,
        /// GRO on the DUT's veth end.
        #[arg(long)]
        gro: bool,
        /// Queues per veth end.
        #[arg(long, default_value_t = 1)]
        queues: u32,
        /// MTU.
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
        /// No IPv6 on the veth ends (the stack then sends nothing on its own).
        #[arg(long)]
        no_ipv6: bool,
        /// Receive on the DUT end in threaded NAPI pinned to this CPU (instead of the
        /// sender's CPU).
        #[arg(long)]
        dut_cpu: Option<usize>,
        /// Also a receiver namespace behind the DUT (`xw-NAME-rcv`, 198.19.0.2), which the
        /// DUT routes IPv4 to.
        #[arg(long)]
        receiver: bool,
    },
    /// Remove a topology, or every namespace the harness created.
    Down {
        /// Topology name.
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Everything named xw-* (leftovers of crashed runs), and the pins of an xdp-filter
        /// the benchmark loaded.
        #[arg(long)]
        all: bool,
    },
    /// List the harness's namespaces.
    List,
}

fn replay_cmd(
    rules: &Path,
    pcap: &Path,
    expect: Option<&Path>,
    bless: bool,
    json: bool,
) -> Result<()> {
    let set = xdpwall::RuleSet::from_file(rules)?;
    let frames = pktgen::pcap::read_frames(pcap)?;
    let results = replay::replay(&set, &frames)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else if !bless {
        for r in &results {
            println!("{r}");
        }
    }
    if let Some(golden) = expect {
        if bless {
            std::fs::write(golden, replay::golden_text(&results, rules, pcap))
                .with_context(|| format!("writing {}", golden.display()))?;
            eprintln!("wrote {} verdicts to {}", results.len(), golden.display());
        } else {
            let text = std::fs::read_to_string(golden)
                .with_context(|| format!("reading {}", golden.display()))?;
            let diffs = replay::diff_golden(&results, &text);
            if !diffs.is_empty() {
                for d in &diffs {
                    eprintln!("{d}");
                }
                anyhow::bail!(
                    "{} of {} frames differ from {}",
                    diffs.len(),
                    results.len(),
                    golden.display()
                );
            }
            eprintln!("{} frames match {}", results.len(), golden.display());
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    harness::signals::clean_up_on_signals();
    if let Err(e) = run(cli) {
        eprintln!("harness: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Topo { cmd } => match cmd {
            TopoCmd::Up {
                name,
                gro,
                queues,
                mtu,
                no_ipv6,
                dut_cpu,
                receiver,
            } => {
                let t = Topology::standard(
                    &name,
                    &Options {
                        mtu,
                        gro,
                        queues,
                        ipv6: !no_ipv6,
                        dut_cpu,
                        receiver,
                    },
                )?;
                println!(
                    "{}: {} {} {} <-> {}: {} {} {}",
                    t.gen.netns,
                    t.gen.iface,
                    t.gen.ip4,
                    t.gen.ip6,
                    t.dut.netns,
                    t.dut.iface,
                    t.dut.ip4,
                    t.dut.ip6
                );
                if let Some(r) = &t.receiver {
                    println!(
                        "{}: {} {} <-> {}: {} {} (the DUT routes to it)",
                        r.dut.netns, r.dut.iface, r.dut.ip4, r.rcv.netns, r.rcv.iface, r.rcv.ip4
                    );
                }
                println!(
                    "(`ip netns exec {} ip link` to look; `harness topo down {name}` removes it)",
                    t.dut.netns
                );
                std::mem::forget(t);
                Ok(())
            }
            TopoCmd::Down { name, all } => {
                if all {
                    for ns in topo::remove_all()? {
                        println!("removed {ns}");
                    }
                    if harness::peer::clean_leftovers() {
                        println!("removed the pins of the benchmark's xdp-filter peer");
                    }
                } else {
                    let name = name.context("a name or --all")?;
                    for side in ["gen", "dut", "rcv"] {
                        netns::remove(&format!("{}{name}-{side}", topo::PREFIX))?;
                    }
                    println!("removed {name}");
                }
                Ok(())
            }
            TopoCmd::List => {
                for ns in netns::list()
                    .into_iter()
                    .filter(|n| n.starts_with(topo::PREFIX))
                {
                    println!("{ns}");
                }
                Ok(())
            }
        },
        Cmd::Demo { mode } => demo::run(mode),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Replay {
            rules,
            pcap,
            expect,
            bless,
            json,
        } => replay_cmd(&rules, &pcap, expect.as_deref(), bless, json),
        Cmd::Seeds { out } => {
            let mut n = 0;
            for t in ["verdict", "rules", "pcap", "profile"] {
                std::fs::create_dir_all(out.join(t))?;
            }
            for case in corpus::cases() {
                std::fs::write(
                    out.join("rules").join(format!("{}.toml", case.name)),
                    &case.rules,
                )?;
                pktgen::pcap::write_frames(
                    &out.join("pcap").join(format!("{}.pcap", case.name)),
                    &case.frames[..case.frames.len().min(8)],
                )?;
                // verdict input: no rules, policies pass/drop/pass, then a raw frame.
                for (i, f) in case
                    .frames
                    .iter()
                    .enumerate()
                    .step_by(case.frames.len().div_ceil(12))
                {
                    let mut seed = vec![0u8, 0, 1, 0, 0];
                    seed.extend_from_slice(f);
                    std::fs::write(out.join("verdict").join(format!("{}-{i}", case.name)), seed)?;
                    n += 1;
                }
            }
            std::fs::write(
                out.join("rules").join("client-server.toml"),
                demo::CLIENT_SERVER,
            )?;
            std::fs::write(
                out.join("profile").join("imix.toml"),
                "src = \"192.168.1.1\"\ndst = \"192.168.1.2\"\nproto = \"udp\"\ndport = 53\nsizes = [[60, 7], [590, 4], [1514, 1]]\nvlans = [10]\n[vary]\nsrc = \"16\"\nsport = \"random:1000\"\nseed = 7\n",
            )?;
            println!("wrote seeds to {} ({n} verdict seeds)", out.display());
            Ok(())
        }
        Cmd::Corpus { write } => {
            for case in corpus::cases() {
                let dir = write.join(case.name);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("rules.toml"), &case.rules)?;
                pktgen::pcap::write_frames(&dir.join("frames.pcap"), &case.frames)?;
                println!("{}: {} frames", dir.display(), case.frames.len());
            }
            Ok(())
        }
    }
}
