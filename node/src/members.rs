//! The addresses of the mesh's admitted members, as this node knows them:
//! the committed membership and member records, and the connected peers.
//!
//! Members are authenticated and their mesh traffic is the node's own
//! protocol, so their source windows stay out of the anomaly baseline and
//! out of anomaly scoring (a baseline trained while members talk, or while
//! an attack was under way, would otherwise flag the mesh itself). Rules
//! still watch them: a member that scans or floods is alerted like anyone.
//! The bouncer never blocks them either (`crate::response`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use amoskys_consensus::Applied;
use amoskys_learning::Subject;
use amoskys_learning::features::{EntityKind, FeatureWindow};
use amoskys_mesh::MeshHandle;
use tokio::sync::watch;

use crate::response::ip_in;

/// How often the set is gathered again.
const REFRESH: Duration = Duration::from_secs(5);

/// The current set, shared by whoever reads it.
#[derive(Debug, Clone, Default)]
pub struct MemberAddresses(Arc<RwLock<Arc<HashSet<IpAddr>>>>);

impl MemberAddresses {
    pub fn get(&self) -> Arc<HashSet<IpAddr>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, addresses: impl IntoIterator<Item = IpAddr>) {
        let set: HashSet<IpAddr> = addresses.into_iter().collect();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// Whether `w` is a member's source window.
    pub fn covers(&self, w: &FeatureWindow) -> bool {
        match (&w.kind, &w.subject) {
            (EntityKind::Source, Subject::SourceIp(ip)) => self.get().contains(ip),
            _ => false,
        }
    }
}

/// Every member address known from the committed state and the peers
/// connected now.
pub async fn gather(
    applied: &watch::Receiver<Arc<Applied>>,
    mesh: Option<&MeshHandle>,
) -> Vec<IpAddr> {
    let mut members = Vec::new();
    {
        let a = applied.borrow();
        members.extend(a.membership.nodes().filter_map(|(_, n)| ip_in(&n.addr)));
        members.extend(a.state.members.values().filter_map(|r| ip_in(&r.addr)));
    }
    if let Some(m) = mesh
        && let Ok(peers) = m.peers().await
    {
        members.extend(peers.iter().filter_map(|p| ip_in(&p.address)));
    }
    members.sort();
    members.dedup();
    members
}

/// Keeps `into` current until shutdown.
pub async fn follow(
    into: MemberAddresses,
    applied: watch::Receiver<Arc<Applied>>,
    mesh: Option<MeshHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        into.set(gather(&applied, mesh.as_ref()).await);
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kind: EntityKind, subject: Subject) -> FeatureWindow {
        FeatureWindow {
            kind,
            subject,
            start_ns: 0,
            end_ns: 1,
            values: vec![0.0],
        }
    }

    #[test]
    fn only_members_source_windows_are_covered() {
        let m = MemberAddresses::default();
        let member: IpAddr = "10.9.0.11".parse().expect("ip");
        let other: IpAddr = "10.9.0.99".parse().expect("ip");
        assert!(!m.covers(&window(EntityKind::Source, Subject::SourceIp(member))));
        m.set([member]);
        assert!(m.covers(&window(EntityKind::Source, Subject::SourceIp(member))));
        assert!(!m.covers(&window(EntityKind::Source, Subject::SourceIp(other))));
        assert!(!m.covers(&window(EntityKind::Host, Subject::Host)));
    }
}
