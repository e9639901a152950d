//! Verdict events: the kernel samples verdicts into a ring buffer (one drop in
//! `Config::drop_every`, one pass in `Config::pass_every`, per CPU); this module reads them,
//! describes them, and writes their leading frame bytes to a pcapng file with the verdict and the rule
//! as each packet's comment.

use std::{
    fmt,
    fs::File,
    io::BufWriter,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    path::Path,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use pcap_file::{
    pcapng::{
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
        PcapNgWriter,
    },
    DataLink,
};
use serde::Serialize;
use xdpwall_common::{action, cause, Event};

use crate::rules::Action;

/// Why a sampled frame got its action (the kernel's `cause` codes; the rule, when there is
/// one, is the event's `rule`).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EventCause {
    /// A rule matched first.
    Rule,
    /// A rate-limit rule matched first and the source had no token left.
    RateLimited,
    /// No rule matched.
    Default,
    /// The frame is malformed.
    Malformed,
    /// The frame is not IPv4/IPv6.
    NonIp,
}

impl EventCause {
    /// The cause of a kernel event's code.
    pub fn of(code: u8) -> EventCause {
        match code {
            cause::RULE => EventCause::Rule,
            cause::RATE_LIMITED => EventCause::RateLimited,
            cause::DEFAULT => EventCause::Default,
            cause::MALFORMED => EventCause::Malformed,
            _ => EventCause::NonIp,
        }
    }
}

impl fmt::Display for EventCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            EventCause::Rule => "rule",
            EventCause::RateLimited => "rate-limited",
            EventCause::Default => "default",
            EventCause::Malformed => "malformed",
            EventCause::NonIp => "non-ip",
        })
    }
}

/// One sampled verdict.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TraceEvent {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// What happened to the frame.
    pub action: Action,
    /// Why (written "rule", "rate-limited", "default", "malformed" or "non-ip").
    pub cause: EventCause,
    /// The rule (0-based), for "rule" and "rate-limited".
    pub rule: Option<u32>,
    /// The rule's name, when it has one and the rule set is still the one it came from.
    pub rule_name: Option<String>,
    /// The rule-set generation that judged it.
    pub generation: u32,
    /// Source address (IP frames).
    pub src: Option<IpAddr>,
    /// Destination address (IP frames).
    pub dst: Option<IpAddr>,
    /// IP protocol (IP frames).
    pub proto: Option<u8>,
    /// Source port (TCP/UDP with ports).
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// Length of the whole frame.
    pub frame_len: u32,
    /// Leading bytes of the frame.
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Nanoseconds to add to the kernel's monotonic clock to get wall-clock time.
pub fn monotonic_to_wall() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) as i128 - clock_ns(libc::CLOCK_MONOTONIC) as i128
}

/// The kernel's monotonic clock now, nanoseconds (the clock events are stamped with).
pub fn monotonic_now() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads one ring-buffer record; `None` when it is not an [`Event`].
pub fn decode_raw(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: Event is plain old data; the read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const Event) })
}

