#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_learning::fuzzing::sigma_rule(data));
