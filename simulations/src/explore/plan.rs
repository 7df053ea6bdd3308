//! Draws a random schedule from a seed: a scenario of three to five nodes
//! with attacks, fault episodes (kills and restarts, partitions of random
//! shape, one-way partitions, slow and lossy links), sometimes a Byzantine
//! peer, and client calls interleaved with all of it. The same seed always
//! gives the same scenario.

use crate::scenario::{CallKind, ClientCall, Fault, FaultKind, Rng, Scenario};

/// Quiet time after each episode ends, so the check that a healed
/// partition keeps its leader has a window with no other fault.
const QUIET_MS: u64 = 3_500;

/// The scenario explored for `seed`.
pub fn draw(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed);
    let nodes = 3 + rng.below(3);
    let attacks = 12 + rng.below(10);
    let interval_ms = 500 + 100 * rng.below(4) as u64;
    let span = (attacks as u64 - 1) * interval_ms;
    let faults = episodes(&mut rng, nodes, span);
    let clients = calls(&mut rng, nodes, span);
    Scenario {
        name: format!("explore-{seed}"),
        nodes,
        seed,
        attacks,
        interval_ms,
        degree: 2,
        settle_secs: 40,
        warmup_secs: 3,
        settings: Vec::new(),
        byzantine: usize::from(rng.below(3) == 0),
        faults,
        federated: None,
        clients,
    }
}

/// A random non-empty proper subset of `0..n`.
fn subset(rng: &mut Rng, n: usize) -> Vec<usize> {
    let size = 1 + rng.below(n - 1);
    let mut all: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        all.swap(i, rng.below(i + 1));
    }
    let mut s = all[..size].to_vec();
    s.sort_unstable();
    s
}

fn episodes(rng: &mut Rng, nodes: usize, span: u64) -> Vec<Fault> {
    let mut out = Vec::new();
    let mut t = 300 + 100 * rng.below(10) as u64;
    loop {
        let length = 1_500 + 250 * rng.below(7) as u64;
        if t + length + QUIET_MS > span {
            return out;
        }
        let kind = rng.below(5);
        // A killed leader stays down past the failover deadline.
        let length = if kind == 0 { length + 2_000 } else { length };
        if t + length + QUIET_MS > span {
            return out;
        }
        let (start, end) = match kind {
            0 => {
                let node = (rng.below(2) == 0).then(|| rng.below(nodes));
                (FaultKind::Kill { node }, FaultKind::Restart { node })
            }
            1 => (
                FaultKind::Partition {
                    nodes: subset(rng, nodes),
                },
                FaultKind::Heal,
            ),
            2 => {
                let from = subset(rng, nodes);
                let to = (0..nodes).filter(|i| !from.contains(i)).collect();
                (FaultKind::OneWay { from, to }, FaultKind::Heal)
            }
            3 => {
                let slow = subset(rng, nodes);
                let delay_ms = 50 + 50 * rng.below(8) as u64;
                (
                    FaultKind::Slow {
                        nodes: slow.clone(),
                        delay_ms,
                    },
                    FaultKind::Slow {
                        nodes: slow,
                        delay_ms: 0,
                    },
                )
            }
            _ => (
                FaultKind::Lossy {
                    nodes: subset(rng, nodes),
                    percent: 10 + 10 * rng.below(5) as u8,
                },
                FaultKind::Heal,
            ),
        };
        out.push(Fault {
            at_ms: t,
            kind: start,
        });
        out.push(Fault {
            at_ms: t + length,
            kind: end,
        });
        t += length + QUIET_MS + 100 * rng.below(10) as u64;
    }
}

fn calls(rng: &mut Rng, nodes: usize, span: u64) -> Vec<ClientCall> {
    let mut out = Vec::new();
    let mut t = 100 * rng.below(3) as u64;
    while t < span {
        let call = match rng.below(20) {
            0..9 => CallKind::PolicySet,
            9..18 => CallKind::PolicyRead,
            _ => CallKind::IntelAdd,
        };
        out.push(ClientCall {
            at_ms: t,
            node: rng.below(nodes),
            call,
        });
        t += 150 + 50 * rng.below(7) as u64;
    }
    out
}

/// Fault episodes by kind, as a report counts them.
pub fn kind_name(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill { node: None } => "kill leader",
        FaultKind::Kill { .. } => "kill",
        FaultKind::Restart { .. } => "restart",
        FaultKind::Partition { .. } => "partition",
        FaultKind::OneWay { .. } => "one-way partition",
        FaultKind::Heal => "heal",
        FaultKind::Slow { delay_ms: 0, .. } => "link restored",
        FaultKind::Slow { .. } => "slow link",
        FaultKind::Lossy { .. } => "lossy link",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_valid_scenario() {
        for seed in 0..200 {
            let s = draw(seed);
            assert_eq!(s, draw(seed));
            let text = toml::to_string(&s).expect("serializes");
            let back = Scenario::parse(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(back, s);
            // Every episode ends, and its end comes before the last attack.
            let last = (s.attacks as u64 - 1) * s.interval_ms;
            assert!(s.faults.iter().all(|f| f.at_ms < last), "seed {seed}");
            assert_eq!(s.faults.len() % 2, 0);
        }
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn seeds_reach_every_kind_of_fault() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..50 {
            for f in draw(seed).faults {
                kinds.insert(kind_name(&f.kind));
            }
        }
        assert_eq!(kinds.len(), 9, "{kinds:?}");
    }
}