/// Describes a kernel event; `offset` from [`monotonic_to_wall`], `name_of` resolves rule
/// names of a generation.
pub fn describe(
    e: &Event,
    offset: i128,
    name_of: impl Fn(u32, u32) -> Option<String>,
) -> TraceEvent {
    let ip = e.family == 4 || e.family == 6;
    let addr = |a: [u8; 16]| {
        if e.family == 4 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let ports = ip && (e.proto == 6 || e.proto == 17) && (e.sport != 0 || e.dport != 0);
    let by_rule = e.cause == cause::RULE || e.cause == cause::RATE_LIMITED;
    TraceEvent {
        time_ns: (e.ts_ns as i128 + offset).max(0) as u64,
        action: if e.action == action::DROP {
            Action::Drop
        } else {
            Action::Pass
        },
        cause: EventCause::of(e.cause),
        rule: by_rule.then_some(e.rule),
        rule_name: if by_rule {
            name_of(e.gen, e.rule)
        } else {
            None
        },
        generation: e.gen,
        src: ip.then(|| addr(e.src)),
        dst: ip.then(|| addr(e.dst)),
        proto: ip.then_some(e.proto),
        sport: ports.then_some(e.sport),
        dport: ports.then_some(e.dport),
        frame_len: e.frame_len,
        data: e.data[..(e.cap_len as usize).min(e.data.len())].to_vec(),
    }
}

impl TraceEvent {
    /// What the pcapng comment says: the verdict and why.
    pub fn verdict(&self) -> String {
        let rule = match (self.rule, &self.rule_name) {
            (Some(r), Some(n)) => format!("rule {r} \"{n}\""),
            (Some(r), None) => format!("rule {r}"),
            (None, _) => String::new(),
        };
        let why = match self.cause {
            EventCause::Rule => rule,
            EventCause::RateLimited => format!("over the rate limit of {rule}"),
            other => other.to_string(),
        };
        format!(
            "xdpwall: {} ({why}), generation {}",
            self.action, self.generation
        )
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.time_ns / 1_000_000_000;
        let micros = self.time_ns % 1_000_000_000 / 1000;
        write!(
            f,
            "{:02}:{:02}:{:02}.{micros:06} {:<4} {:<12}",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            self.action.to_string(),
            match (self.rule, &self.rule_name) {
                (Some(r), Some(n)) => format!("rule {r} {n}"),
                (Some(r), None) => format!("rule {r}"),
                (None, _) => self.cause.to_string(),
            }
        )?;
        if self.cause == EventCause::RateLimited {
            write!(f, " (over limit)")?;
        }
        match (self.src, self.dst) {
            (Some(s), Some(d)) => {
                let p = self
                    .proto
                    .map(crate::rules::proto::name)
                    .unwrap_or_default();
                match (self.sport, self.dport) {
                    (Some(sp), Some(dp)) => write!(f, " {p} {s}:{sp} > {d}:{dp}")?,
                    _ => write!(f, " {p} {s} > {d}")?,
                }
            }
            _ => write!(f, " {}", self.cause)?,
        }
        write!(f, " len {}", self.frame_len)
    }
}

/// Reads events from a filter's ring buffer.
pub struct Tracer {
    ring: RingBuf<MapData>,
}

impl Tracer {
    /// Reads from `ring` (see [`crate::Maps::take_events`]).
    pub fn new(ring: RingBuf<MapData>) -> Tracer {
        Tracer { ring }
    }

    /// The next kernel event, waiting at most `timeout` for one.
    pub fn next(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(item) = self.ring.next() {
            return decode_raw(&item);
        }
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        let item = self.ring.next()?;
        decode_raw(&item)
    }

    /// Throws away every event already in the buffer; returns how many.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.ring.next().is_some() {
            n += 1;
        }
        n
    }
}

/// Writes sampled frames to a pcapng file, one Ethernet interface, nanosecond timestamps, the
/// verdict as each packet's comment.
pub struct PcapngSink {
    w: PcapNgWriter<BufWriter<File>>,
}

impl PcapngSink {
    /// Creates `path`; `snap_len` is recorded as the interface's snap length.
    pub fn create(path: &Path, snap_len: u32) -> std::io::Result<PcapngSink> {
        let f = File::create(path)?;
        let mut w = PcapNgWriter::new(BufWriter::new(f)).map_err(std::io::Error::other)?;
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: snap_len,
            options: vec![
                InterfaceDescriptionOption::IfTsResol(9),
                InterfaceDescriptionOption::IfDescription("xdpwall sampled verdicts".into()),
            ],
        })
        .map_err(std::io::Error::other)?;
        Ok(PcapngSink { w })
    }

    /// Appends one event's frame.
    pub fn write(&mut self, e: &TraceEvent) -> std::io::Result<()> {
        self.w
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(e.time_ns),
                original_len: e.frame_len,
                data: e.data.as_slice().into(),
                options: vec![EnhancedPacketOption::Comment(e.verdict().into())],
            })
            .map_err(std::io::Error::other)?;
        Ok(())
    }

    /// Flushes the file.
    pub fn finish(self) -> std::io::Result<()> {
        use std::io::Write;
        self.w.into_inner().flush()
    }
}
