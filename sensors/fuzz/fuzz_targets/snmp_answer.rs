#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_sensors::fuzzing::snmp_answer(data));
