//! Resident memory and CPU of a running `amoskys` node at rest, with every
//! sensor enabled by default on.
//!
//! `cargo bench -p amoskys-node --bench footprint` samples for 60 s after a
//! 10 s warm-up (AMOSKYS_BENCH_SECS changes the sampling time); under
//! `cargo test` it runs a 2 s smoke pass. Figures go to docs/BENCHMARKS.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, secs) = if full {
        let secs = std::env::var("AMOSKYS_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        (10, secs)
    } else {
        (1, 2)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args([
            "run",
            "--api-listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--set", "mesh.listen=[\"127.0.0.1:0\"]"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn amoskys");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(warmup));
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    let mut peak = 0;
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        samples.push(rss);
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu_pct = (cpu_ticks(pid) - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    let _ = child.kill();
    let _ = child.wait();
    samples.sort_unstable();
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0);
    println!("footprint at rest over {secs} s (after {warmup} s warm-up):");
    println!(
        "  RSS median {:.1} MiB, peak {:.1} MiB",
        median as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  CPU {cpu_pct:.2}% of one core");
}
