//! The shared workspace, measured.
//!
//! 1. Five real nodes (RocksDB, libp2p on loopback) split 2 | 3; each side
//!    makes `EDITS` edits (IOC adds and removes, case notes and statuses);
//!    after the heal: time until all five hold identical documents, and the
//!    sync bytes every node sent to get there.
//! 2. One intel document: 100,000 IOC adds then 100,000 removes, its size,
//!    then compacted.
//!
//! `cargo bench -p amoskys-node --bench workspace` runs the full sizes;
//! under `cargo test` (no `--bench`) a small smoke pass. Figures go to
//! docs/BENCHMARKS.md.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use amoskys_node::config::Source;
use amoskys_node::identity::{Identity, KEY_FILE};
use amoskys_node::workspace::{Status, ThreatIntel, Workspace};
use amoskys_node::{Config, Node};

fn config(dir: &std::path::Path, admitted: &str, boot: Option<u16>) -> Config {
    let mut sets = vec![
        format!("node.data_dir={}", dir.display()),
        "api.listen=127.0.0.1:0".into(),
        "mesh.listen=[\"127.0.0.1:0\"]".into(),
        admitted.to_owned(),
        "sensors.procfs.enabled=false".into(),
        "sensors.flows.enabled=false".into(),
        "sensors.ebpf.enabled=false".into(),
        "sensors.snmp.enabled=false".into(),
        "learning.enabled=false".into(),
        "workspace.sync_every_ms=200".into(),
        "log.level=error".into(),
    ];
    if let Some(p) = boot {
        sets.push(format!("mesh.bootstrap=[\"127.0.0.1:{p}\"]"));
    }
    Config::load(&[Source::Embedded, Source::Set(sets)]).expect("config")
}

async fn mesh_port(n: &Node) -> u16 {
    for _ in 0..500 {
        if let Some(p) = n
            .mesh()
            .expect("mesh")
            .listen_addrs()
            .await
            .ok()
            .and_then(|a| {
                a.iter().find_map(|m| {
                    m.iter().find_map(|p| match p {
                        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                        _ => None,
                    })
                })
            })
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no mesh port");
}

fn same(ws: &[&Workspace]) -> bool {
    let (i, c) = (ws[0].intel_list(), ws[0].case_list());
    ws.iter().all(|w| w.intel_list() == i && w.case_list() == c)
}

/// `edits` edits on `w`, tagged by `side`.
fn edit(w: &Workspace, side: u8, edits: usize) {
    for k in 0..edits {
        let ip = Ipv4Addr::new(10, side, (k / 250) as u8, (k % 250) as u8).to_string();
        let alert = format!("alert-{}", k % 50);
        match k % 4 {
            0 | 1 => drop(w.intel_add(&ip, "bench", None).expect("add")),
            2 => drop(
                w.case_note(&alert, &format!("side {side} edit {k}"))
                    .expect("note"),
            ),
            _ => {
                let status = if side == 0 {
                    Status::Acknowledged
                } else {
                    Status::Resolved
                };
                drop(w.case_status(&alert, status).expect("status"));
            }
        }
    }
}

fn sent_bytes(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .map(|n| n.workspace().status().sync.sent_bytes)
        .sum()
}

async fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn partition_and_heal(edits: usize) {
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().expect("dir")).collect();
    let keys: Vec<String> = dirs
        .iter()
        .map(|d| {
            let id = Identity::generate();
            id.write(&d.path().join(KEY_FILE), false).expect("key");
            format!("\"{}\"", id.public_key_hex())
        })
        .collect();
    let admitted = format!("mesh.admitted=[{}]", keys.join(","));
    let first = Node::start(config(dirs[0].path(), &admitted, None))
        .await
        .expect("start");
    let port = mesh_port(&first).await;
    let mut nodes = vec![first];
    for d in &dirs[1..] {
        nodes.push(
            Node::start(config(d.path(), &admitted, Some(port)))
                .await
                .expect("start"),
        );
    }
    let ids: Vec<_> = nodes
        .iter()
        .map(|n| n.mesh().expect("mesh").peer_id())
        .collect();
    let ws: Vec<&Workspace> = nodes.iter().map(|n| n.workspace().as_ref()).collect();
    // Connected and in step before the cut.
    nodes[0]
        .workspace()
        .intel_add("192.0.2.1", "before", None)
        .expect("add");
    wait(Duration::from_secs(60), || {
        ws.iter().all(|w| w.intel_list().len() == 1)
    })
    .await
    .expect("in step before the partition");

    let (left, right) = ([0usize, 1], [2usize, 3, 4]);
    for (i, n) in nodes.iter().enumerate() {
        let other: Vec<_> = if left.contains(&i) {
            right.iter().map(|&j| ids[j]).collect()
        } else {
            left.iter().map(|&j| ids[j]).collect()
        };
        n.mesh()
            .expect("mesh")
            .block(other, true)
            .await
            .expect("block");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    edit(ws[0], 0, edits);
    edit(ws[2], 1, edits);
    let editing = t.elapsed();
    // Each side settles among itself.
    wait(Duration::from_secs(120), || {
        same(&[ws[0], ws[1]]) && same(&[ws[2], ws[3], ws[4]])
    })
    .await
    .expect("each side in step");
    let bytes_before = sent_bytes(&nodes);

    for n in &nodes {
        n.mesh()
            .expect("mesh")
            .block(ids.clone(), false)
            .await
            .expect("heal");
    }
    let took = wait(Duration::from_secs(300), || same(&ws)).await;
    let bytes = sent_bytes(&nodes) - bytes_before;
    match took {
        Some(d) => println!(
            "5 nodes, {edits} edits on each side of a 2|3 partition (made in {:.2} s): converged {:.2} s after the heal, {bytes} sync bytes sent ({:.0} B per edit); intel {} B, cases {} B",
            editing.as_secs_f64(),
            d.as_secs_f64(),
            bytes as f64 / (2 * edits) as f64,
            ws[0].status().intel.bytes,
            ws[0].status().cases.bytes,
        ),
        None => println!("5 nodes, {edits} edits per side: NOT converged within 300 s"),
    }
    drop(ws);
    for n in nodes {
        n.shutdown().await;
    }
}

fn adds_and_removes(n: u32) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut intel = ThreatIntel::new();
    let start = Instant::now();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i).to_string();
        intel
            .add(&ip, "bulk", None, u64::from(i), &key)
            .expect("add");
    }
    let adds = start.elapsed();
    let start = Instant::now();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i).to_string();
        intel.remove(&ip, u64::from(n + i), &key).expect("remove");
    }
    let removes = start.elapsed();
    let before = intel.document().len_bytes();
    let day = 86_400_000;
    let start = Instant::now();
    let report = intel
        .compact(u64::from(2 * n) + 31 * day, 30 * day, &key)
        .expect("compact");
    println!(
        "{n} IOC adds in {:.1} s and {n} removes in {:.1} s: document {before} B; compacted in {:.2} s to {} B ({} entries dropped)",
        adds.as_secs_f64(),
        removes.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        report.bytes_after,
        report.entries_dropped
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (edits, iocs) = if full { (1_000, 100_000) } else { (40, 2_000) };
    adds_and_removes(iocs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(partition_and_heal(edits));
}
