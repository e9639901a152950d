//! Reading a pcap never panics: frames or a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = pktgen::pcap::read_from(data, std::path::Path::new("fuzz.pcap")) {
        assert!(e.to_string().starts_with("fuzz.pcap"));
    }
});
