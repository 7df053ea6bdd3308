//! Host rules: a shell spawned by a network service, a new listening port.
//!
//! A listener is new when it opens after the node started, on a port not in
//! the allow-list, and is not the node's own: the listeners open at start
//! are the baseline ([`super::RuleEngine::seed_listeners`]), and sockets of
//! the node's process or on its ports ([`OwnSockets`]) are never reported.

use std::collections::HashSet;

use amoskys_sensors::event::{ProcessActivityKind, SocketActivityKind};
use amoskys_sensors::{ProcessActivity, SocketActivity, Transport};

use super::RulePolicy;
use crate::window::Windows;
use crate::{Category, Finding, Severity, Subject};

/// The node's own sockets, which never raise `new_listening_port`: facts
/// of the host the rules run on, not policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnSockets {
    /// The node's process: every socket it owns is its own (the API, the
    /// mesh, and other nodes run in the same process).
    pub pid: Option<i32>,
    /// Ports the node listens on (API, mesh TCP and QUIC): a listener on
    /// one whose owner could not be found is taken as the node's.
    pub ports: Vec<u16>,
}

impl OwnSockets {
    /// This process, no ports yet.
    pub fn this_process() -> Self {
        Self {
            pid: i32::try_from(std::process::id()).ok(),
            ports: Vec::new(),
        }
    }

    fn owns(&self, s: &SocketActivity) -> bool {
        match &s.process {
            Some(p) => Some(p.pid) == self.pid,
            None => self.ports.contains(&s.local.port()),
        }
    }
}

#[derive(Debug)]
pub(super) struct HostRules {
    listeners: Windows<u16, bool>,
    own: OwnSockets,
    /// TCP ports listening when the node started and still open.
    baseline: HashSet<u16>,
}

impl HostRules {
    pub(super) fn new(window_ns: u64) -> Self {
        Self {
            listeners: Windows::new(window_ns, 65_536),
            own: OwnSockets::default(),
            baseline: HashSet::new(),
        }
    }

    /// New window width: the windows restart, the baseline and the own
    /// sockets stay.
    pub(super) fn set_window(&mut self, window_ns: u64) {
        self.listeners = Windows::new(window_ns, 65_536);
    }

    pub(super) fn set_own(&mut self, own: OwnSockets) {
        self.own = own;
    }

    pub(super) fn seed_listeners(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.baseline.extend(ports);
    }

    pub(super) fn process(
        &mut self,
        p: &RulePolicy,
        t: u64,
        a: &ProcessActivity,
        out: &mut Vec<Finding>,
    ) {
        if a.activity != ProcessActivityKind::Launch {
            return;
        }
        let Some(parent) = a.lineage.first() else {
            return;
        };
        let shells: HashSet<&str> = p.lineage_shells.iter().map(String::as_str).collect();
        let services: HashSet<&str> = p.lineage_services.iter().map(String::as_str).collect();
        let child = program(&a.process.name, &a.process.exe);
        let parent_name = program(&parent.name, &parent.exe);
        if shells.contains(child) && services.contains(parent_name) {
            out.push(Finding {
                time_ns: t,
                rule: "service_spawned_shell".into(),
                category: Category::Execution,
                technique: "T1059.004".into(),
                severity: Severity::High,
                score: 0.9,
                subject: Subject::Process {
                    pid: a.process.pid,
                    exe: a.process.exe.clone(),
                },
                evidence: vec![
                    ("parent".into(), parent_name.to_owned()),
                    ("parent_pid".into(), parent.pid.to_string()),
                    ("shell".into(), child.to_owned()),
                    ("uid".into(), a.process.uid.to_string()),
                ],
            });
        }
    }

    pub(super) fn socket(
        &mut self,
        p: &RulePolicy,
        t: u64,
        s: &SocketActivity,
        out: &mut Vec<Finding>,
    ) {
        if s.transport != Transport::Tcp {
            return;
        }
        let port = s.local.port();
        match s.activity {
            SocketActivityKind::Listen => {}
            // A baseline listener that closes is gone: reopened, it is new.
            SocketActivityKind::Close if s.remote.is_none() => {
                self.baseline.remove(&port);
                return;
            }
            _ => return,
        }
        if p.listen_allow_ports.contains(&port) || self.own.owns(s) || self.baseline.contains(&port)
        {
            return;
        }
        match self.listeners.get(&port, t) {
            Some(fired) if !*fired => *fired = true,
            _ => return,
        }
        let loopback = s.local.ip().is_loopback();
        let mut evidence = vec![
            ("port".into(), port.to_string()),
            ("address".into(), s.local.ip().to_string()),
        ];
        if let Some(proc_ref) = &s.process {
            evidence.push((
                "program".into(),
                program(&proc_ref.name, &proc_ref.exe).to_owned(),
            ));
            evidence.push(("pid".into(), proc_ref.pid.to_string()));
        }
        out.push(Finding {
            time_ns: t,
            rule: "new_listening_port".into(),
            category: Category::Persistence,
            technique: "T1571".into(),
            severity: if loopback {
                Severity::Low
            } else {
                Severity::Medium
            },
            score: if loopback { 0.3 } else { 0.6 },
            subject: Subject::Listener { port },
            evidence,
        });
    }
}

/// The program name: the exe's file name, else the kernel's short name.
fn program<'a>(name: &'a str, exe: &'a str) -> &'a str {
    exe.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(name)
}
