//! Sigma rules on the detection path: process-creation events per second
//! through `RuleEngine::observe` (the built-in rules and the Sigma rules of
//! the policy) with 0, 100 and 1,000 loaded rules, and the time to load
//! them. The rules are generated: `endswith`, `contains`, `contains|all`,
//! `1 of selection_* and not filter`, parent lineage, and one regex in ten;
//! one event in a hundred matches a rule.
//!
//! `cargo bench -p amoskys-learning --bench sigma` (figures go to
//! docs/BENCHMARKS.md); under `cargo test` it runs a short pass.

use std::collections::HashMap;
use std::time::Instant;

use amoskys_learning::rules::sigma::parse_passwd;
use amoskys_learning::{RuleEngine, RulePolicy};
use amoskys_sensors::event::{LineageEntry, ProcessActivityKind, ProcessInfo};
use amoskys_sensors::{Event, EventBody, ProcessActivity};

fn rule(i: usize) -> String {
    let head = format!(
        "title: Generated rule {i}\nid: bench-{i:05}\nlogsource:\n    product: linux\n    category: process_creation\n"
    );
    let tail = "level: medium\ntags:\n    - attack.execution\n    - attack.t1059\n";
    let detection = match i % 5 {
        0 => format!(
            "detection:\n    selection:\n        Image|endswith: '/tool{i}'\n        CommandLine|contains: '--flag{i}'\n    condition: selection\n"
        ),
        1 => format!(
            "detection:\n    selection:\n        CommandLine|contains|all:\n            - 'alpha{i}'\n            - 'beta{i}'\n    condition: selection\n"
        ),
        2 => format!(
            "detection:\n    selection_img:\n        Image|endswith: '/bin{i}'\n    selection_cmd:\n        CommandLine|contains: 'needle{i}'\n    filter:\n        User: root\n    condition: 1 of selection_* and not filter\n"
        ),
        3 => format!(
            "detection:\n    selection:\n        ParentImage|endswith: '/svc{i}'\n        Image|endswith:\n            - '/sh'\n            - '/bash'\n    condition: selection\n"
        ),
        _ if i % 10 == 4 => format!(
            "detection:\n    selection:\n        CommandLine|re: 'evil{i}\\s+--[a-z]+'\n    condition: selection\n"
        ),
        _ => format!(
            "detection:\n    selection:\n        CommandLine|startswith: '/opt/app{i}/run'\n    condition: selection\n"
        ),
    };
    format!("{head}{detection}{tail}")
}

const COMMANDS: &[(&str, &str)] = &[
    ("/usr/bin/ls", "ls -la /var/log"),
    ("/usr/bin/git", "git status --short"),
    ("/usr/bin/python3", "python3 /srv/app/manage.py migrate"),
    ("/bin/bash", "bash -c cd /srv && make all"),
    (
        "/usr/bin/ssh",
        "ssh -o BatchMode=yes backup@10.0.0.5 uptime",
    ),
    ("/usr/bin/grep", "grep -r TODO src/"),
    ("/usr/sbin/cron", "/usr/sbin/cron -f"),
    ("/usr/bin/curl", "curl -fsS https://example.org/health"),
    (
        "/usr/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ),
    ("/usr/bin/find", "find /home -name *.tmp -mtime +7 -delete"),
];

fn events(n: usize, rules: usize) -> Vec<Event> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|k| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (exe, cmd) = COMMANDS[(s % COMMANDS.len() as u64) as usize];
            let mut cmdline: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
            // One event in a hundred carries a needle of a type-2 rule.
            if k % 100 == 0 && rules > 2 {
                let i = (s as usize % rules.div_ceil(5)) * 5 + 2;
                cmdline.push(format!("needle{}", i.min(rules - 3)));
            }
            Event::new(
                k as u64,
                "bench",
                "ebpf",
                EventBody::ProcessActivity(ProcessActivity {
                    activity: ProcessActivityKind::Launch,
                    process: ProcessInfo {
                        pid: 1000 + (k % 30_000) as i32,
                        ppid: 999,
                        name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
                        exe: exe.to_owned(),
                        cmdline,
                        uid: 1000,
                        start_time_ns: k as u64,
                        cwd: String::new(),
                    },
                    lineage: vec![LineageEntry {
                        pid: 999,
                        name: "bash".into(),
                        exe: "/bin/bash".into(),
                    }],
                }),
            )
        })
        .collect()
}

fn engine(rules: usize) -> (RuleEngine, f64) {
    let policy = RulePolicy {
        sigma: (0..rules).map(rule).collect(),
        ..RulePolicy::default()
    };
    let start = Instant::now();
    let mut e = RuleEngine::new(policy);
    let load = start.elapsed().as_secs_f64();
    assert_eq!(e.sigma().len(), rules, "every generated rule loads");
    let users: HashMap<u32, String> =
        parse_passwd("root:x:0:0::/root:/bin/sh\nbench:x:1000:1000::/:/bin/sh\n");
    e.set_user_names(users);
    (e, load)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if bench { (200_000, 5) } else { (2_000, 1) };
    println!(
        "| loaded rules | events/s (median of {runs}) | range | matches per pass | load time |"
    );
    println!("|---|---|---|---|---|");
    for rules in [0usize, 100, 1_000] {
        let (mut e, load) = engine(rules);
        let evs = events(n, rules);
        let mut rates = Vec::new();
        let mut matched = 0;
        for _ in 0..runs {
            let start = Instant::now();
            matched = 0;
            for ev in &evs {
                matched += e.observe(ev).len();
            }
            rates.push(n as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        if rules > 0 {
            assert!(matched > 0, "the needles match");
        }
        println!(
            "| {rules} | {:.0} | {:.0}–{:.0} | {matched} of {n} | {:.1} ms |",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            load * 1e3
        );
    }
}
