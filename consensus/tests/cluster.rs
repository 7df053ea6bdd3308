//! Clusters of 3 and 4 members over real libp2p on loopback, each member
//! with its own RocksDB: leader loss, catching up by snapshot, joining and
//! promotion, and requests from non-members.

mod common;

use std::time::{Duration, Instant};

use amoskys_consensus::network::RaftRequest;
use amoskys_consensus::{JoinReply, MembershipPolicy, Outcome};
use amoskys_mesh::Service;
use common::{Lab, policy, quick, until};

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
    let asked = &status.pending[0];
    assert_eq!(asked.id, newcomer.id.to_string());
    assert_eq!(asked.name, "m3", "named after its directory");
    assert!(
        asked.requested_at.ends_with('Z') && asked.requested_ms > 0,
        "{asked:?}"
    );
    // An operator admits it on any member; it becomes a learner.
    lab.m((leader + 1) % 3)
        .cluster
        .admit(newcomer.id, String::new())
        .await
        .expect("admitted");
    // Admitted elsewhere: the leader no longer lists it as pending.
    until(
        "the admission on the leader",
        Duration::from_secs(10),
        || {
            let ok = lab.m(leader).cluster.members().1.contains(&lab.m(3).id);
            async move { ok }
        },
    )
    .await;
    let pending = lab.m(leader).cluster.status().pending;
    assert!(pending.is_empty(), "{pending:?}");
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

/// A voter cut off from the others for many election timeouts keeps its
/// term (its pre-votes are refused, so it never starts an election), and
/// when the cut heals it rejoins as a follower: the leader and the term the
/// majority kept stay, and the entry committed meanwhile reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_cut_off_keeps_its_term_and_rejoins_as_follower() {
    let lab = Lab::start(3, 0, quick).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let cut = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let term = |lab: &Lab, i: usize| lab.m(i).cluster.raft().metrics().borrow().current_term;
    let before = term(&lab, leader);
    assert_eq!(term(&lab, cut), before);

    let (a, b, c) = (lab.m(leader).id, lab.m(other).id, lab.m(cut).id);
    lab.m(cut).cluster.cut().isolate([a, b]);
    lab.m(leader).cluster.cut().isolate([c]);
    lab.m(other).cluster.cut().isolate([c]);
    // The majority commits while the voter is away: 8 s is 10 to 20
    // election timeouts of `quick`.
    let (_, out) = lab
        .m(leader)
        .cluster
        .propose(policy("v = 1", a))
        .await
        .expect("the majority commits");
    assert_eq!(out, Outcome::Policy { version: 1 });
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(term(&lab, cut), before, "the cut-off voter raised its term");
    assert_eq!(
        lab.m(cut).cluster.raft().metrics().borrow().state,
        openraft::ServerState::Follower
    );

    for i in 0..3 {
        lab.m(i).cluster.cut().heal();
    }
    lab.applied_everywhere(1).await;
    assert_eq!(
        lab.leader().await,
        leader,
        "the leadership moved after the heal"
    );
    for i in 0..3 {
        assert_eq!(term(&lab, i), before, "member {i}'s term after the heal");
    }
    lab.stop().await;
}
