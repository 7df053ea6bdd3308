//! A lab of consensus members over real libp2p on loopback, each with its
//! own RocksDB, shared by the cluster tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use amoskys_consensus::lab::LabMember;
use amoskys_consensus::{ClusterError, Command, NodeId, Quorum};
use libp2p_identity::Keypair;

pub struct Lab {
    pub keys: Vec<Keypair>,
    pub dirs: Vec<PathBuf>,
    pub members: Vec<Option<LabMember>>,
    _tmp: tempfile::TempDir,
}

pub fn keypair(i: usize) -> Keypair {
    let mut seed = [7u8; 32];
    seed[0] = i as u8;
    Keypair::ed25519_from_bytes(seed).expect("key")
}

pub fn id(k: &Keypair) -> NodeId {
    NodeId::from_peer_id(&k.public().to_peer_id()).expect("ed25519")
}

pub fn key_bytes(k: &Keypair) -> [u8; 32] {
    id(k).0
}

pub async fn until<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn policy(text: &str, by: NodeId) -> Command {
    Command::SetPolicy {
        document: text.to_owned(),
        author: by,
        time_ns: 1,
    }
}

impl Lab {
    /// `n` members (plus `extra` keys admitted on the mesh but not started).
    pub async fn start(
        n: usize,
        extra: usize,
        tune: fn(&mut amoskys_consensus::ClusterSettings),
    ) -> Lab {
        let tmp = tempfile::tempdir().expect("tmp");
        let keys: Vec<Keypair> = (0..n + extra).map(keypair).collect();
        let dirs = (0..n + extra)
            .map(|i| tmp.path().join(format!("m{i}")))
            .collect();
        let mut lab = Lab {
            keys,
            dirs,
            members: (0..n + extra).map(|_| None).collect(),
            _tmp: tmp,
        };
        for i in 0..n {
            lab.up(i, tune).await;
        }
        lab
    }

    pub async fn up(&mut self, i: usize, tune: fn(&mut amoskys_consensus::ClusterSettings)) {
        let mut bootstrap = Vec::new();
        for m in self.members.iter().flatten() {
            bootstrap.push(m.addr().await.expect("addr"));
        }
        let admitted = self.keys.iter().map(key_bytes).collect();
        let m = LabMember::start(&self.keys[i], &self.dirs[i], bootstrap, admitted, tune)
            .await
            .expect("member starts");
        self.members[i] = Some(m);
    }

    pub async fn down(&mut self, i: usize) {
        if let Some(m) = self.members[i].take() {
            m.stop().await;
        }
    }

    pub fn m(&self, i: usize) -> &LabMember {
        self.members[i].as_ref().expect("member is up")
    }

    pub fn index_of(&self, node: NodeId) -> usize {
        self.keys
            .iter()
            .position(|k| id(k) == node)
            .expect("known member")
    }

    pub async fn init(&self, voters: usize) {
        let others: Vec<(NodeId, String)> = (1..voters)
            .map(|i| (id(&self.keys[i]), String::new()))
            .collect();
        self.m(0)
            .cluster
            .initialize(&others)
            .await
            .expect("initialise");
    }

    /// The leader all running members agree on.
    pub async fn leader(&self) -> usize {
        let mut found = None;
        until("one leader", Duration::from_secs(15), || {
            let leaders: BTreeSet<Option<NodeId>> = self
                .members
                .iter()
                .flatten()
                .filter(|m| m.cluster.status().initialized)
                .map(|m| m.cluster.raft().metrics().borrow().current_leader)
                .collect();
            found = match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(l)] => Some(*l),
                _ => None,
            };
            let up = found.is_some_and(|l| self.members.iter().flatten().any(|m| m.id == l));
            async move { up }
        })
        .await;
        self.index_of(found.expect("leader"))
    }

    pub async fn applied_everywhere(&self, version: u64) {
        until(
            "the policy on every member",
            Duration::from_secs(15),
            || {
                let all = self.members.iter().flatten().all(|m| {
                    m.cluster
                        .applied()
                        .borrow()
                        .state
                        .policy()
                        .map(|p| p.version)
                        == Some(version)
                });
                async move { all }
            },
        )
        .await;
    }

    pub async fn stop(mut self) {
        for i in 0..self.members.len() {
            self.down(i).await;
        }
    }
}

/// What a write that found no quorum may take beyond its budget (the
/// last forwarded answer, scheduling on a busy 2-core machine).
pub const SLACK: Duration = Duration::from_millis(1_000);

/// The quorum a failed write reports.
pub fn lost(err: &ClusterError) -> &Quorum {
    match err {
        ClusterError::QuorumLost { quorum, .. } => quorum,
        other => panic!("expected a lost quorum, got: {other}"),
    }
}

pub fn quick(s: &mut amoskys_consensus::ClusterSettings) {
    s.heartbeat = Duration::from_millis(100);
    s.election_timeout = (Duration::from_millis(400), Duration::from_millis(800));
}
