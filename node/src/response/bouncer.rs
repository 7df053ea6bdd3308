//! The bouncer: one task per node. It turns alerts into decisions (the
//! [`Engine`]), writes them to the workspace's `decisions` document, and in
//! `enforce` mode keeps the node's nftables set equal to the live decisions
//! the [`Guard`] allows: after every change of the document (here or by a
//! peer's sync), of the policy, and every half second. At shutdown it
//! removes its table unless `response.remove_table_on_stop` is false.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amoskys_consensus::store::Applied;
use amoskys_mesh::{Alert, MeshHandle};
use tokio::sync::{broadcast, watch};

use super::decisions::{self, Decision, Guard, Subject, seconds_left};
use super::engine::Engine;
use super::nft::Nft;
use super::{Response, ResponsePolicy, own_addresses};
use crate::policy::InForce;
use crate::workspace::Workspace;

/// How often the plan is checked against the clock (expiries, campaigns).
const TICK: Duration = Duration::from_millis(500);
/// How often the never-block addresses are gathered again.
const GUARD_EVERY: Duration = Duration::from_secs(5);
/// How long after a failed nft call the table is installed again.
const RETRY: Duration = Duration::from_secs(10);

/// What the bouncer runs on.
#[derive(Debug)]
pub struct Parts {
    /// This node's peer id.
    pub me: String,
    pub policy: watch::Receiver<Arc<InForce>>,
    pub alerts: broadcast::Receiver<Alert>,
    pub workspace: Arc<Workspace>,
    /// The cluster's applied state (the members' addresses).
    pub applied: watch::Receiver<Arc<Applied>>,
    pub mesh: Option<MeshHandle>,
    pub response: Arc<Response>,
    pub nft: Nft,
    pub shutdown: watch::Receiver<bool>,
}

fn now_ms() -> u64 {
    amoskys_sensors::now_ns() / 1_000_000
}

fn window_ns(p: &InForce) -> u64 {
    p.policy
        .rules
        .campaign_window_secs
        .saturating_mul(1_000_000_000)
}

