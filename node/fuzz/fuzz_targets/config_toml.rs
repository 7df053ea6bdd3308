#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_node::fuzzing::config_toml(data));
