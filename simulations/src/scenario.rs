//! A scenario file: how many nodes, which attacks when, which faults, and
//! the seed that makes the schedule the same on every run.

use serde::{Deserialize, Serialize};

/// One scenario (`scenarios/NAME.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub nodes: usize,
    pub seed: u64,
    /// Attacks injected, one every `interval_ms`, each on a node drawn from
    /// the seed (a port scan of synthetic flows from an address of its own).
    pub attacks: usize,
    pub interval_ms: u64,
    /// Each node dials this many earlier nodes (drawn from the seed).
    #[serde(default = "default_degree")]
    pub degree: usize,
    /// How long to wait after the last attack for delivery.
    #[serde(default = "default_settle")]
    pub settle_secs: u64,
    /// How long the mesh settles after the last node started, before the
    /// first attack (gossipsub forms its mesh on 1 s heartbeats).
    #[serde(default = "default_warmup")]
    pub warmup_secs: u64,
    /// Extra `KEY=VALUE` settings for every node's configuration.
    #[serde(default)]
    pub settings: Vec<String>,
    /// Nodes with keys no one admitted, publishing forged alerts.
    #[serde(default)]
    pub byzantine: usize,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Federated rounds after the attacks.
    #[serde(default)]
    pub federated: Option<crate::federated::Federated>,
    /// Client calls during the attacks: policy writes and linearizable
    /// reads (their history is checked) and workspace edits.
    #[serde(default)]
    pub clients: Vec<ClientCall>,
}

/// One client call at a time after the first attack, made on `node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCall {
    pub at_ms: u64,
    pub node: usize,
    pub call: CallKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// `policy set`: a new policy document through Raft.
    PolicySet,
    /// `policy show --consistent`: a linearizable read of the policy.
    PolicyRead,
    /// `intel add`: an indicator in the shared workspace.
    IntelAdd,
}

fn default_degree() -> usize {
    3
}

fn default_settle() -> u64 {
    20
}

fn default_warmup() -> u64 {
    10
}

/// A fault at a time after the first attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Stops a node (the current Raft leader when `node` is absent).
    Kill { node: Option<usize> },
    /// Starts a killed node again on its data (the last one killed when
    /// `node` is absent).
    Restart { node: Option<usize> },
    /// Cuts `nodes` off from every other node (their meshes refuse each
    /// other's connections, so Raft and gossip stop between the sides).
    Partition { nodes: Vec<usize> },
    /// Lets every node connect to every other again.
    Heal,
    /// Slows `nodes`' links: every message into them, and every answer
    /// from them, waits `delay_ms` (0 makes them fast again).
    Slow { nodes: Vec<usize>, delay_ms: u64 },
    /// A one-way partition: Raft calls from `from` to `to` are lost, while
    /// `to`'s calls to `from` still get answers. Healed by `heal`.
    OneWay { from: Vec<usize>, to: Vec<usize> },
    /// `nodes` lose `percent` of their Raft calls (0 ends it). Healed by
    /// `heal` too.
    Lossy { nodes: Vec<usize>, percent: u8 },
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        if s.nodes < 2 {
            problems.push("nodes: at least 2".to_string());
        }
        if s.attacks == 0 {
            problems.push("attacks: at least 1".into());
        }
        for (i, f) in s.faults.iter().enumerate() {
            let node = match &f.kind {
                FaultKind::Kill { node } | FaultKind::Restart { node } => *node,
                FaultKind::Partition { nodes }
                | FaultKind::Slow { nodes, .. }
                | FaultKind::Lossy { nodes, .. } => nodes.iter().copied().max(),
                FaultKind::OneWay { from, to } => from.iter().chain(to).copied().max(),
                FaultKind::Heal => None,
            };
            if node.is_some_and(|n| n >= s.nodes) {
                problems.push(format!(
                    "faults[{i}].node: no such node (nodes = {})",
                    s.nodes
                ));
            }
        }
        if let Some((i, c)) = s
            .clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.node >= s.nodes)
        {
            problems.push(format!(
                "clients[{i}].node: no such node {} (nodes = {})",
                c.node, s.nodes
            ));
        }
        if let Some(f) = &s.federated {
            for (what, list) in [("poisoned", &f.poisoned), ("stragglers", &f.stragglers)] {
                if let Some(n) = list.iter().find(|&&n| n >= s.nodes) {
                    problems.push(format!(
                        "federated.{what}: no such node {n} (nodes = {})",
                        s.nodes
                    ));
                }
            }
            if f.rounds == 0 {
                problems.push("federated.rounds: at least 1".into());
            }
        }
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A seeded xorshift: the same seed gives the same schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1))
    }

    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.draw() % n.max(1) as u64) as usize
    }
}

/// The attack schedule: (time after start, target node) for each attack.
pub fn schedule(s: &Scenario) -> Vec<(u64, usize)> {
    let mut rng = Rng::new(s.seed);
    (0..s.attacks)
        .map(|k| (k as u64 * s.interval_ms, rng.below(s.nodes)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            if let Err(e) = Scenario::parse(&text) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
        assert!(seen >= 8, "{seen} scenarios");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let text = "name = \"t\"\nnodes = 10\nseed = 7\nattacks = 20\ninterval_ms = 100\n[[faults]]\nat_ms = 500\nkind = \"kill\"\n";
        let s = Scenario::parse(text).expect("parses");
        assert_eq!(schedule(&s), schedule(&s));
        let other = Scenario {
            seed: 8,
            ..s.clone()
        };
        assert_ne!(schedule(&s), schedule(&other));
        assert!(
            Scenario::parse("name = \"t\"\nnodes = 1\nseed = 1\nattacks = 0\ninterval_ms = 1\n")
                .is_err()
        );
    }
}
