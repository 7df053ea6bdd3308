//! Socket ownership from `/proc/net/{tcp,tcp6,udp,udp6}` and `/proc/<pid>/fd`:
//! which process listens, connects or accepts where.
//!
//! Each pass lists the socket tables; a socket inode seen for the first time
//! is reported once (listen, connect or accept), one that disappeared is
//! reported as closed. Owners are found by reading `/proc/<pid>/fd` only when
//! there are new inodes, and only until every new inode is found.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::event::{ProcessRef, SocketActivity, SocketActivityKind, Transport};

/// One row of a kernel socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketEntry {
    pub inode: u64,
    pub transport: Transport,
    pub local: SocketAddr,
    /// None when the socket has no peer (listening TCP, unconnected UDP).
    pub remote: Option<SocketAddr>,
    pub listening: bool,
}

#[derive(Debug, Clone)]
struct Known {
    entry: SocketEntry,
    owner: Option<ProcessRef>,
}

/// Sockets seen in the previous pass. Pure: the caller lists the tables and
/// resolves owners, so the diffing is testable without `/proc`.
#[derive(Debug, Default)]
pub struct SocketTable {
    known: HashMap<u64, Known>,
}

impl SocketTable {
    /// Applies one listing. `owners` is called once with the new inodes (if
    /// any) and returns the owners it found.
    pub fn pass(
        &mut self,
        entries: Vec<SocketEntry>,
        owners: impl FnOnce(&HashSet<u64>) -> HashMap<u64, ProcessRef>,
    ) -> Vec<SocketActivity> {
        let listening: HashSet<(Transport, u16)> = entries
            .iter()
            .filter(|e| e.listening)
            .map(|e| (e.transport, e.local.port()))
            .collect();
        let alive: HashSet<u64> = entries.iter().map(|e| e.inode).collect();
        let new: HashSet<u64> = alive
            .iter()
            .copied()
            .filter(|i| !self.known.contains_key(i))
            .collect();
        let mut found = if new.is_empty() {
            HashMap::new()
        } else {
            owners(&new)
        };

        let mut out = Vec::new();
        for entry in entries {
            if !new.contains(&entry.inode) || self.known.contains_key(&entry.inode) {
                continue;
            }
            let activity = if entry.listening {
                SocketActivityKind::Listen
            } else if listening.contains(&(entry.transport, entry.local.port())) {
                SocketActivityKind::Accept
            } else {
                SocketActivityKind::Connect
            };
            let owner = found.remove(&entry.inode);
            out.push(activity_of(activity, &entry, owner.clone()));
            self.known.insert(entry.inode, Known { entry, owner });
        }
        let gone: Vec<u64> = self
            .known
            .keys()
            .copied()
            .filter(|i| !alive.contains(i))
            .collect();
        for inode in gone {
            if let Some(k) = self.known.remove(&inode) {
                out.push(activity_of(SocketActivityKind::Close, &k.entry, k.owner));
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

fn activity_of(
    activity: SocketActivityKind,
    e: &SocketEntry,
    process: Option<ProcessRef>,
) -> SocketActivity {
    SocketActivity {
        activity,
        transport: e.transport,
        local: e.local,
        remote: e.remote,
        process,
    }
}

/// Reads the four socket tables. Sockets without an inode (TIME_WAIT) and
/// TCP sockets that are closing are left out.
pub fn read_tables() -> std::io::Result<Vec<SocketEntry>> {
    use procfs::net::{TcpState, UdpState};
    let mut out = Vec::new();
    let tcp = procfs::net::tcp()
        .map_err(to_io)?
        .into_iter()
        .chain(procfs::net::tcp6().unwrap_or_default());
    for e in tcp {
        let listening = e.state == TcpState::Listen;
        let live = matches!(
            e.state,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv
        );
        if e.inode == 0 || !(listening || live) {
            continue;
        }
        out.push(SocketEntry {
            inode: e.inode,
            transport: Transport::Tcp,
            local: e.local_address,
            remote: (!listening).then_some(e.remote_address),
            listening,
        });
    }
    let udp = procfs::net::udp()
        .map_err(to_io)?
        .into_iter()
        .chain(procfs::net::udp6().unwrap_or_default());
    for e in udp {
        if e.inode == 0 {
            continue;
        }
        let connected = e.state == UdpState::Established && e.remote_address.port() != 0;
        out.push(SocketEntry {
            inode: e.inode,
            transport: Transport::Udp,
            local: e.local_address,
            remote: connected.then_some(e.remote_address),
            listening: !connected,
        });
    }
    Ok(out)
}

/// Finds the processes owning `wanted` socket inodes by reading the fd
/// tables of `pids`, stopping once all are found.
pub fn find_owners(
    wanted: &HashSet<u64>,
    pids: impl IntoIterator<Item = (i32, ProcessRef)>,
) -> HashMap<u64, ProcessRef> {
    let mut found = HashMap::new();
    for (pid, process) in pids {
        if found.len() == wanted.len() {
            break;
        }
        let Ok(fds) = procfs::process::Process::new(pid).and_then(|p| p.fd()) else {
            continue;
        };
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target
                && wanted.contains(&inode)
            {
                found.entry(inode).or_insert_with(|| process.clone());
            }
        }
    }
    found
}

fn to_io(e: procfs::ProcError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(inode: u64, local: &str, remote: Option<&str>, listening: bool) -> SocketEntry {
        SocketEntry {
            inode,
            transport: Transport::Tcp,
            local: local.parse().expect("addr"),
            remote: remote.map(|r| r.parse().expect("addr")),
            listening,
        }
    }

    fn owner(pid: i32) -> ProcessRef {
        ProcessRef {
            pid,
            name: "sshd".into(),
            exe: "/usr/sbin/sshd".into(),
            uid: 0,
        }
    }

    #[test]
    fn listen_accept_connect_and_close() {
        let mut table = SocketTable::default();
        let out = table.pass(vec![sock(1, "0.0.0.0:22", None, true)], |new| {
            new.iter().map(|i| (*i, owner(10))).collect()
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].activity, SocketActivityKind::Listen);
        assert_eq!(out[0].process.as_ref().map(|p| p.pid), Some(10));

        let out = table.pass(
            vec![
                sock(1, "0.0.0.0:22", None, true),
                sock(2, "10.0.0.1:22", Some("10.0.0.9:50000"), false),
                sock(3, "10.0.0.1:41000", Some("10.0.0.9:443"), false),
            ],
            |new| {
                assert_eq!(new.len(), 2, "only new inodes are resolved");
                HashMap::new()
            },
        );
        let kinds: Vec<_> = out.iter().map(|a| a.activity).collect();
        assert_eq!(
            kinds,
            vec![SocketActivityKind::Accept, SocketActivityKind::Connect]
        );

        let out = table.pass(vec![sock(1, "0.0.0.0:22", None, true)], |_| {
            unreachable!("no new inodes")
        });
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|a| a.activity == SocketActivityKind::Close));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn reads_a_socket_this_process_listens_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let entries = read_tables().expect("socket tables");
        let mine = entries
            .iter()
            .find(|e| e.listening && e.transport == Transport::Tcp && e.local.port() == port)
            .expect("our listener is listed");
        let me = std::process::id() as i32;
        let wanted: HashSet<u64> = [mine.inode].into();
        let found = find_owners(&wanted, [(me, owner(me))]);
        assert_eq!(found.get(&mine.inode).map(|p| p.pid), Some(me));
    }
}
