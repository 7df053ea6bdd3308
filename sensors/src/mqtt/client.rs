//! One MQTT session, 3.1.1 or 5, behind one small interface: the sensor
//! loop asks for the next [`Step`] and never sees which protocol runs.
//! rumqttc's blocking client drives its event loop on this thread.

use std::time::Duration;

use rumqttc::{QoS, TlsConfiguration, Transport};

use super::{MqttConfig, Protocol};

/// What the session did next.
#[derive(Debug)]
pub(super) enum Step {
    /// The broker accepted the connection (again): subscribe now.
    Connected,
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    /// The broker refused these subscriptions.
    Refused(Vec<String>),
    /// Nothing within the timeout, or a packet of no interest.
    Idle,
    /// The connection failed; the next call reconnects.
    Failed(String),
}

pub(super) enum Session {
    // Boxed: the two event loops differ much in size.
    V4 {
        client: rumqttc::Client,
        conn: Box<rumqttc::Connection>,
    },
    V5 {
        client: rumqttc::v5::Client,
        conn: Box<rumqttc::v5::Connection>,
    },
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Session::V4 { .. } => "Session::V4",
            Session::V5 { .. } => "Session::V5",
        })
    }
}

/// Requests queued towards the broker (subscriptions, the disconnect).
const REQUESTS: usize = 64;
/// A packet may carry the topic and headers beyond the payload limit.
const PACKET_SLACK: usize = 64 * 1024;

fn qos(level: u8) -> QoS {
    if level >= 1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

fn transport(config: &MqttConfig) -> Transport {
    match &config.tls {
        Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())),
        None => Transport::tcp(),
    }
}

impl Session {
    /// A session that connects on its first [`Session::next`].
    pub(super) fn open(config: &MqttConfig) -> Session {
        let (host, port) = config.host_port();
        let keep_alive = Duration::from_secs(config.keep_alive_secs.max(1));
        let max_packet = config.max_payload_bytes + PACKET_SLACK;
        match config.protocol {
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(&config.client_id, host, port);
                o.set_keep_alive(keep_alive)
                    .set_clean_session(true)
                    .set_max_packet_size(max_packet, PACKET_SLACK)
                    .set_transport(transport(config));
                if let Some((user, password)) = &config.credentials {
                    o.set_credentials(user, password);
                }
                let (client, conn) = rumqttc::Client::new(o, REQUESTS);
                Session::V4 {
                    client,
                    conn: Box::new(conn),
                }
            }
            Protocol::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(&config.client_id, host, port);
                o.set_keep_alive(keep_alive)
                    .set_clean_start(true)
                    .set_max_packet_size(u32::try_from(max_packet).ok())
                    .set_transport(transport(config));
                if let Some((user, password)) = &config.credentials {
                    o.set_credentials(user, password);
                }
                let (client, conn) = rumqttc::v5::Client::new(o, REQUESTS);
                Session::V5 {
                    client,
                    conn: Box::new(conn),
                }
            }
        }
    }

    /// Subscribes to `filters` at `level` (0 or 1).
    pub(super) fn subscribe(&self, filters: &[String], level: u8) -> Result<(), String> {
        let result = match self {
            Session::V4 { client, .. } => client
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), qos(level))),
                )
                .map_err(|e| e.to_string()),
            Session::V5 { client, .. } => client
                .try_subscribe_many(filters.iter().map(|f| {
                    let qos = if level >= 1 {
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce
                    } else {
                        rumqttc::v5::mqttbytes::QoS::AtMostOnce
                    };
                    rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), qos)
                }))
                .map_err(|e| e.to_string()),
        };
        result.map_err(|e| format!("cannot subscribe: {e}"))
    }

    /// The next thing the session did, waiting at most `wait`.
    pub(super) fn next(&mut self, wait: Duration, filters: &[String]) -> Step {
        match self {
            Session::V4 { conn, .. } => {
                use rumqttc::{Event, Packet, SubscribeReasonCode};
                match conn.recv_timeout(wait) {
                    Err(_) => Step::Idle,
                    Ok(Err(e)) => Step::Failed(e.to_string()),
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => Step::Connected,
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => Step::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    },
                    Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => refused(
                        filters,
                        ack.return_codes
                            .iter()
                            .map(|c| matches!(c, SubscribeReasonCode::Success(_))),
                    ),
                    Ok(Ok(_)) => Step::Idle,
                }
            }
            Session::V5 { conn, .. } => {
                use rumqttc::v5::Event;
                use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                match conn.recv_timeout(wait) {
                    Err(_) => Step::Idle,
                    Ok(Err(e)) => Step::Failed(e.to_string()),
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => Step::Connected,
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => Step::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    },
                    Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => refused(
                        filters,
                        ack.return_codes
                            .iter()
                            .map(|c| matches!(c, SubscribeReasonCode::Success(_))),
                    ),
                    Ok(Ok(_)) => Step::Idle,
                }
            }
        }
    }

    /// Asks the broker to end the session (best effort).
    pub(super) fn disconnect(&self) {
        let _ = match self {
            Session::V4 { client, .. } => client.try_disconnect().map_err(|e| e.to_string()),
            Session::V5 { client, .. } => client.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// The filters of one SUBSCRIBE (sent all at once, in order) that the
/// broker did not grant.
fn refused(filters: &[String], granted: impl Iterator<Item = bool>) -> Step {
    let refused: Vec<String> = filters
        .iter()
        .zip(granted)
        .filter(|(_, ok)| !ok)
        .map(|(f, _)| f.clone())
        .collect();
    if refused.is_empty() {
        Step::Idle
    } else {
        Step::Refused(refused)
    }
}
