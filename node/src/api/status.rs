//! `GET /api/v1/node`: the node at a glance — identity, sensors, peers, its
//! place in the cluster, and the policy and model versions it runs.

use amoskys_mesh::net::PeerInfo;
use amoskys_sensors::Health;
use amoskys_sensors::mqtt::MqttStatus;
use amoskys_sensors::snmp::DeviceStatus;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{ApiState, NodeInfo};

/// Body of `GET /api/v1/node`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub info: NodeInfo,
    pub uptime_secs: u64,
    pub events_stored: u64,
    pub sensors: Vec<SensorStatus>,
    /// SNMP devices and how their last poll went.
    #[serde(default)]
    pub snmp_devices: Vec<DeviceStatus>,
    /// The MQTT broker connection and its message counts.
    #[serde(default)]
    pub mqtt: Option<MqttStatus>,
    /// Connected mesh peers (empty when the mesh is off).
    pub peers: Vec<PeerInfo>,
    /// This node's Raft view: state (role), term, leader, voters, learners,
    /// quorum — the body of `GET /api/v1/cluster`'s `cluster`.
    pub cluster: serde_json::Value,
    /// The committed policy version in force (`None`: the configuration's).
    pub policy_version: Option<u64>,
    /// A committed policy this node could not apply.
    pub policy_error: Option<String>,
    /// The registry's active model version, used by every node.
    pub model_version: Option<u64>,
    /// The alert outputs (`[[outputs]]`): state and counters.
    #[serde(default)]
    pub outputs: Vec<crate::outputs::OutputStatus>,
    /// The bouncer ([`crate::response`]): mode, health and its reason,
    /// what it enforces and refused.
    #[serde(default)]
    pub response: Option<crate::response::BouncerStatus>,
}

/// One sensor in `GET /api/v1/node`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensorStatus {
    pub name: String,
    pub state: String,
    pub message: String,
    pub events: u64,
    pub drops: u64,
    pub errors: u64,
}

pub(super) async fn node(State(state): State<ApiState>) -> Json<NodeStatus> {
    let sensors = state
        .sensors
        .iter()
        .map(|s| {
            let Health { state, message } = s.health();
            let (events, drops, errors) = s.counts();
            SensorStatus {
                name: s.name().to_owned(),
                state: serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                message,
                events,
                drops,
                errors,
            }
        })
        .collect();
    let peers = match &state.mesh {
        Some(mesh) => mesh.peers().await.unwrap_or_default(),
        None => Vec::new(),
    };
    // The quorum as the leader sees it, as `GET /api/v1/cluster` shows it.
    let mut cluster = state.cluster.status();
    cluster.quorum = state.cluster.quorum().await;
    let in_force = state.policy.borrow().clone();
    let model_version = state.cluster.applied().borrow().state.active_model;
    Json(NodeStatus {
        info: state.info.as_ref().clone(),
        uptime_secs: state.started.elapsed().as_secs(),
        events_stored: state.store.events_written(),
        sensors,
        snmp_devices: state
            .snmp_devices
            .as_ref()
            .map(|d| {
                d.lock()
                    .map(|d| d.clone())
                    .unwrap_or_else(|p| p.into_inner().clone())
            })
            .unwrap_or_default(),
        mqtt: state
            .mqtt
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        peers,
        cluster: serde_json::to_value(cluster).unwrap_or_default(),
        policy_version: in_force.version,
        policy_error: in_force.error.clone(),
        model_version,
        outputs: state.outputs.iter().map(|o| o.status()).collect(),
        response: Some(state.response.status()),
    })
}
