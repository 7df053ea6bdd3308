//! Members only: [`Gated`] gives a peer the protocols of the behaviour it
//! wraps only if the peer's key is admitted when the connection is
//! established.
//!
//! A connection from a peer that is not admitted gets a handler that
//! accepts those protocols only to close each stream unread and report it,
//! so every refusal is counted; the wrapped behaviour never hears of that
//! connection and so never sends anything over it (no gossip, no Kademlia
//! records, no identify, no sync). A peer admitted later is served on its
//! next connection; the mesh closes the connections of a peer that loses
//! admission.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture, FutureExt, TryFutureExt};
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::handler::{
    ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend, ListenUpgradeError,
    UpgradeInfoSend,
};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, NotifyHandler, Stream, StreamProtocol, SubstreamProtocol,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

use super::ed25519_key;

/// The admitted members' keys, shared by the mesh and its gates.
pub(super) type Admitted = Arc<HashSet<[u8; 32]>>;

/// What a gated behaviour reports.
#[derive(Debug)]
pub(super) enum GateEvent<E> {
    Inner(E),
    /// A peer that is not admitted opened a stream of `protocol`; it was
    /// closed unread.
    Refused {
        peer: PeerId,
        protocol: String,
    },
}

/// Serves the wrapped behaviour to admitted peers only.
pub(super) struct Gated<B: NetworkBehaviour> {
    inner: B,
    admitted: Admitted,
    /// Protocols a closed connection accepts only to refuse (and count).
    refused: Vec<StreamProtocol>,
    /// Connections the wrapped behaviour knows, per peer.
    open: HashMap<PeerId, Vec<ConnectionId>>,
    /// Connections of peers that were not admitted.
    closed: HashSet<ConnectionId>,
    events: VecDeque<GateEvent<B::ToSwarm>>,
}

impl<B: NetworkBehaviour> Gated<B> {
    pub(super) fn new(inner: B, refused: Vec<StreamProtocol>) -> Self {
        Gated {
            inner,
            admitted: Admitted::default(),
            refused,
            open: HashMap::new(),
            closed: HashSet::new(),
            events: VecDeque::new(),
        }
    }

    pub(super) fn inner(&self) -> &B {
        &self.inner
    }

    pub(super) fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Applies to connections established from now on.
    pub(super) fn set_admitted(&mut self, admitted: Admitted) {
        self.admitted = admitted;
    }

    pub(super) fn admits(&self, peer: &PeerId) -> bool {
        ed25519_key(peer).is_some_and(|k| self.admitted.contains(&k))
    }

    /// Whether `connection` is one of a peer that was not admitted.
    pub(super) fn is_closed(&self, connection: ConnectionId) -> bool {
        self.closed.contains(&connection)
    }

