//! The rule-file parser never panics; it accepts (and what it accepts compiles and round-trips
//! through `to_toml`) or it rejects with an error that names the input and a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpwall::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::parse(text, "fuzz.toml") {
        Ok(set) => {
            xdpwall::compile::compile(&set).expect("an accepted rule set compiles");
            let again =
                RuleSet::parse(&set.to_toml(), "round-trip.toml").expect("to_toml output parses");
            assert_eq!(again, set, "round trip");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                e.line().is_some() && msg.starts_with("fuzz.toml:"),
                "unpositioned error: {msg}"
            );
        }
    }
});
