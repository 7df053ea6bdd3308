//! The node's side of consensus: starts the Raft member on the node's
//! database and mesh, answers peers' Raft and join requests, applies each
//! committed policy live, keeps the mesh's admitted keys in step with the
//! membership, and joins a cluster (or forms a cluster of one).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use amoskys_consensus::{Applied, Cluster, ClusterSettings, Command, JoinReply, NodeId, Role};
use amoskys_mesh::{InboundRequest, MeshHandle, Service};
use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::federation::Federation;
use crate::models::{ModelSet, Trainer};
use crate::policy::{InForce, Policy};
use crate::storage::Store;
use crate::workspace::Workspace;

/// How often a node that is not a member asks its peers to join.
const JOIN_EVERY: Duration = Duration::from_secs(3);

/// The running Raft member and the node's tasks around it.
#[derive(Debug)]
pub struct ClusterNode {
    pub cluster: Arc<Cluster>,
    pub federation: Arc<Federation>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the follow task needs to apply the replicated state.
struct Follow {
    cluster: Arc<Cluster>,
    mesh: Option<MeshHandle>,
    me: NodeId,
    /// `mesh.admitted` of the configuration.
    configured: Vec<NodeId>,
    policy: watch::Sender<Arc<InForce>>,
    trainer: Option<Arc<std::sync::Mutex<Trainer>>>,
    /// Members named by the peers that admitted us, until we know them
    /// from the log.
    introduced: watch::Receiver<Vec<NodeId>>,
    workspace: Arc<Workspace>,
}

/// What the node hands consensus and the federation.
#[derive(Debug)]
pub struct Parts {
    pub store: Arc<Store>,
    pub mesh: Option<MeshHandle>,
    /// Peers' requests (Raft, joins, model updates, blobs).
    pub requests: Option<mpsc::Receiver<InboundRequest>>,
    /// Where the policy in force is published.
    pub policy: watch::Sender<Arc<InForce>>,
    pub trainer: Option<Arc<std::sync::Mutex<Trainer>>>,
    pub models: Arc<ModelSet>,
    pub key: SigningKey,
    /// How this node behaves in federated rounds.
    pub site: crate::federation::SiteBehaviour,
    /// The shared workspace: its sync requests are served here, and it
    /// accepts changes from the admitted keys.
    pub workspace: Arc<Workspace>,
    /// The node's local admin key (hex): the first admin of a cluster this
    /// node forms.
    pub admin: String,
    /// A hand-over from this node's previous key not yet committed, and
    /// the data directory that keeps it ([`crate::rotation`]).
    pub handover: Option<(amoskys_consensus::rotation::Handover, std::path::PathBuf)>,
    /// The verdicts and heads of federated head rounds.
    pub learner: Arc<crate::verdicts::Learner>,
}

impl ClusterNode {
    pub async fn start(
        config: &Config,
        me: NodeId,
        parts: Parts,
    ) -> Result<ClusterNode, amoskys_consensus::ClusterError> {
        let Parts {
            store,
            mesh,
            requests,
            policy,
            trainer,
            models,
            key,
            site,
            workspace,
            admin,
            handover,
            learner,
        } = parts;
        let c = &config.cluster;
        let mut settings = ClusterSettings::new(me, listen_address(config, mesh.as_ref()).await);
        settings.name = config.node_name();
        settings.heartbeat = Duration::from_millis(c.heartbeat_ms);
        settings.election_timeout = (
            Duration::from_millis(c.election_min_ms),
            Duration::from_millis(c.election_max_ms),
        );
        settings.snapshot_every = c.snapshot_every;
        let db: Arc<dyn amoskys_consensus::Database> = store.clone();
        let cluster = Arc::new(Cluster::start(settings, db, mesh.clone()).await?);
        let admin_signer = key.clone();
        let federation = Federation::new(crate::federation::Parts {
            me,
            store,
            models,
            cluster: cluster.clone(),
            mesh: mesh.clone(),
            key,
            learning: config.learning(),
            site,
            learner,
        });
        let configured: Vec<NodeId> = config.mesh_admitted().into_iter().map(NodeId).collect();
        cluster.set_allow_list(configured.iter().copied());

        let mut tasks = vec![
            tokio::spawn(federation.clone().follow()),
            tokio::spawn(federation.clone().schedule(policy.subscribe())),
        ];
        if let Some(rx) = requests {
            tasks.push(tokio::spawn(serve(
                cluster.clone(),
                federation.clone(),
                workspace.clone(),
                rx,
            )));
        }
        let (introduced_tx, introduced) = watch::channel(Vec::new());
        tasks.push(tokio::spawn(
            Follow {
                cluster: cluster.clone(),
                mesh: mesh.clone(),
                me,
                configured,
                policy,
                trainer,
                introduced,
                workspace,
            }
            .run(),
        ));
        if !cluster.is_initialized().await {
            let alone = config.mesh.bootstrap.is_empty() || mesh.is_none();
            if alone && c.init == "auto" {
                match cluster.initialize(&[]).await {
                    Ok(()) => {
                        tracing::info!("formed a one-node cluster; others join it");
                        tasks.push(tokio::spawn(record_first_admin(
                            cluster.clone(),
                            admin,
                            admin_signer.clone(),
                        )));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot form a one-node cluster"),
                }
            } else if let Some(mesh) = mesh.clone() {
                tasks.push(tokio::spawn(join(cluster.clone(), mesh, introduced_tx)));
            }
        } else if let (Some((h, dir)), Some(mesh)) = (handover, mesh) {
            // The successor of a member: its log is the cluster's, but the
            // cluster has to commit the hand-over and take it in.
            tracing::info!(old = %h.rotation.old, "asking the cluster to commit this key's hand-over");
            cluster.set_handover(Some(h));
            let c = cluster.clone();
            tasks.push(tokio::spawn(async move {
                join(c.clone(), mesh, introduced_tx).await;
                c.set_handover(None);
                crate::rotation::committed(&dir);
            }));
        }
        Ok(ClusterNode {
            cluster,
            federation,
            tasks,
        })
    }

    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.cluster.shutdown().await;
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Answers peers' requests: Raft and joins to consensus, model updates and
/// blobs to the federation, sync messages to the workspace.
async fn serve(
    cluster: Arc<Cluster>,
    federation: Arc<Federation>,
    workspace: Arc<Workspace>,
    mut rx: mpsc::Receiver<InboundRequest>,
) {
    while let Some(r) = rx.recv().await {
        let cluster = cluster.clone();
        let federation = federation.clone();
        let workspace = workspace.clone();
        tokio::spawn(async move {
            let answer = match r.service {
                Service::Raft => cluster.serve(&r.peer, &r.body).await,
                Service::Join => cluster.serve_join(&r.peer, &r.body).await,
                Service::Workspace => {
                    tokio::task::spawn_blocking(move || workspace.serve(&r.peer, &r.body))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                }
                other => federation.serve(&r.peer, other, &r.body).await,
            };
            let _ = r.reply.send(answer);
        });
    }
}

/// Where this node's mesh listens, as `host:port[,host:port]` with the
/// ports it actually got (the configuration may say port 0, or an
/// unspecified address), for its membership record: members dial it there
/// when no connection is left.
async fn listen_address(config: &Config, mesh: Option<&MeshHandle>) -> String {
    if let Some(mesh) = mesh {
        for _ in 0..100 {
            if let Ok(addrs) = mesh.listen_addrs().await {
                let found: Vec<String> = addrs
                    .iter()
                    .filter_map(amoskys_mesh::net::tcp_socket)
                    .map(|a| a.to_string())
                    .collect();
                if !found.is_empty() {
                    return found.join(",");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    config.mesh.listen.join(",")
}

/// Asks connected peers to let this node join until it is a member.
async fn join(cluster: Arc<Cluster>, mesh: MeshHandle, introduced: watch::Sender<Vec<NodeId>>) {
    let mut tick = tokio::time::interval(JOIN_EVERY);
    let mut told = false;
    let me = cluster.id();
    loop {
        tick.tick().await;
        let (voters, learners) = cluster.members();
        if voters.contains(&me) || learners.contains(&me) {
            return;
        }
        let Ok(peers) = mesh.peers().await else {
            return;
        };
        for p in peers {
            let Ok(peer) = p.id.parse() else { continue };
            match cluster.request_join(peer).await {
                Ok(JoinReply::Admitted { members }) => {
                    tracing::info!(via = %p.id, members = members.len(), "admitted to the cluster");
                    introduced.send_replace(members);
                    break;
                }
                Ok(JoinReply::Pending) if !told => {
                    told = true;
                    tracing::warn!(
                        "waiting to be admitted: run `amoskys members admit {}` on a member",
                        cluster.id()
                    );
                }
                Ok(JoinReply::Refused(reason)) => {
                    tracing::error!(via = %p.id, %reason, "the cluster refused this node");
                }
                Ok(JoinReply::Pending) => {}
                Err(e) => tracing::debug!(peer = %p.id, error = %e, "join request failed"),
            }
        }
    }
}

impl Follow {
    async fn run(mut self) {
        let mut applied = self.cluster.applied();
        let mut last_policy = None;
        loop {
            let now = applied.borrow_and_update().clone();
            let version = now.state.policy().map(|p| p.version);
            if version != last_policy {
                last_policy = version;
                self.apply_policy(&now);
            }
            self.admit(&now).await;
            let introduced = async {
                // Once the join task is done, only the log changes things.
                if self.introduced.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                () = introduced => {}
            }
        }
    }

    fn apply_policy(&self, now: &Applied) {
        let Some(record) = now.state.policy() else {
            return;
        };
        match Policy::parse(&record.document) {
            Ok(policy) => {
                self.cluster.set_membership_policy(policy.membership());
                self.cluster.set_approvals(policy.governance.approvals);
                self.cluster
                    .set_allow_list(self.configured.iter().copied().chain(policy.auto_admit()));
                if let Some(t) = &self.trainer
                    && let Ok(t) = t.lock()
                {
                    t.set_retrain(policy.retrain());
                }
                tracing::info!(version = record.version, "cluster policy in force");
                self.policy.send_replace(Arc::new(InForce {
                    policy,
                    version: Some(record.version),
                    error: None,
                }));
            }
            Err(e) => {
                // Proposals are validated first; this is a node of another
                // version. It keeps the policy it has.
                tracing::error!(version = record.version, error = %e, "cannot apply the committed policy; keeping the current one");
                self.policy.send_modify(|p| {
                    let mut next = InForce::clone(p);
                    next.error = Some(format!("version {}: {e}", record.version));
                    *p = Arc::new(next);
                });
            }
        }
    }

    /// The mesh accepts alerts and requests from the members, this node,
    /// the configured keys and those that introduced us, except removed
    /// nodes.
    async fn admit(&self, now: &Applied) {
        let mut keys: BTreeSet<NodeId> = now.membership.nodes().map(|(id, _)| *id).collect();
        keys.insert(self.me);
        keys.extend(self.configured.iter().copied());
        keys.extend(self.introduced.borrow().iter().copied());
        for gone in now.state.removed.keys().chain(now.state.retired.keys()) {
            keys.remove(gone);
        }
        keys.insert(self.me);
        // Workspace entries a retired key signed before its hand-over stay
        // valid; entries carry no sequence number to bound them by.
        self.workspace
            .set_admitted(keys.iter().chain(now.state.retired.keys()).map(|k| k.0));
        let Some(mesh) = &self.mesh else { return };
        let retired = now
            .state
            .retired
            .iter()
            .filter_map(|(k, r)| r.last_seq.map(|s| (k.0, s)))
            .collect();
        if let Err(e) = mesh.set_retired(retired).await {
            tracing::warn!(error = %e, "cannot update the mesh's retired keys");
        }
        if let Err(e) = mesh
            .set_admitted(keys.into_iter().map(|k| k.0).collect())
            .await
        {
            tracing::warn!(error = %e, "cannot update the mesh's admitted keys");
        }
    }
}

/// Name of the first admin a cluster records: the local admin of the node
/// that formed it.
pub const FIRST_ADMIN: &str = "admin";

/// After this node formed a cluster: records its local admin key as the
/// cluster's first admin, unless operators exist already, with its audit
/// entry signed by `node_key`. Retries while there is no leader yet, for at
/// most a minute.
pub async fn record_first_admin(cluster: Arc<Cluster>, key: String, node_key: SigningKey) {
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < end {
        if !cluster.applied().borrow().state.operators.is_empty() {
            return;
        }
        let set = Command::SetOperator {
            name: FIRST_ADMIN.to_owned(),
            key: key.clone(),
            role: Role::Admin,
            by: cluster.id().to_string(),
            time_ns: amoskys_sensors::now_ns(),
        };
        let summary = format!("first admin: this node's local admin key {key}, role admin");
        let cmd = Command::Audited {
            record: crate::audit::signed_record(
                &node_key,
                None,
                "operators.add",
                FIRST_ADMIN,
                &summary,
                "ok",
            ),
            command: Some(Box::new(set)),
        };
        match cluster.propose(cmd).await {
            Ok(_) => {
                tracing::info!(
                    operator = FIRST_ADMIN,
                    "recorded the cluster's first admin (this node's local admin key)"
                );
                return;
            }
            Err(e) => tracing::debug!(error = %e, "first admin not recorded yet"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(
        "could not record the cluster's first admin within a minute; `amoskys operator add` it"
    );
}
