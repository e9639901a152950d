//! Address sets through the real XDP program (BPF_PROG_TEST_RUN) against the reference model:
//! membership at prefix boundaries in both families, nested entries, large sets, live swaps
//! of a million-entry set. Needs root and a BPF-capable kernel; fails (never skips) without.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use harness::{
    blocklist::blocklist,
    verdict::{swaps_under_probes, Checker, PinGuard, XDP_DROP, XDP_PASS},
};
use ipnet::IpNet;
use pktgen::{FrameSpec, L4Spec};
use xdpwall::{Action, AddrMatch, AddrSet, Cause, Filter, Maps, Rule, RuleSet};

fn udp(src: IpAddr, dst: IpAddr, dport: u16) -> Vec<u8> {
    FrameSpec::new(src, dst, L4Spec::Udp { sport: 4000, dport }).build()
}

fn dst_for(src: IpAddr) -> IpAddr {
    match src {
        IpAddr::V4(_) => "198.18.0.2".parse().unwrap(),
        IpAddr::V6(_) => "2001:db8:18::2".parse().unwrap(),
    }
}

/// First, last, just below and just above every entry.
fn boundary_addrs(nets: &[IpNet]) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for n in nets {
        match n {
            IpNet::V4(n) => {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                for x in [a, b, a.wrapping_sub(1), b.wrapping_add(1)] {
                    v.push(IpAddr::V4(Ipv4Addr::from(x)));
                }
            }
            IpNet::V6(n) => {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                for x in [a, b, a.wrapping_sub(1), b.wrapping_add(1)] {
                    v.push(IpAddr::V6(Ipv6Addr::from(x)));
                }
            }
        }
    }
    v
}

fn checker(set: RuleSet) -> Checker {
    Checker::new(set).expect("loading the filter needs root and a BPF-capable kernel")
}

#[test]
fn set_membership_at_prefix_boundaries_in_both_families() {
    let text = r#"
        default = "pass"
        [set.block]
        entries = ["10.0.0.0/8", "10.1.2.0/24", "10.1.2.3", "192.0.2.255", "0.0.0.0/32",
                   "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::5", "ff00::/8"]
        [set.allow]
        entries = ["10.1.0.0/16", "10.1.2.3", "2001:db8:1::/64", "172.16.0.0/12"]
        [[rule]]
        name = "allow"
        action = "pass"
        src = "@allow"
        dport = 80
        [[rule]]
        name = "block"
        action = "drop"
        src = "@block"
        [[rule]]
        name = "to-block"
        action = "drop"
        dst = "@block"
        proto = "udp"
        dport = 9
    "#;
    let set = RuleSet::parse(text, "sets.toml").unwrap();
    let mut nets: Vec<IpNet> = set.sets.values().flat_map(|s| s.nets.clone()).collect();
    nets.sort();
    let addrs = boundary_addrs(&nets);
    let mut frames = Vec::new();
    for &a in &addrs {
        for dport in [80, 81] {
            frames.push(udp(a, dst_for(a), dport));
        }
        frames.push(udp(dst_for(a), a, 9));
    }
    let mut c = checker(set);
    let report = c.check_batch(&frames).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.frames, frames.len());

    // The model is the oracle, but spell out the boundaries too.
    let mut v = |src: &str, dport: u16| {
        let a: IpAddr = src.parse().unwrap();
        let o = c.run(&udp(a, dst_for(a), dport)).unwrap();
        assert_eq!(o.kernel, Some(o.model.action));
        o.model.cause
    };
    assert_eq!(v("10.0.0.0", 81), Cause::Rule(1));
    assert_eq!(v("10.255.255.255", 81), Cause::Rule(1));
    assert_eq!(v("9.255.255.255", 81), Cause::Default);
    assert_eq!(v("11.0.0.0", 81), Cause::Default);
    assert_eq!(v("10.1.2.3", 80), Cause::Rule(0), "host in both sets");
    assert_eq!(v("10.1.2.4", 80), Cause::Rule(0), "inside allow's /16");
    assert_eq!(v("10.2.0.0", 80), Cause::Rule(1), "outside allow's /16");
    assert_eq!(v("192.0.2.255", 81), Cause::Rule(1));
    assert_eq!(v("192.0.2.254", 81), Cause::Default);
    assert_eq!(v("2001:db8:1::5", 81), Cause::Rule(1));
    assert_eq!(v("2001:db9::", 81), Cause::Default);
    assert_eq!(v("2001:db8:1::", 80), Cause::Rule(0));
    assert_eq!(
        v("2001:db8:1:1::", 80),
        Cause::Rule(1),
        "beyond allow's /64"
    );
}

