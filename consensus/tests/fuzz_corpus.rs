//! The fuzz corpora of `consensus/fuzz/` in plain `cargo test`: every seed
//! of `fuzz/corpus/<target>/` and every saved crash of
//! `fuzz/regressions/<target>/` goes through the entry point its fuzz
//! target calls ([`amoskys_consensus::fuzzing`]). `write_seeds` below
//! writes the seeds (run it with `--ignored`): Raft requests and answers
//! with real commands, signed audit records and hand-overs, a snapshot of
//! a state those commands built, and join requests and answers.

use std::fs;
use std::path::{Path, PathBuf};

use amoskys_consensus::audit::AuditRecord;
use amoskys_consensus::cluster::{JoinReply, JoinRequest};
use amoskys_consensus::fuzzing::{self, JOINER_SEED, RECEIVER_SEED, node_id};
use amoskys_consensus::network::{AdminOp, RaftReply, RaftRequest};
use amoskys_consensus::rotation::{Handover, NodeRotation};
use amoskys_consensus::{ClusterState, Command, NodeId, Role, TypeConfig};
use ed25519_dalek::{Signer, SigningKey};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};

type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 5] = [
    ("raft_request", fuzzing::raft_request),
    ("raft_reply", fuzzing::raft_reply),
    ("snapshot", fuzzing::snapshot),
    ("join_request", fuzzing::join_request),
    ("join_reply", fuzzing::join_reply),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

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
            entry(&fs::read(path).expect("read a corpus file"));
        }
    }
}

fn write(target: &str, name: &str, v: &impl serde::Serialize) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    let bytes = serde_json::to_vec(v).expect("encode");
    fs::write(dir.join(format!("{name}.json")), bytes).expect("write a seed");
}

const POLICY: &str = "[detection]\nport_scan_threshold = 50\n\n[response]\nmode = \"observe\"\n";

fn record(sk: &SigningKey, action: &str) -> AuditRecord {
    let mut r = AuditRecord {
        time_ns: 1_000,
        operator: "alice".into(),
        operator_key: hex::encode(sk.verifying_key().as_bytes()),
        role: Some(Role::Admin),
        node: NodeId(sk.verifying_key().to_bytes()),
        action: action.into(),
        target: "/api/v1/policy".into(),
        summary: "version 1 -> 2".into(),
        result: "ok".into(),
        sig: String::new(),
    };
    r.sig = hex::encode(sk.sign(&r.signed_bytes()).to_bytes());
    r
}

fn commands() -> Vec<Command> {
    let receiver = node_id(&RECEIVER_SEED);
    let joiner = node_id(&JOINER_SEED);
    let sk = SigningKey::from_bytes(&RECEIVER_SEED);
    vec![
        Command::SetPolicy {
            document: POLICY.into(),
            author: receiver,
            time_ns: 10,
        },
        Command::Admit {
            node: joiner,
            addr: "/ip4/127.0.0.1/tcp/7001".into(),
            by: receiver,
            time_ns: 11,
        },
        Command::SetOperator {
            name: "alice".into(),
            key: hex::encode(sk.verifying_key().as_bytes()),
            role: Role::Admin,
            by: "bootstrap".into(),
            time_ns: 12,
        },
        Command::Audited {
            record: record(&sk, "policy set"),
            command: Some(Box::new(Command::SetPolicy {
                document: POLICY.into(),
                author: receiver,
                time_ns: 13,
            })),
        },
        Command::ActivateModel {
            version: 1,
            by: receiver,
            time_ns: 14,
        },
        Command::AbandonRound {
            id: 1,
            reason: "deadline".into(),
            time_ns: 15,
        },
        Command::Remove {
            node: joiner,
            by: receiver,
            time_ns: 16,
        },
    ]
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, node_id(&RECEIVER_SEED)), index)
}

fn handover() -> Handover {
    let old = SigningKey::from_bytes(&RECEIVER_SEED);
    let new = SigningKey::from_bytes(&JOINER_SEED);
    Handover {
        rotation: NodeRotation::sign(&old, &new, Some(41), 1_000),
        record: record(&old, "node rotate"),
    }
}

