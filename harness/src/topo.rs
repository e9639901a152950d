//! Topologies built with rtnetlink: network namespaces joined by veth pairs, with addresses,
//! MTU, GRO, permanent neighbour entries and links up. Everything a [`Topology`] creates is
//! removed when it is dropped (also on panic); `harness topo down --all` (or `cargo xtask
//! clean`) removes what a crashed run left.
//!
//! The standard topology: namespace `xw-NAME-gen` holds `gen0`, namespace `xw-NAME-dut` holds
//! `dut0`, on 198.18.0.0/24 (RFC 2544's benchmarking range) and 2001:db8:18::/64. With a
//! receiver ([`Options::receiver`]) the DUT also forwards: its `dut1` joins `rcv0` in
//! `xw-NAME-rcv` on 198.19.0.0/24 (IPv4 only), the path of RFC 2544's latency test.

use std::{
    fs::File,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
};

use futures_util::TryStreamExt;
use rtnetlink::{
    packet_route::{
        address::{AddressAttribute, AddressFlags},
        link::LinkAttribute,
        neighbour::NeighbourState,
    },
    Handle, LinkUnspec, LinkVeth,
};

use crate::netns::{self, NetnsError, NetnsGuard};

/// Prefix of every namespace the harness creates (so leftovers can be found).
pub const PREFIX: &str = "xw-";

/// A unicast MAC that no interface of a topology has: frames sent to it that a DUT's program
/// passes are dropped by its stack at once (`otherhost`), before any per-source work.
pub const OTHER_HOST_MAC: [u8; 6] = [0x02, 0x58, 0x57, 0, 0xff, 0xff];

/// A failed topology step.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// Namespace handling.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// Why it failed.
        source: rtnetlink::Error,
    },
    /// Another system call.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The name is unusable.
    #[error("topology name '{0}' is invalid: use at most 20 characters of [a-z0-9-]")]
    BadName(String),
}

/// One end of the veth pair.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Namespace name.
    pub netns: String,
    /// Interface name (inside the namespace).
    pub iface: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// IPv4 address.
    pub ip4: Ipv4Addr,
    /// IPv6 address.
    pub ip6: Ipv6Addr,
}

impl Endpoint {
    /// Enters this end's namespace on the current thread.
    pub fn enter(&self) -> Result<NetnsGuard, NetnsError> {
        NetnsGuard::enter(&self.netns)
    }

    /// The IPv4 or IPv6 address.
    pub fn ip(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.ip6)
        } else {
            IpAddr::V4(self.ip4)
        }
    }

    /// The interface's counters (the kernel's 64-bit link statistics, over netlink).
    pub fn link_stats(&self) -> Result<LinkStats, TopoError> {
        let iface = self.iface.clone();
        in_ns(&self.netns, move |h| {
            Box::pin(async move {
                let step = format!("reading the statistics of {iface}");
                let mut links = h.link().get().match_name(iface.clone()).execute();
                let msg = links
                    .try_next()
                    .await
                    .map_err(nl(step.clone()))?
                    .ok_or_else(|| TopoError::Io {
                        step: step.clone(),
                        source: io::Error::from(io::ErrorKind::NotFound),
                    })?;
                let s = msg
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Stats64(s) => Some(*s),
                        _ => None,
                    })
                    .unwrap_or_default();
                Ok(LinkStats {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                })
            })
        })
    }
}

/// Packet counters of an interface. On a veth pair a frame the peer's ring had no room for
/// counts as the sender's `tx_dropped` and the receiver's `rx_dropped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Frames dropped on receipt.
    pub rx_dropped: u64,
    /// Frames dropped on sending.
    pub tx_dropped: u64,
}

impl std::ops::Sub for LinkStats {
    type Output = LinkStats;
    fn sub(self, o: LinkStats) -> LinkStats {
        LinkStats {
            rx_packets: self.rx_packets.wrapping_sub(o.rx_packets),
            tx_packets: self.tx_packets.wrapping_sub(o.tx_packets),
            rx_dropped: self.rx_dropped.wrapping_sub(o.rx_dropped),
            tx_dropped: self.tx_dropped.wrapping_sub(o.tx_dropped),
        }
    }
}

