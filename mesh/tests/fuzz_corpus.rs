//! The fuzz corpora of `mesh/fuzz/` in plain `cargo test`: every seed of
//! `fuzz/corpus/<target>/` and every saved crash of
//! `fuzz/regressions/<target>/` goes through the entry point its fuzz
//! target calls ([`amoskys_mesh::fuzzing`]). The seeds are real messages,
//! written by `write_seeds` below (run it with `--ignored` after a format
//! change).

use std::fs;
use std::path::{Path, PathBuf};

use amoskys_mesh::alert::{Alert, AlertBody};
use amoskys_mesh::fuzzing::{self, MEMBER_SEED, NOW_NS, RETIRED_SEED};
use amoskys_mesh::net::{PeerView, ViewPeer};
use amoskys_mesh::rpc::{RPC_PROTOCOL, RpcCodec, RpcRequest, RpcResponse, Service};
use amoskys_mesh::sync::{Holdings, SyncRequest, SyncResponse};
use ed25519_dalek::SigningKey;
use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::StreamProtocol;
use libp2p::request_response::{Codec, cbor};

type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 7] = [
    ("alert", fuzzing::alert),
    ("gossip", fuzzing::gossip),
    ("sync_request", fuzzing::sync_request),
    ("sync_response", fuzzing::sync_response),
    ("rpc_request", fuzzing::rpc_request),
    ("rpc_response", fuzzing::rpc_response),
    ("view", fuzzing::view),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, or none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn corpora_and_regressions_replay_without_a_panic() {
    for (name, entry) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "no seed corpus for {name}");
        for path in seeds
            .iter()
            .chain(&files(&fuzz_dir().join("regressions").join(name)))
        {
            let bytes = fs::read(path).expect("read a corpus file");
            entry(&bytes);
        }
    }
}

fn body(seq: u64, evidence: usize) -> AlertBody {
    AlertBody {
        seq,
        time_ns: NOW_NS - seq * 1_000_000_000,
        severity: ["low", "medium", "high", "critical"][seq as usize % 4].into(),
        category: "reconnaissance".into(),
        technique: "T1046".into(),
        rule: "port_scan_vertical".into(),
        score: 0.75,
        subject: "source_ip:192.0.2.9".into(),
        evidence: (0..evidence)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect(),
    }
}

/// Signed alerts: the member's, a retired member's before and after its
/// hand-over, a stranger's, and one tampered after signing.
fn alerts() -> Vec<(String, Vec<u8>)> {
    let member = SigningKey::from_bytes(&MEMBER_SEED);
    let retired = SigningKey::from_bytes(&RETIRED_SEED);
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let mut out = Vec::new();
    for (seq, ev) in [(0, 0), (1, 2), (2, 32)] {
        out.push((
            format!("member-{seq}"),
            Alert::sign(body(seq, ev), &member).encode(),
        ));
    }
    out.push((
        "retired-3".into(),
        Alert::sign(body(3, 1), &retired).encode(),
    ));
    out.push((
        "retired-9".into(),
        Alert::sign(body(9, 1), &retired).encode(),
    ));
    out.push((
        "stranger".into(),
        Alert::sign(body(4, 1), &stranger).encode(),
    ));
    let mut tampered = Alert::sign(body(5, 1), &member);
    tampered.body.score = 0.5;
    out.push(("tampered".into(), tampered.encode()));
    let mut stale = body(6, 1);
    stale.time_ns = 1_000;
    out.push(("stale".into(), Alert::sign(stale, &member).encode()));
    out
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

/// Writes the seed corpora from real messages.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seeds() {
    let alerts = alerts();
    for (name, bytes) in &alerts {
        write("alert", &format!("{name}.json"), bytes);
        write("gossip", &format!("{name}.json"), bytes);
    }

    let member_hex = hex::encode(
        SigningKey::from_bytes(&MEMBER_SEED)
            .verifying_key()
            .as_bytes(),
    );
    let sync_proto = StreamProtocol::new("/amoskys/sync/1");
    let mut codec = cbor::codec::Codec::<SyncRequest, SyncResponse>::default();
    let holdings = [
        Holdings::default(),
        Holdings::from_pairs([(member_hex.clone(), 0), (member_hex.clone(), 1)]),
        Holdings::from_pairs(
            (0..40)
                .filter(|s| s % 3 != 0)
                .map(|s| (member_hex.clone(), s)),
        ),
        Holdings::from_pairs([("aa".into(), 1), ("bb".into(), u64::MAX)]),
    ];
    for (i, h) in holdings.into_iter().enumerate() {
        let mut out = Cursor::new(Vec::new());
        let req = SyncRequest { holdings: h };
        block_on(codec.write_request(&sync_proto, &mut out, req)).expect("encode");
        write("sync_request", &format!("holdings-{i}.cbor"), out.get_ref());
    }
    let batches: [(Vec<Vec<u8>>, bool); 3] = [
        (Vec::new(), false),
        (alerts.iter().map(|(_, b)| b.clone()).collect(), true),
        (vec![alerts[0].1.clone()], false),
    ];
    for (i, (alerts, more)) in batches.into_iter().enumerate() {
        let mut out = Cursor::new(Vec::new());
        let res = SyncResponse { alerts, more };
        block_on(codec.write_response(&sync_proto, &mut out, res)).expect("encode");
        write("sync_response", &format!("answer-{i}.cbor"), out.get_ref());
    }

    let rpc_proto = StreamProtocol::new(RPC_PROTOCOL);
    let bodies: [(Service, &[u8]); 6] = [
        (Service::Raft, br#"{"Quorum":null}"#),
        (Service::Model, b"{}"),
        (
            Service::Blob,
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        (
            Service::Join,
            br#"{"addr":"/ip4/127.0.0.1/tcp/7000","handover":null}"#,
        ),
        (Service::Workspace, b"\x00\x01\x02"),
        (Service::View, b""),
    ];
    for (service, body) in bodies {
        let mut out = Cursor::new(Vec::new());
        let req = RpcRequest {
            service,
            body: body.to_vec(),
        };
        block_on(RpcCodec.write_request(&rpc_proto, &mut out, req)).expect("encode");
        write(
            "rpc_request",
            &format!("{}.bin", service.as_str()),
            out.get_ref(),
        );
        for (status, result) in [
            ("ok", Ok(body.to_vec())),
            ("failed", Err("busy; try again".into())),
        ] {
            let mut out = Cursor::new(Vec::new());
            let res = RpcResponse { service, result };
            block_on(RpcCodec.write_response(&rpc_proto, &mut out, res)).expect("encode");
            let name = format!("{}-{status}.bin", service.as_str());
            write("rpc_response", &name, out.get_ref());
        }
    }

    let peer = |seed: u8| {
        let k = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).expect("key");
        k.public().to_peer_id().to_string()
    };
    let views = [
        PeerView {
            name: String::new(),
            peers: Vec::new(),
        },
        PeerView {
            name: "site-a".into(),
            peers: vec![
                ViewPeer {
                    id: peer(1),
                    latency_ms: Some(0.4),
                },
                ViewPeer {
                    id: peer(2),
                    latency_ms: None,
                },
            ],
        },
    ];
    for (i, v) in views.iter().enumerate() {
        write("view", &format!("view-{i}.json"), &v.encode());
    }
}
