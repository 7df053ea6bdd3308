//! Clusters of 3 and 5 members over real libp2p on loopback, each member
//! with its own RocksDB: leader loss, partitions, catching up by snapshot,
//! joining and promotion, and requests from non-members.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use amoskys_consensus::lab::LabMember;
use amoskys_consensus::network::RaftRequest;
use amoskys_consensus::{Command, JoinReply, MembershipPolicy, NodeId, Outcome};
use amoskys_mesh::Service;
use libp2p_identity::Keypair;

struct Lab {
    keys: Vec<Keypair>,
    dirs: Vec<PathBuf>,
    members: Vec<Option<LabMember>>,
    _tmp: tempfile::TempDir,
}

fn keypair(i: usize) -> Keypair {
    let mut seed = [7u8; 32];
    seed[0] = i as u8;
    Keypair::ed25519_from_bytes(seed).expect("key")
}

fn id(k: &Keypair) -> NodeId {
    NodeId::from_peer_id(&k.public().to_peer_id()).expect("ed25519")
}

fn key_bytes(k: &Keypair) -> [u8; 32] {
    id(k).0
}

async fn until<F, Fut>(what: &str, within: Duration, mut f: F)
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

fn policy(text: &str, by: NodeId) -> Command {
    Command::SetPolicy {
        document: text.to_owned(),
        author: by,
        time_ns: 1,
    }
}

