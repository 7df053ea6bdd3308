//! A running node: start, the event path from sensors to the store, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amoskys_learning::OwnSockets;
use amoskys_sensors::ebpf::{EbpfConfig, EbpfSensor};
use amoskys_sensors::flows::{FlowConfig, FlowSensor};
use amoskys_sensors::mqtt::MqttSensor;
use amoskys_sensors::procfs::{ProcfsConfig, ProcfsSensor};
use amoskys_sensors::snmp::{SnmpConfig, SnmpSensor};
use amoskys_sensors::{Event, EventSink, HealthState, Sensor, SensorStats, event_channel};
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{self, ApiState, NodeInfo};
use crate::cluster::ClusterNode;
use crate::config::{Config, Problem};
use crate::detect::{AnomalyDetection, Detector, follow_mesh_ports, listening_ports};
use crate::identity::{Identity, IdentityError};
use crate::ingest;
use crate::metrics::Metrics;
use crate::models::{ModelSet, Trainer};
use crate::peering::{Peering, PeeringError};
use crate::policy::{InForce, Policy};
use crate::storage::{StorageError, Store};
use crate::workspace::Workspace;

mod handles;

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Alerts buffered for each live stream subscriber before it lags.
const ALERT_STREAM_CAPACITY: usize = 1024;
/// How long shutdown waits for open API connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the last user of the database to let go.
const STORE_RELEASE: Duration = Duration::from_secs(10);
/// Requests from peers (Raft, joins) waiting for a handler.
const REQUEST_QUEUE: usize = 1024;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration:\n  {}", render(.0))]
    Config(Vec<Problem>),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen for the API on {addr} (api.listen): {source}")]
    ApiBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the event writer thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot start the mesh: {0}")]
    Mesh(#[from] PeeringError),
    #[error("cannot start consensus: {0}")]
    Cluster(#[from] amoskys_consensus::ClusterError),
    #[error("{0}")]
    Workspace(#[from] crate::workspace::live::OpenError),
    #[error("the local admin credential: {0}")]
    AdminKey(#[from] crate::auth::KeyError),
    #[error("cannot serve the API over TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// What a lab can attach to a node it starts.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Gets a copy of every application message the node's mesh sends.
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<amoskys_mesh::Tapped>>,
    /// How the node behaves as a site in federated rounds.
    pub site: crate::federation::SiteBehaviour,
    /// Serves the API without authentication: only for the benchmark that
    /// measures what authentication costs (`benches/auth.rs`). No
    /// configuration or flag reaches it.
    pub unauthenticated_api_for_benchmarks: bool,
}

/// A running node. Many can run in one process (simulations do), each with
/// its own data directory and API address.
#[derive(Debug)]
pub struct Node {
    identity: Identity,
    api_addr: SocketAddr,
    store: Arc<Store>,
    sensors: Vec<Box<dyn Sensor>>,
    events_tx: Option<mpsc::Sender<Event>>,
    alerts: broadcast::Sender<amoskys_mesh::Alert>,
    writer: Option<JoinHandle<()>>,
    trainer: Option<Arc<std::sync::Mutex<Trainer>>>,
    peering: Option<Peering>,
    cluster: Option<ClusterNode>,
    workspace: Arc<Workspace>,
    shutdown_tx: watch::Sender<bool>,
    restart: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Validates the configuration, opens identity and storage, starts the
    /// sensors and serves the API. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        Node::start_with(config, Hooks::default()).await
    }

    /// [`Node::start`] with hooks for tests, labs and simulations.
    pub async fn start_with(config: Config, hooks: Hooks) -> Result<Node, NodeError> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(NodeError::Config(problems));
        }
        let api_listen = config
            .api_listen()
            .map_err(|p| NodeError::Config(vec![p]))?;
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|source| StorageError::Unwritable {
            path: data_dir.clone(),
            source,
        })?;
        let store = Arc::new(Store::open(&data_dir.join("db"))?);
        // A staged successor key takes over before anything signs.
        let handover = crate::rotation::complete(&data_dir, store.last_alert_seq()?)?;
        let (identity, created) = Identity::load_or_create(&data_dir)?;
        let id = identity.peer_id().to_string();
        if created {
            tracing::info!(node = %id, path = %data_dir.join(crate::identity::KEY_FILE).display(), "created node key");
        }
        let admin = crate::auth::ensure_local_admin(&data_dir)?;
        let workspace = Workspace::open(
            store.clone(),
            identity.signing_key().clone(),
            config.workspace_settings(),
        )?;

        let (events_tx, events_rx) = event_channel(config.node.event_queue);
        let mut sensors: Vec<Box<dyn Sensor>> = Vec::new();
        if config.sensors.procfs.enabled {
            sensors.push(Box::new(ProcfsSensor::new(ProcfsConfig {
                interval: config.procfs_interval(),
                host: id.clone(),
                sockets: config.sensors.procfs.sockets,
            })));
        }
        let flows = &config.sensors.flows;
        if flows.enabled {
            sensors.push(Box::new(FlowSensor::new(FlowConfig {
                host: id.clone(),
                interfaces: flows.interfaces.clone(),
                idle_timeout: Duration::from_millis(flows.idle_timeout_ms),
                active_timeout: Duration::from_millis(flows.active_timeout_ms),
                max_flows: flows.max_flows,
            })));
        }
        let snmp = &config.sensors.snmp;
        let mut snmp_devices = None;
        if snmp.enabled && !snmp.devices.is_empty() {
            let sensor = SnmpSensor::new(SnmpConfig {
                host: id.clone(),
                interval: Duration::from_millis(snmp.interval_ms),
                timeout: Duration::from_millis(snmp.timeout_ms),
                devices: config.snmp_devices(),
            });
            snmp_devices = Some(sensor.device_status());
            sensors.push(Box::new(sensor));
        }
        let mut mqtt = None;
        if config.sensors.mqtt.active() {
            let settings = config
                .sensors
                .mqtt
                .sensor_config(&id)
                .map_err(|p| NodeError::Config(vec![p]))?;
            let sensor = MqttSensor::new(settings);
            mqtt = Some(sensor.status());
            sensors.push(Box::new(sensor));
        }
        if config.sensors.ebpf.enabled {
            sensors.push(Box::new(EbpfSensor::new(EbpfConfig {
                host: id.clone(),
                watch_paths: config.sensors.ebpf.watch_paths.clone(),
            })));
        }
        let stats: Vec<Arc<SensorStats>> = sensors.iter().map(|s| s.stats()).collect();
        let metrics = Arc::new(Metrics::new(VERSION, stats.clone(), snmp_devices.clone()));
        metrics.set_workspace(workspace.clone());
        let (alerts_tx, _) = broadcast::channel(ALERT_STREAM_CAPACITY);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // Outputs follow the alerts from the first one on.
        let outputs =
            crate::outputs::Outputs::start(&config, &id, &data_dir, &alerts_tx, &shutdown_rx)
                .map_err(NodeError::Config)?;
        metrics.set_outputs(outputs.stats.clone());
        let models = Arc::new(ModelSet::load(&store)?);
        // Admitted members' addresses: out of anomaly baselines and scoring.
        let members = crate::members::MemberAddresses::default();
        let mut learning = config.learning();
        learning.member_addresses = members.clone();
        // The configuration's policy applies until the cluster commits one.
        let local = Policy::from_config(&config).map_err(|p| NodeError::Config(vec![p]))?;
        let (policy_tx, policy_rx) = watch::channel(Arc::new(InForce {
            policy: local.clone(),
            version: None,
            error: None,
        }));
        let learner = crate::verdicts::Learner::new(store.clone(), policy_rx.clone());
        // The node's own listeners (API and mesh, bound below) never alert.
        let (own_tx, own_rx) = watch::channel(OwnSockets::this_process());
        let detector = if config.detection.enabled {
            let privacy = config.privacy().map_err(|p| NodeError::Config(vec![p]))?;
            Some(
                Detector::new(
                    local.rules.clone(),
                    privacy,
                    identity.signing_key().clone(),
                    config.detection.suppress_secs,
                    alerts_tx.clone(),
                )
                .with_anomaly(AnomalyDetection {
                    members: members.clone(),
                    ..AnomalyDetection::new(learning.window_ns, models.clone())
                })
                .with_policy(policy_rx.clone())
                .with_intel(workspace.matcher())
                .with_verdicts(workspace.verdicts())
                .with_remembered(store.suppression_marks()?)
                .with_own_sockets(own_rx)
                .with_listener_baseline(listening_ports(&config.sensors.procfs)),
            )
        } else {
            None
        };
        let trainer = if config.learning.enabled {
            let t = Trainer::spawn(store.clone(), models.clone(), learning)
                .map_err(NodeError::Thread)?;
            Some(Arc::new(std::sync::Mutex::new(t)))
        } else {
            None
        };
        let writer = ingest::spawn_writer(store.clone(), metrics.clone(), events_rx, detector)
            .map_err(NodeError::Thread)?;
        for sensor in &mut sensors {
            let sink = EventSink::new(events_tx.clone(), sensor.stats());
            if let Err(e) = sensor.start(sink) {
                tracing::warn!(sensor = sensor.name(), error = %e, "sensor unavailable; the node runs without it");
                sensor
                    .stats()
                    .set_health(HealthState::Unhealthy, e.to_string());
            }
        }

        let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE);
        let peering = if config.mesh.enabled {
            let p = Peering::start(
                &config,
                &identity,
                store.clone(),
                metrics.clone(),
                crate::peering::Links {
                    alerts: alerts_tx.clone(),
                    requests: requests_tx,
                    policy: policy_rx.clone(),
                    tap: hooks.tap,
                },
            )
            .await?;
            metrics.set_mesh(p.handle.stats().clone());
            Some(p)
        } else {
            None
        };
        let mesh = peering.as_ref().map(|p| p.handle.clone());
        let workspace_mesh = mesh.clone();
        let cluster = ClusterNode::start(
            &config,
            amoskys_consensus::NodeId(identity.signing_key().verifying_key().to_bytes()),
            crate::cluster::Parts {
                store: store.clone(),
                mesh: mesh.clone(),
                requests: mesh.is_some().then_some(requests_rx),
                policy: policy_tx,
                trainer: trainer.clone(),
                models: models.clone(),
                key: identity.signing_key().clone(),
                site: hooks.site,
                workspace: workspace.clone(),
                admin: admin.public_key_hex(),
                handover: handover.map(|h| (h, data_dir.clone())),
                learner: learner.clone(),
            },
        )
        .await?;
        metrics.set_cluster(cluster.cluster.clone(), cluster.federation.stats());

        let listener = tokio::net::TcpListener::bind(api_listen)
            .await
            .map_err(|source| NodeError::ApiBind {
                addr: api_listen,
                source,
            })?;
        let tls = crate::tls::server(
            &config.api.tls,
            &identity,
            &data_dir,
            api_listen,
            &config.node_name(),
        )?;
        if let Some(t) = &tls {
            tracing::info!(fingerprint = %t.fingerprint, cert = ?t.cert_file, "api serves tls");
        }
        let restart = Arc::new(tokio::sync::Notify::new());
        let api_addr = listener.local_addr().map_err(|source| NodeError::ApiBind {
            addr: api_listen,
            source,
        })?;
        own_tx.send_modify(|o| o.ports.push(api_addr.port()));
        let api_tls = tls.as_ref().map(|t| api::Tls {
            config: t.config.clone(),
            metrics: metrics.clone(),
        });
        // Drift episodes queue retraining or a federated round here.
        let (drift_tx, drift_rx) = mpsc::channel(crate::drift::ACTIONS_QUEUE);
        models.drift().send_actions_to(drift_tx);
        let drift_task = tokio::spawn(crate::drift::act(
            drift_rx,
            trainer.clone(),
            cluster.federation.clone(),
            policy_rx.clone(),
            shutdown_rx.clone(),
        ));
        let response = Arc::new(crate::response::Response::new(crate::response::nft::TABLE));
        metrics.set_response(response.clone());
        let bouncer = tokio::spawn(crate::response::bouncer::run(
            crate::response::bouncer::Parts {
                me: id.to_string(),
                policy: policy_rx.clone(),
                alerts: alerts_tx.subscribe(),
                workspace: workspace.clone(),
                applied: cluster.cluster.applied(),
                mesh: mesh.clone(),
                response: response.clone(),
                nft: crate::response::nft::Nft::default(),
                shutdown: shutdown_rx.clone(),
            },
        ));
        let state = ApiState {
            info: Arc::new(NodeInfo {
                id: id.clone(),
                public_key: identity.public_key_hex(),
                name: config.node_name(),
                version: VERSION.to_owned(),
                data_dir: data_dir.display().to_string(),
                started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                tls_fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
            }),
            started: Instant::now(),
            sensors: stats,
            store: store.clone(),
            metrics,
            alerts: alerts_tx.clone(),
            shutdown: shutdown_rx.clone(),
            snmp_devices,
            mqtt,
            mesh,
            models,
            trainer: trainer.clone(),
            cluster: cluster.cluster.clone(),
            federation: cluster.federation.clone(),
            policy: policy_rx,
            workspace: workspace.clone(),
            learner: learner.clone(),
            key: Arc::new(identity.signing_key().clone()),
            authority: Arc::new(crate::auth::Authority::new(
                id.clone(),
                &admin,
                cluster.cluster.applied(),
            )),
            console: Arc::new(crate::console::Console::new(tls.is_some())),
            restart: restart.clone(),
            outputs: outputs.stats,
            response,
        };
        let mut tasks = vec![drift_task, bouncer];
        tasks.push(tokio::spawn(crate::members::follow(
            members,
            cluster.cluster.applied(),
            state.mesh.clone(),
            shutdown_rx.clone(),
        )));
        tasks.extend(outputs.tasks);
        if let Some(p) = &peering {
            tasks.push(tokio::spawn(follow_mesh_ports(p.handle.clone(), own_tx)));
        }
        let limits = api::Limits::from_config(&config.api);
        let router = if hooks.unauthenticated_api_for_benchmarks {
            tracing::warn!("the API serves without authentication (benchmark hook)");
            api::router_without_auth(state, &limits)
        } else {
            api::router(state, &limits)
        };
        let api_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            api::serve(listener, router, &limits, api_tls, api_shutdown).await;
        }));
        if let Some(mesh) = workspace_mesh {
            tasks.push(tokio::spawn(
                workspace.clone().run(mesh, shutdown_rx.clone()),
            ));
        }
        tasks.push(tokio::spawn(learner.clone().follow(
            workspace.clone(),
            config.event_retention(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::storage::upkeep::retention(
            store.clone(),
            config.event_retention(),
            config.storage.event_max_mb.saturating_mul(1 << 20),
            shutdown_rx,
        )));

        tracing::info!(node = %id, api = %api_addr, data_dir = %data_dir.display(), version = VERSION, "node started");
        Ok(Node {
            identity,
            api_addr,
            store,
            sensors,
            events_tx: Some(events_tx),
            alerts: alerts_tx,
            writer: Some(writer),
            trainer,
            peering,
            cluster: Some(cluster),
            workspace,
            shutdown_tx,
            restart,
            tasks,
        })
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        self.shutdown().await;
    }

    /// Resolves when the node asks to be restarted: a successor key was
    /// staged (`POST /api/v1/node/key/rotate`) and takes over at the next
    /// start. `amoskys run` then shuts the node down and starts it again.
    pub async fn restart_requested(&self) {
        self.restart.notified().await;
    }

    /// Runs until SIGINT or SIGTERM (then shuts down and answers `false`)
    /// or until a restart is requested (shuts down, answers `true`).
    pub async fn run_until_signal_or_restart(self) -> bool {
        let restart = tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("shutdown signal received");
                false
            }
            () = self.restart_requested() => {
                tracing::info!("restarting");
                true
            }
        };
        self.shutdown().await;
        restart
    }

    /// Stops the API and the sensors, writes every queued event, and closes
    /// the database.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        for mut task in self.tasks.drain(..) {
            // A client that keeps a connection open cannot hold the node.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                tracing::warn!("api connections still open after the grace period; closing them");
                task.abort();
            }
        }
        if let Some(c) = self.cluster.take() {
            c.shutdown().await;
        }
        if let Some(p) = self.peering.take() {
            p.shutdown().await;
        }
        let mut sensors = std::mem::take(&mut self.sensors);
        let events_tx = self.events_tx.take();
        let writer = self.writer.take();
        let trainer = self.trainer.take();
        // Sensor threads, the writer and the trainer are joined off the
        // async runtime.
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(t) = trainer
                && let Ok(mut t) = t.lock()
            {
                t.stop();
            }
            for sensor in &mut sensors {
                sensor.stop();
            }
            drop(sensors);
            drop(events_tx);
            if let Some(writer) = writer
                && writer.join().is_err()
            {
                tracing::error!("event writer thread panicked");
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("shutdown task failed");
        }
        let id = self.identity.peer_id();
        // The database closes (and its lock file frees) with its last
        // holder: a blocking task still training on it may hold it a
        // moment after the node's own parts are gone.
        let store = self.store.clone();
        drop(self);
        crate::storage::upkeep::close(store, STORE_RELEASE).await;
        tracing::info!(node = %id, "node stopped");
    }

    /// The database directory of this node.
    pub fn db_path(&self) -> PathBuf {
        self.store.path().to_owned()
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
