//! Gossipsub with its inbound frames counted: a frame over the size limit,
//! or one that does not decode, is cut off by gossipsub's codec before
//! any message in it is seen, and gossipsub itself only logs it. This
//! wrapper reads the inbound gossip stream in gossipsub's place (its codec,
//! its limits, the same events to the behaviour) and reports every such
//! frame, so it is counted by reason like every other refusal. Everything
//! else is gossipsub's own.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use futures::StreamExt;
use futures::future::Either;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

use crate::gossip::Reject;

type Inner = gossipsub::Behaviour;
type InnerHandler = THandler<Inner>;
/// gossipsub's negotiated inbound stream: its framed codec and the peer's
/// protocol version (or, from a disabled handler, nothing).
type Inbound = <<InnerHandler as ConnectionHandler>::InboundProtocol as InboundUpgradeSend>::Output;

/// What [`Frames`] reports.
#[derive(Debug)]
pub(super) enum FramesEvent {
    Inner(gossipsub::Event),
    /// A frame from `peer` was refused unread (`OversizedFrame` or
    /// `MalformedFrame`); gossipsub closed the stream, as it does.
    Refused {
        peer: PeerId,
        reason: Reject,
    },
}

/// gossipsub, its inbound frames counted.
pub(super) struct Frames {
    inner: Inner,
    events: VecDeque<FramesEvent>,
}

impl Frames {
    pub(super) fn new(inner: Inner) -> Self {
        Frames {
            inner,
            events: VecDeque::new(),
        }
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(super) fn inner_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl NetworkBehaviour for Frames {
    type ConnectionHandler = FramesHandler;
    type ToSwarm = FramesEvent;

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
        let h = self
            .inner
            .handle_established_inbound_connection(connection, peer, local, remote)?;
        Ok(FramesHandler::new(h))
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
        let h = self
            .inner
            .handle_established_outbound_connection(connection, peer, addr, role, port_use)?;
        Ok(FramesHandler::new(h))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            FrameOut::Inner(e) => self.inner.on_connection_handler_event(peer, connection, e),
            FrameOut::Refused(reason) => {
                self.events.push_back(FramesEvent::Refused { peer, reason })
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
        self.inner.poll(cx).map(|e| e.map_out(FramesEvent::Inner))
    }
}

#[derive(Debug)]
pub(super) enum FrameOut<E> {
    Inner(E),
    Refused(Reject),
}

/// gossipsub's handler, with its inbound stream read here.
pub(super) struct FramesHandler {
    inner: InnerHandler,
    inbound: Option<Inbound>,
}

impl FramesHandler {
    fn new(inner: InnerHandler) -> Self {
        FramesHandler {
            inner,
            inbound: None,
        }
    }
}

/// The reason for a frame gossipsub's codec refused.
fn frame_reason(error: &dyn std::fmt::Display) -> Reject {
    // The codec's size checks say "message with Nb exceeds maximum of Mb".
    if error.to_string().contains("exceeds maximum") {
        Reject::OversizedFrame
    } else {
        Reject::MalformedFrame
    }
}

impl ConnectionHandler for FramesHandler {
    type FromBehaviour = <InnerHandler as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = FrameOut<<InnerHandler as ConnectionHandler>::ToBehaviour>;
    type InboundProtocol = <InnerHandler as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <InnerHandler as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <InnerHandler as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <InnerHandler as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if let Some(Either::Left((framed, _))) = self.inbound.as_mut() {
            match framed.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(FrameOut::Inner(
                        message,
                    )));
                }
                // The stream is dropped, as gossipsub drops it; the peer
                // opens another.
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "gossip frame refused");
                    self.inbound = None;
                    return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                        FrameOut::Refused(frame_reason(&e)),
                    ));
                }
                Poll::Ready(None) => self.inbound = None,
                Poll::Pending => {}
            }
        }
        self.inner.poll(cx).map(|e| e.map_custom(FrameOut::Inner))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx).map(|e| e.map(FrameOut::Inner))
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
        match event {
            // A new inbound stream replaces the old one, as in gossipsub.
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol, ..
            }) => {
                self.inbound = Some(protocol);
            }
            other => self.inner.on_connection_event(other),
        }
    }
}
