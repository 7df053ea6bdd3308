//! Faults applied during a run (kill, restart, partition, one-way
//! partition, heal, slow and lossy links), the sampling of who leads each
//! Raft term, and the check that a healed partition leaves the leader in
//! place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use amoskys_node::{Config, Node};

use crate::run::{Invariant, Seen, watch};
use crate::scenario::FaultKind;

pub(crate) fn sample_leaders(
    nodes: &[Option<Node>],
    leaders: &mut BTreeMap<u64, BTreeSet<String>>,
) {
    for n in nodes.iter().flatten() {
        // A node that believes it leads its term. Read in place: a copy of
        // a leader's metrics holds every member's replication state.
        let led = n.cluster().and_then(|c| {
            let m = c.raft().metrics();
            let m = m.borrow();
            (m.current_leader == Some(m.id)).then_some((m.current_term, m.id))
        });
        if let Some((term, id)) = led {
            leaders.entry(term).or_default().insert(id.to_string());
        }
    }
}

pub(crate) async fn apply(
    kind: &FaultKind,
    nodes: &mut [Option<Node>],
    configs: &[Config],
    seen: &Seen,
    watchers: &mut Vec<tokio::task::JoinHandle<()>>,
    seed: u64,
    progress: &mut dyn FnMut(&str),
) {
    match kind {
        FaultKind::Kill { node } => {
            let target = node.or_else(|| {
                nodes.iter().position(|n| {
                    n.as_ref().and_then(|n| n.cluster()).is_some_and(|c| {
                        let m = c.raft().metrics().borrow().clone();
                        m.current_leader == Some(m.id)
                    })
                })
            });
            if let Some(i) = target
                && let Some(n) = nodes[i].take()
            {
                progress(&format!("killing node {i}"));
                n.shutdown().await;
            }
        }
        FaultKind::Partition { nodes: cut } => {
            let ids: Vec<Option<libp2p::PeerId>> = nodes
                .iter()
                .map(|n| n.as_ref().and_then(|n| n.mesh()).map(|m| m.peer_id()))
                .collect();
            for (i, n) in nodes.iter().enumerate() {
                let Some(mesh) = n.as_ref().and_then(|n| n.mesh()) else {
                    continue;
                };
                let inside = cut.contains(&i);
                let other: Vec<_> = ids
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| cut.contains(j) != inside)
                    .filter_map(|(_, p)| *p)
                    .collect();
                let _ = mesh.block(other, true).await;
            }
            progress(&format!("partitioned {cut:?} from the rest"));
        }
        FaultKind::Slow {
            nodes: slow,
            delay_ms,
        } => {
            for i in slow {
                if let Some(mesh) = nodes[*i].as_ref().and_then(|n| n.mesh()) {
                    let _ = mesh.impair(Duration::from_millis(*delay_ms)).await;
                }
            }
            progress(&format!("links of {slow:?} now add {delay_ms} ms"));
        }
        FaultKind::Heal => {
            let ids: Vec<_> = nodes
                .iter()
                .filter_map(|n| n.as_ref().and_then(|n| n.mesh()).map(|m| m.peer_id()))
                .collect();
            for n in nodes.iter().flatten() {
                if let Some(mesh) = n.mesh() {
                    let _ = mesh.block(ids.clone(), false).await;
                }
                if let Some(c) = n.cluster() {
                    c.cut().heal();
                }
            }
            progress("healed");
        }
        FaultKind::OneWay { from, to } => {
            let ids: Vec<_> = to
                .iter()
                .filter_map(|&j| nodes[j].as_ref().and_then(|n| n.cluster()).map(|c| c.id()))
                .collect();
            for &i in from {
                if let Some(c) = nodes[i].as_ref().and_then(|n| n.cluster()) {
                    c.cut().mute_to(ids.clone());
                }
            }
            progress(&format!("Raft calls from {from:?} to {to:?} now lost"));
        }
        FaultKind::Lossy {
            nodes: lossy,
            percent,
        } => {
            for &i in lossy {
                if let Some(c) = nodes[i].as_ref().and_then(|n| n.cluster()) {
                    c.cut().set_loss(u32::from(*percent) * 10, seed ^ i as u64);
                }
            }
            progress(&format!(
                "{lossy:?} now lose {percent}% of their Raft calls"
            ));
        }
        FaultKind::Restart { node } => {
            let Some(i) = node.or_else(|| nodes.iter().rposition(Option::is_none)) else {
                return;
            };
            if nodes[i].is_none() {
                match Node::start(configs[i].clone()).await {
                    Ok(n) => {
                        progress(&format!("restarted node {i}"));
                        watchers.push(watch(&n, i, seen));
                        nodes[i] = Some(n);
                    }
                    Err(e) => progress(&format!("node {i} did not restart: {e}")),
                }
            }
        }
    }
}

/// How long after a heal the leader must still lead its term.
const REJOIN_WATCH: Duration = Duration::from_secs(3);
/// How soon after the leader is killed the cluster must have a leader
/// again (election timeout up to 1 s, a pre-vote round, the election).
const FAILOVER: Duration = Duration::from_secs(3);

