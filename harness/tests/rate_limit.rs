//! Rate limiting through the real XDP program (BPF_PROG_TEST_RUN) against the reference model,
//! with the same packet timestamps on both sides (the filter's test clock). Needs root.

use std::net::IpAddr;

use harness::verdict::Checker;
use pktgen::{FrameSpec, L4Spec};
use xdpwall::{Action, Cause, RuleSet};

fn udp(src: &str) -> Vec<u8> {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = if src.is_ipv4() {
        "198.18.0.2".parse().unwrap()
    } else {
        "2001:db8:18::2".parse().unwrap()
    };
    FrameSpec::new(
        src,
        dst,
        L4Spec::Udp {
            sport: 1000,
            dport: 53,
        },
    )
    .build()
}

const RULES: &str = r#"
    [[rule]]
    name = "dns"
    action = "rate-limit"
    rate = 1000
    burst = 5
    rate_prefix4 = 24
    rate_prefix6 = 64
    proto = "udp"
    dport = 53
"#;

const MS: u64 = 1_000_000;

fn checker() -> Checker {
    Checker::new(RuleSet::parse(RULES, "limit.toml").unwrap())
        .expect("loading the filter needs root and a BPF-capable kernel")
}

#[test]
fn token_bucket_follows_the_documented_arithmetic() {
    let mut c = checker();
    let t0 = 1_000 * MS;
    let mut at = |src: &str, t: u64| {
        let o = c.run_at(&udp(src), t).unwrap();
        assert_eq!(o.kernel, Some(o.model.action), "{src} at {t}: {o:?}");
        o.model
    };
    // A burst of 5 back to back, the sixth is over the limit.
    for i in 0..5 {
        assert_eq!(at("192.0.2.1", t0).action, Action::Pass, "packet {i}");
    }
    let v = at("192.0.2.1", t0);
    assert_eq!((v.action, v.cause), (Action::Drop, Cause::RateLimited(0)));
    // Same /24: same bucket. Another /24 and IPv6 have their own.
    assert_eq!(at("192.0.2.200", t0).action, Action::Drop);
    assert_eq!(at("192.0.3.1", t0).action, Action::Pass);
    assert_eq!(at("2001:db8:5::1", t0).action, Action::Pass);
    // 1,000/s: one token per millisecond; 0.999 ms is not enough.
    assert_eq!(at("192.0.2.1", t0 + MS - 1).action, Action::Drop);
    assert_eq!(at("192.0.2.1", t0 + MS).action, Action::Pass);
    assert_eq!(at("192.0.2.1", t0 + MS).action, Action::Drop);
    // A long pause refills to the burst, not beyond.
    let later = t0 + 3_600_000 * MS;
    for _ in 0..5 {
        assert_eq!(at("192.0.2.9", later).action, Action::Pass);
    }
    assert_eq!(at("192.0.2.9", later).action, Action::Drop);
}

#[test]
fn random_arrivals_agree_with_the_model_packet_by_packet() {
    let mut c = checker();
    c.filter.maps.reset_stats().unwrap();
    let sources = [
        "192.0.2.1",
        "192.0.2.77",
        "198.51.100.3",
        "2001:db8::1",
        "2001:db8::ffff",
        "2001:db8:0:1::1",
    ];
    // xorshift: arrivals 0 to 0.4 ms apart (about 1,250/s per bucket against 1,000/s).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 5_000 * MS;
    let (mut passed, mut limited) = (0, 0);
    for i in 0..4000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % (MS * 2 / 5);
        let src = sources[(x >> 32) as usize % sources.len()];
        let o = c.run_at(&udp(src), t).unwrap();
        assert_eq!(
            o.kernel,
            Some(o.model.action),
            "packet {i} from {src} at {t}"
        );
        match o.model.cause {
            Cause::RateLimited(0) => limited += 1,
            Cause::Rule(0) => passed += 1,
            other => panic!("unexpected cause {other:?}"),
        }
    }
    assert!(
        passed > 1000 && limited > 500,
        "passed {passed}, limited {limited}"
    );
    let snap = c.filter.maps.snapshot().unwrap();
    assert_eq!(snap.rate_limited.packets, limited);
    assert_eq!(snap.rules[0].limited.packets, limited);
    assert_eq!(snap.rules[0].hits.packets, passed + limited);
}
