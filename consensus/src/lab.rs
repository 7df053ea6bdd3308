//! In-process members on loopback, for tests, benchmarks and simulations:
//! each has its own RocksDB, its own mesh listening on 127.0.0.1 (real
//! libp2p: TCP, noise, yamux) and its own [`Cluster`] serving Raft and join
//! requests.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amoskys_mesh::net::{self, MeshHandle};
use amoskys_mesh::{InboundRequest, MeshConfig, Received, Service, ValidatorConfig};
use libp2p_identity::Keypair;
use rocksdb::{ColumnFamilyDescriptor, DB, Options};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::NodeId;
use crate::cluster::{Cluster, ClusterSettings};
use crate::store::{LOG_CF, STATE_CF};

/// Opens (or creates) a RocksDB with the Raft column families.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, String> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [LOG_CF, STATE_CF].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    DB::open_cf_descriptors(&opts, dir, cfs)
        .map(Arc::new)
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))
}

/// One member: mesh, cluster and the task that answers peers' requests.
#[derive(Debug)]
pub struct LabMember {
    pub cluster: Arc<Cluster>,
    pub mesh: MeshHandle,
    pub id: NodeId,
    tasks: Vec<JoinHandle<()>>,
}

impl LabMember {
    /// Starts a member whose data lives in `dir` (reopened if it exists),
    /// admitting `admitted` keys on the mesh and dialling `bootstrap`.
    pub async fn start(
        key: &Keypair,
        dir: &Path,
        bootstrap: Vec<libp2p::Multiaddr>,
        admitted: Vec<[u8; 32]>,
        tune: impl FnOnce(&mut ClusterSettings),
    ) -> Result<LabMember, String> {
        let id = NodeId::from_peer_id(&key.public().to_peer_id()).ok_or("not an ed25519 key")?;
        let (received_tx, mut received_rx) = mpsc::channel::<Received>(64);
        let (req_tx, mut req_rx) = mpsc::channel::<InboundRequest>(256);
        let (mesh, mesh_task) = net::start(
            MeshConfig {
                bootstrap,
                validator: ValidatorConfig {
                    admitted,
                    ..ValidatorConfig::default()
                },
                requests: Some(req_tx),
                ..MeshConfig::loopback(key.clone())
            },
            received_tx,
        )
        .await
        .map_err(|e| e.to_string())?;
        let db = open_db(dir)?;
        let mut settings = ClusterSettings::new(id, String::new());
        // Named after its directory, as a node after its configuration.
        settings.name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        tune(&mut settings);
        let cluster = Arc::new(
            Cluster::start(settings, db, Some(mesh.clone()))
                .await
                .map_err(|e| e.to_string())?,
        );
        let drain = tokio::spawn(async move {
            while let Some(r) = received_rx.recv().await {
                let _ = r.stored.send(true);
            }
        });
        let c = cluster.clone();
        let serve = tokio::spawn(async move {
            while let Some(r) = req_rx.recv().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let answer = match r.service {
                        Service::Raft => c.serve(&r.peer, &r.body).await,
                        Service::Join => c.serve_join(&r.peer, &r.body).await,
                        other => Err(format!("{} is not served here", other.as_str())),
                    };
                    let _ = r.reply.send(answer);
                });
            }
        });
        Ok(LabMember {
            cluster,
            mesh,
            id,
            tasks: vec![mesh_task, drain, serve],
        })
    }

    /// The member's TCP address with its peer id.
    pub async fn addr(&self) -> Result<libp2p::Multiaddr, String> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let addrs = self.mesh.listen_addrs().await.map_err(|e| e.to_string())?;
            if let Some(a) = addrs.into_iter().find(|a| a.to_string().contains("/tcp/")) {
                return Ok(a.with(libp2p::multiaddr::Protocol::P2p(self.mesh.peer_id())));
            }
            if Instant::now() > end {
                return Err("the mesh never listened".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops Raft, the mesh and the serving task; the database closes once
    /// the last handle is gone.
    pub async fn stop(self) {
        self.cluster.shutdown().await;
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
