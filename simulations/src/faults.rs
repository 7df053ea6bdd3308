//! Faults applied during a run (kill, restart, partition, heal, slow
//! links) and the sampling of who leads each Raft term.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use amoskys_node::{Config, Node};

use crate::run::{Seen, watch};
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
            }
            progress("healed");
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
