//! Who is served. Admission changes, the peers that are not admitted
//! (joiners: they may ask to join and nothing else, for a while, a bounded
//! number at once), refusals counted by reason, and the events of the
//! members-only protocols (gossip, ping, identify, Kademlia).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, identify, kad, ping, request_response};
use tokio::sync::oneshot;

use super::frames::FramesEvent;
use super::swarm::MembersEvent;
use super::{
    Actor, Done, KAD_PROTOCOL, Received, SYNC_PROTOCOL, TARGET_PEERS, ed25519_key, now_ns,
};
use super::{MAX_PENDING, STORE_WAIT};
use crate::gossip::Reject;

/// Longest a peer that is not admitted stays connected: time to ask to
/// join (a joining node asks every 3 s) and hear the answer.
pub const JOIN_WINDOW: Duration = Duration::from_secs(10);
/// A joiner's connection stays this long once a request of its has been
/// answered, so the answer is delivered before the connection closes.
const JOIN_LINGER: Duration = Duration::from_millis(500);
/// Connections of peers that are not admitted, at once; more are refused
/// and counted (`joiners_full`).
pub const MAX_JOINERS: usize = 32;
/// How often joiners past their time are disconnected.
pub(super) const JOIN_SWEEP: Duration = Duration::from_millis(250);

/// A connection of a peer that was not admitted when it connected.
pub(super) struct Joiner {
    peer: PeerId,
    until: Instant,
    /// Where this node dialled it, if it did.
    dialled: Option<Multiaddr>,
    /// It asked to join.
    asked: bool,
}

impl Actor {
    pub(super) fn is_admitted(&self, peer: &PeerId) -> bool {
        ed25519_key(peer).is_some_and(|k| self.admitted.contains(&k))
    }

