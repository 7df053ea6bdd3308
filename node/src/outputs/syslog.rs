//! Syslog output: RFC 5424 messages to a collector over UDP (one datagram
//! each) or TCP (RFC 6587 octet-counted framing on one kept connection).

use std::time::Duration;

use amoskys_mesh::Alert;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::DeliveryError;
use super::format::{Format, SyslogHeader, octet_counted};
use crate::config::{FACILITIES, OutputSection};

/// How long connecting or writing to the collector may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Transport {
    Udp(Option<UdpSocket>),
    Tcp(Option<TcpStream>),
}

/// One syslog collector.
#[derive(Debug)]
pub struct SyslogSink {
    address: String,
    format: Format,
    header: SyslogHeader,
    transport: Transport,
}

impl SyslogSink {
    /// The sink of a validated `[[outputs]]` entry; `hostname` is the
    /// node's name (HOSTNAME of each message).
    pub fn new(o: &OutputSection, hostname: &str) -> Result<Self, (&'static str, String)> {
        let facility = FACILITIES
            .iter()
            .find(|(n, _)| *n == o.facility)
            .map(|(_, f)| *f)
            .ok_or(("facility", format!("{:?} is not a facility", o.facility)))?;
        Ok(Self {
            address: o.address.clone(),
            format: Format::parse(&o.format),
            header: SyslogHeader::new(facility, hostname, &o.app_name),
            transport: if o.transport == "tcp" {
                Transport::Tcp(None)
            } else {
                Transport::Udp(None)
            },
        })
    }

    /// Sends one alert. A broken connection is dropped, and the next try
    /// connects again.
    pub async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let line = self.header.line(alert, &self.format.render(alert));
        let address = self.address.clone();
        let fail = |what: &str, e: std::io::Error| {
            DeliveryError::Transient(format!("cannot {what} {address}: {e}"))
        };
        match &mut self.transport {
            Transport::Udp(socket) => {
                if socket.is_none() {
                    let s = connect_udp(&address).await.map_err(|e| fail("reach", e))?;
                    *socket = Some(s);
                }
                let Some(s) = socket.as_ref() else {
                    return Ok(());
                };
                if let Err(e) = s.send(line.as_bytes()).await {
                    *socket = None;
                    return Err(fail("send to", e));
                }
                Ok(())
            }
            Transport::Tcp(stream) => {
                // A collector that closed the connection (it restarted)
                // shows it on a read: connect again before writing.
                if stream.as_ref().is_some_and(closed) {
                    *stream = None;
                }
                if stream.is_none() {
                    let s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&address))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                        .map_err(|e| fail("connect to", e))?;
                    let _ = s.set_nodelay(true);
                    *stream = Some(s);
                }
                let Some(s) = stream.as_mut() else {
                    return Ok(());
                };
                let frame = octet_counted(&line);
                let written = tokio::time::timeout(IO_TIMEOUT, s.write_all(&frame))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                if let Err(e) = written {
                    *stream = None;
                    return Err(fail("write to", e));
                }
                Ok(())
            }
        }
    }
}

/// A UDP socket connected to `address` (resolved each time it is made).
async fn connect_udp(address: &str) -> std::io::Result<UdpSocket> {
    let target = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the name resolves to no address"))?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(local).await?;
    s.connect(target).await?;
    Ok(s)
}

/// Whether the peer closed the stream (a read returns end of file or an
/// error; the collector sends nothing else).
fn closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}
