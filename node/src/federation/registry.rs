//! The node's side of the model registry: blobs by SHA-256 (kept, served,
//! fetched from peers and checked) and the active version put in use.

use amoskys_consensus::Applied;
use amoskys_learning::anomaly::AnomalyModel;
use amoskys_learning::features::EntityKind;
use amoskys_mesh::Service;

use super::{Federation, sha256_hex};
use crate::models::info_for;

impl Federation {
    /// A blob by hash: kept here, or fetched from a peer and checked.
    pub(super) async fn blob(&self, sha: &str) -> Result<Vec<u8>, String> {
        if let Some(b) = self.store.get_blob(sha).map_err(|e| e.to_string())? {
            return Ok(b);
        }
        let mesh = self
            .mesh
            .as_ref()
            .ok_or("not held here and no mesh to fetch it")?;
        let peers = mesh.peers().await.map_err(|e| e.to_string())?;
        for p in peers {
            let Ok(peer) = p.id.parse() else { continue };
            match mesh
                .request(peer, Service::Blob, sha.as_bytes().to_vec())
                .await
            {
                Ok(bytes) if sha256_hex(&bytes) == sha => {
                    self.store
                        .put_blob(sha, &bytes)
                        .map_err(|e| e.to_string())?;
                    return Ok(bytes);
                }
                Ok(_) => {
                    tracing::warn!(peer = %p.id, %sha, "peer sent a blob that does not match its hash")
                }
                Err(e) => tracing::debug!(peer = %p.id, error = %e, "blob not fetched"),
            }
        }
        Err(format!("no peer holds blob {sha}"))
    }

    /// Puts the registry's active version in use.
    pub(super) async fn install_active(&self, applied: &Applied) {
        let Some(active) = applied.state.active_model() else {
            return;
        };
        let Some(kind) = EntityKind::ALL
            .into_iter()
            .find(|k| k.schema() == active.model.schema)
        else {
            tracing::warn!(schema = %active.model.schema, "active model for a schema this build does not compute");
            return;
        };
        self.models.pin(kind);
        if self
            .models
            .get(kind)
            .is_some_and(|l| l.info.sha256 == active.model.sha256)
        {
            return;
        }
        let bytes = match self.blob(&active.model.sha256).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(version = active.version, error = %e, "active model not installed");
                return;
            }
        };
        let model = match AnomalyModel::from_bytes(&bytes) {
            Ok(m) if m.schema() == kind.schema() && m.inputs() == kind.features().len() => m,
            Ok(_) => {
                tracing::error!(
                    version = active.version,
                    "active model does not match its schema"
                );
                return;
            }
            Err(e) => {
                tracing::error!(version = active.version, error = %e, "active model unreadable");
                return;
            }
        };
        let info = info_for(kind, &model, 0.0);
        match self.models.install(&self.store, kind, model, info) {
            Ok(info) => {
                tracing::info!(version = active.version, entity = kind.as_str(), sha256 = %info.sha256, "registry model in use")
            }
            Err(e) => tracing::error!(error = %e, "cannot store the registry model"),
        }
    }
}
