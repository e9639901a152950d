//! Sampled verdict events through the real XDP program (BPF_PROG_TEST_RUN): the sampling rate
//! is respected per CPU, unsampled verdicts send nothing, and each event carries the verdict,
//! the rule, the headers and the frame's leading bytes. Needs root.

use std::{net::IpAddr, time::Duration};

use pktgen::{FrameSpec, L4Spec};
use xdpwall::{
    loader::Sampling,
    trace::{describe, Tracer},
    Action, Filter, RuleSet,
};
use xdpwall_common::cause;

fn udp(src: &str, dport: u16, payload: usize) -> Vec<u8> {
    let src: IpAddr = src.parse().unwrap();
    let mut spec = FrameSpec::new(
        src,
        "198.18.0.2".parse().unwrap(),
        L4Spec::Udp { sport: 999, dport },
    );
    spec.payload_len = payload;
    spec.build()
}

fn drain_events(t: &mut Tracer) -> Vec<xdpwall_common::Event> {
    let mut v = Vec::new();
    while let Some(e) = t.next(Duration::from_millis(50)) {
        v.push(e);
    }
    v
}

#[test]
fn sampling_rate_and_event_contents() {
    // BPF_PROG_TEST_RUN runs on the calling CPU and the countdowns are per CPU: stay on one.
    pktgen::pin_to_cpu(0);
    let set = RuleSet::parse(
        "[[rule]]\nname = \"no-telnet\"\naction = \"drop\"\nproto = \"udp\"\ndport = 23\n",
        "t",
    )
    .unwrap();
    let mut f = Filter::with_rules(&set).expect("loading the filter needs root");
    let mut tracer = Tracer::new(f.maps.take_events().unwrap());
    f.maps
        .set_sampling(Sampling {
            drops: 10,
            passes: 0,
            snap_len: 64,
        })
        .unwrap();
    let dropped = udp("192.0.2.1", 23, 100);
    let passed = udp("192.0.2.1", 80, 100);
    for _ in 0..1000 {
        assert_eq!(f.test_run(&passed, 1).unwrap().xdp_action, 2);
    }
    assert!(
        drain_events(&mut tracer).is_empty(),
        "passes are not sampled"
    );
    for _ in 0..1000 {
        assert_eq!(f.test_run(&dropped, 1).unwrap().xdp_action, 1);
    }
    let events = drain_events(&mut tracer);
    assert_eq!(events.len(), 100, "one drop in ten");
    let e = &events[0];
    assert_eq!(e.cause, cause::RULE);
    assert_eq!(e.rule, 0);
    assert_eq!(e.frame_len as usize, dropped.len());
    assert_eq!(e.cap_len, 64);
    assert_eq!(&e.data[..64], &dropped[..64]);
    let d = describe(e, xdpwall::trace::monotonic_to_wall(), |_, _| {
        Some("no-telnet".into())
    });
    assert_eq!(d.action, Action::Drop);
    assert_eq!(d.src, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(d.dst, Some("198.18.0.2".parse().unwrap()));
    assert_eq!((d.proto, d.sport, d.dport), (Some(17), Some(999), Some(23)));
    assert_eq!(
        d.verdict(),
        "xdpwall: drop (rule 0 \"no-telnet\"), generation 0"
    );

    // Every pass, the default cause, and a snap length beyond the frame.
    f.maps
        .set_sampling(Sampling {
            drops: 0,
            passes: 1,
            snap_len: 256,
        })
        .unwrap();
    let short = udp("192.0.2.1", 80, 0);
    for _ in 0..7 {
        f.test_run(&short, 1).unwrap();
    }
    f.test_run(&dropped, 1).unwrap();
    let events = drain_events(&mut tracer);
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.cause == cause::DEFAULT
        && e.cap_len as usize == short.len()
        && e.data[..short.len()] == short[..]));
    // A snap length that ends inside a word of the frame: exactly that many bytes.
    f.maps
        .set_sampling(Sampling {
            drops: 1,
            passes: 0,
            snap_len: 61,
        })
        .unwrap();
    f.test_run(&dropped, 1).unwrap();
    let events = drain_events(&mut tracer);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].cap_len, 61);
    assert_eq!(&events[0].data[..61], &dropped[..61]);
    assert_eq!(f.maps.snapshot().unwrap().events_lost.packets, 0);
}
