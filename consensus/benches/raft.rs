//! Raft over the mesh on loopback: leader failover time with the default
//! timeouts, time until a policy change is applied on every member of a 5-
//! and a 25-member cluster (voters plus learners), and committed writes per
//! second. Each member has its own RocksDB and libp2p mesh.
//!
//! `cargo bench -p amoskys-consensus --bench raft` (figures go to
//! docs/BENCHMARKS.md). Under `cargo test` it runs one short round of each.

use std::time::{Duration, Instant};

use amoskys_consensus::lab::LabMember;
use amoskys_consensus::{ClusterSettings, Command, MembershipPolicy, NodeId};
use libp2p_identity::Keypair;

struct Lab {
    members: Vec<Option<LabMember>>,
    _tmp: tempfile::TempDir,
}

fn keypair(i: usize) -> Keypair {
    let mut seed = [9u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Keypair::ed25519_from_bytes(seed).expect("key")
}

fn defaults(_: &mut ClusterSettings) {}

impl Lab {
    async fn start(n: usize, voters: usize) -> Lab {
        let tmp = tempfile::tempdir().expect("tmp");
        let keys: Vec<Keypair> = (0..n).map(keypair).collect();
        let admitted: Vec<[u8; 32]> = keys
            .iter()
            .map(|k| {
                NodeId::from_peer_id(&k.public().to_peer_id())
                    .expect("ed25519")
                    .0
            })
            .collect();
        let mut members: Vec<Option<LabMember>> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let mut bootstrap = Vec::new();
            for m in members.iter().flatten() {
                bootstrap.push(m.addr().await.expect("addr"));
            }
            let dir = tmp.path().join(format!("m{i}"));
            let m = LabMember::start(k, &dir, bootstrap, admitted.clone(), defaults)
                .await
                .expect("member");
            m.cluster.set_membership_policy(MembershipPolicy {
                voters,
                ..MembershipPolicy::default()
            });
            members.push(Some(m));
        }
        let lab = Lab { members, _tmp: tmp };
        let first = lab.m(0);
        let others: Vec<(NodeId, String)> =
            (1..voters).map(|i| (lab.m(i).id, String::new())).collect();
        first.cluster.initialize(&others).await.expect("init");
        let leader = lab.leader().await;
        for i in voters..n {
            lab.m(leader)
                .cluster
                .admit(lab.m(i).id, String::new())
                .await
                .expect("admit");
        }
        lab.until_applied(0).await;
        lab
    }

    fn m(&self, i: usize) -> &LabMember {
        self.members[i].as_ref().expect("up")
    }

    fn up(&self) -> impl Iterator<Item = &LabMember> {
        self.members.iter().flatten()
    }

    async fn leader(&self) -> usize {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if let Some(m) = m
                    && m.cluster.raft().metrics().borrow().current_leader == Some(m.id)
                {
                    return i;
                }
            }
            assert!(Instant::now() < end, "no leader");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every running member has applied policy `version` (0:
    /// the leader's last applied index).
    async fn until_applied(&self, version: u64) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let done = if version == 0 {
                let leader = self.m(self.leader().await);
                let idx = leader.cluster.raft().metrics().borrow().last_applied;
                self.up()
                    .all(|m| m.cluster.raft().metrics().borrow().last_applied >= idx)
            } else {
                self.up().all(|m| {
                    m.cluster
                        .applied()
                        .borrow()
                        .state
                        .policy()
                        .map(|p| p.version)
                        == Some(version)
                })
            };
            if done {
                return;
            }
            assert!(Instant::now() < end, "not applied everywhere");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn stop(mut self) {
        for m in self.members.iter_mut() {
            if let Some(m) = m.take() {
                m.stop().await;
            }
        }
    }
}

fn policy(v: u64, by: NodeId) -> Command {
    Command::SetPolicy {
        document: format!("[rules]\nscan_min_ports = {}\n", 10 + v),
        author: by,
        time_ns: v,
    }
}

fn summary(name: &str, mut xs: Vec<Duration>) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} min {:.1} ms, median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        xs.len(),
        ms(xs[0]),
        ms(p(0.5)),
        ms(p(0.95)),
        ms(xs[xs.len() - 1])
    );
}

async fn failover(trials: usize) {
    let mut times = Vec::new();
    for _ in 0..trials {
        let mut lab = Lab::start(3, 3).await;
        let leader = lab.leader().await;
        let id = lab.m(leader).id;
        lab.m(leader)
            .cluster
            .propose(policy(1, id))
            .await
            .expect("commit");
        let killed = Instant::now();
        if let Some(m) = lab.members[leader].take() {
            m.stop().await;
        }
        let next = lab.leader().await;
        let id = lab.m(next).id;
        lab.m(next)
            .cluster
            .propose(policy(2, id))
            .await
            .expect("commit");
        times.push(killed.elapsed());
        lab.stop().await;
    }
    summary(
        "leader failover, 3 voters, default timeouts (kill → new leader commits)",
        times,
    );
}

async fn policy_everywhere(n: usize, voters: usize, trials: u64) {
    let lab = Lab::start(n, voters).await;
    let leader = lab.leader().await;
    let id = lab.m(leader).id;
    let mut times = Vec::new();
    for v in 1..=trials {
        let start = Instant::now();
        lab.m(leader)
            .cluster
            .propose(policy(v, id))
            .await
            .expect("commit");
        lab.until_applied(v).await;
        times.push(start.elapsed());
    }
    summary(
        &format!(
            "policy change applied on all {n} members ({voters} voters + {} learners)",
            n - voters
        ),
        times,
    );
    lab.stop().await;
}

async fn writes(window: Duration, in_flight: usize) {
    let lab = Lab::start(3, 3).await;
    let leader = lab.leader().await;
    let cluster = lab.m(leader).cluster.clone();
    let id = lab.m(leader).id;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..in_flight {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < window {
                cluster
                    .propose(policy(t as u64 * 1_000_000 + n, id))
                    .await
                    .expect("commit");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "committed writes, 3 voters, {in_flight} in flight: {total} in {secs:.1} s = {:.0}/s",
        total as f64 / secs
    );
    lab.stop().await;
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if bench {
            failover(10).await;
            policy_everywhere(5, 5, 50).await;
            policy_everywhere(25, 5, 50).await;
            writes(Duration::from_secs(5), 1).await;
            writes(Duration::from_secs(5), 64).await;
        } else {
            failover(1).await;
            policy_everywhere(5, 3, 3).await;
            writes(Duration::from_millis(300), 4).await;
        }
    });
}