/// Knobs of the standard topology.
#[derive(Clone, Debug)]
pub struct Options {
    /// MTU of both veth ends.
    pub mtu: u32,
    /// Generic receive offload on the DUT end (needed for frames redirected by XDP to reach a
    /// generic-mode program; see README).
    pub gro: bool,
    /// Queues per veth end (one per sending thread avoids drops).
    pub queues: u32,
    /// IPv6 on the veth ends. Without it the generator's stack sends nothing on its own
    /// (no router solicitations or MLD reports), so counters see only injected frames.
    pub ipv6: bool,
    /// Run the DUT end's receive processing (its NAPI, and so the XDP program) in kernel
    /// threads pinned to this CPU (threaded NAPI; implies GRO on the DUT end). Without it a
    /// veth receives in the softirq of the CPU that sent the frame, so sender and DUT share
    /// that CPU.
    pub dut_cpu: Option<usize>,
    /// A third namespace behind the DUT, which routes IPv4 to it ([`Topology::receiver`]).
    pub receiver: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mtu: 1500,
            gro: false,
            queues: 1,
            ipv6: true,
            dut_cpu: None,
            receiver: false,
        }
    }
}

/// A generator namespace and a device-under-test namespace joined by a veth pair.
pub struct Topology {
    /// The topology's name.
    pub name: String,
    /// The generator side.
    pub gen: Endpoint,
    /// The device under test.
    pub dut: Endpoint,
    /// The forwarding path behind the DUT, if built.
    pub receiver: Option<Receiver>,
}

/// The far side of a forwarding DUT: frames to [`Receiver::rcv`]'s address that the DUT
/// passes go out of [`Receiver::dut`] to the receiver.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// The DUT's second interface (`dut1`, 198.19.0.1).
    pub dut: Endpoint,
    /// The receiving end (`rcv0`, 198.19.0.2, namespace `xw-NAME-rcv`).
    pub rcv: Endpoint,
}

fn nl(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> TopoError {
    let step = step.into();
    move |source| TopoError::Netlink { step, source }
}

/// Runs an async netlink job on a thread inside `ns` (the netlink socket is opened there,
/// so it speaks for that namespace).
fn in_ns<T: Send + 'static>(
    ns: &str,
    job: impl FnOnce(Handle) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, TopoError>>>>
        + Send
        + 'static,
) -> Result<T, TopoError> {
    netns::run_in(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| TopoError::Io {
                step: "starting a tokio runtime".into(),
                source: e,
            })?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| TopoError::Io {
                step: "opening a netlink socket".into(),
                source: e,
            })?;
            let task = tokio::spawn(conn);
            let r = job(handle).await;
            task.abort();
            r
        })
    })?
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, TopoError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) => Err(TopoError::Io {
            step: format!("looking up {name}"),
            source: io::Error::from(io::ErrorKind::NotFound),
        }),
        Err(e) => Err(nl(format!("looking up {name}"))(e)),
    }
}

/// Brings `iface` up with its MAC, MTU, addresses and a permanent neighbour entry for the
/// peer; also brings `lo` up.
async fn configure(
    h: Handle,
    me: Endpoint,
    peer: Endpoint,
    mtu: u32,
    ipv6: bool,
) -> Result<(), TopoError> {
    let idx = index_of(&h, &me.iface).await?;
    if !ipv6 {
        // Before the link goes up, so no link-local address is ever configured.
        let path = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", me.iface);
        std::fs::write(&path, "1").map_err(|e| TopoError::Io {
            step: format!("writing {path}"),
            source: e,
        })?;
    }
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .address(me.mac.to_vec())
                .mtu(mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("setting up {}", me.iface)))?;
    let lo = index_of(&h, "lo").await?;
    h.link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(nl("bringing lo up"))?;
    let mut addrs = vec![(IpAddr::V4(me.ip4), 24)];
    if ipv6 {
        addrs.push((IpAddr::V6(me.ip6), 64));
    }
    for (addr, len) in addrs {
        let mut req = h.address().add(idx, addr, len);
        // No duplicate address detection: the address is usable at once.
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        req.execute()
            .await
            .map_err(nl(format!("adding {addr} to {}", me.iface)))?;
    }
    let mut neighbours = vec![IpAddr::V4(peer.ip4)];
    if ipv6 {
        neighbours.push(IpAddr::V6(peer.ip6));
    }
    for addr in neighbours {
        h.neighbours()
            .add(idx, addr)
            .link_layer_address(&peer.mac)
            .state(NeighbourState::Permanent)
            .execute()
            .await
            .map_err(nl(format!("adding neighbour {addr}")))?;
    }
    Ok(())
}

const ETHTOOL_SGRO: u32 = 0x2c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// Switches generic receive offload on `iface` (in the current thread's namespace).
pub fn set_gro(iface: &str, on: bool) -> Result<(), TopoError> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let err = |source| TopoError::Io {
        step: format!("setting GRO on {iface}"),
        source,
    };
    // SAFETY: a plain datagram socket for the ioctl.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and is owned here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut value = EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: on as u32,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    // SAFETY: req lives across the call and points at value.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    if r != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// Names of the NAPI kernel threads of `iface` (any namespace) with their pids.
