//! Threat intel in detection: a flow or connection to or from a listed
//! address, the exec of a listed SHA-256, and a listed domain on a new
//! process's command line each raise a finding. The IOC list is the shared
//! workspace's, and follows it live.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use amoskys_learning::{Category, Finding, Severity, Subject};
use amoskys_sensors::event::ProcessActivityKind;
use amoskys_sensors::{Event, EventBody};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::workspace::{Ioc, IocMatcher};

/// Executables larger than this are not hashed.
const MAX_HASHED_BYTES: u64 = 256 << 20;
/// Hashes remembered by (path, size, modification time).
const MAX_CACHED_HASHES: usize = 4_096;

type FileId = (String, u64, i128);

/// Matches events against the workspace's IOCs.
#[derive(Debug)]
pub struct IocDetection {
    matcher: watch::Receiver<Arc<IocMatcher>>,
    hashes: HashMap<FileId, Option<String>>,
}

impl IocDetection {
    pub fn new(matcher: watch::Receiver<Arc<IocMatcher>>) -> Self {
        Self {
            matcher,
            hashes: HashMap::new(),
        }
    }

    /// Findings for the events that touch a live IOC.
    pub fn observe(&mut self, events: &[Event], now_ms: u64) -> Vec<Finding> {
        let matcher = self.matcher.borrow().clone();
        if matcher.is_empty() {
            return Vec::new();
        }
        let live = |ioc: Option<&Ioc>| {
            ioc.filter(|i| i.expires_ms.is_none_or(|t| t > now_ms))
                .cloned()
        };
        let mut out = Vec::new();
        for e in events {
            match &e.body {
                EventBody::NetworkActivity(f) => {
                    if let Some(ioc) = live(matcher.match_ip(f.dst)) {
                        out.push(address(
                            e.time_ns,
                            Subject::DestinationIp(f.dst),
                            &ioc,
                            "to",
                            f.dst_port,
                        ));
                    } else if let Some(ioc) = live(matcher.match_ip(f.src)) {
                        out.push(address(
                            e.time_ns,
                            Subject::SourceIp(f.src),
                            &ioc,
                            "from",
                            f.dst_port,
                        ));
                    }
                }
                EventBody::SocketActivity(s) => {
                    if let Some(remote) = s.remote
                        && let Some(ioc) = live(matcher.match_ip(remote.ip()))
                    {
                        out.push(address(
                            e.time_ns,
                            Subject::DestinationIp(remote.ip()),
                            &ioc,
                            "with",
                            remote.port(),
                        ));
                    }
                }
                EventBody::ProcessActivity(p) if p.activity == ProcessActivityKind::Launch => {
                    let subject = Subject::Process {
                        pid: p.process.pid,
                        exe: p.process.exe.clone(),
                    };
                    if matcher.has_hashes()
                        && let Some(hash) = self.hash(&p.process.exe)
                        && let Some(ioc) = live(matcher.match_hash(&hash))
                    {
                        out.push(finding(
                            e.time_ns,
                            "ioc_file_hash",
                            Category::Execution,
                            "T1204",
                            subject.clone(),
                            &ioc,
                            vec![("sha256".into(), hash)],
                        ));
                    }
                    if let Some(ioc) = p
                        .process
                        .cmdline
                        .iter()
                        .filter_map(|a| host_of(a))
                        .find_map(|h| live(matcher.match_domain(&h)))
                    {
                        out.push(finding(
                            e.time_ns,
                            "ioc_domain",
                            Category::CommandAndControl,
                            "T1071",
                            subject,
                            &ioc,
                            Vec::new(),
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The SHA-256 of an executable, remembered while it is unchanged.
    fn hash(&mut self, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        let id = (path.to_owned(), meta.len(), modified);
        if let Some(h) = self.hashes.get(&id) {
            return h.clone();
        }
        let hash = (meta.len() <= MAX_HASHED_BYTES)
            .then(|| sha256_file(path))
            .flatten();
        if self.hashes.len() >= MAX_CACHED_HASHES {
            self.hashes.clear();
        }
        self.hashes.insert(id, hash.clone());
        hash
    }
}

fn sha256_file(path: &str) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            return Some(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// The host name in a command-line argument: a URL's host, or the argument
/// itself when it looks like a domain.
fn host_of(arg: &str) -> Option<String> {
    let rest = arg.split_once("://").map_or(arg, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', ':', '?', '#']).next()?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (host.contains('.') && host.parse::<IpAddr>().is_err()).then_some(host)
}

fn address(time_ns: u64, subject: Subject, ioc: &Ioc, direction: &str, port: u16) -> Finding {
    finding(
        time_ns,
        "ioc_address",
        Category::CommandAndControl,
        "T1071",
        subject,
        ioc,
        vec![
            ("direction".into(), direction.into()),
            ("port".into(), port.to_string()),
        ],
    )
}

fn finding(
    time_ns: u64,
    rule: &str,
    category: Category,
    technique: &str,
    subject: Subject,
    ioc: &Ioc,
    mut evidence: Vec<(String, String)>,
) -> Finding {
    evidence.splice(
        0..0,
        [
            ("ioc".to_owned(), ioc.value.clone()),
            ("ioc_kind".to_owned(), ioc.kind.label().to_owned()),
            ("reason".to_owned(), ioc.reason.clone()),
            (
                "added_by".to_owned(),
                ioc.added_by.chars().take(16).collect(),
            ),
        ],
    );
    Finding {
        time_ns,
        rule: rule.to_owned(),
        category,
        technique: technique.to_owned(),
        severity: Severity::High,
        score: 1.0,
        subject,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use amoskys_sensors::event::{ProcessActivityKind, ProcessInfo};
    use amoskys_sensors::{Event, EventBody, ProcessActivity};
    use tokio::sync::watch;

    use super::{IocDetection, host_of, sha256_file};
    use crate::workspace::ThreatIntel;

    fn launch(exe: &str, cmdline: &[&str]) -> Event {
        Event::new(
            1,
            "test",
            "ebpf",
            EventBody::ProcessActivity(ProcessActivity {
                activity: ProcessActivityKind::Launch,
                process: ProcessInfo {
                    pid: 77,
                    ppid: 1,
                    name: "x".into(),
                    exe: exe.into(),
                    cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
                    uid: 0,
                    start_time_ns: 1,
                    cwd: String::new(),
                },
                lineage: Vec::new(),
            }),
        )
    }

    #[test]
    fn the_exec_of_a_listed_hash_and_a_listed_domain_on_a_command_line_are_found() {
        let mut file = tempfile::NamedTempFile::new().expect("file");
        file.write_all(b"#!/bin/sh\necho implant\n").expect("write");
        let path = file.path().to_str().expect("utf-8").to_owned();
        let hash = sha256_file(&path).expect("hashed");
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let mut intel = ThreatIntel::new();
        intel
            .add(&hash, "implant", None, 1, &key)
            .expect("hash listed");
        intel
            .add("evil.example", "c2", Some(10_000), 1, &key)
            .expect("domain listed");
        let (_tx, rx) = watch::channel(Arc::new(intel.matcher(2)));
        let mut d = IocDetection::new(rx);

        let found = d.observe(&[launch(&path, &["sh"])], 2);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "ioc_file_hash");
        let found = d.observe(
            &[launch("/bin/true", &["curl", "https://a.evil.example/x"])],
            2,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "ioc_domain");
        // Past its expiry the domain no longer matches.
        let found = d.observe(
            &[launch("/bin/true", &["curl", "https://a.evil.example/x"])],
            20_000,
        );
        assert!(found.is_empty());
    }

    #[test]
    fn hosts_come_out_of_urls_and_bare_names() {
        assert_eq!(
            host_of("https://user@Evil.Example:8443/x?y").as_deref(),
            Some("evil.example")
        );
        assert_eq!(host_of("evil.example.").as_deref(), Some("evil.example"));
        assert_eq!(host_of("-O"), None);
        assert_eq!(host_of("10.0.0.1"), None);
        assert_eq!(host_of("/usr/bin/curl"), None);
    }
}
