//! Syslog output: RFC 5424 messages to a collector over UDP (one datagram
//! each), TCP or TLS (RFC 6587 octet-counted framing on one kept
//! connection; RFC 5425 for TLS).

use std::sync::Arc;
use std::time::Duration;

use amoskys_mesh::Alert;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::DeliveryError;
use super::format::{Format, SyslogHeader, octet_counted};
use crate::config::{FACILITIES, OutputSection};

/// How long connecting or writing to the collector may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The CAs a TLS output trusts when `ca_file` is empty (Debian's bundle).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A kept connection: plain TCP or TLS over it.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

enum Transport {
    Udp(Option<UdpSocket>),
    Stream {
        tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
        conn: Option<Box<dyn Conn>>,
    },
}

/// One syslog collector.
pub struct SyslogSink {
    address: String,
    format: Format,
    header: SyslogHeader,
    transport: Transport,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("address", &self.address)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
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
        let transport = match o.transport.as_str() {
            "udp" => Transport::Udp(None),
            "tls" => {
                let ca = if o.ca_file.is_empty() {
                    SYSTEM_CA_FILE
                } else {
                    &o.ca_file
                };
                let config = super::webhook::trusting(ca, Vec::new())?;
                let host = o.address.rsplit_once(':').map_or("", |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| ("address", format!("{host:?} is not a TLS server name: {e}")))?;
                Transport::Stream {
                    tls: Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name)),
                    conn: None,
                }
            }
            _ => Transport::Stream {
                tls: None,
                conn: None,
            },
        };
        Ok(Self {
            address: o.address.clone(),
            format: Format::parse(&o.format),
            header: SyslogHeader::new(facility, hostname, &o.app_name),
            transport,
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
            Transport::Stream { tls, conn } => {
                // A collector that closed the connection (it restarted)
                // shows it on a read: connect again before writing.
                if let Some(c) = conn.as_mut()
                    && closed(c).await
                {
                    *conn = None;
                }
                if conn.is_none() {
                    let c = timed(connect(&address, tls.as_ref()))
                        .await
                        .map_err(|e| fail("connect to", e))?;
                    *conn = Some(c);
                }
                let Some(c) = conn.as_mut() else {
                    return Ok(());
                };
                let frame = octet_counted(&line);
                let written = timed(async {
                    c.write_all(&frame).await?;
                    c.flush().await
                })
                .await;
                if let Err(e) = written {
                    *conn = None;
                    return Err(fail("write to", e));
                }
                Ok(())
            }
        }
    }
}

/// `f`, or a timeout error after [`IO_TIMEOUT`].
async fn timed<T>(f: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// A TCP connection to `address`, with a TLS session over it when `tls`.
async fn connect(
    address: &str,
    tls: Option<&(tokio_rustls::TlsConnector, ServerName<'static>)>,
) -> std::io::Result<Box<dyn Conn>> {
    let tcp = TcpStream::connect(address).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some((connector, name)) => Ok(Box::new(connector.connect(name.clone(), tcp).await?)),
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

/// Whether the peer closed the connection: a read that is ready returns
/// end of file or an error (a collector sends no data; TLS records such as
/// session tickets are taken by the TLS layer). One poll, no waiting.
async fn closed(c: &mut Box<dyn Conn>) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::ZERO, c.read(&mut buf)).await {
        Err(_) => false,
        Ok(Ok(n)) => n == 0,
        Ok(Err(_)) => true,
    }
}
