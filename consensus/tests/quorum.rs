//! Writes need a quorum: a minority cannot commit while a majority can,
//! and a write that finds no quorum fails within the write budget, on the
//! leader, on a follower left alone and when forwarded to a minority
//! leader.

mod common;

use std::time::{Duration, Instant};

use amoskys_consensus::{ClusterError, Outcome, Quorum};
use common::{Lab, SLACK, lost, policy, quick, until};

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
    // A write sent to the minority follower goes to the old leader, which
    // cannot commit it and says so within the budget.
    let budget = lab.m(minority[1]).cluster.write_budget();
    let started = Instant::now();
    let err = lab
        .m(minority[1])
        .cluster
        .propose(policy("minority", lab.m(minority[1]).id))
        .await
        .expect_err("a minority leader committed a write");
    let took = started.elapsed();
    assert!(took < budget + SLACK, "refused after {took:?}");
    let q = lost(&err);
    assert_eq!((q.reachable, q.voters, q.needed), (2, 5, 3), "{err}");
    assert_eq!(q.seen_by, lab.m(leader).id.to_string());
    eprintln!("forwarded write without a quorum refused after {took:?}: {err}");
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

/// A policy write on member `i`, and how long it took (a write that
/// hangs fails the test).
async fn write(lab: &Lab, i: usize, v: u64) -> (Result<(), ClusterError>, Duration) {
    let m = lab.m(i);
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        m.cluster.propose(policy(&format!("v = {v}"), m.id)),
    )
    .await
    .expect("the write is answered within 30 s");
    (r.map(|_| ()), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_without_a_quorum_fail_within_the_budget() {
    let mut lab = Lab::start(3, 0, quick).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let budget = lab.m(leader).cluster.write_budget();
    assert_eq!(
        budget,
        Duration::from_millis(2_400),
        "three election timeouts"
    );

    // One voter of three stopped: writes still commit, forwarded ones too.
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    lab.down(a).await;
    write(&lab, leader, 1).await.0.expect("two of three commit");
    write(&lab, b, 2)
        .await
        .0
        .expect("a forwarded write commits with two of three");

    // Two stopped: the leader is alone and refuses within the budget.
    lab.down(b).await;
    let (r, took) = write(&lab, leader, 3).await;
    let err = r.expect_err("a leader alone committed a write");
    assert!(took < budget + SLACK, "refused after {took:?}");
    assert_eq!(
        *lost(&err),
        Quorum {
            ok: false,
            voters: 3,
            reachable: 1,
            needed: 2,
            last_quorum_ack_ms: lost(&err).last_quorum_ack_ms,
            seen_by: lab.m(leader).id.to_string(),
        }
    );
    assert!(
        err.to_string().starts_with(
            "quorum lost: 1 of 3 voters reachable (2 needed); the write was not committed"
        ),
        "{err}"
    );
    eprintln!("leader without a quorum refused a write after {took:?}");
    // The status says so, although Raft still calls it the leader.
    let status = lab.m(leader).cluster.status();
    assert_eq!(status.state, "Leader");
    assert!(
        !status.quorum.ok && status.quorum.reachable == 1,
        "{status:?}"
    );
    assert!(status.quorum.last_quorum_ack_ms > Some(800), "{status:?}");
    // Now it knows: the next write is refused at once.
    let (r, took) = write(&lab, leader, 4).await;
    assert_eq!(lost(&r.expect_err("no quorum")).reachable, 1);
    assert!(took < Duration::from_millis(200), "refused after {took:?}");
    let consistent = lab.m(leader).cluster.read_linearizable().await;
    let err = consistent.expect_err("a consistent read without a quorum");
    assert!(
        err.to_string().contains("a consistent read needs it"),
        "{err}"
    );

    // The voters come back; then the leader and a follower stop, and the
    // follower left alone refuses (it has no leader to forward to).
    lab.up(a, quick).await;
    lab.up(b, quick).await;
    until("writes commit again", Duration::from_secs(20), || {
        let m = lab.m(a);
        async move { m.cluster.propose(policy("back", m.id)).await.is_ok() }
    })
    .await;
    let leader = lab.leader().await;
    let alone = (leader + 1) % 3;
    lab.down(leader).await;
    lab.down((leader + 2) % 3).await;
    let (r, took) = write(&lab, alone, 5).await;
    let err = r.expect_err("a follower alone committed a write");
    assert!(took < budget + SLACK, "refused after {took:?}");
    let q = lost(&err);
    assert_eq!((q.reachable, q.voters, q.needed), (1, 3, 2), "{err}");
    eprintln!("follower without a quorum refused a write after {took:?}");
    let q = lab.m(alone).cluster.quorum().await;
    assert!(!q.ok && q.reachable == 1, "{q:?}");
    lab.stop().await;
}
