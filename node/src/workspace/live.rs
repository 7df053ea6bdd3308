//! The workspace on a running node: the documents kept in the store,
//! edits from the API, sync with admitted peers over the mesh's
//! `workspace` service (at once after a change, and every
//! `workspace.sync_every_ms` so new peers are met), the IOC matcher and the
//! false-positive verdicts that detection follows, the decisions the
//! bouncer enforces, and compaction when a document grows too large.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use amoskys_mesh::{MeshHandle, Service, ed25519_key};
use ed25519_dalek::SigningKey;
use libp2p_identity::PeerId;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::cases::{Case, CaseError, CaseNotes};
use super::decisions::{DecisionError, Decisions};
use super::doc::{DocKind, Document, WsError};
use super::envelope::peek_kind;
use super::intel::{IocError, ThreatIntel};
use super::matcher::IocMatcher;
use super::sync::PeerSync;
use crate::storage::{StorageError, Store};
use crate::suppress::{FalsePositives, VerdictCounts, VerdictFeed};

mod decided;
mod edits;

/// Messages one exchange with a peer may take before it waits for the
/// next tick (each carries at most 4 MiB).
const MAX_ROUNDS: usize = 32;

/// How the workspace runs (from `[workspace]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub sync_every: Duration,
    pub retention_ms: u64,
    pub compact_above: usize,
}

/// Why an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Intel(#[from] IocError),
    #[error("{0}")]
    Case(#[from] CaseError),
    #[error("{0}")]
    Decision(#[from] DecisionError),
    #[error("{0}")]
    Store(#[from] StorageError),
}

/// Why the stored workspace cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Store(#[from] StorageError),
    #[error(
        "the stored {name} document is unreadable ({source}); the node keeps it untouched and does not start: move the data directory aside or restore it"
    )]
    Corrupt { name: &'static str, source: WsError },
}

/// Sync traffic and what was refused, since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStats {
    pub sent_messages: u64,
    pub sent_bytes: u64,
    pub received_messages: u64,
    pub received_bytes: u64,
    pub applied_changes: u64,
    pub adopted_epochs: u64,
    pub compactions: u64,
    /// Refused sync messages by reason (`oversized`, `malformed`, ...).
    pub rejected: BTreeMap<String, u64>,
}

/// One document's state, for status.
#[derive(Debug, Clone, Serialize)]
pub struct DocStatus {
    pub epoch: u64,
    pub bytes: usize,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceStatus {
    pub intel: DocStatus,
    pub cases: DocStatus,
    pub decisions: DocStatus,
    pub sync: SyncStats,
}

struct Docs {
    intel: ThreatIntel,
    cases: CaseNotes,
    decisions: Decisions,
    peers: HashMap<(PeerId, DocKind), PeerSync>,
    /// Size of each document as last stored (saving is what costs).
    saved: HashMap<DocKind, usize>,
    /// Size right after the last compaction or adopted epoch: a document
    /// is compacted again only once it doubled, so a live set larger than
    /// the threshold does not start an epoch on every tick.
    floor: HashMap<DocKind, usize>,
}

impl Docs {
    fn doc(&mut self, kind: DocKind) -> &mut Document {
        match kind {
            DocKind::Intel => self.intel.document_mut(),
            DocKind::Cases => self.cases.document_mut(),
            DocKind::Decisions => self.decisions.document_mut(),
        }
    }

