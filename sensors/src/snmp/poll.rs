//! One poll of one device over SNMP (snmp2's blocking session, with a
//! timeout on every request).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use snmp2::{Error as SnmpError, Oid, Pdu, SyncSession, Value, v3};

use super::rates::{Counter, IfCounters, Sample};
use super::{PrivProtocol, SnmpAuth, SnmpDevice};

/// Most rows read from one table column.
const MAX_ROWS: usize = 1024;
/// Rows asked for in one GETBULK.
const BULK: u32 = 32;

const SYS_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
const SYS_UPTIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
const LA_LOAD: [&[u64]; 3] = [
    &[1, 3, 6, 1, 4, 1, 2021, 10, 1, 3, 1],
    &[1, 3, 6, 1, 4, 1, 2021, 10, 1, 3, 2],
    &[1, 3, 6, 1, 4, 1, 2021, 10, 1, 3, 3],
];
const MEM_TOTAL: &[u64] = &[1, 3, 6, 1, 4, 1, 2021, 4, 5, 0];
const MEM_AVAIL: &[u64] = &[1, 3, 6, 1, 4, 1, 2021, 4, 6, 0];
const HR_PROCESSOR_LOAD: &[u64] = &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2];
const IF_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
const IF_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
/// ifTable 32-bit and ifXTable 64-bit columns of the same counter.
const COUNTERS: [(&[u64], &[u64]); 6] = [
    (
        &[1, 3, 6, 1, 2, 1, 2, 2, 1, 10],
        &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6],
    ),
    (
        &[1, 3, 6, 1, 2, 1, 2, 2, 1, 16],
        &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10],
    ),
    (
        &[1, 3, 6, 1, 2, 1, 2, 2, 1, 11],
        &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 7],
    ),
    (
        &[1, 3, 6, 1, 2, 1, 2, 2, 1, 17],
        &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 11],
    ),
    (&[1, 3, 6, 1, 2, 1, 2, 2, 1, 14], &[]),
    (&[1, 3, 6, 1, 2, 1, 2, 2, 1, 20], &[]),
];

/// Why a poll failed, as shown in the device status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error(
        "no answer within {0:?} (unreachable, or a wrong v2c community: agents stay silent then)"
    )]
    Unreachable(Duration),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("{0}")]
    Other(String),
}

/// What one poll read.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub description: String,
    pub sample: Sample,
    pub load: Option<[f64; 3]>,
    pub cpu_percent: Vec<u8>,
    pub memory_total_kib: Option<u64>,
    pub memory_available_kib: Option<u64>,
}

/// A session to one device, rebuilt after any failure.
pub struct Poller {
    device: SnmpDevice,
    timeout: Duration,
    /// Boxed: a session holds two 64 KiB buffers.
    session: Option<Box<SyncSession>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("device", &self.device.name)
            .finish_non_exhaustive()
    }
}

impl Poller {
    pub fn new(device: SnmpDevice, timeout: Duration) -> Self {
        Self {
            device,
            timeout,
            session: None,
        }
    }

    /// Polls the device once; at most a few request timeouts long.
    pub fn poll(&mut self) -> Result<Reading, PollError> {
        let result = self.try_poll();
        if result.is_err() {
            self.session = None;
        }
        result
    }

