#![no_main]

// Panics the workspace catches are not crashes (see keep_caught_panics).
libfuzzer_sys::fuzz_target!(
    init: amoskys_node::fuzzing::keep_caught_panics(),
    |data: &[u8]| amoskys_node::fuzzing::workspace_change(data)
);
