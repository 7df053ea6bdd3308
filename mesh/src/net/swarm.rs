//! Building the swarm: the behaviours (gossipsub with peer scoring,
//! identify, ping, Kademlia and sync, served to admitted members only;
//! request services; mDNS) and the transport (TCP+noise+yamux and QUIC, or
//! TCP behind a pre-shared key).

use std::net::SocketAddr;
use std::time::Duration;

use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, StreamProtocol, Swarm, Transport, identify, kad, mdns, noise, ping, tcp, yamux,
};
use sha2::{Digest, Sha256};

use super::frames::Frames;
use super::gate::Gated;
use super::{
    ALERT_TOPIC, KAD_PROTOCOL, MeshConfig, MeshError, PROTOCOL_VERSION, SYNC_PROTOCOL, SYNC_TIMEOUT,
};
use crate::alert::MAX_ALERT_BYTES;

/// Every connection is pinged this often; one that does not answer within
/// `PING_TIMEOUT` is closed (the mesh actor does so on the failure).
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// What identify tells members this node runs.
const AGENT_VERSION: &str = "amoskys";
use crate::rpc::{RPC_PROTOCOL, RpcCodec, Service};
use crate::sync::{SyncRequest, SyncResponse};

/// What the mesh serves its members, and no one else ([`Gated`]).
#[derive(NetworkBehaviour)]
pub(super) struct Members {
    pub(super) gossipsub: Frames,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub(super) sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    /// Peers this node refuses to be connected to (partition drills,
    /// operators' bans). First, so it refuses a connection before any other
    /// behaviour makes a handler for it: request-response counts a
    /// connection from its handler on, and a connection refused after that
    /// stayed counted (a debug assertion fired when the peer's last real
    /// connection closed; the fault explorer hit it with partitions).
    pub(super) blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    pub(super) members: Gated<Members>,
    /// Requests between nodes; a peer that is not admitted may only ask to
    /// join (checked per request, [`crate::rpc`]).
    pub(super) rpc: request_response::Behaviour<RpcCodec>,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
}

impl Behaviour {
    pub(super) fn gossipsub(&mut self) -> &mut gossipsub::Behaviour {
        self.members.inner_mut().gossipsub.inner_mut()
    }

    pub(super) fn sync(
        &mut self,
    ) -> &mut request_response::cbor::Behaviour<SyncRequest, SyncResponse> {
        &mut self.members.inner_mut().sync
    }

    pub(super) fn kad(&mut self) -> Option<&mut kad::Behaviour<kad::store::MemoryStore>> {
        self.members.inner_mut().kad.as_mut()
    }
}

/// The protocols of [`Members`], which a peer that is not admitted may
/// open only to have them refused and counted.
fn members_protocols() -> Vec<StreamProtocol> {
    vec![
        StreamProtocol::new("/meshsub/1.3.0"),
        StreamProtocol::new("/meshsub/1.2.0"),
        StreamProtocol::new("/meshsub/1.1.0"),
        StreamProtocol::new("/meshsub/1.0.0"),
        identify::PROTOCOL_NAME,
        identify::PUSH_PROTOCOL_NAME,
        ping::PROTOCOL_NAME,
        StreamProtocol::new(KAD_PROTOCOL),
        StreamProtocol::new(SYNC_PROTOCOL),
    ]
}

/// Peer scoring for a sparse alert topic: invalid messages (rejected
/// alerts) weigh heavily, and nothing penalises a peer for delivering few
/// messages (alerts are rare) or for sharing an address with other peers
/// (sites behind NAT, labs on one host). Scores come back to zero as
/// penalties decay.
fn peer_score_params() -> gossipsub::PeerScoreParams {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -1.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    params
        .topics
        .insert(IdentTopic::new(ALERT_TOPIC).hash(), topic);
    params
}

/// `/ip4/…/tcp/…` (and `/udp/…/quic-v1`) of a socket address.
pub fn tcp_multiaddr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

/// The IP and TCP port of a multiaddr, if it has both (the inverse of
/// [`tcp_multiaddr`]).
pub fn tcp_socket(m: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    for p in m.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) => return ip.map(|ip| SocketAddr::new(ip, port)),
            _ => {}
        }
    }
    None
}

pub(super) fn quic_multiaddr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip())
        .with(Protocol::Udp(addr.port()))
        .with(Protocol::QuicV1)
}

pub(super) fn build_swarm(cfg: &MeshConfig) -> Result<Swarm<Behaviour>, MeshError> {
    let err = |e: &dyn std::fmt::Display| MeshError::Transport(e.to_string());
    let behaviour = |key: &Keypair| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(MAX_ALERT_BYTES + 1024)
            .heartbeat_interval(Duration::from_millis(500))
            .message_id_fn(|m: &gossipsub::Message| {
                MessageId::from(hex::encode(&Sha256::digest(&m.data)[..16]))
            })
            .build()?;
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_cfg)?;
        gossipsub.with_peer_score(
            peer_score_params(),
            gossipsub::PeerScoreThresholds::default(),
        )?;
        let mdns = if cfg.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config {
                    query_interval: Duration::from_secs(30),
                    ..Default::default()
                },
                key.public().to_peer_id(),
            )?)
        } else {
            None
        };
        let members = Members {
            gossipsub: Frames::new(gossipsub),
            // Members only: they learn this node's listen addresses (for
            // Kademlia) and no library version.
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                    .with_agent_version(AGENT_VERSION.into()),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_EVERY)
                    .with_timeout(PING_TIMEOUT),
            ),
            kad: Toggle::from(cfg.kademlia.then(|| {
                let id = key.public().to_peer_id();
                let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                // The mesh walks itself, and only while short of peers.
                config.set_periodic_bootstrap_interval(None);
                // Only admitted peers enter the routing table: the mesh adds
                // them ([`kad::Event::RoutablePeer`]), so no member hands
                // out a stranger's address.
                config.set_kbucket_inserts(kad::BucketInserts::Manual);
                let mut k =
                    kad::Behaviour::with_config(id, kad::store::MemoryStore::new(id), config);
                // Answer queries even before an address is confirmed
                // (private and air-gapped networks have no outside view).
                k.set_mode(Some(kad::Mode::Server));
                k
            })),
            sync: request_response::cbor::Behaviour::new(
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(SYNC_TIMEOUT),
            ),
        };
        Ok(Behaviour {
            members: Gated::new(members, members_protocols()),
            blocked: Default::default(),
            mdns: Toggle::from(mdns),
            rpc: request_response::Behaviour::new(
                [(StreamProtocol::new(RPC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Service::Blob.timeout()),
            ),
        })
    };
    let builder = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone()).with_tokio();
    let swarm = match cfg.psk {
        None => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| err(&e))?
            .with_quic()
            .with_behaviour(behaviour)
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build(),
        Some(psk) => builder
            .with_other_transport(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    let psk = PnetConfig::new(PreSharedKey::new(psk));
                    Ok(
                        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                            .and_then(move |socket, _| psk.handshake(socket))
                            .upgrade(Version::V1)
                            .authenticate(noise::Config::new(key)?)
                            .multiplex(yamux::Config::default()),
                    )
                },
            )
            .map_err(|e| err(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build(),
    };
    Ok(swarm)
}