/// Rules before the set that nest with its entries, and a set of 100,000 entries: every
/// boundary of a sample of entries agrees with the model (IPv4 lists and ranges, IPv6 hosts
/// and blocks).
#[test]
fn large_sets_agree_with_the_model() {
    let big = blocklist(100_000, 1);
    let sample: Vec<IpNet> = big.nets.iter().step_by(97).copied().collect();
    let mut set = RuleSet::default();
    set.sets.insert("big".into(), big);
    let mut narrow = Rule::new(Action::Pass);
    narrow.src = Some(sample[3].into());
    set.rules.push(narrow);
    let mut block = Rule::new(Action::Drop);
    block.src = Some(AddrMatch::Set("big".into()));
    set.rules.push(block);
    let frames: Vec<Vec<u8>> = boundary_addrs(&sample)
        .into_iter()
        .map(|a| udp(a, dst_for(a), 53))
        .collect();
    // The set's 5,000 IPv6 networks of 80 lengths go into blocks of ranges (/47: the longest
    // that leaves at most 64 in the trie), its hosts into the hash: the frames cover both.
    let tables = xdpwall::compile::compile(&set).unwrap();
    assert_eq!(tables.info.block6, [47, 0]);
    assert_eq!(tables.info.hashed6[0][0], 128);
    let mut c = checker(set);
    let r = c.check_batch(&frames).unwrap_or_else(|e| panic!("{e}"));
    let snap = c.filter.maps.snapshot().unwrap();
    assert!(
        snap.rules[1].hits.packets > (r.frames / 3) as u64,
        "{snap:?}"
    );
    assert!(
        snap.default_hits.packets > (r.frames / 4) as u64,
        "{snap:?}"
    );
    assert_eq!(snap.sets.len(), 1);
    assert_eq!(snap.sets[0].entries, 100_000);
}

fn blocking(set: AddrSet) -> RuleSet {
    let mut rs = RuleSet::default();
    rs.sets.insert("blocklist".into(), set);
    let mut r = Rule::new(Action::Drop);
    r.name = Some("blocklist".into());
    r.src = Some(AddrMatch::Set("blocklist".into()));
    rs.rules.push(r);
    rs
}

/// A 1,000,000-entry blocklist is loaded, then replaced live by another one: afterwards the
/// new entries drop, the old-only ones pass, and status reports the new size.
#[test]
fn million_entry_sets_load_and_swap_live() {
    let a = blocklist(1_000_000, 11);
    let b = blocklist(1_000_000, 12);
    let sample_hosts = |s: &AddrSet| -> Vec<IpAddr> {
        s.nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .step_by(10_007)
            .map(|n| n.addr())
            .collect()
    };
    let (a_hosts, b_hosts) = (sample_hosts(&a), sample_hosts(&b));
    let mut c = checker(RuleSet::default());
    let t = Instant::now();
    let report = c.apply(blocking(a)).unwrap();
    eprintln!(
        "1,000,000-entry set: loaded in {:.2} s (compile {:.2} s, write {:.2} s, {} hashed entries, {} prefixes)",
        t.elapsed().as_secs_f64(),
        report.compile.as_secs_f64(),
        report.write.as_secs_f64(),
        report.hashed,
        report.prefixes
    );
    let kernel = |c: &mut Checker, addr: IpAddr| {
        let o = c.run(&udp(addr, dst_for(addr), 53)).unwrap();
        assert_eq!(o.kernel, Some(o.model.action), "{addr}");
        o.model.action
    };
    for &h in &a_hosts {
        assert_eq!(kernel(&mut c, h), Action::Drop, "{h} of set A");
    }
    let t = Instant::now();
    let report = c.apply(blocking(b)).unwrap();
    eprintln!(
        "swapped live to another 1,000,000-entry set in {:.2} s (compile {:.2} s, write {:.2} s)",
        t.elapsed().as_secs_f64(),
        report.compile.as_secs_f64(),
        report.write.as_secs_f64()
    );
    let snap = c.filter.maps.snapshot().unwrap();
    assert_eq!(snap.sets[0].entries, 1_000_000);
    for &h in &b_hosts {
        assert_eq!(kernel(&mut c, h), Action::Drop, "{h} of set B");
    }
    let passed = a_hosts
        .iter()
        .filter(|&&h| kernel(&mut c, h) == Action::Pass)
        .count();
    assert!(passed > a_hosts.len() / 2, "old entries still dropped");
}