    /// The document of `kind` and its sync state with `peer` (new if none).
    fn with_peer(&mut self, kind: DocKind, peer: PeerId) -> (&mut Document, &mut PeerSync) {
        let doc = match kind {
            DocKind::Intel => self.intel.document_mut(),
            DocKind::Cases => self.cases.document_mut(),
            DocKind::Decisions => self.decisions.document_mut(),
        };
        let state = self.peers.entry((peer, kind)).or_default();
        (doc, state)
    }
}

/// The node's shared workspace.
pub struct Workspace {
    docs: Mutex<Docs>,
    store: Arc<Store>,
    key: SigningKey,
    settings: Settings,
    admitted: RwLock<HashSet<[u8; 32]>>,
    changed: Notify,
    matcher: watch::Sender<Arc<IocMatcher>>,
    verdicts: watch::Sender<Arc<FalsePositives>>,
    /// Bumped after every change of the decisions document.
    decided: watch::Sender<u64>,
    /// Counts case changes, for what follows every verdict.
    case_changes: watch::Sender<u64>,
    suppressed: Arc<VerdictCounts>,
    stats: Mutex<SyncStats>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    amoskys_sensors::now_ns() / 1_000_000
}

/// The document kept in the store under `kind`'s name, and its size.
fn load(store: &Store, kind: DocKind) -> Result<Option<(Document, usize)>, OpenError> {
    let Some(bytes) = store.get_document(kind.label())? else {
        return Ok(None);
    };
    Document::load(&bytes)
        .map(|doc| Some((doc, bytes.len())))
        .map_err(|source| OpenError::Corrupt {
            name: kind.label(),
            source,
        })
}

impl Workspace {
    /// Opens the documents kept in `store` (new, empty ones the first time).
    pub fn open(
        store: Arc<Store>,
        key: SigningKey,
        settings: Settings,
    ) -> Result<Arc<Workspace>, OpenError> {
        let corrupt = |name| move |source| OpenError::Corrupt { name, source };
        // A stored document of the wrong kind is refused as corrupt.
        let (intel, intel_size) = match load(&store, DocKind::Intel)? {
            Some((d, size)) => (
                ThreatIntel::from_document(d).map_err(corrupt("intel"))?,
                size,
            ),
            None => (ThreatIntel::new(), 0),
        };
        let (cases, cases_size) = match load(&store, DocKind::Cases)? {
            Some((d, size)) => (CaseNotes::from_document(d).map_err(corrupt("cases"))?, size),
            None => (CaseNotes::new(), 0),
        };
        let (decisions, decisions_size) = match load(&store, DocKind::Decisions)? {
            Some((d, size)) => (
                Decisions::from_document(d).map_err(corrupt("decisions"))?,
                size,
            ),
            None => (Decisions::new(), 0),
        };
        let (matcher, _) = watch::channel(Arc::new(intel.matcher(now_ms())));
        let (verdicts, _) = watch::channel(Arc::new(cases.false_positives()));
        let me = key.verifying_key().to_bytes();
        Ok(Arc::new(Workspace {
            docs: Mutex::new(Docs {
                saved: HashMap::from([
                    (DocKind::Intel, intel_size),
                    (DocKind::Cases, cases_size),
                    (DocKind::Decisions, decisions_size),
                ]),
                floor: HashMap::new(),
                intel,
                cases,
                decisions,
                peers: HashMap::new(),
            }),
            store,
            key,
            settings,
            admitted: RwLock::new(HashSet::from([me])),
            changed: Notify::new(),
            matcher,
            verdicts,
            decided: watch::channel(0).0,
            case_changes: watch::channel(0).0,
            suppressed: Arc::default(),
            stats: Mutex::new(SyncStats::default()),
        }))
    }

    /// Whose changes are accepted: the cluster's members (and this node).
    pub fn set_admitted(&self, keys: impl IntoIterator<Item = [u8; 32]>) {
        let mut set: HashSet<[u8; 32]> = keys.into_iter().collect();
        set.insert(self.key.verifying_key().to_bytes());
        *self
            .admitted
            .write()
            .unwrap_or_else(PoisonError::into_inner) = set;
    }

