//! The node's side of the mesh: starts it from the configuration, gossips
//! the node's own alerts as they are raised, and stores alerts from peers
//! before acknowledging them (so they are forwarded only once stored).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use amoskys_mesh::AlertBody;
use amoskys_mesh::correlate::{CAMPAIGN_RULE, Campaign, Correlator};
use amoskys_mesh::net::{self, tcp_multiaddr};
use amoskys_mesh::{
    Alert, InboundRequest, MeshConfig, MeshError, MeshHandle, Received, ValidatorConfig,
};
use ed25519_dalek::SigningKey;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, Problem};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::policy::InForce;
use crate::storage::Store;

/// Verified alerts from peers waiting to be stored.
const RECEIVE_QUEUE: usize = 4096;
/// A campaign is announced once its last report is this old, so reports
/// still in flight have arrived (gossip delivers well within it).
const CAMPAIGN_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// The running mesh and the node's tasks around it.
#[derive(Debug)]
pub struct Peering {
    pub handle: MeshHandle,
    tasks: Vec<JoinHandle<()>>,
}

/// How the mesh connects to the rest of the node.
#[derive(Debug)]
pub struct Links {
    /// Alerts raised here and received from peers.
    pub alerts: broadcast::Sender<Alert>,
    /// Where peers' requests go (consensus and the federation answer them).
    pub requests: mpsc::Sender<InboundRequest>,
    /// The policy in force (the correlator follows it).
    pub policy: watch::Receiver<Arc<InForce>>,
    /// A copy of every application message sent, for labs.
    pub tap: Option<mpsc::UnboundedSender<amoskys_mesh::Tapped>>,
}

impl Peering {
    /// Starts the mesh and the publish and receive tasks.
    pub async fn start(
        config: &Config,
        identity: &Identity,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        links: Links,
    ) -> Result<Peering, PeeringError> {
        let Links {
            alerts,
            requests,
            policy,
            tap,
        } = links;
        let listen = config
            .mesh
            .listen
            .iter()
            .map(|a| a.parse::<SocketAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PeeringError::Config(Problem::new("mesh.listen", e.to_string())))?;
        let mut admitted = config.mesh_admitted();
        admitted.push(identity.signing_key().verifying_key().to_bytes());
        let psk = config.mesh_network_key().map_err(PeeringError::Config)?;
        let bootstrap = config
            .mesh
            .bootstrap
            .iter()
            .filter_map(|hp| match hp.to_socket_addrs() {
                Ok(mut addrs) => addrs.next().map(tcp_multiaddr),
                Err(e) => {
                    tracing::warn!(peer = %hp, error = %e, "cannot resolve a bootstrap peer; skipped");
                    None
                }
            })
            .collect();
        let (tx, rx) = mpsc::channel(RECEIVE_QUEUE);
        let (handle, mesh_task) = net::start(
            MeshConfig {
                keypair: identity.libp2p_keypair().clone(),
                listen,
                bootstrap,
                mdns: config.mesh.mdns,
                kademlia: config.mesh.kademlia,
                quic: config.mesh.quic,
                psk,
                validator: ValidatorConfig {
                    admitted,
                    max_age_ns: config.mesh.alert_window_secs.saturating_mul(1_000_000_000),
                    ..ValidatorConfig::default()
                },
                ledger: Some(store.clone()),
                requests: Some(requests),
                tap,
            },
            tx,
        )
        .await
        .map_err(PeeringError::Mesh)?;
        // Members learn it from this node's peer view.
        handle
            .set_name(&config.node_name())
            .await
            .map_err(PeeringError::Mesh)?;
        let own = identity.peer_id().to_string();
        let rules = policy.borrow().policy.rules.clone();
        let correlator = Correlator::new(
            rules.campaign_min_nodes,
            rules.campaign_window_secs.saturating_mul(1_000_000_000),
            CAMPAIGN_SETTLE.as_nanos() as u64,
        );
        let publish = tokio::spawn(publish_own(handle.clone(), alerts.subscribe(), own.clone()));
        let correlate = tokio::spawn(correlate(
            correlator,
            alerts.subscribe(),
            alerts.clone(),
            store.clone(),
            identity.signing_key().clone(),
            own,
            policy,
        ));
        let receive = tokio::spawn(store_received(rx, store, alerts, metrics));
        Ok(Peering {
            handle,
            tasks: vec![mesh_task, publish, receive, correlate],
        })
    }

