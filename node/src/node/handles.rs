//! What a running [`Node`] hands out: its identity, addresses, store,
//! workspace, federation and cluster, and the labs' way in (`inject`,
//! `subscribe_alerts`).

use std::net::SocketAddr;
use std::sync::Arc;

use amoskys_sensors::Event;
use tokio::sync::broadcast;

use super::Node;
use crate::identity::Identity;
use crate::storage::Store;
use crate::workspace::Workspace;

impl Node {
    /// The node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Where the API actually listens (resolves a `:0` port).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The node's mesh, when it runs.
    pub fn mesh(&self) -> Option<&amoskys_mesh::MeshHandle> {
        self.peering.as_ref().map(|p| &p.handle)
    }

    /// The shared workspace (threat intel and case notes).
    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.workspace
    }

    /// The node's federation (rounds and the model registry).
    pub fn federation(&self) -> Option<&Arc<crate::federation::Federation>> {
        self.cluster.as_ref().map(|c| &c.federation)
    }

    /// The node's Raft member.
    pub fn cluster(&self) -> Option<&Arc<amoskys_consensus::Cluster>> {
        self.cluster.as_ref().map(|c| &c.cluster)
    }

    /// Feeds events to the node as if its sensors had observed them (labs
    /// and simulations); they are stored and run through detection.
    /// Returns how many were queued (a full queue drops the rest).
    pub fn inject(&self, events: Vec<Event>) -> usize {
        let Some(tx) = &self.events_tx else { return 0 };
        events
            .into_iter()
            .filter_map(|e| tx.try_send(e).ok())
            .count()
    }

    /// Every alert the node raises or receives from the mesh, as it
    /// happens.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<amoskys_mesh::Alert> {
        self.alerts.subscribe()
    }

    /// The node's database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}
