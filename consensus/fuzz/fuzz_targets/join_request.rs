#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_consensus::fuzzing::join_request(data));
