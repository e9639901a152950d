//! Parsing a traffic profile never panics, and what it accepts builds frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = pktgen::profile::Profile::parse(text) {
        let flows = p.flows().expect("validated");
        for (t, _) in p.templates().expect("validated") {
            for f in flows.frames(&t, 4) {
                assert_eq!(f.len(), t.len());
            }
        }
    }
});