    /// Whether `peer` has a connection that carries the wrapped protocols.
    pub(super) fn is_open(&self, peer: &PeerId) -> bool {
        self.open.contains_key(peer)
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: &PeerId,
        open: impl FnOnce(&mut B) -> Result<THandler<B>, ConnectionDenied>,
    ) -> Result<GateHandler<THandler<B>>, ConnectionDenied> {
        if self.admits(peer) {
            return Ok(GateHandler::open(open(&mut self.inner)?));
        }
        self.closed.insert(connection);
        Ok(GateHandler::closed(self.refused.clone()))
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Gated<B> {
    type ConnectionHandler = GateHandler<THandler<B>>;
    type ToSwarm = GateEvent<B::ToSwarm>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection, &peer, |b| {
            b.handle_established_inbound_connection(connection, peer, local, remote)
        })
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(connection, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection, &peer, |b| {
            b.handle_established_outbound_connection(connection, peer, addr, role, port_use)
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // The wrapped behaviour hears only of its own connections, counted
        // without the closed ones.
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if self.closed.contains(&e.connection_id) {
                    return;
                }
                let list = self.open.entry(e.peer_id).or_default();
                let other_established = list.len();
                list.push(e.connection_id);
                self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(
                    ConnectionEstablished {
                        other_established,
                        ..e
                    },
                ));
            }
            FromSwarm::ConnectionClosed(e) => {
                if self.closed.remove(&e.connection_id) {
                    return;
                }
                let mut remaining_established = 0;
                if let Some(list) = self.open.get_mut(&e.peer_id) {
                    list.retain(|c| *c != e.connection_id);
                    remaining_established = list.len();
                    if list.is_empty() {
                        self.open.remove(&e.peer_id);
                    }
                }
                self.inner
                    .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                        remaining_established,
                        ..e
                    }));
            }
            FromSwarm::AddressChange(e) if self.closed.contains(&e.connection_id) => {}
            // A connection refused by another behaviour after this one gave
            // it a handler is never established.
            FromSwarm::DialFailure(e) => {
                self.closed.remove(&e.connection_id);
                self.inner.on_swarm_event(event);
            }
            FromSwarm::ListenFailure(e) => {
                self.closed.remove(&e.connection_id);
                self.inner.on_swarm_event(event);
            }
            _ => self.inner.on_swarm_event(event),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            GateOut::Inner(e) => self.inner.on_connection_handler_event(peer, connection, e),
            GateOut::Refused(protocol) => {
                self.events.push_back(GateEvent::Refused { peer, protocol })
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(e));
        }
        match self.inner.poll(cx) {
            // "Any connection" means any open one: a closed connection
            // would drop the event.
            Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::Any,
                event,
            }) => {
                let handler = self
                    .open
                    .get(&peer_id)
                    .and_then(|list| list.first())
                    .map_or(NotifyHandler::Any, |c| NotifyHandler::One(*c));
                Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler,
                    event,
                })
            }
            Poll::Ready(other) => Poll::Ready(other.map_out(GateEvent::Inner)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What a gate's connection handler reports.
#[derive(Debug)]
pub(super) enum GateOut<E> {
    Inner(E),
    Refused(String),
}

/// The wrapped handler on an admitted peer's connection, or a refusing
/// one.
pub(super) struct GateHandler<H> {
    inner: Option<H>,
    refused: Vec<StreamProtocol>,
    pending: VecDeque<String>,
}

impl<H> GateHandler<H> {
    fn open(inner: H) -> Self {
        GateHandler {
            inner: Some(inner),
            refused: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    fn closed(refused: Vec<StreamProtocol>) -> Self {
        GateHandler {
            inner: None,
            refused,
            pending: VecDeque::new(),
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for GateHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = GateOut<H::ToBehaviour>;
    type InboundProtocol = GateUpgrade<H::InboundProtocol>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = Option<H::InboundOpenInfo>;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        match &self.inner {
            Some(h) => h
                .listen_protocol()
                .map_upgrade(GateUpgrade::Open)
                .map_info(Some),
            None => SubstreamProtocol::new(GateUpgrade::Closed(self.refused.clone()), None),
        }
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        // A closed connection drops what the behaviour meant for others.
        if let Some(h) = &mut self.inner {
            h.on_behaviour_event(event);
        }
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|h| h.connection_keep_alive())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if let Some(p) = self.pending.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(GateOut::Refused(p)));
        }
        match &mut self.inner {
            Some(h) => h.poll(cx).map(|e| e.map_custom(GateOut::Inner)),
            None => Poll::Pending,
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        match &mut self.inner {
            Some(h) => h.poll_close(cx).map(|e| e.map(GateOut::Inner)),
            None => Poll::Ready(None),
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let Some(h) = self.inner.as_mut() else {
            if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: GateOutput::Closed(p),
                ..
            }) = event
            {
                self.pending.push_back(p);
            }
            return;
        };
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: GateOutput::Open(protocol),
                info: Some(info),
            }) => h.on_connection_event(ConnectionEvent::FullyNegotiatedInbound(
                FullyNegotiatedInbound { protocol, info },
            )),
            // An open connection never negotiates a refusal.
            ConnectionEvent::FullyNegotiatedInbound(_) => {}
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError {
                info: Some(info),
                error,
            }) => h.on_connection_event(ConnectionEvent::ListenUpgradeError(ListenUpgradeError {
                info,
                error,
            })),
            ConnectionEvent::ListenUpgradeError(_) => {}
            ConnectionEvent::FullyNegotiatedOutbound(e) => {
                h.on_connection_event(ConnectionEvent::FullyNegotiatedOutbound(e))
            }
            ConnectionEvent::DialUpgradeError(e) => {
                h.on_connection_event(ConnectionEvent::DialUpgradeError(e))
            }
            ConnectionEvent::AddressChange(e) => {
                h.on_connection_event(ConnectionEvent::AddressChange(e))
            }
            ConnectionEvent::LocalProtocolsChange(e) => {
                h.on_connection_event(ConnectionEvent::LocalProtocolsChange(e))
            }
            ConnectionEvent::RemoteProtocolsChange(e) => {
                h.on_connection_event(ConnectionEvent::RemoteProtocolsChange(e))
            }
            _ => {}
        }
    }
}

/// The wrapped handler's inbound protocols, or the refused ones.
pub(super) enum GateUpgrade<U> {
    Open(U),
    Closed(Vec<StreamProtocol>),
}

#[derive(Debug, Clone)]
pub(super) enum GateInfo<I> {
    Open(I),
    Closed(StreamProtocol),
}

impl<I: AsRef<str>> AsRef<str> for GateInfo<I> {
    fn as_ref(&self) -> &str {
        match self {
            GateInfo::Open(i) => i.as_ref(),
            GateInfo::Closed(p) => p.as_ref(),
        }
    }
}

/// A stream handed to the wrapped handler, or the name of a refused one.
pub(super) enum GateOutput<O> {
    Open(O),
    Closed(String),
}

impl<U: UpgradeInfoSend> UpgradeInfo for GateUpgrade<U> {
    type Info = GateInfo<U::Info>;
    type InfoIter = Vec<GateInfo<U::Info>>;

    fn protocol_info(&self) -> Self::InfoIter {
        match self {
            GateUpgrade::Open(u) => u.protocol_info().map(GateInfo::Open).collect(),
            GateUpgrade::Closed(list) => list.iter().cloned().map(GateInfo::Closed).collect(),
        }
    }
}

impl<U: InboundUpgradeSend> InboundUpgrade<Stream> for GateUpgrade<U> {
    type Output = GateOutput<U::Output>;
    type Error = U::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, info: Self::Info) -> Self::Future {
        match (self, info) {
            (GateUpgrade::Open(u), GateInfo::Open(i)) => u
                .upgrade_inbound(stream, i)
                .map_ok(GateOutput::Open)
                .boxed(),
            // Dropping the stream closes it: nothing is read or written.
            (_, info) => future::ok(GateOutput::Closed(info.as_ref().to_owned())).boxed(),
        }
    }
}