    /// Stops the mesh and its tasks, and waits until they are gone (so
    /// nothing holds the database any more).
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Peering {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why the mesh did not start.
#[derive(Debug, thiserror::Error)]
pub enum PeeringError {
    #[error("{0}")]
    Config(Problem),
    #[error(transparent)]
    Mesh(MeshError),
}

/// Gossips the alerts this node raises (peers' alerts are on the same
/// channel for the live stream; they are not ours to publish).
async fn publish_own(handle: MeshHandle, mut rx: broadcast::Receiver<Alert>, own: String) {
    loop {
        match rx.recv().await {
            Ok(alert) if alert.origin == own => {
                if let Err(e) = handle.publish(&alert).await {
                    tracing::warn!(id = %alert.id, error = %e, "alert not gossiped");
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "alert gossip fell behind; peers fetch the rest on reconciliation"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Watches every alert (own and peers') for cross-site campaigns; the one
/// this node is to announce is signed, stored and announced like any alert.
async fn correlate(
    mut correlator: Correlator,
    mut rx: broadcast::Receiver<Alert>,
    alerts: broadcast::Sender<Alert>,
    store: Arc<Store>,
    key: SigningKey,
    own: String,
    mut policy: watch::Receiver<Arc<InForce>>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        if policy.has_changed().unwrap_or(false) {
            let rules = policy.borrow_and_update().policy.rules.clone();
            correlator.set_threshold(
                rules.campaign_min_nodes,
                rules.campaign_window_secs.saturating_mul(1_000_000_000),
            );
        }
        tokio::select! {
            got = rx.recv() => match got {
                Ok(a) => correlator.observe(&a),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
        }
        for campaign in correlator.ready(&own, amoskys_sensors::now_ns()) {
            announce(campaign, &store, &key, &alerts).await;
        }
    }
}

async fn announce(
    campaign: Campaign,
    store: &Arc<Store>,
    key: &SigningKey,
    alerts: &broadcast::Sender<Alert>,
) {
    {
        let store = store.clone();
        let key = key.clone();
        let signed =
            tokio::task::spawn_blocking(move || campaign_alert(&store, &key, campaign)).await;
        match signed {
            Ok(Ok(a)) => {
                tracing::info!(id = %a.id, technique = %a.body.technique, subject = %a.body.subject, "cross-site campaign raised");
                let _ = alerts.send(a);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot store a campaign alert"),
            Err(e) => tracing::error!(error = %e, "campaign task failed"),
        }
    }
}

fn campaign_alert(
    store: &Store,
    key: &SigningKey,
    c: Campaign,
) -> Result<Alert, crate::storage::StorageError> {
    let mut evidence = vec![("nodes".to_owned(), c.references.len().to_string())];
    evidence.extend(
        c.references
            .iter()
            .map(|(origin, id)| (format!("report.{origin}"), id.clone())),
    );
    evidence.truncate(amoskys_mesh::alert::MAX_EVIDENCE);
    let body = AlertBody {
        seq: store.next_alert_seq()?,
        time_ns: c.time_ns,
        severity: c.severity,
        category: c.category,
        technique: c.technique,
        rule: CAMPAIGN_RULE.to_owned(),
        score: 1.0,
        subject: c.subject,
        evidence,
    };
    let alert = Alert::sign(body, key);
    store.put_alerts(std::slice::from_ref(&alert))?;
    Ok(alert)
}

/// Stores each verified alert from a peer, then acknowledges it; a new one
/// also goes to the live stream.
async fn store_received(
    mut rx: mpsc::Receiver<Received>,
    store: Arc<Store>,
    alerts: broadcast::Sender<Alert>,
    metrics: Arc<Metrics>,
) {
    while let Some(r) = rx.recv().await {
        let store = store.clone();
        let alert = r.alert.clone();
        let stored = tokio::task::spawn_blocking(move || store.put_alerts(&[alert])).await;
        match stored {
            Ok(Ok(new)) => {
                if new > 0 {
                    let age = amoskys_sensors::now_ns().saturating_sub(r.alert.body.time_ns);
                    metrics.mesh_propagation_seconds.observe(age as f64 / 1e9);
                    tracing::info!(id = %r.alert.id, origin = %r.alert.origin, from = %r.from, rule = %r.alert.body.rule, "alert received from the mesh");
                    let _ = alerts.send(r.alert);
                }
                let _ = r.stored.send(true);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot store a peer's alert");
                let _ = r.stored.send(false);
            }
            Err(e) => {
                tracing::error!(error = %e, "alert store task failed");
                let _ = r.stored.send(false);
            }
        }
    }
}
