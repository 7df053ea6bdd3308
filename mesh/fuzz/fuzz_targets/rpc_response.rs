#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoskys_mesh::fuzzing::rpc_response(data));
