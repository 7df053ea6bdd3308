//! Offline audit verification throughput: a trail of 1,000,000 entries
//! (two recording nodes, a signed head) written as an export file, then
//! checked by [`verify_export`] as `amoskys audit verify` does: JSON
//! parse, entry hash, chain, and the recording node's ed25519 signature
//! for every entry. Several runs; prints each and the median.
//!
//! `cargo bench -p amoskys-consensus --bench audit` (figures go to
//! docs/BENCHMARKS.md). Under `cargo test` it runs once over 1,000 entries.

use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use amoskys_consensus::audit::{
    AuditEntry, AuditRecord, ExportHead, ExportLine, GENESIS, verify_export,
};
use amoskys_consensus::{NodeId, Role};
use ed25519_dalek::{Signer, SigningKey};

fn record(sk: &SigningKey, action: &str) -> AuditRecord {
    let mut r = AuditRecord {
        time_ns: 1_764_000_000_000_000_000,
        operator: "alice".into(),
        operator_key: "ab".repeat(32),
        role: Some(Role::Analyst),
        node: NodeId(sk.verifying_key().to_bytes()),
        action: action.into(),
        target: "case 0123456789abcdef0123456789abcdef".into(),
        summary: "acknowledge, assignee Some(\"bob\")".into(),
        result: "ok".into(),
        sig: String::new(),
    };
    r.sig = hex::encode(sk.sign(&r.signed_bytes()).to_bytes());
    r
}

/// Writes an export of `n` entries to `path`.
fn write_export(path: &std::path::Path, n: u64) {
    let a = SigningKey::from_bytes(&[1; 32]);
    let b = SigningKey::from_bytes(&[2; 32]);
    // A record is signed once and reused: the check still verifies every
    // entry's signature.
    let records = [record(&a, "case.ack"), record(&b, "intel.add")];
    let mut out = BufWriter::new(std::fs::File::create(path).expect("export file"));
    let mut prev = GENESIS.to_owned();
    let mut first = None;
    let mut last = None;
    for seq in 1..=n {
        let mut e = AuditEntry {
            seq,
            log_index: seq + 10,
            prev,
            record: records[(seq % 2) as usize].clone(),
            outcome: "ok".into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        serde_json::to_writer(&mut out, &ExportLine::Entry(e.clone())).expect("written");
        out.write_all(b"\n").expect("written");
        if first.is_none() {
            first = Some(e.clone());
        }
        last = Some(e);
    }
    let ends: Vec<AuditEntry> = first.into_iter().chain(last).collect();
    let mut head = ExportHead::of(&ends, NodeId(a.verifying_key().to_bytes()), 1);
    head.count = n;
    head.sig = hex::encode(a.sign(&head.signed_bytes()).to_bytes());
    serde_json::to_writer(&mut out, &ExportLine::Head { head }).expect("written");
    out.write_all(b"\n").expect("written");
    out.flush().expect("flushed");
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if bench { (1_000_000, 5) } else { (1_000, 1) };
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("trail.jsonl");
    let t = Instant::now();
    write_export(&path, n);
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "wrote {n} entries ({:.0} MB) in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut rates = Vec::new();
    for run in 1..=runs {
        let file = std::fs::File::open(&path).expect("export file");
        let t = Instant::now();
        let v = verify_export(BufReader::with_capacity(1 << 20, file), |_| Ok(()))
            .expect("the trail verifies");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(v.count, n);
        let rate = n as f64 / secs;
        println!("run {run}: {n} entries verified in {secs:.2} s, {rate:.0} entries/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "audit verify: median {:.0} entries/s over {runs} run(s)",
        rates[rates.len() / 2]
    );
}