/// Runs until `shutdown`.
pub async fn run(parts: Parts) {
    let Parts {
        me,
        mut policy,
        mut alerts,
        workspace,
        applied,
        mesh,
        response,
        nft,
        mut shutdown,
    } = parts;
    let (mut config, window) = {
        let p = policy.borrow_and_update();
        (p.policy.response.clone(), window_ns(&p))
    };
    let mut engine = Engine::new(me, &config, window);
    let mut decided = workspace.decided();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = Enforcer {
        nft,
        response: response.clone(),
        installed: false,
        retry_at: Instant::now(),
        in_kernel: BTreeMap::new(),
        counted: HashSet::new(),
        probed: false,
    };
    let mut guard_at = Instant::now();
    let mut guard = Guard::default();
    loop {
        if Instant::now() >= guard_at {
            guard = gather_guard(&config, &applied, mesh.as_ref()).await;
            response.set_guard(guard.clone());
            guard_at = Instant::now() + GUARD_EVERY;
        }
        let mut made = Vec::new();
        tokio::select! {
            _ = shutdown.changed() => break,
            got = alerts.recv() => match got {
                Ok(a) => made = engine.observe(&a, now_ms()),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the bouncer fell behind the alerts");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = decided.changed() => {}
            changed = policy.changed() => {
                if changed.is_err() {
                    break;
                }
                let p = policy.borrow_and_update();
                config = p.policy.response.clone();
                engine.set_policy(&config, window_ns(&p));
                guard_at = Instant::now();
                state.probed = false;
            }
            _ = tick.tick() => made = engine.ready(amoskys_sensors::now_ns()),
        }
        for d in made {
            write(&workspace, &response, d).await;
        }
        state.step(&config, &guard, &workspace).await;
    }
    state.stop(&config).await;
}

/// Writes a decision a rule made, unless a live one holds the subject or
/// the guard refuses it.
async fn write(workspace: &Arc<Workspace>, response: &Arc<Response>, d: Decision) {
    if workspace.decision(&d.subject).is_some() || response.check(&d.subject).is_err() {
        return;
    }
    let ws = workspace.clone();
    let written = tokio::task::spawn_blocking(move || ws.decision_put(&d, None)).await;
    match written {
        Ok(Ok(v)) => {
            tracing::info!(subject = %v.decision.subject, action = v.decision.action.label(), origin = %v.decision.origin, expires_ms = v.decision.expires_ms, "decision made");
            response.update(|s| s.decided += 1);
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot write a decision"),
        Err(e) => tracing::error!(error = %e, "decision task failed"),
    }
}

/// Loopback is always in the guard; here: this node's addresses, the
/// members' (committed records and connected peers) and `never_block`.
async fn gather_guard(
    config: &ResponsePolicy,
    applied: &watch::Receiver<Arc<Applied>>,
    mesh: Option<&MeshHandle>,
) -> Guard {
    let members = crate::members::gather(applied, mesh).await;
    let own = tokio::task::spawn_blocking(own_addresses)
        .await
        .unwrap_or_default();
    Guard::new(own, members, config.never_block())
}

/// What the kernel holds and how to change it.
struct Enforcer {
    nft: Nft,
    response: Arc<Response>,
    installed: bool,
    retry_at: Instant,
    /// Subject → expiry as last applied.
    in_kernel: BTreeMap<Subject, u64>,
    /// Refused decisions already counted (subject, creation time).
    counted: HashSet<(Subject, u64)>,
    /// Whether nft was checked since the mode last changed.
    probed: bool,
}

impl Enforcer {
    async fn nft<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Nft) -> Result<T, super::nft::NftError> + Send + 'static,
    ) -> Result<T, String> {
        let nft = self.nft.clone();
        tokio::task::spawn_blocking(move || f(&nft))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
    }

    fn health(&self, mode: &str, result: Result<(), String>) {
        if let Err(e) = &result {
            tracing::warn!(error = %e, "the bouncer cannot use nftables; the node runs without enforcement");
        }
        self.response.update(|s| {
            s.mode = mode.to_owned();
            s.healthy = result.is_ok();
            s.reason = result.err();
        });
    }

    async fn step(&mut self, config: &ResponsePolicy, guard: &Guard, workspace: &Arc<Workspace>) {
        let now = now_ms();
        let live = workspace.decisions_live(now);
        let plan = decisions::plan(&live, guard, config.max_decisions, now);
        for (subject, r) in &plan.refused {
            let created = live
                .iter()
                .find(|d| d.subject == *subject)
                .map_or(0, |d| d.created_ms);
            if self.counted.insert((*subject, created)) {
                self.response.refused(r);
            }
        }
        self.counted
            .retain(|(s, _)| plan.refused.iter().any(|(r, _)| r == s));
        self.response
            .update(|s| s.over_limit = plan.over_limit.len());
        if !config.enforce() {
            if self.installed {
                let _ = self.nft(|n| n.remove()).await;
                self.installed = false;
                self.in_kernel.clear();
            }
            if !self.probed {
                self.probed = true;
                let probe = self.nft(|n| n.probe()).await;
                self.health("observe", probe);
                self.response.update(|s| s.enforced = 0);
            }
            return;
        }
        if !self.installed {
            if Instant::now() < self.retry_at && self.probed {
                return;
            }
            self.probed = true;
            let done = self.nft(|n| n.install()).await;
            self.retry_at = Instant::now() + RETRY;
            let ok = done.is_ok();
            self.health("enforce", done);
            if !ok {
                return;
            }
            tracing::info!(table = self.nft.table(), "bouncer table installed");
            self.installed = true;
            self.in_kernel.clear();
        }
        let want: BTreeMap<Subject, u64> = plan.enforce.iter().copied().collect();
        let held: BTreeMap<Subject, u64> = self
            .in_kernel
            .iter()
            .filter(|(_, e)| **e > now)
            .map(|(s, e)| (*s, *e))
            .collect();
        // Unchanged, unless the last elements just expired (then the
        // bookkeeping is cleared with an empty set).
        if want == held && (!want.is_empty() || self.in_kernel.is_empty()) {
            return;
        }
        let elems: Vec<(Subject, u64)> = want
            .iter()
            .map(|(s, e)| (*s, seconds_left(*e, now)))
            .collect();
        match self.nft(move |n| n.replace(&elems)).await {
            Ok(()) => {
                tracing::info!(enforced = want.len(), "bouncer set applied");
                self.response.update(|s| {
                    s.enforced = want.len();
                    s.applied += 1;
                });
                self.in_kernel = want;
            }
            Err(e) => {
                self.installed = false;
                self.health("enforce", Err(e));
            }
        }
    }

    async fn stop(&mut self, config: &ResponsePolicy) {
        if self.installed && config.remove_table_on_stop {
            match self.nft(|n| n.remove()).await {
                Ok(()) => tracing::info!(table = self.nft.table(), "bouncer table removed"),
                Err(e) => tracing::warn!(error = %e, "cannot remove the bouncer table"),
            }
        }
    }
}
