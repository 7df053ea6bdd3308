#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_sensors::fuzzing::flow_frame(data));