/// Sets replaced live, through the pins as `xdpwall update` does, while this process keeps
/// running a probe: in set A the probe's source is a host entry (hash), in set B it is inside a
/// prefix (trie). Both drop it, the default passes: a packet that saw a half-written table
/// would pass.
#[test]
fn set_swaps_under_traffic_never_show_a_half_written_table() {
    let with = |seed: u64, extra: &str| {
        let mut s = blocklist(50_000, seed);
        s.nets.push(extra.parse().unwrap());
        blocking(AddrSet::new(s.nets))
    };
    let (a, b) = (with(1, "10.9.1.1/32"), with(2, "10.9.0.0/16"));
    let probe = udp(
        "10.9.1.1".parse().unwrap(),
        "198.18.0.2".parse().unwrap(),
        53,
    );
    for s in [&a, &b] {
        assert_eq!(xdpwall::verdict(s, &probe).action, Action::Drop);
    }
    let runs = swaps_under_probes(
        &format!("test-set-swap-{}", std::process::id()),
        [&a, &b],
        &probe,
        XDP_DROP,
        10,
    );
    eprintln!("{runs} probe runs (x16) during 10 live set swaps");
    assert!(runs > 10, "the probe did not run alongside the swaps");
}

/// Through the pins (as a second process writes: no record of which buckets a generation
/// used), the address table is cleaned by scanning the buckets the generation's old table
/// had. One generation holds a large set, a tiny one, no set at all, then another large one
/// (a table of the first one's size, where a stale entry sits in the bucket a probe reads): at
/// every step none of the earlier sets' hosts is still dropped (a stale entry found by a probe
/// would drop it), and the current set's hosts are.
#[test]
fn shrinking_and_growing_sets_through_the_pins_leave_no_stale_entries() {
    let name = format!("test-set-shrink-{}", std::process::id());
    let _cleanup = PinGuard(name.clone());
    let f = Filter::load_pinned(&name).expect("load and pin (root needed)");
    let mut writer = Maps::open_pinned(&name).unwrap();
    let sets = [
        Some(blocklist(50_000, 21)),
        Some(blocklist(8, 22)),
        None,
        Some(blocklist(50_000, 23)),
    ];
    let verdict = |addr: IpAddr| {
        let frame = udp(addr, dst_for(addr), 53);
        f.test_run(&frame, 1).unwrap().xdp_action
    };
    let mut earlier: Vec<IpAddr> = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let (rules, nets) = match set {
            Some(s) => (blocking(s.clone()), s.nets.clone()),
            None => (RuleSet::default(), Vec::new()),
        };
        writer.apply(&rules).unwrap();
        let current: Vec<IpAddr> = nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr())
            .collect();
        for &h in &current {
            assert_eq!(verdict(h), XDP_DROP, "{h} of set {i}");
        }
        let stale = earlier
            .iter()
            .filter(|h| !nets.iter().any(|n| n.contains(*h)))
            .filter(|&&h| verdict(h) != XDP_PASS)
            .count();
        assert_eq!(stale, 0, "hosts of earlier sets still dropped at step {i}");
        earlier.extend(current);
        // The next set lands in the same generation: an empty rule set goes in between.
        writer.apply(&RuleSet::default()).unwrap();
    }
}