/// Writes the seed corpora.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seeds() {
    let leader = node_id(&RECEIVER_SEED);
    let vote = Vote::new_committed(3, leader);
    let entries: Vec<Entry<TypeConfig>> = commands()
        .into_iter()
        .enumerate()
        .map(|(i, cmd)| Entry {
            log_id: log_id(3, i as u64 + 2),
            payload: EntryPayload::Normal(cmd),
        })
        .collect();
    let members = Membership::new(vec![[leader].into()], ());
    let mut first = vec![
        Entry {
            log_id: log_id(3, 1),
            payload: EntryPayload::Membership(members.clone()),
        },
        Entry {
            log_id: log_id(3, 0),
            payload: EntryPayload::Blank,
        },
    ];
    first.reverse();
    let append = |entries: Vec<Entry<TypeConfig>>, prev| {
        RaftRequest::Append(AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            entries,
            leader_commit: Some(log_id(3, 1)),
        })
    };
    write("raft_request", "append-first", &append(first, None));
    write(
        "raft_request",
        "append-commands",
        &append(entries, Some(log_id(3, 1))),
    );
    write(
        "raft_request",
        "heartbeat",
        &append(Vec::new(), Some(log_id(3, 8))),
    );
    write(
        "raft_request",
        "vote",
        &RaftRequest::Vote(VoteRequest::new(Vote::new(4, leader), Some(log_id(3, 8)))),
    );
    write(
        "raft_request",
        "pre-vote",
        &RaftRequest::PreVote {
            last_log: Some(log_id(3, 8)),
        },
    );
    for (i, cmd) in commands().into_iter().enumerate() {
        write(
            "raft_request",
            &format!("propose-{i}"),
            &RaftRequest::Propose(cmd),
        );
    }
    let joiner = node_id(&JOINER_SEED);
    let admin = [
        AdminOp::Admit {
            node: joiner,
            addr: "/ip4/127.0.0.1/tcp/7001".into(),
            by: leader,
        },
        AdminOp::Remove {
            node: joiner,
            by: leader,
        },
        AdminOp::Rotate {
            handover: Box::new(handover()),
            addr: "/ip4/127.0.0.1/tcp/7002".into(),
        },
    ];
    for (i, op) in admin.into_iter().enumerate() {
        write(
            "raft_request",
            &format!("admin-{i}"),
            &RaftRequest::Admin(op),
        );
    }
    write("raft_request", "read-index", &RaftRequest::ReadIndex);
    write("raft_request", "quorum", &RaftRequest::Quorum);

    // A snapshot of the state the commands build, as the leader sends it.
    let mut state = ClusterState::default();
    for (i, cmd) in commands().iter().enumerate() {
        let _ = state.apply_entry(cmd, i as u64 + 2);
    }
    let data = serde_json::json!({
        "last_applied": log_id(3, 8),
        "membership": StoredMembership::new(Some(log_id(3, 1)), members.clone()),
        "state": state,
        "audit": [],
    });
    write("snapshot", "state", &data);
    write(
        "snapshot",
        "empty",
        &serde_json::json!({
            "last_applied": null,
            "membership": StoredMembership::<NodeId, BasicNode>::default(),
            "state": ClusterState::default(),
        }),
    );
    let snap = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 8)),
            last_membership: StoredMembership::new(Some(log_id(3, 1)), members),
            snapshot_id: "3-8-1".into(),
        },
        offset: 0,
        data: serde_json::to_vec(&data).expect("snapshot data"),
        done: true,
    };
    write("raft_request", "snapshot", &RaftRequest::Snapshot(snap));

    let replies = [
        RaftReply::Append(Ok(AppendEntriesResponse::Success)),
        RaftReply::Append(Ok(AppendEntriesResponse::Conflict)),
        RaftReply::Append(Ok(AppendEntriesResponse::HigherVote(Vote::new(5, joiner)))),
        RaftReply::Vote(Ok(VoteResponse::new(
            Vote::new(4, leader),
            Some(log_id(3, 8)),
            true,
        ))),
        RaftReply::Snapshot(Ok(InstallSnapshotResponse { vote })),
        RaftReply::ReadIndex(Ok(Some(log_id(3, 8)))),
        RaftReply::PreVote(true),
        RaftReply::Admin(Ok(())),
    ];
    for (i, r) in replies.iter().enumerate() {
        write("raft_reply", &format!("reply-{i}"), r);
    }

    let joins = [
        JoinRequest {
            addr: "/ip4/127.0.0.1/tcp/7001".into(),
            name: "edge-1".into(),
            handover: None,
        },
        JoinRequest {
            addr: "/ip4/127.0.0.1/tcp/7002".into(),
            name: "edge-2".into(),
            handover: Some(handover()),
        },
    ];
    for (i, j) in joins.iter().enumerate() {
        write("join_request", &format!("join-{i}"), j);
    }
    let answers = [
        JoinReply::Admitted {
            members: vec![leader, joiner],
        },
        JoinReply::Pending,
        JoinReply::Refused("removed by an operator; it must be admitted again".into()),
    ];
    for (i, a) in answers.iter().enumerate() {
        write("join_reply", &format!("answer-{i}"), a);
    }
}