    fn is_admitted(&self, key: &[u8; 32]) -> bool {
        self.admitted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    /// The live IOCs, for detection; replaced after every intel change.
    pub fn matcher(&self) -> watch::Receiver<Arc<IocMatcher>> {
        self.matcher.subscribe()
    }

    /// The false-positive verdicts, for detection; replaced after every
    /// case change. Detection counts what each suppressed in `counts`.
    pub fn verdicts(&self) -> VerdictFeed {
        VerdictFeed {
            set: self.verdicts.subscribe(),
            counts: self.suppressed.clone(),
        }
    }

    /// Findings the false-positive verdict on `alert` suppressed on this
    /// node since it started.
    pub fn suppressed_by(&self, alert: &str) -> u64 {
        self.suppressed.get(alert)
    }

    /// Keeps `kind` in the store, refreshes what detection follows, wakes
    /// the sync.
    fn changed(&self, docs: &mut Docs, kind: DocKind) -> Result<(), StorageError> {
        let bytes = docs.doc(kind).save();
        self.store.put_document(kind.label(), &bytes)?;
        docs.saved.insert(kind, bytes.len());
        if kind == DocKind::Intel {
            self.matcher
                .send_replace(Arc::new(docs.intel.matcher(now_ms())));
        } else if kind == DocKind::Decisions {
            self.decided.send_modify(|n| *n = n.wrapping_add(1));
        } else {
            let set = docs.cases.false_positives();
            self.verdicts.send_if_modified(|old| {
                let new = **old != set;
                if new {
                    *old = Arc::new(set);
                }
                new
            });
            self.case_changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.changed.notify_one();
        Ok(())
    }

    pub fn case_show(&self, alert: &str) -> Case {
        lock(&self.docs).cases.show(alert)
    }

    /// Changes when any case changes (here or by a peer's sync).
    pub fn case_changes(&self) -> watch::Receiver<u64> {
        self.case_changes.subscribe()
    }

    pub fn case_list(&self) -> Vec<Case> {
        lock(&self.docs).cases.list()
    }

    /// Sync counters (cheap; for metrics).
    pub fn sync_stats(&self) -> SyncStats {
        lock(&self.stats).clone()
    }

    pub fn status(&self) -> WorkspaceStatus {
        let docs = lock(&self.docs);
        let of = |d: &Document| DocStatus {
            epoch: d.epoch().number,
            bytes: docs.saved.get(&d.kind()).copied().unwrap_or(0),
            entries: d.entries().len(),
        };
        WorkspaceStatus {
            intel: of(docs.intel.document()),
            cases: of(docs.cases.document()),
            decisions: of(docs.decisions.document()),
            sync: lock(&self.stats).clone(),
        }
    }

    /// Both documents as saved (tests compare them across nodes).
    pub fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        let docs = lock(&self.docs);
        (docs.intel.document().save(), docs.cases.document().save())
    }

    /// Applies a peer's envelope. A refused one leaves the document as it
    /// was and is counted by its reason.
    fn receive(&self, peer: PeerId, bytes: &[u8]) -> Result<DocKind, String> {
        let Some(kind) = peek_kind(bytes) else {
            self.reject("malformed");
            return Err("malformed: not a workspace envelope".into());
        };
        let mut docs = lock(&self.docs);
        let (doc, state) = docs.with_peer(kind, peer);
        let admitted = |k: &[u8; 32]| self.is_admitted(k);
        let outcome = match doc.sync_in(state, bytes, &admitted, &self.key) {
            Ok(o) => o,
            Err(r) => {
                self.reject(r.label());
                tracing::warn!(%peer, document = kind.label(), reason = r.label(), error = %r, "workspace sync message refused");
                return Err(format!("{}: {r}", r.label()));
            }
        };
        {
            let mut s = lock(&self.stats);
            s.received_messages += 1;
            s.received_bytes += bytes.len() as u64;
            s.applied_changes += outcome.applied as u64;
            s.adopted_epochs += u64::from(outcome.adopted.is_some());
        }
        if outcome.changed
            && let Err(e) = self.changed(&mut docs, kind)
        {
            tracing::error!(error = %e, document = kind.label(), "cannot keep the workspace document");
        }
        if outcome.adopted.is_some() {
            let size = docs.saved.get(&kind).copied().unwrap_or(0);
            docs.floor.insert(kind, size);
        }
        Ok(kind)
    }

    fn reject(&self, reason: &str) {
        *lock(&self.stats)
            .rejected
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    /// What to send `peer` next for `kind`, if anything.
    fn next_out(&self, peer: PeerId, kind: DocKind) -> Option<Vec<u8>> {
        let mut docs = lock(&self.docs);
        let (doc, state) = docs.with_peer(kind, peer);
        let out = doc.sync_out(state)?;
        let mut s = lock(&self.stats);
        s.sent_messages += 1;
        s.sent_bytes += out.len() as u64;
        Some(out)
    }

    /// Answers a peer's `workspace` request: applies its envelope, then
    /// replies with ours (empty when there is nothing to say).
    pub fn serve(&self, peer: &PeerId, body: &[u8]) -> Result<Vec<u8>, String> {
        let kind = self.receive(*peer, body)?;
        Ok(self.next_out(*peer, kind).unwrap_or_default())
    }

    /// Syncs `kind` with `peer` until neither side has more to say.
    async fn exchange(self: &Arc<Self>, mesh: &MeshHandle, peer: PeerId, kind: DocKind) {
        for _ in 0..MAX_ROUNDS {
            // Cheap when in step (Automerge answers from the heads alone),
            // so it runs here; applying a reply runs off the async threads.
            let Some(out) = self.next_out(peer, kind) else {
                return;
            };
            match mesh.request(peer, Service::Workspace, out).await {
                Ok(reply) if reply.is_empty() => {}
                Ok(reply) => {
                    let me = self.clone();
                    let applied = tokio::task::spawn_blocking(move || me.receive(peer, &reply))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                    if applied.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, document = kind.label(), error = %e, "workspace sync request failed");
                    // Start afresh next time: the peer may have lost what
                    // we think it holds.
                    lock(&self.docs).peers.remove(&(peer, kind));
                    return;
                }
            }
        }
    }

    /// Compacts a document that grew past the threshold.
    fn compact_if_large(&self) {
        let mut docs = lock(&self.docs);
        for kind in DocKind::ALL {
            let size = docs.saved.get(&kind).copied().unwrap_or(0);
            let floor = docs.floor.get(&kind).copied().unwrap_or(0);
            if size <= self.settings.compact_above || size <= floor.saturating_mul(2) {
                continue;
            }
            let (now, keep) = (now_ms(), self.settings.retention_ms);
            let report = match kind {
                DocKind::Intel => docs.intel.compact(now, keep, &self.key),
                DocKind::Cases => docs.cases.compact(now, keep, &self.key),
                DocKind::Decisions => docs.decisions.compact(now, keep, &self.key),
            };
            match report {
                Ok(r) => {
                    tracing::info!(
                        document = kind.label(),
                        epoch = r.epoch.number,
                        before = r.bytes_before,
                        after = r.bytes_after,
                        dropped = r.entries_dropped,
                        "workspace document compacted"
                    );
                    lock(&self.stats).compactions += 1;
                    if let Err(e) = self.changed(&mut docs, kind) {
                        tracing::error!(error = %e, "cannot keep the compacted document");
                    }
                    docs.floor.insert(kind, r.bytes_after);
                }
                Err(e) => {
                    tracing::warn!(document = kind.label(), error = %e, "cannot compact")
                }
            }
        }
    }

    /// Syncs with every admitted peer after each change and every tick;
    /// forgets the sync state of peers that left, so a reconnect starts
    /// afresh. Ends with `shutdown`.
    pub async fn run(self: Arc<Self>, mesh: MeshHandle, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.sync_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.compact_if_large()).await;
                }
                () = self.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            let Ok(connected) = mesh.peers().await else {
                return;
            };
            let peers: Vec<PeerId> = connected
                .iter()
                .filter_map(|p| p.id.parse::<PeerId>().ok())
                .filter(|p| ed25519_key(p).is_some_and(|k| self.is_admitted(&k)))
                .collect();
            lock(&self.docs).peers.retain(|(p, _), _| peers.contains(p));
            let mut exchanges = tokio::task::JoinSet::new();
            for p in peers {
                for kind in DocKind::ALL {
                    let (me, mesh) = (self.clone(), mesh.clone());
                    exchanges.spawn(async move { me.exchange(&mesh, p, kind).await });
                }
            }
            while exchanges.join_next().await.is_some() {}
        }
    }
}
