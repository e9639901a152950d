//! `harness`: topologies by hand (`topo up/down/list`), the client/server demo on the wire, and
//! the benchmark that `cargo xtask bench` runs.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harness::{bench, demo, netns, topo, Options, Topology};

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
    },
    /// Remove a topology, or every namespace the harness created.
    Down {
        /// Topology name.
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Everything named xw-* (leftovers of crashed runs).
        #[arg(long)]
        all: bool,
    },
    /// List the harness's namespaces.
    List,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("harness: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Topo { cmd } => {
            match cmd {
                TopoCmd::Up {
                    name,
                    gro,
                    queues,
                    mtu,
                } => {
                    let t = Topology::standard(&name, &Options { mtu, gro, queues })?;
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
                    println!("(`ip netns exec {} ip link` to look; `harness topo down {name}` removes it)", t.dut.netns);
                    std::mem::forget(t);
                    Ok(())
                }
                TopoCmd::Down { name, all } => {
                    if all {
                        for ns in topo::remove_all()? {
                            println!("removed {ns}");
                        }
                    } else {
                        let name = name.context("a name or --all")?;
                        for side in ["gen", "dut"] {
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
            }
        }
        Cmd::Demo { mode } => demo::run(mode),
        Cmd::Bench(args) => bench::run(args),
    }
}
