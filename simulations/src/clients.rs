//! Client calls beside a run (a scenario's `[[clients]]`): policy writes
//! and linearizable reads, whose recorded history must be linearizable and
//! whose acknowledged writes must survive; and workspace edits, whose
//! replicas must be identical once the faults are healed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use amoskys_consensus::{Cluster, Command, Outcome};
use amoskys_node::Node;
use amoskys_node::policy::Policy;

use crate::explore::history::{self, Call, Op};
use crate::run::Invariant;
use crate::scenario::{CallKind, ClientCall};

/// How long one client call may take before it counts as unanswered.
const CALL_BUDGET: Duration = Duration::from_secs(8);
/// The first line of every policy the clients write names the write.
const MARK: &str = "# client write ";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value a policy document was written with (`None`: not a client's).
fn written(document: &str) -> Option<u64> {
    document
        .lines()
        .next()?
        .strip_prefix(MARK)?
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, Default)]
struct Record {
    calls: Vec<Call>,
    /// Acknowledged writes: value → committed policy version.
    acked: BTreeMap<u64, u64>,
    /// Indicators whose `intel add` succeeded.
    indicators: Vec<String>,
}

/// The calls still to make and what the made ones returned.
pub(crate) struct Clients {
    due: std::vec::IntoIter<ClientCall>,
    next: Option<ClientCall>,
    t0: Instant,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    base: String,
    made: usize,
}

impl Clients {
    pub(crate) fn new(calls: &[ClientCall], t0: Instant) -> Clients {
        let mut calls = calls.to_vec();
        calls.sort_by_key(|c| c.at_ms);
        let mut due = calls.into_iter();
        Clients {
            next: due.next(),
            due,
            t0,
            record: Arc::default(),
            tasks: Vec::new(),
            base: Policy::default().to_toml(),
            made: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.made == 0 && self.next.is_none()
    }

    /// Starts every call due by `since_ms` on its node, when it runs.
    pub(crate) fn tick(&mut self, nodes: &[Option<Node>], since_ms: u64) {
        while let Some(c) = self.next.take_if(|c| c.at_ms <= since_ms) {
            self.next = self.due.next();
            let Some(node) = nodes.get(c.node).and_then(Option::as_ref) else {
                continue;
            };
            self.made += 1;
            let value = self.made as u64;
            let task = match c.call {
                CallKind::PolicySet | CallKind::PolicyRead => {
                    let Some(cluster) = node.cluster().cloned() else {
                        continue;
                    };
                    let doc = (c.call == CallKind::PolicySet)
                        .then(|| format!("{MARK}{value}\n{}", self.base));
                    tokio::spawn(policy_call(
                        cluster,
                        c.node,
                        value,
                        doc,
                        self.t0,
                        self.record.clone(),
                    ))
                }
                CallKind::IntelAdd => {
                    let ws = node.workspace().clone();
                    let indicator = format!("198.18.{}.{}", value / 250, value % 250 + 1);
                    let record = self.record.clone();
                    tokio::spawn(async move {
                        if ws.intel_add(&indicator, "client", None).is_ok() {
                            lock(&record).indicators.push(indicator);
                        }
                    })
                }
            };
            self.tasks.push(task);
        }
    }

    /// Waits for the calls in flight, then checks the history and, once
    /// the running nodes have caught up (within `settle`), the replicas.
    pub(crate) async fn finish(self, nodes: &[Option<Node>], settle: Duration) -> Vec<Invariant> {
        for t in self.tasks {
            let _ = t.await;
        }
        let record = std::mem::take(&mut *lock(&self.record));
        let mut out = Vec::new();
        let (reads, writes) = record.calls.iter().fold((0, 0), |(r, w), c| match c.op {
            Op::Read(_) => (r + 1, w),
            Op::Write(_) => (r, w + 1),
        });
        let checked = history::check(&record.calls);
        out.push(Invariant {
            name: "policy history linearizable".into(),
            held: checked.is_ok(),
            detail: match checked {
                Ok(()) => format!(
                    "{writes} writes ({} acknowledged), {reads} reads",
                    record.acked.len()
                ),
                Err(v) => v.to_string(),
            },
        });
        let end = Instant::now() + settle;
        out.push(policies_kept(nodes, &record.acked, end).await);
        out.push(workspace_agrees(nodes, &record.indicators, end).await);
        out
    }
}

async fn policy_call(
    cluster: Arc<Cluster>,
    client: usize,
    value: u64,
    document: Option<String>,
    t0: Instant,
    record: Arc<Mutex<Record>>,
) {
    let start = t0.elapsed().as_nanos() as u64;
    match document {
        Some(document) => {
            let cmd = Command::SetPolicy {
                document,
                author: cluster.id(),
                time_ns: amoskys_sensors::now_ns(),
            };
            let done = tokio::time::timeout(CALL_BUDGET, cluster.propose(cmd)).await;
            let version = match done {
                Ok(Ok((_, Outcome::Policy { version }))) => Some(version),
                _ => None,
            };
            let end = version.map(|_| t0.elapsed().as_nanos() as u64);
            let mut r = lock(&record);
            r.calls.push(Call {
                client,
                op: Op::Write(value),
                start,
                end,
            });
            if let Some(v) = version {
                r.acked.insert(value, v);
            }
        }
        None => {
            let read = tokio::time::timeout(CALL_BUDGET, cluster.read_linearizable()).await;
            if let Ok(Ok(applied)) = read {
                let seen = applied.state.policy().and_then(|p| written(&p.document));
                lock(&record).calls.push(Call {
                    client,
                    op: Op::Read(seen),
                    start,
                    end: Some(t0.elapsed().as_nanos() as u64),
                });
            }
        }
    }
}

/// Every running node applies the same policy history, and every
/// acknowledged write is in it at the version its writer was told.
async fn policies_kept(
    nodes: &[Option<Node>],
    acked: &BTreeMap<u64, u64>,
    until: Instant,
) -> Invariant {
    let histories = |nodes: &[Option<Node>]| -> Vec<Vec<(u64, String)>> {
        nodes
            .iter()
            .flatten()
            .filter_map(|n| n.cluster())
            .map(|c| {
                let applied = c.applied().borrow().clone();
                applied
                    .state
                    .policies
                    .iter()
                    .map(|p| (p.version, p.sha256.clone()))
                    .collect()
            })
            .collect()
    };
    let mut seen = histories(nodes);
    while seen.windows(2).any(|w| w[0] != w[1]) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = histories(nodes);
    }
    let agree = seen.windows(2).all(|w| w[0] == w[1]);
    let Some(first) = nodes.iter().flatten().find_map(|n| n.cluster()) else {
        return Invariant {
            name: "acknowledged policy writes kept".into(),
            held: true,
            detail: "no node running".into(),
        };
    };
    let applied = first.applied().borrow().clone();
    let by_version: BTreeMap<u64, Option<u64>> = applied
        .state
        .policies
        .iter()
        .map(|p| (p.version, written(&p.document)))
        .collect();
    let oldest = by_version.keys().next().copied().unwrap_or(0);
    let lost: Vec<String> = acked
        .iter()
        .filter(|(_, v)| **v >= oldest)
        .filter(|(value, v)| by_version.get(v) != Some(&Some(**value)))
        .map(|(value, v)| format!("write {value} at version {v}"))
        .collect();
    Invariant {
        name: "acknowledged policy writes kept".into(),
        held: agree && lost.is_empty(),
        detail: if !agree {
            "running nodes apply different policy histories".into()
        } else if lost.is_empty() {
            format!(
                "{} acknowledged, all running nodes at version {}",
                acked.len(),
                applied.state.policy().map_or(0, |p| p.version)
            )
        } else {
            format!("lost: {}", lost.join(", "))
        },
    }
}