    fn try_poll(&mut self) -> Result<Reading, PollError> {
        let timeout = self.timeout;
        if self.session.is_none() {
            self.session = Some(open(&self.device, timeout)?);
        }
        let Some(session) = self.session.as_mut() else {
            return Err(PollError::Other("no session".into()));
        };
        let deadline = Instant::now() + timeout * 8;
        let scalars = [
            SYS_UPTIME, SYS_DESCR, LA_LOAD[0], LA_LOAD[1], LA_LOAD[2], MEM_TOTAL, MEM_AVAIL,
        ];
        let values = get_many(session, &scalars, timeout)?;
        let mut r = Reading::default();
        r.sample.uptime_ticks = match values.first() {
            Some(Scalar::Ticks(t)) => *t,
            _ => return Err(PollError::Other("sysUpTime missing from the answer".into())),
        };
        r.description = match values.get(1) {
            Some(Scalar::Text(s)) => s.clone(),
            _ => String::new(),
        };
        let load: Vec<f64> = values[2..5.min(values.len())]
            .iter()
            .filter_map(|v| match v {
                Scalar::Text(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect();
        r.load = <[f64; 3]>::try_from(load).ok();
        r.memory_total_kib = values.get(5).and_then(Scalar::number);
        r.memory_available_kib = values.get(6).and_then(Scalar::number);

        r.cpu_percent = walk(session, HR_PROCESSOR_LOAD, timeout, deadline)?
            .into_iter()
            .filter_map(|(_, v)| v.number().map(|n| n.min(100) as u8))
            .collect();
        let mut names: HashMap<u32, String> = HashMap::new();
        for column in [IF_DESCR, IF_NAME] {
            for (index, v) in walk(session, column, timeout, deadline)? {
                if let Scalar::Text(s) = v {
                    names.insert(index, s);
                }
            }
        }
        let mut columns: Vec<HashMap<u32, Counter>> = Vec::new();
        for (c32, c64) in COUNTERS {
            let mut values: HashMap<u32, Counter> = HashMap::new();
            for (index, v) in walk(session, c32, timeout, deadline)? {
                if let Some(c) = v.counter() {
                    values.insert(index, c);
                }
            }
            // 64-bit counters replace 32-bit ones where the agent has them.
            if !c64.is_empty() {
                for (index, v) in walk(session, c64, timeout, deadline)? {
                    if let Some(c) = v.counter() {
                        values.insert(index, c);
                    }
                }
            }
            columns.push(values);
        }
        for (index, name) in names {
            let get = |i: usize| columns.get(i).and_then(|c| c.get(&index)).copied();
            r.sample.interfaces.insert(
                index,
                IfCounters {
                    name,
                    in_octets: get(0),
                    out_octets: get(1),
                    in_packets: get(2),
                    out_packets: get(3),
                    in_errors: get(4),
                    out_errors: get(5),
                },
            );
        }
        Ok(r)
    }
}

fn open(device: &SnmpDevice, timeout: Duration) -> Result<Box<SyncSession>, PollError> {
    let io = |e: std::io::Error| {
        PollError::Other(format!("cannot open a socket to {}: {e}", device.address))
    };
    match &device.auth {
        SnmpAuth::V2c { community } => SyncSession::new_v2c(
            device.address.as_str(),
            community.as_bytes(),
            Some(timeout),
            1,
        )
        .map(Box::new)
        .map_err(io),
        SnmpAuth::V3 {
            user,
            auth_protocol,
            auth_password,
            privacy,
        } => {
            let auth = match privacy {
                Some((protocol, password)) => v3::Auth::AuthPriv {
                    cipher: match protocol {
                        PrivProtocol::Des => v3::Cipher::Des,
                        PrivProtocol::Aes128 => v3::Cipher::Aes128,
                    },
                    privacy_password: password.as_bytes().to_vec(),
                },
                None => v3::Auth::AuthNoPriv,
            };
            let security = v3::Security::new(user.as_bytes(), auth_password.as_bytes())
                .with_auth_protocol(*auth_protocol)
                .with_auth(auth);
            let mut session = Box::new(
                SyncSession::new_v3(device.address.as_str(), Some(timeout), 1, security)
                    .map_err(io)?,
            );
            session.init().map_err(|e| map_error(e, timeout))?;
            Ok(session)
        }
    }
}

fn map_error(e: SnmpError, timeout: Duration) -> PollError {
    match e {
        SnmpError::Receive | SnmpError::Send => PollError::Unreachable(timeout),
        SnmpError::AuthFailure(kind) => PollError::Auth(format!(
            "{kind:?} (wrong password or protocol, or an unknown user)"
        )),
        other => PollError::Other(format!("{other:?}")),
    }
}

/// A value reduced to what the poller uses.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Missing,
    Ticks(u32),
    Text(String),
    Number(u64),
    C32(u32),
    C64(u64),
}

impl Scalar {
    fn from_value(v: &Value) -> Scalar {
        match v {
            Value::Timeticks(t) => Scalar::Ticks(*t),
            Value::OctetString(b) => Scalar::Text(String::from_utf8_lossy(b).into_owned()),
            Value::Integer(i) => u64::try_from(*i)
                .map(Scalar::Number)
                .unwrap_or(Scalar::Missing),
            Value::Unsigned32(u) => Scalar::Number(u64::from(*u)),
            Value::Counter32(c) => Scalar::C32(*c),
            Value::Counter64(c) => Scalar::C64(*c),
            _ => Scalar::Missing,
        }
    }

    fn number(&self) -> Option<u64> {
        match self {
            Scalar::Number(n) | Scalar::C64(n) => Some(*n),
            Scalar::C32(c) => Some(u64::from(*c)),
            _ => None,
        }
    }

    fn counter(&self) -> Option<Counter> {
        match self {
            Scalar::C32(c) => Some(Counter::C32(*c)),
            Scalar::C64(c) => Some(Counter::C64(*c)),
            _ => None,
        }
    }
}

fn oid(arcs: &[u64]) -> Result<Oid<'static>, PollError> {
    Oid::from(arcs).map_err(|e| PollError::Other(format!("bad OID {arcs:?}: {e:?}")))
}

/// GET of several scalars, in order; a missing one is `Scalar::Missing`.
fn get_many(
    session: &mut SyncSession,
    arcs: &[&[u64]],
    timeout: Duration,
) -> Result<Vec<Scalar>, PollError> {
    let oids: Vec<Oid<'static>> = arcs.iter().map(|a| oid(a)).collect::<Result<_, _>>()?;
    let refs: Vec<&Oid> = oids.iter().collect();
    for attempt in 0..2 {
        match session.get_many(&refs) {
            Ok(pdu) => return Ok(scalars(pdu)),
            // v3: the agent's engine time was learned; ask once more.
            Err(SnmpError::AuthUpdated) if attempt == 0 => continue,
            Err(e) => return Err(map_error(e, timeout)),
        }
    }
    Err(PollError::Auth(
        "engine time could not be synchronised".into(),
    ))
}

/// Walks one table column with GETBULK; returns (last index arc, value).
fn walk(
    session: &mut SyncSession,
    column: &[u64],
    timeout: Duration,
    deadline: Instant,
) -> Result<Vec<(u32, Scalar)>, PollError> {
    let prefix = oid(column)?;
    let mut next = prefix.clone();
    let mut rows = Vec::new();
    let mut retried = false;
    while rows.len() < MAX_ROWS && Instant::now() < deadline {
        let pdu = match session.getbulk(&[&next], 0, BULK) {
            Ok(pdu) => pdu,
            Err(SnmpError::AuthUpdated) if !retried => {
                retried = true;
                continue;
            }
            Err(e) => return Err(map_error(e, timeout)),
        };
        match column_rows(pdu, &prefix, &mut rows) {
            Some(l) => next = l,
            None => break,
        }
    }
    Ok(rows)
}

/// The values of a GET answer, in order.
pub(super) fn scalars(pdu: Pdu) -> Vec<Scalar> {
    pdu.varbinds.map(|(_, v)| Scalar::from_value(&v)).collect()
}

/// The rows of one GETBULK answer that are still in the column `prefix`
/// (last index arc, value); returns where to continue, or `None` when the
/// column ended.
pub(super) fn column_rows(
    pdu: Pdu,
    prefix: &Oid,
    rows: &mut Vec<(u32, Scalar)>,
) -> Option<Oid<'static>> {
    let mut last = None;
    for (name, value) in pdu.varbinds {
        if !name.starts_with(prefix) || matches!(value, Value::EndOfMibView) {
            break;
        }
        let index = name.iter().and_then(|arcs| arcs.last()).unwrap_or(0);
        rows.push((
            u32::try_from(index).unwrap_or(u32::MAX),
            Scalar::from_value(&value),
        ));
        last = Some(name.to_owned());
    }
    last
}

/// Decodes one answer datagram as the session does (v1/v2c, or v3 with the
/// session's security) and takes from it what a poll takes: the values of
/// a GET and the rows of an interface column of a GETBULK. Returns the
/// values read. The fuzz target of SNMP answers calls it.
pub(crate) fn read_answer(bytes: &[u8], mut security: Option<&mut v3::Security>) -> usize {
    let mut n = 0;
    if let Ok(pdu) = Pdu::from_bytes_with_security(bytes, security.as_deref_mut()) {
        n += scalars(pdu).len();
    }
    if let (Ok(pdu), Ok(prefix)) = (
        Pdu::from_bytes_with_security(bytes, security),
        oid(IF_DESCR),
    ) {
        let mut rows = Vec::new();
        let _ = column_rows(pdu, &prefix, &mut rows);
        n += rows.len();
    }
    n
}
