//! Compiles the eBPF programs in ebpf/*.bpf.c with clang when the `ebpf`
//! feature is on. No BPF object is committed; every build makes its own.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=ebpf");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let programs = std::fs::read_dir("ebpf").expect("sensors/ebpf exists");
    for entry in programs.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".bpf.c") else {
            continue;
        };
        let src = format!("ebpf/{file}");
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86"])
            .args(["-I/usr/include/x86_64-linux-gnu", "-c", &src, "-o"])
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!(
                "clang failed ({s}) compiling {src}; the eBPF programs need Debian packages clang and libbpf-dev \
                 (or build without the `ebpf` feature: --no-default-features)"
            ),
            Err(e) => panic!(
                "cannot run {clang} to compile {src}: {e}; install Debian packages clang and libbpf-dev \
                 (or build without the `ebpf` feature: --no-default-features)"
            ),
        }
    }
}
