//! The actor's request-response traffic: reconciliation (asking peers for
//! what this node lacks, answering what they lack) and the request services
//! of [`crate::rpc`] (all handed to the node but the peer view, [`super::view`]).

use std::sync::atomic::Ordering;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::ConnectionId;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{Actor, Done, InboundRequest, Received, STORE_WAIT, ed25519_key, now_ns};
use crate::gossip::Reject;
use crate::rpc::{RpcRequest, RpcResponse, Service};
use crate::sync::{MAX_RANGES, SYNC_BATCH, SyncRequest, SyncResponse};

impl Actor {
    pub(super) fn rpc_event(&mut self, event: request_response::Event<RpcRequest, RpcResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
            } => {
                let _in = self.in_connection(connection_id);
                let service = request.service;
                if service == Service::Join {
                    self.asked_to_join(connection_id);
                }
                let refuse = |reason: &str| RpcResponse {
                    service,
                    result: Err(reason.to_owned()),
                };
                // Anyone may ask to join; everything else needs admission.
                let admitted = service == Service::Join
                    || ed25519_key(&peer).is_some_and(|k| self.validator.is_admitted(&k));
                let handler = self.requests.clone();
                let answer = match (admitted, handler) {
                    (false, _) => {
                        self.stats.reject(Reject::OutsiderRequest);
                        tracing::debug!(%peer, service = service.as_str(), "outsider's request refused");
                        Err(refuse("not an admitted member"))
                    }
                    // The mesh's own metadata: answered here.
                    (true, _) if service == Service::View => {
                        let result = self.answer_view(peer);
                        let delay = self.delay;
                        self.work.push(Box::pin(async move {
                            tokio::time::sleep(delay).await;
                            Done::Reply(channel, RpcResponse { service, result })
                        }));
                        return;
                    }
                    (true, None) => Err(refuse("this node serves no requests")),
                    (true, Some(h)) => Ok(h),
                };
                let handler = match answer {
                    Ok(h) => h,
                    Err(r) => {
                        self.tap_response(&r);
                        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, r);
                        return;
                    }
                };
                let (reply, answer) = oneshot::channel();
                let inbound = InboundRequest {
                    peer,
                    service,
                    body: request.body,
                    reply,
                };
                if handler.try_send(inbound).is_err() {
                    let busy = refuse("busy; try again");
                    self.tap_response(&busy);
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, busy);
                    return;
                }
                // Give up a little before the caller does, so the caller
                // hears why rather than only that time ran out.
                let delay = self.delay;
                self.work.push(Box::pin(async move {
                    let result =
                        match tokio::time::timeout(service.timeout().mul_f32(0.9), answer).await {
                            Ok(Ok(r)) => r,
                            Ok(Err(_)) => Err("no answer".to_owned()),
                            Err(_) => Err("the handler timed out".to_owned()),
                        };
                    // A slow link delays the answer too.
                    tokio::time::sleep(delay).await;
                    Done::Reply(channel, RpcResponse { service, result })
                }));
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.outbound.remove(&request_id) {
                    let _ = tx.send(response.result);
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(tx) = self.outbound.remove(&request_id) {
                    let _ = tx.send(Err(error.to_string()));
                }
            }
            // A joiner goes once its request is answered.
            request_response::Event::ResponseSent { connection_id, .. } => {
                self.answered(connection_id);
            }
            _ => {}
        }
    }

    /// Enters the span of connection `id`, while the guard lives.
    pub(super) fn in_connection(&self, id: ConnectionId) -> Option<tracing::span::EnteredSpan> {
        self.connections
            .get(&id)
            .cloned()
            .map(tracing::Span::entered)
    }

    /// Asks `peer` for the alerts we lack, in a new `sync` span.
    pub(super) fn sync_with(&mut self, peer: PeerId) {
        let Some(ledger) = self.ledger.clone() else {
            return;
        };
        let span = tracing::debug_span!("sync", %peer);
        self.work.push(Box::pin(async move {
            let h = tokio::task::spawn_blocking(move || ledger.holdings())
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            Done::Holdings(peer, h, span)
        }));
    }

    /// A sync request of ours that got no answer.
    pub(super) fn sync_failed(
        &mut self,
        peer: PeerId,
        request: OutboundRequestId,
        error: &request_response::OutboundFailure,
    ) {
        let _in = self.syncs.remove(&request).map(tracing::Span::entered);
        tracing::debug!(%peer, %error, "sync request failed");
    }

    pub(super) fn sync_event(
        &mut self,
        peer: PeerId,
        message: request_response::Message<SyncRequest, SyncResponse>,
    ) {
        match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                // The gate keeps outsiders off this protocol; a peer that
                // lost admission since it connected gets nothing either.
                if !self.is_admitted(&peer) {
                    self.stats.reject(Reject::OutsiderSync);
                    return;
                }
                let Some(ledger) = self.ledger.clone() else {
                    return;
                };
                if request.holdings.ranges() > MAX_RANGES {
                    tracing::debug!(%peer, "sync request over the size limit; not answered");
                    return;
                }
                let span = tracing::debug_span!("sync_answer", %peer);
                self.work.push(Box::pin(
                    async move {
                        let missing = tokio::task::spawn_blocking(move || {
                            ledger.missing(&request.holdings, SYNC_BATCH + 1)
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                        Done::Missing(channel, missing)
                    }
                    .instrument(span),
                ));
            }
            request_response::Message::Response {
                request_id,
                response,
            } => {
                // The sync's span ends with its answer.
                let _in = self.syncs.remove(&request_id).map(tracing::Span::entered);
                let mut fetched = 0;
                for bytes in response.alerts.iter().take(SYNC_BATCH) {
                    match self.validator.check_synced(bytes) {
                        Ok(alert) => {
                            fetched += 1;
                            let fresh = self.validator.is_fresh(alert.body.time_ns, now_ns());
                            let (stored, answer) = oneshot::channel();
                            let r = Received {
                                alert,
                                from: peer,
                                stored,
                            };
                            if self.received.try_send(r).is_err() {
                                break;
                            }
                            // Fresh enough for every peer's time window: once
                            // stored, pass it on by gossip, so the peers that
                            // missed it too need not wait for their next sync.
                            if fresh {
                                let bytes = bytes.clone();
                                self.work.push(Box::pin(async move {
                                    let stored = tokio::time::timeout(STORE_WAIT, answer)
                                        .await
                                        .is_ok_and(|r| r.unwrap_or(false));
                                    if stored {
                                        Done::Forward(bytes)
                                    } else {
                                        Done::Idle
                                    }
                                }));
                            }
                        }
                        Err(Reject::Duplicate) => {}
                        Err(reason) => self.stats.reject(reason),
                    }
                }
                self.stats.synced.fetch_add(fetched, Ordering::Relaxed);
                tracing::debug!(fetched, more = response.more, "sync answered");
                if response.more && fetched > 0 {
                    self.sync_with(peer);
                }
            }
        }
    }
}
