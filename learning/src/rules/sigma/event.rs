//! One node event seen as a Sigma log-source record: the field values of
//! [`super::fields`], read by the evaluator through its `Event` trait.

use std::borrow::Cow;
use std::collections::HashMap;

use amoskys_sensors::event::{ProcessActivityKind, SocketActivityKind};
use amoskys_sensors::{Event, EventBody, Transport};
use rsigma_eval::EventValue;
use serde_json::Value;

use super::fields::Category;

/// `open(2)` flags that make an open a write: O_WRONLY, O_RDWR, O_CREAT,
/// O_TRUNC.
const WRITE_FLAGS: u32 = 0o1 | 0o2 | 0o100 | 0o1000;

#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
}

/// The fields of one event under one category, in table order.
#[derive(Debug)]
pub(super) struct SigmaEvent<'a> {
    pub category: Category,
    pub values: Vec<(&'static str, Val<'a>)>,
}

fn user<'a>(users: &'a HashMap<u32, String>, uid: u32) -> Val<'a> {
    Val::Str(match users.get(&uid) {
        Some(name) => Cow::Borrowed(name.as_str()),
        None => Cow::Owned(uid.to_string()),
    })
}

fn text(s: &str) -> Val<'_> {
    Val::Str(Cow::Borrowed(s))
}

fn protocol(t: Transport) -> Val<'static> {
    Val::Str(Cow::Borrowed(match t {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
        Transport::Icmp => "icmp",
        Transport::Icmpv6 => "icmpv6",
        Transport::Other(n) => return Val::Str(Cow::Owned(n.to_string())),
    }))
}

impl<'a> SigmaEvent<'a> {
    /// The event under the category it maps to, if any.
    pub fn of(event: &'a Event, users: &'a HashMap<u32, String>) -> Option<SigmaEvent<'a>> {
        let mut v: Vec<(&'static str, Val<'a>)> = Vec::with_capacity(10);
        let category = match &event.body {
            EventBody::ProcessActivity(a) if a.activity == ProcessActivityKind::Launch => {
                let p = &a.process;
                if !p.exe.is_empty() {
                    v.push(("Image", text(&p.exe)));
                }
                v.push(("CommandLine", Val::Str(Cow::Owned(p.cmdline.join(" ")))));
                v.push(("ProcessId", Val::Int(p.pid.into())));
                v.push(("ParentProcessId", Val::Int(p.ppid.into())));
                if let Some(parent) = a.lineage.first() {
                    if !parent.exe.is_empty() {
                        v.push(("ParentImage", text(&parent.exe)));
                    }
                    v.push(("ParentName", text(&parent.name)));
                }
                if !p.cwd.is_empty() {
                    v.push(("CurrentDirectory", text(&p.cwd)));
                }
                v.push(("Name", text(&p.name)));
                v.push(("User", user(users, p.uid)));
                v.push(("UserId", Val::Int(p.uid.into())));
                Category::ProcessCreation
            }
            EventBody::SocketActivity(s) => {
                let remote = s.remote?;
                let initiated = match s.activity {
                    SocketActivityKind::Connect => true,
                    SocketActivityKind::Accept => false,
                    _ => return None,
                };
                if let Some(p) = &s.process {
                    if !p.exe.is_empty() {
                        v.push(("Image", text(&p.exe)));
                    }
                    v.push(("ProcessId", Val::Int(p.pid.into())));
                    v.push(("User", user(users, p.uid)));
                }
                let (src, dst) = if initiated {
                    (s.local, remote)
                } else {
                    (remote, s.local)
                };
                v.push(("Protocol", protocol(s.transport)));
                v.push(("Initiated", Val::Bool(initiated)));
                v.push(("SourceIp", Val::Str(Cow::Owned(src.ip().to_string()))));
                v.push(("SourcePort", Val::Int(src.port().into())));
                v.push(("DestinationIp", Val::Str(Cow::Owned(dst.ip().to_string()))));
                v.push(("DestinationPort", Val::Int(dst.port().into())));
                v.push(("DestinationIsIpv6", Val::Bool(dst.is_ipv6())));
                Category::NetworkConnection
            }
            EventBody::NetworkActivity(f) => {
                v.push(("Protocol", protocol(f.transport)));
                v.push(("SourceIp", Val::Str(Cow::Owned(f.src.to_string()))));
                v.push(("SourcePort", Val::Int(f.src_port.into())));
                v.push(("DestinationIp", Val::Str(Cow::Owned(f.dst.to_string()))));
                v.push(("DestinationPort", Val::Int(f.dst_port.into())));
                v.push(("DestinationIsIpv6", Val::Bool(f.dst.is_ipv6())));
                Category::NetworkConnection
            }
            EventBody::FileActivity(f) if f.flags & WRITE_FLAGS != 0 => {
                v.push(("TargetFilename", text(&f.path)));
                if !f.process.exe.is_empty() {
                    v.push(("Image", text(&f.process.exe)));
                }
                v.push(("ProcessId", Val::Int(f.process.pid.into())));
                v.push(("User", user(users, f.process.uid)));
                Category::FileEvent
            }
            _ => return None,
        };
        Some(SigmaEvent {
            category,
            values: v,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Val<'a>> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A text value, for evidence.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Val::Str(s) => Some(s.to_string()),
            Val::Int(n) => Some(n.to_string()),
            Val::Bool(b) => Some(b.to_string()),
        }
    }
}

impl rsigma_eval::Event for SigmaEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        Some(match self.get(path)? {
            Val::Str(s) => EventValue::Str(Cow::Borrowed(s.as_ref())),
            Val::Int(n) => EventValue::Int(*n),
            Val::Bool(b) => EventValue::Bool(*b),
        })
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.values.iter().any(|(_, v)| match v {
            Val::Str(s) => pred(s),
            _ => false,
        })
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.values
            .iter()
            .filter_map(|(_, v)| match v {
                Val::Str(s) => Some(Cow::Borrowed(s.as_ref())),
                _ => None,
            })
            .collect()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for (_, v) in &self.values {
            if let Val::Str(s) = v {
                visit(s);
            }
        }
    }

    fn to_json(&self) -> Value {
        let map = self
            .values
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Val::Str(s) => Value::String(s.to_string()),
                    Val::Int(i) => Value::from(*i),
                    Val::Bool(b) => Value::Bool(*b),
                };
                ((*n).to_owned(), v)
            })
            .collect();
        Value::Object(map)
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        Some(self.values.iter().map(|(n, _)| Cow::Borrowed(*n)).collect())
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        for (n, _) in &self.values {
            visit(n);
        }
        true
    }
}