impl Lab {
    /// `n` members (plus `extra` keys admitted on the mesh but not started).
    async fn start(
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

    async fn up(&mut self, i: usize, tune: fn(&mut amoskys_consensus::ClusterSettings)) {
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

    async fn down(&mut self, i: usize) {
        if let Some(m) = self.members[i].take() {
            m.stop().await;
        }
    }

    fn m(&self, i: usize) -> &LabMember {
        self.members[i].as_ref().expect("member is up")
    }

    fn index_of(&self, node: NodeId) -> usize {
        self.keys
            .iter()
            .position(|k| id(k) == node)
            .expect("known member")
    }

    async fn init(&self, voters: usize) {
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
    async fn leader(&self) -> usize {
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

    async fn applied_everywhere(&self, version: u64) {
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

    async fn stop(mut self) {
        for i in 0..self.members.len() {
            self.down(i).await;
        }
    }
}

fn quick(s: &mut amoskys_consensus::ClusterSettings) {
    s.heartbeat = Duration::from_millis(100);
    s.election_timeout = (Duration::from_millis(400), Duration::from_millis(800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_keep_every_committed_entry_when_the_leader_dies() {
    let mut lab = Lab::start(3, 0, quick).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let follower = (leader + 1) % 3;
    // Writes from a follower are forwarded to the leader.
    for v in 1..=10u64 {
        let (_, out) = lab
            .m(follower)
            .cluster
            .propose(policy(&format!("v = {v}"), lab.m(follower).id))
            .await
            .expect("committed");
        assert_eq!(out, Outcome::Policy { version: v });
    }
    lab.applied_everywhere(10).await;

    let killed = Instant::now();
    lab.down(leader).await;
    let next = lab.leader().await;
    assert_ne!(next, leader);
    let (_, out) = lab
        .m(next)
        .cluster
        .propose(policy("v = 11", lab.m(next).id))
        .await
        .expect("the new leader commits");
    eprintln!("failover and a new commit: {:?}", killed.elapsed());
    assert_eq!(out, Outcome::Policy { version: 11 });
    // Nothing committed before the failover was lost.
    let state = lab
        .m(next)
        .cluster
        .read_linearizable()
        .await
        .expect("read")
        .state
        .clone();
    let versions: Vec<u64> = state.policies.iter().map(|p| p.version).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<_>>());

    // The old leader comes back and catches up.
    lab.up(leader, quick).await;
    lab.applied_everywhere(11).await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minority_cannot_commit_and_a_majority_can() {
    let lab = Lab::start(5, 0, quick).await;
    lab.init(5).await;
    let leader = lab.leader().await;
    lab.m(leader)
        .cluster
        .propose(policy("before", lab.m(leader).id))
        .await
        .expect("commit");
    lab.applied_everywhere(1).await;

    // The leader and one follower on one side, three members on the other.
    let minority = [leader, (leader + 1) % 5];
    let majority: Vec<usize> = (0..5).filter(|i| !minority.contains(i)).collect();
    for &a in &minority {
        for &b in &majority {
            lab.m(a).cluster.cut().isolate([lab.m(b).id]);
            lab.m(b).cluster.cut().isolate([lab.m(a).id]);
        }
    }
    let stuck = tokio::time::timeout(
        Duration::from_secs(3),
        lab.m(leader)
            .cluster
            .raft()
            .client_write(policy("minority", lab.m(leader).id)),
    )
    .await;
    assert!(
        !matches!(stuck, Ok(Ok(_))),
        "a minority leader committed a write"
    );
    // The majority elects a leader of its own and commits.
    let mut new_leader = None;
    until("a majority leader", Duration::from_secs(15), || {
        let l = lab
            .m(majority[0])
            .cluster
            .raft()
            .metrics()
            .borrow()
            .current_leader;
        new_leader = l.filter(|l| majority.iter().any(|&i| lab.m(i).id == *l));
        let ok = new_leader.is_some();
        async move { ok }
    })
    .await;
    let (_, out) = lab
        .m(majority[1])
        .cluster
        .propose(policy("majority", lab.m(majority[1]).id))
        .await
        .expect("the majority commits");
    assert_eq!(out, Outcome::Policy { version: 2 });

    for i in 0..5 {
        lab.m(i).cluster.cut().heal();
    }
    lab.applied_everywhere(2).await;
    for i in 0..5 {
        let applied = lab.m(i).cluster.applied().borrow().clone();
        let docs: Vec<&str> = applied
            .state
            .policies
            .iter()
            .map(|p| p.document.as_str())
            .collect();
        assert_eq!(docs, ["before", "majority"], "member {i}");
    }
    lab.stop().await;
}

fn snapshots_often(s: &mut amoskys_consensus::ClusterSettings) {
    quick(s);
    s.snapshot_every = 20;
    s.keep_logs = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_was_down_catches_up_from_a_snapshot() {
    let mut lab = Lab::start(3, 0, snapshots_often).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let away = (leader + 1) % 3;
    lab.down(away).await;
    for v in 1..=60u64 {
        lab.m(leader)
            .cluster
            .propose(policy(&format!("v = {v}"), lab.m(leader).id))
            .await
            .expect("two of three commit");
    }
    // The log the absent member would need is gone.
    let purged = lab.m(leader).cluster.raft().metrics().borrow().purged;
    until("a purge on the leader", Duration::from_secs(10), || {
        let p = lab.m(leader).cluster.raft().metrics().borrow().purged;
        async move { p.is_some_and(|p| p.index > 20) }
    })
    .await;
    eprintln!("purged up to {purged:?} before the member came back");

    lab.up(away, snapshots_often).await;
    lab.applied_everywhere(60).await;
    let m = lab.m(away).cluster.raft().metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "the member installed a snapshot");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_members_can_neither_vote_nor_propose() {
    // Member 3 is admitted on the mesh (so its requests reach Raft) but is
    // not in the Raft membership.
    let lab = Lab::start(4, 0, quick).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let term = lab.m(leader).cluster.raft().metrics().borrow().current_term;
    let outsider = lab.m(3);
    let target = lab.m(leader).mesh.peer_id();
    let vote = RaftRequest::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(term + 10, outsider.id),
        None,
    ));
    let err = outsider
        .mesh
        .request(
            target,
            Service::Raft,
            serde_json::to_vec(&vote).expect("json"),
        )
        .await
        .expect_err("a non-member's vote request is refused");
    assert!(err.to_string().contains("not a voter"), "{err}");
    let propose = RaftRequest::Propose(policy("intruder", outsider.id));
    let err = outsider
        .mesh
        .request(
            target,
            Service::Raft,
            serde_json::to_vec(&propose).expect("json"),
        )
        .await
        .expect_err("a non-member's proposal is refused");
    assert!(err.to_string().contains("not a member"), "{err}");
    assert_eq!(
        lab.m(leader).cluster.raft().metrics().borrow().current_term,
        term,
        "the refused vote request changed the term"
    );
    assert!(
        lab.m(leader)
            .cluster
            .applied()
            .borrow()
            .state
            .policy()
            .is_none()
    );
    // Garbage is refused with a reason, and changes nothing.
    let err = outsider
        .mesh
        .request(target, Service::Raft, b"\x00garbage".to_vec())
        .await
        .expect_err("garbage is refused");
    assert!(err.to_string().contains("malformed"), "{err}");
    lab.stop().await;
}

fn fast_promotion(s: &mut amoskys_consensus::ClusterSettings) {
    quick(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_waits_for_admission_and_replaces_a_lost_voter() {
    let mut lab = Lab::start(4, 0, fast_promotion).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    for i in 0..4 {
        lab.m(i).cluster.set_membership_policy(MembershipPolicy {
            voters: 3,
            auto_promote: true,
            voter_down_secs: 2,
        });
    }
    let newcomer = lab.m(3);
    let to = lab.m(leader).mesh.peer_id();
    // Not on the allow-list: it waits for an operator.
    let reply = newcomer.cluster.request_join(to).await.expect("answer");
    assert_eq!(reply, JoinReply::Pending);
    let status = lab.m(leader).cluster.status();
    assert_eq!(status.pending.len(), 1);
    assert_eq!(status.pending[0].id, newcomer.id.to_string());
    // An operator admits it on any member; it becomes a learner.
    lab.m((leader + 1) % 3)
        .cluster
        .admit(newcomer.id, String::new())
        .await
        .expect("admitted");
    let reply = newcomer.cluster.request_join(to).await.expect("answer");
    assert!(matches!(reply, JoinReply::Admitted { ref members } if members.len() == 4));
    until("the learner to catch up", Duration::from_secs(10), || {
        let (_, learners) = lab.m(leader).cluster.members();
        let ok = learners.contains(&lab.m(3).id);
        async move { ok }
    })
    .await;

    // A voter other than the leader is lost: the learner takes its place.
    let lost = (leader + 1) % 3;
    let lost_id = lab.m(lost).id;
    lab.down(lost).await;
    let newcomer_id = lab.m(3).id;
    until("the learner promoted", Duration::from_secs(20), || {
        let (voters, learners) = lab.m(leader).cluster.members();
        let ok = voters.contains(&newcomer_id) && learners.contains(&lost_id);
        async move { ok }
    })
    .await;

    // Removed nodes are refused when they ask again.
    lab.m(leader)
        .cluster
        .remove(lost_id)
        .await
        .expect("removed");
    let (voters, learners) = lab.m(leader).cluster.members();
    assert!(!voters.contains(&lost_id) && !learners.contains(&lost_id));
    assert!(
        lab.m(leader)
            .cluster
            .applied()
            .borrow()
            .state
            .removed
            .contains_key(&lost_id)
    );
    lab.stop().await;
}