/// Watches the leadership: after each healed partition the leader the
/// majority had must still lead the same term a little later (a returning
/// node rejoins as a follower; docs/CLUSTER.md "Pre-vote"), and after the
/// leader's kill there must be a leader again within [`FAILOVER`].
#[derive(Debug, Default)]
pub(crate) struct LeaderWatch {
    cut: Vec<usize>,
    /// (when to look, the term, the leader) per heal being watched.
    watching: Vec<(std::time::Instant, u64, String)>,
    checked: usize,
    deposed: Vec<String>,
    /// (when the leader was killed, its term) while no new leader is seen.
    leaderless: Option<(std::time::Instant, u64)>,
    failovers: Vec<Duration>,
    no_failover: Vec<String>,
}

fn leader_of(nodes: &[Option<Node>], among: impl Fn(usize) -> bool) -> Option<(u64, String)> {
    nodes.iter().enumerate().find_map(|(i, n)| {
        let c = n.as_ref()?.cluster()?;
        let m = c.raft().metrics();
        let m = m.borrow();
        (among(i) && m.current_leader == Some(m.id)).then(|| (m.current_term, m.id.to_string()))
    })
}

impl LeaderWatch {
    pub(crate) fn fault(&mut self, kind: &FaultKind, nodes: &[Option<Node>]) {
        if let FaultKind::Kill { node: None } = kind {
            // A majority still runs (the explorer kills one node at a time).
            let term = nodes
                .iter()
                .flatten()
                .filter_map(|n| n.cluster())
                .map(|c| c.raft().metrics().borrow().current_term)
                .max();
            let running = nodes.iter().flatten().count();
            if let Some(term) = term
                && running * 2 > nodes.len()
            {
                self.leaderless = Some((std::time::Instant::now(), term));
            }
        }
        match kind {
            FaultKind::Partition { nodes: cut } => self.cut = cut.clone(),
            FaultKind::Heal if !self.cut.is_empty() => {
                let cut = std::mem::take(&mut self.cut);
                let inside = |i: usize| cut.contains(&i);
                // The side holding most of the nodes keeps (or elects) the leader.
                let majority_outside = (nodes.len() - cut.len()) * 2 > nodes.len();
                let majority_inside = cut.len() * 2 > nodes.len();
                let led = if majority_outside {
                    leader_of(nodes, |i| !inside(i))
                } else if majority_inside {
                    leader_of(nodes, inside)
                } else {
                    None
                };
                if let Some((term, leader)) = led {
                    let due = std::time::Instant::now() + REJOIN_WATCH;
                    self.watching.push((due, term, leader));
                }
            }
            // Another fault may move the leadership for a reason.
            _ => self.watching.clear(),
        }
    }

    pub(crate) fn tick(&mut self, nodes: &[Option<Node>]) {
        let now = std::time::Instant::now();
        if let Some((killed, term)) = self.leaderless {
            // A new leader, or the old one back (it keeps its term).
            if leader_of(nodes, |_| true).is_some() {
                self.failovers.push(killed.elapsed());
                self.leaderless = None;
            } else if killed.elapsed() > FAILOVER {
                self.no_failover.push(format!(
                    "no leader within {FAILOVER:?} of the leader's kill (term {term})"
                ));
                self.leaderless = None;
            }
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.watching.drain(..).partition(|(at, _, _)| *at <= now);
        self.watching = later;
        for (_, term, leader) in due {
            self.checked += 1;
            let highest = nodes
                .iter()
                .flatten()
                .filter_map(|n| n.cluster())
                .map(|c| c.raft().metrics().borrow().current_term)
                .max()
                .unwrap_or(0);
            let now_led = leader_of(nodes, |_| true);
            if highest > term || now_led.as_ref().is_some_and(|(_, l)| *l != leader) {
                self.deposed.push(format!(
                    "leader at term {term} replaced: highest term {highest}, leader now {now_led:?}"
                ));
            }
        }
    }

    /// Waits out the heals and failovers still being watched, then reports.
    pub(crate) async fn finish(mut self, nodes: &[Option<Node>]) -> Vec<Invariant> {
        let mut last = self.watching.iter().map(|(at, _, _)| *at).max();
        if let Some((killed, _)) = self.leaderless {
            last = last.max(Some(killed + FAILOVER));
        }
        if let Some(last) = last {
            while std::time::Instant::now() <= last {
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.tick(nodes);
            }
            self.tick(nodes);
        }
        let mut out = Vec::new();
        if self.checked > 0 {
            out.push(Invariant {
                name: "a healed partition leaves the leader in place".into(),
                held: self.deposed.is_empty(),
                detail: if self.deposed.is_empty() {
                    format!("{} heals watched", self.checked)
                } else {
                    self.deposed.join("; ")
                },
            });
        }
        if !self.failovers.is_empty() || !self.no_failover.is_empty() {
            let slowest = self.failovers.iter().max().copied().unwrap_or_default();
            out.push(Invariant {
                name: "a leader again soon after the leader's kill".into(),
                held: self.no_failover.is_empty(),
                detail: if self.no_failover.is_empty() {
                    format!(
                        "{} failovers, the slowest in {} ms",
                        self.failovers.len(),
                        slowest.as_millis()
                    )
                } else {
                    self.no_failover.join("; ")
                },
            });
        }
        out
    }
}