/// Once healed, every running node's threat intel holds the same entries,
/// every acknowledged indicator among them.
async fn workspace_agrees(
    nodes: &[Option<Node>],
    indicators: &[String],
    until: Instant,
) -> Invariant {
    let lists = |nodes: &[Option<Node>]| -> Vec<Vec<String>> {
        nodes
            .iter()
            .flatten()
            .map(|n| {
                let mut l: Vec<String> = n
                    .workspace()
                    .intel_list()
                    .into_iter()
                    .map(|i| serde_json::to_string(&i).unwrap_or_default())
                    .collect();
                l.sort();
                l
            })
            .collect()
    };
    let holds_all = |l: &Vec<String>| {
        indicators
            .iter()
            .all(|i| l.iter().any(|e| e.contains(&format!("\"{i}\""))))
    };
    let mut seen = lists(nodes);
    let converged =
        |s: &Vec<Vec<String>>| s.windows(2).all(|w| w[0] == w[1]) && s.iter().all(holds_all);
    while !converged(&seen) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = lists(nodes);
    }
    Invariant {
        name: "workspace replicas identical after healing".into(),
        held: converged(&seen),
        detail: format!(
            "{} indicators added, {} replicas, entries per replica {:?}",
            indicators.len(),
            seen.len(),
            seen.iter().map(Vec::len).collect::<Vec<_>>()
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_write_is_known_by_its_first_line() {
        assert_eq!(super::written("# client write 17\n[rules]\n"), Some(17));
        assert_eq!(super::written("[rules]\n# client write 17\n"), None);
    }
}