fn napi_threads(iface: &str) -> Vec<i32> {
    let prefix = format!("napi/{iface}-");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim_end().starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Switches `end`'s interface to threaded NAPI and pins its new NAPI threads to `cpu`.
fn threaded_napi(end: &Endpoint, cpu: usize) -> Result<(), TopoError> {
    let err = |source| TopoError::Io {
        step: format!("threaded NAPI on {} in {}", end.iface, end.netns),
        source,
    };
    let before = napi_threads(&end.iface);
    // sysfs shows a namespace's devices only when mounted from inside it: `ip netns exec`
    // does that for the one command.
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &end.netns, "sh", "-c"])
        .arg(format!("echo 1 > /sys/class/net/{}/threaded", end.iface))
        .status()
        .map_err(err)?;
    if !st.success() {
        return Err(err(io::Error::other(format!(
            "`ip netns exec` failed ({st})"
        ))));
    }
    let mine: Vec<i32> = napi_threads(&end.iface)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if mine.is_empty() {
        return Err(err(io::Error::other("no NAPI thread appeared")));
    }
    for pid in mine {
        // SAFETY: a zeroed cpu_set_t with one bit set, passed with its size.
        let r = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Keeps the DUT's CPU to itself while it lives (see [`Topology::dedicate_dut_cpu`]).
pub struct DedicatedCpu {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    spinner: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DedicatedCpu {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.spinner.take() {
            let _ = h.join();
        }
    }
}

impl Topology {
    /// Gives the DUT's threaded NAPI ([`Options::dut_cpu`]) its CPU the way a benchmark
    /// gives a data plane an isolated core: its NAPI threads run SCHED_FIFO (nothing else on
    /// the CPU delays them), and a SCHED_IDLE thread spins on the CPU whenever they sleep, so
    /// the CPU never idles. On a virtual machine an idle vCPU halts and the hypervisor may run
    /// something else; waking it again took milliseconds here, in which the veth ring (256
    /// frames) overflowed even at 200,000 frames per second (benches/README.md).
    pub fn dedicate_dut_cpu(&self, cpu: usize) -> Result<DedicatedCpu, TopoError> {
        let err = |source| TopoError::Io {
            step: format!(
                "dedicating CPU {cpu} to the NAPI threads of {}",
                self.dut.iface
            ),
            source,
        };
        let threads = napi_threads(&self.dut.iface);
        if threads.is_empty() {
            return Err(err(io::Error::other(
                "no NAPI thread: build the topology with a DUT CPU",
            )));
        }
        for pid in threads {
            let p = libc::sched_param { sched_priority: 50 };
            // SAFETY: a valid sched_param for an existing thread id.
            if unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &p) } != 0 {
                return Err(err(io::Error::last_os_error()));
            }
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let spinner = std::thread::spawn(move || {
            pktgen::pin_to_cpu(cpu);
            let p = libc::sched_param { sched_priority: 0 };
            // SAFETY: the calling thread, a valid sched_param.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) };
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        Ok(DedicatedCpu {
            stop,
            spinner: Some(spinner),
        })
    }

    /// Builds the standard generator/DUT topology called `name`.
    pub fn standard(name: &str, opts: &Options) -> Result<Topology, TopoError> {
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(TopoError::BadName(name.to_string()));
        }
        let gen = Endpoint {
            netns: format!("{PREFIX}{name}-gen"),
            iface: "gen0".into(),
            mac: [0x02, 0x58, 0x57, 0, 0, 1],
            ip4: Ipv4Addr::new(198, 18, 0, 1),
            ip6: "2001:db8:18::1".parse().unwrap(),
        };
        let dut = Endpoint {
            netns: format!("{PREFIX}{name}-dut"),
            iface: "dut0".into(),
            mac: [0x02, 0x58, 0x57, 0, 0, 2],
            ip4: Ipv4Addr::new(198, 18, 0, 2),
            ip6: "2001:db8:18::2".parse().unwrap(),
        };
        let receiver = opts.receiver.then(|| Receiver {
            dut: Endpoint {
                netns: dut.netns.clone(),
                iface: "dut1".into(),
                mac: [0x02, 0x58, 0x57, 0, 1, 1],
                ip4: Ipv4Addr::new(198, 19, 0, 1),
                ip6: Ipv6Addr::UNSPECIFIED,
            },
            rcv: Endpoint {
                netns: format!("{PREFIX}{name}-rcv"),
                iface: "rcv0".into(),
                mac: [0x02, 0x58, 0x57, 0, 1, 2],
                ip4: Ipv4Addr::new(198, 19, 0, 2),
                ip6: Ipv6Addr::UNSPECIFIED,
            },
        });
        netns::create(&gen.netns)?;
        // From here on, Drop cleans up whatever exists.
        let topo = Topology {
            name: name.to_string(),
            gen,
            dut,
            receiver,
        };
        netns::create(&topo.dut.netns)?;
        topo.wire(opts)?;
        if let Some(r) = &topo.receiver {
            netns::create(&r.rcv.netns)?;
            topo.wire_receiver(r, opts.mtu)?;
        }
        Ok(topo)
    }

    /// Joins the DUT to the receiver and makes it route IPv4 (no reverse-path filter: the
    /// generator's sources are not routed back).
    fn wire_receiver(&self, r: &Receiver, mtu: u32) -> Result<(), TopoError> {
        veth_pair(&r.dut, &r.rcv, 1)?;
        let (d, c) = (r.dut.clone(), r.rcv.clone());
        in_ns(&d.netns.clone(), move |h| {
            Box::pin(async move {
                for (key, value) in [
                    ("ipv4/ip_forward", "1"),
                    ("ipv4/conf/all/rp_filter", "0"),
                    ("ipv4/conf/default/rp_filter", "0"),
                ] {
                    let path = format!("/proc/sys/net/{key}");
                    std::fs::write(&path, value).map_err(|e| TopoError::Io {
                        step: format!("writing {path}"),
                        source: e,
                    })?;
                }
                configure(h, d, c, mtu, false).await
            })
        })?;
        let (d, c) = (r.dut.clone(), r.rcv.clone());
        in_ns(&c.netns.clone(), move |h| {
            Box::pin(configure(h, c, d, mtu, false))
        })
    }

    fn wire(&self, opts: &Options) -> Result<(), TopoError> {
        let (gen, dut) = (self.gen.clone(), self.dut.clone());
        veth_pair(&gen, &dut, opts.queues)?;
        let (mtu, v6) = (opts.mtu, opts.ipv6);
        let (g, d) = (gen.clone(), dut.clone());
        in_ns(&gen.netns, move |h| Box::pin(configure(h, g, d, mtu, v6)))?;
        let (g, d) = (gen.clone(), dut.clone());
        in_ns(&dut.netns, move |h| Box::pin(configure(h, d, g, mtu, v6)))?;
        // A veth has NAPI (which threaded mode needs) only with GRO or an XDP program; GRO
        // keeps it, and so its pinned threads, across XDP attachments.
        let gro = opts.gro || opts.dut_cpu.is_some();
        let iface = dut.iface.clone();
        netns::run_in(&dut.netns, move || set_gro(&iface, gro))??;
        if let Some(cpu) = opts.dut_cpu {
            threaded_napi(&dut, cpu)?;
        }
        Ok(())
    }

    /// Removes the namespaces (and with them the veth pairs). Safe to call twice.
    pub fn teardown(&self) -> Result<(), TopoError> {
        netns::remove(&self.gen.netns)?;
        netns::remove(&self.dut.netns)?;
        if let Some(r) = &self.receiver {
            netns::remove(&r.rcv.netns)?;
        }
        Ok(())
    }
}

/// Creates the veth pair `a` <-> `b` in `a`'s namespace (with `queues` queues each) and moves
/// `b`'s end into its namespace.
fn veth_pair(a: &Endpoint, b: &Endpoint, queues: u32) -> Result<(), TopoError> {
    {
        let (gen, dut) = (a.clone(), b.clone());
        let dut_ns = File::open(netns::netns_path(&dut.netns)).map_err(|e| TopoError::Io {
            step: format!("opening namespace {}", dut.netns),
            source: e,
        })?;
        let queues = queues.max(1);
        let (g, d) = (gen.clone(), dut.clone());
        in_ns(&gen.netns, move |h| {
            Box::pin(async move {
                let mut veth = LinkVeth::new(&g.iface, &d.iface).build();
                if queues > 1 {
                    use rtnetlink::packet_route::link::LinkAttribute;
                    veth.attributes.push(LinkAttribute::NumTxQueues(queues));
                    veth.attributes.push(LinkAttribute::NumRxQueues(queues));
                }
                h.link()
                    .add(veth)
                    .execute()
                    .await
                    .map_err(nl("creating the veth pair"))?;
                h.link()
                    .set(
                        LinkUnspec::new_with_name(&d.iface)
                            .setns_by_fd(dut_ns.as_raw_fd())
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(nl(format!("moving {} into {}", d.iface, d.netns)))?;
                drop(dut_ns);
                Ok(())
            })
        })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("harness: cleaning up topology {}: {e}", self.name);
        }
    }
}

/// Removes every namespace the harness created (by prefix); returns their names.
pub fn remove_all() -> Result<Vec<String>, TopoError> {
    let mut removed = Vec::new();
    for ns in netns::list() {
        if ns.starts_with(PREFIX) {
            netns::remove(&ns)?;
            removed.push(ns);
        }
    }
    Ok(removed)
}
