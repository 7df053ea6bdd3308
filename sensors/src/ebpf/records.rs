//! Parsing of the ring-buffer records written by ebpf/syscalls.bpf.c. Pure;
//! a short or garbled record is an error, never a panic.
//!
//! Layout (little-endian, C alignment): a 32-byte header
//! `version u16, kind u16, pid u32, ppid u32, uid u32, comm [u8; 16]`, then
//! - exec (kind 1): `args_len u32, filename [u8; 256], args [u8; 512]`
//! - connect (2) / accept (3): `family u16, port u16 (network order),
//!   fd u32, ret i64, addr [u8; 16]`
//! - open (4): `flags u32, path [u8; 256]`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Record format version written by the BPF programs.
pub const RECORD_VERSION: u16 = 1;
const HEADER: usize = 32;

/// Fields every record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Exec {
        header: Header,
        filename: String,
        argv: Vec<String>,
    },
    Connect {
        header: Header,
        remote: Option<SocketAddr>,
    },
    Accept {
        header: Header,
        remote: Option<SocketAddr>,
    },
    Open {
        header: Header,
        flags: u32,
        path: String,
    },
}

/// Why a record was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record of {0} bytes is too short")]
    Short(usize),
    #[error("record version {0} is not {RECORD_VERSION}")]
    Version(u16),
    #[error("unknown record kind {0}")]
    Kind(u16),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A NUL-terminated string in a fixed field.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16_at(b, 32)?;
    let port = u16::from_be_bytes(b.get(34..36)?.try_into().ok()?);
    let addr = b.get(48..64)?;
    let ip = match family {
        2 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        10 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses one record.
pub fn parse(b: &[u8]) -> Result<Record, RecordError> {
    let short = || RecordError::Short(b.len());
    let version = u16_at(b, 0).ok_or_else(short)?;
    if version != RECORD_VERSION {
        return Err(RecordError::Version(version));
    }
    let kind = u16_at(b, 2).ok_or_else(short)?;
    let header = Header {
        pid: u32_at(b, 4).ok_or_else(short)?,
        ppid: u32_at(b, 8).ok_or_else(short)?,
        uid: u32_at(b, 12).ok_or_else(short)?,
        comm: cstr(b.get(16..HEADER).ok_or_else(short)?),
    };
    match kind {
        1 => {
            let args_len = u32_at(b, 32).ok_or_else(short)? as usize;
            let filename = cstr(b.get(36..292).ok_or_else(short)?);
            let args = b.get(292..292 + args_len.min(512)).ok_or_else(short)?;
            let argv = args
                .split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Ok(Record::Exec {
                header,
                filename,
                argv,
            })
        }
        2 | 3 => {
            if b.len() < 64 {
                return Err(short());
            }
            let remote = sockaddr(b);
            Ok(if kind == 2 {
                Record::Connect { header, remote }
            } else {
                Record::Accept { header, remote }
            })
        }
        4 => Ok(Record::Open {
            header,
            flags: u32_at(b, 32).ok_or_else(short)?,
            path: cstr(b.get(36..292).ok_or_else(short)?),
        }),
        other => Err(RecordError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[0..2].copy_from_slice(&RECORD_VERSION.to_le_bytes());
        b[2..4].copy_from_slice(&kind.to_le_bytes());
        b[4..8].copy_from_slice(&42u32.to_le_bytes());
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        b[12..16].copy_from_slice(&1000u32.to_le_bytes());
        b[16..20].copy_from_slice(b"true");
        b
    }

    #[test]
    fn exec_with_argv() {
        let mut b = header(1, 804);
        let args = b"/bin/true\0amoskys-test\0";
        b[32..36].copy_from_slice(&(args.len() as u32).to_le_bytes());
        b[36..45].copy_from_slice(b"/bin/true");
        b[292..292 + args.len()].copy_from_slice(args);
        let Record::Exec {
            header,
            filename,
            argv,
        } = parse(&b).expect("parses")
        else {
            panic!("not exec")
        };
        assert_eq!(
            (header.pid, header.ppid, header.uid, header.comm.as_str()),
            (42, 7, 1000, "true")
        );
        assert_eq!(filename, "/bin/true");
        assert_eq!(argv, vec!["/bin/true", "amoskys-test"]);
    }

    #[test]
    fn connect_ipv4_and_ipv6() {
        let mut b = header(2, 64);
        b[32..34].copy_from_slice(&2u16.to_le_bytes());
        b[34..36].copy_from_slice(&8080u16.to_be_bytes());
        b[48..52].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            parse(&b),
            Ok(Record::Connect {
                header: parse_header_only(),
                remote: Some("127.0.0.1:8080".parse().expect("addr")),
            })
        );
        let mut b = header(3, 64);
        b[32..34].copy_from_slice(&10u16.to_le_bytes());
        b[34..36].copy_from_slice(&443u16.to_be_bytes());
        b[63] = 1;
        let Ok(Record::Accept { remote, .. }) = parse(&b) else {
            panic!("not accept")
        };
        assert_eq!(remote, Some("[::1]:443".parse().expect("addr")));
    }

    fn parse_header_only() -> Header {
        Header {
            pid: 42,
            ppid: 7,
            uid: 1000,
            comm: "true".into(),
        }
    }

    #[test]
    fn open_record() {
        let mut b = header(4, 292);
        b[32..36].copy_from_slice(&0o2u32.to_le_bytes());
        b[36..47].copy_from_slice(b"/etc/shadow");
        assert_eq!(
            parse(&b),
            Ok(Record::Open {
                header: parse_header_only(),
                flags: 2,
                path: "/etc/shadow".into()
            })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(&[]), Err(RecordError::Short(0)));
        assert_eq!(parse(&[1, 0, 1, 0]), Err(RecordError::Short(4)));
        assert!(matches!(parse(&header(9, 64)), Err(RecordError::Kind(9))));
        let mut wrong = header(1, 64);
        wrong[0] = 9;
        assert!(matches!(parse(&wrong), Err(RecordError::Version(9))));
        let mut exec = header(1, 300);
        exec[32..36].copy_from_slice(&4000u32.to_le_bytes());
        assert!(matches!(parse(&exec), Err(RecordError::Short(300))));
        for len in 0..900 {
            let _ = parse(&vec![0xAB; len]);
        }
    }
}