    /// Replaces the admitted keys. A peer that lost admission loses service
    /// at once: its connections are closed and Kademlia forgets it. A peer
    /// admitted now is served on its next connection: one this node dialled
    /// is dialled again at once (a node that was just let in reaches the
    /// members this way), and its joiner's connection ends shortly after.
    pub(super) fn set_admitted(&mut self, keys: Vec<[u8; 32]>) {
        self.validator.set_admitted(keys.iter().copied());
        let admitted: super::Admitted = Arc::new(keys.into_iter().collect());
        self.admitted = admitted.clone();
        self.swarm
            .behaviour_mut()
            .members
            .set_admitted(admitted.clone());
        let members = &self.swarm.behaviour().members;
        let removed: Vec<PeerId> = self
            .peers
            .keys()
            .filter(|p| members.is_open(p) && !members.admits(p))
            .copied()
            .collect();
        for peer in removed {
            tracing::info!(%peer, "peer no longer admitted; disconnected");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let admits = |p: &PeerId| ed25519_key(p).is_some_and(|k| admitted.contains(&k));
        let linger = Instant::now() + JOIN_LINGER;
        let mut redial = Vec::new();
        for j in self.joiners.values_mut() {
            if admits(&j.peer)
                && let Some(addr) = j.dialled.take()
            {
                j.until = j.until.min(linger);
                redial.push(addr);
            }
        }
        for addr in redial {
            tracing::debug!(%addr, "peer admitted; dialling it again");
            let _ = self.swarm.dial(addr);
        }
        if let Some(k) = self.swarm.behaviour_mut().kad() {
            let strangers: Vec<PeerId> = k
                .kbuckets()
                .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
                .filter(|p| !admits(p))
                .collect();
            for p in strangers {
                k.remove_peer(&p);
            }
        }
    }

    /// Takes note of a new connection: one of a peer that is not admitted
    /// gets `JOIN_WINDOW`, or is closed when `MAX_JOINERS` are connected.
    pub(super) fn joined(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        dialled: Option<Multiaddr>,
    ) {
        if !self.swarm.behaviour().members.is_closed(connection) {
            return;
        }
        if self.joiners.len() >= MAX_JOINERS {
            self.stats.reject(Reject::JoinersFull);
            tracing::debug!(%peer, "too many joiners connected; connection refused");
            let _ = self.swarm.close_connection(connection);
            return;
        }
        let until = Instant::now() + JOIN_WINDOW;
        self.joiners.insert(
            connection,
            Joiner {
                peer,
                until,
                dialled,
                asked: false,
            },
        );
    }

    /// A join request came on `connection`.
    pub(super) fn asked_to_join(&mut self, connection: ConnectionId) {
        if let Some(j) = self.joiners.get_mut(&connection) {
            j.asked = true;
        }
    }

    /// A request on `connection` was answered: a joiner that asked to join
    /// goes once the answer is out. (Other requests, refused, do not end
    /// it early: a member's Raft request to a node that does not know the
    /// members yet is served on the same connection once it does.)
    pub(super) fn answered(&mut self, connection: ConnectionId) {
        if let Some(j) = self.joiners.get_mut(&connection)
            && j.asked
        {
            j.until = j.until.min(Instant::now() + JOIN_LINGER);
        }
    }

    /// Closes the joiners' connections whose time is over.
    pub(super) fn sweep_joiners(&mut self) {
        let now = Instant::now();
        let over: Vec<ConnectionId> = self
            .joiners
            .iter()
            .filter(|(_, j)| j.until <= now)
            .map(|(c, _)| *c)
            .collect();
        for connection in over {
            if let Some(j) = self.joiners.remove(&connection) {
                tracing::debug!(peer = %j.peer, "joiner disconnected");
                let _ = self.swarm.close_connection(connection);
            }
        }
    }

    /// A stream a peer that is not admitted opened, refused by the gate.
    pub(super) fn refused(&mut self, peer: PeerId, protocol: &str) {
        let reason = if protocol.starts_with("/meshsub/") {
            Reject::OutsiderGossip
        } else if protocol == SYNC_PROTOCOL {
            Reject::OutsiderSync
        } else if protocol == KAD_PROTOCOL {
            Reject::OutsiderKad
        } else {
            Reject::OutsiderOther
        };
        self.stats.reject(reason);
        tracing::debug!(%peer, protocol, reason = reason.as_str(), "outsider's stream refused");
    }

    pub(super) fn member_event(&mut self, event: MembersEvent) {
        match event {
            MembersEvent::Gossipsub(FramesEvent::Inner(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.message(propagation_source, message_id, &message.data),
            MembersEvent::Gossipsub(FramesEvent::Refused { peer, reason }) => {
                self.stats.reject(reason);
                tracing::debug!(%peer, reason = reason.as_str(), "gossip frame refused");
            }
            MembersEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                self.sync_event(peer, message);
            }
            MembersEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => self.sync_failed(peer, request_id, &error),
            MembersEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.rtt = Some(rtt);
                }
            }
            // A connection that stops answering pings (a link cut without
            // a reset, as a firewall drop does) is closed, so the next
            // request or redial opens a live one instead of waiting on it.
            MembersEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                tracing::debug!(%peer, error = %e, "ping failed; closing the connection");
                let _ = self.swarm.close_connection(connection);
            }
            MembersEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if !self.is_admitted(&peer_id) {
                    return;
                }
                let first = self.peers.len() == 1;
                if let Some(k) = self.swarm.behaviour_mut().kad() {
                    for addr in info.listen_addrs {
                        k.add_address(&peer_id, addr);
                    }
                    // The first peer known: walk for more at once.
                    if first {
                        let _ = k.bootstrap();
                    }
                }
            }
            // Kademlia inserts no peer by itself: members only.
            MembersEvent::Kad(kad::Event::RoutablePeer { peer, address }) => {
                if self.is_admitted(&peer)
                    && let Some(k) = self.swarm.behaviour_mut().kad()
                {
                    k.add_address(&peer, address);
                }
            }
            MembersEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                if self.peers.len() < TARGET_PEERS
                    && !self.peers.contains_key(&peer)
                    && peer != *self.swarm.local_peer_id()
                    && self.is_admitted(&peer)
                    && let Some(addr) = addresses.iter().next()
                {
                    let _ = self.swarm.dial(addr.clone());
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, from: PeerId, id: MessageId, data: &[u8]) {
        let now = now_ns();
        let checked = if self.work.len() >= MAX_PENDING {
            Err(Reject::RateLimited)
        } else {
            self.validator.check(data, &from.to_string(), now)
        };
        let alert = match checked {
            Ok(a) => a,
            Err(reason) => {
                self.stats.reject(reason);
                tracing::debug!(peer = %from, reason = reason.as_str(), "gossip message rejected");
                let acceptance = if reason.penalises() {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Ignore
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub()
                    .report_message_validation_result(&id, &from, acceptance);
                return;
            }
        };
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let (stored, answer) = oneshot::channel();
        let received = Received {
            alert,
            from,
            stored,
        };
        if self.delay.is_zero() {
            if self.received.try_send(received).is_err() {
                self.swarm
                    .behaviour_mut()
                    .gossipsub()
                    .report_message_validation_result(&id, &from, MessageAcceptance::Ignore);
                return;
            }
        } else {
            // A slow link: the message reaches the node (and goes on
            // from it) only after the delay.
            let (tx, delay) = (self.received.clone(), self.delay);
            self.work.push(Box::pin(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(received).await;
                Done::Idle
            }));
        }
        self.work.push(Box::pin(async move {
            let ok = tokio::time::timeout(STORE_WAIT, answer)
                .await
                .is_ok_and(|r| r.unwrap_or(false));
            Done::Stored(id, from, ok)
        }));
    }
}
