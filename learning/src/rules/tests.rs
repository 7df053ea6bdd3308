use std::net::IpAddr;

use amoskys_sensors::event::{
    FlowCounters, FlowEnd, LineageEntry, ProcessActivityKind, SocketActivityKind, TcpFlagCounts,
};
use amoskys_sensors::{
    Event, EventBody, FlowRecord, ProcessActivity, ProcessInfo, ProcessRef, SocketActivity,
    Transport,
};

use super::*;

const SEC: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn flow(src: &str, dst: &str, dst_port: u16, t: u64, kind: &str) -> Event {
    let (flags, fwd, rev, end) = match kind {
        // SYN answered by RST: a closed port.
        "refused" => (
            TcpFlagCounts {
                syn: 1,
                syn_no_ack: 1,
                rst: 1,
                ..Default::default()
            },
            1,
            1,
            FlowEnd::End,
        ),
        // A SYN nobody answered.
        "unanswered" => (
            TcpFlagCounts {
                syn: 1,
                syn_no_ack: 1,
                ..Default::default()
            },
            1,
            0,
            FlowEnd::Idle,
        ),
        // A short full session.
        "session" => (
            TcpFlagCounts {
                syn: 2,
                syn_no_ack: 1,
                syn_ack: 1,
                fin: 2,
                rst: 0,
            },
            12,
            10,
            FlowEnd::End,
        ),
        other => panic!("unknown flow kind {other}"),
    };
    Event::new(
        t,
        "h",
        "flows",
        EventBody::NetworkActivity(FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: ip(src),
            src_port: 40_000,
            dst: ip(dst),
            dst_port,
            first_ns: t.saturating_sub(SEC),
            last_ns: t,
            forward: FlowCounters {
                packets: fwd,
                bytes: fwd * 60,
            },
            reverse: FlowCounters {
                packets: rev,
                bytes: rev * 60,
            },
            tcp_flags: flags,
            end,
        }),
    )
}

fn rules(engine: &mut RuleEngine, events: &[Event]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| engine.observe(e))
        .map(|f| f.rule)
        .collect()
}

#[test]
fn vertical_scan_fires_once_per_window_at_the_threshold() {
    let mut e = RuleEngine::new(RulePolicy::default());
    let scan: Vec<Event> = (1..=100)
        .map(|p| flow("10.0.0.9", "10.0.0.1", p, 1_000 * SEC + p as u64, "refused"))
        .collect();
    let found: Vec<Finding> = scan.iter().flat_map(|ev| e.observe(ev)).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, "port_scan_vertical");
    assert_eq!(found[0].technique, "T1046");
    assert_eq!(found[0].subject, Subject::SourceIp(ip("10.0.0.9")));
    assert_eq!(found[0].time_ns, 1_000 * SEC + 20, "fires on the 20th port");
    // The next window fires again.
    let later = flow("10.0.0.9", "10.0.0.1", 1, 1_100 * SEC, "refused");
    let again: Vec<Event> = (0..20)
        .map(|p| {
            flow(
                "10.0.0.9",
                "10.0.0.1",
                200 + p,
                1_100 * SEC + p as u64,
                "refused",
            )
        })
        .collect();
    assert!(e.observe(&later).is_empty());
    assert_eq!(rules(&mut e, &again), vec!["port_scan_vertical"]);
}

#[test]
fn horizontal_scan_needs_failed_attempts_on_many_hosts() {
    let mut e = RuleEngine::new(RulePolicy::default());
    let sweep: Vec<Event> = (1..=12)
        .map(|h| {
            flow(
                "10.0.0.9",
                &format!("10.0.1.{h}"),
                22,
                h * SEC,
                "unanswered",
            )
        })
        .collect();
    assert_eq!(rules(&mut e, &sweep), vec!["port_scan_horizontal"]);

    // A client reaching 50 web servers that answer is normal.
    let mut e = RuleEngine::new(RulePolicy::default());
    let browsing: Vec<Event> = (1..=50)
        .map(|h| flow("10.0.0.5", &format!("10.0.2.{h}"), 443, h * SEC, "session"))
        .collect();
    assert!(rules(&mut e, &browsing).is_empty());
}

#[test]
fn syn_flood_from_one_source_names_the_source() {
    let mut e = RuleEngine::new(RulePolicy::default());
    let flood: Vec<Event> = (0..300)
        .map(|i| flow("10.0.0.66", "10.0.0.1", 80, SEC + i, "unanswered"))
        .collect();
    let found: Vec<Finding> = flood.iter().flat_map(|ev| e.observe(ev)).collect();
    let floods: Vec<&Finding> = found.iter().filter(|f| f.rule == "syn_flood").collect();
    assert_eq!(floods.len(), 1);
    assert_eq!(floods[0].technique, "T1498.001");
    assert_eq!(floods[0].subject, Subject::SourceIp(ip("10.0.0.66")));

    // Busy but healthy service: handshakes complete.
    let mut e = RuleEngine::new(RulePolicy::default());
    let busy: Vec<Event> = (0..500)
        .map(|i| {
            flow(
                &format!("10.0.3.{}", i % 200),
                "10.0.0.1",
                80,
                SEC + i,
                "session",
            )
        })
        .collect();
    assert!(rules(&mut e, &busy).is_empty());
}

#[test]
fn brute_force_counts_short_sessions_to_service_ports() {
    let mut e = RuleEngine::new(RulePolicy::default());
    let tries: Vec<Event> = (0..20)
        .map(|i| flow("10.0.0.7", "10.0.0.1", 22, (i + 1) * SEC, "session"))
        .collect();
    let found: Vec<Finding> = tries.iter().flat_map(|ev| e.observe(ev)).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].rule.as_str(), found[0].technique.as_str()),
        ("brute_force", "T1110")
    );
    // Sessions to a non-service port are not attempts.
    let mut e = RuleEngine::new(RulePolicy::default());
    let web: Vec<Event> = (0..20)
        .map(|i| flow("10.0.0.7", "10.0.0.1", 8080, (i + 1) * SEC, "session"))
        .collect();
    assert!(rules(&mut e, &web).is_empty());
}

#[test]
fn allow_listed_sources_and_iocs() {
    let policy = RulePolicy {
        allow_sources: vec![ip("10.0.0.9")],
        ioc_addresses: vec![ip("203.0.113.7")],
        ..RulePolicy::default()
    };
    let mut e = RuleEngine::new(policy);
    let scan: Vec<Event> = (1..=100)
        .map(|p| flow("10.0.0.9", "10.0.0.1", p, SEC + p as u64, "refused"))
        .collect();
    assert!(rules(&mut e, &scan).is_empty(), "allow-listed scanner");
    let c2 = [
        flow("10.0.0.5", "203.0.113.7", 443, SEC, "session"),
        flow("10.0.0.5", "203.0.113.7", 443, 2 * SEC, "session"),
    ];
    assert_eq!(rules(&mut e, &c2), vec!["ioc_address"], "once per window");
    e.set_iocs([]);
    assert!(
        rules(
            &mut e,
            &[flow("10.0.0.5", "203.0.113.7", 443, 500 * SEC, "session")]
        )
        .is_empty()
    );
}

fn exec(name: &str, parent: &str) -> Event {
    Event::new(
        SEC,
        "h",
        "procfs",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid: 200,
                ppid: 100,
                name: name.into(),
                exe: format!("/usr/bin/{name}"),
                cmdline: vec![name.into(), "-c".into(), "id".into()],
                uid: 33,
                start_time_ns: SEC,
                cwd: String::new(),
            },
            lineage: vec![LineageEntry {
                pid: 100,
                name: parent.into(),
                exe: format!("/usr/sbin/{parent}"),
            }],
        }),
    )
}

#[test]
fn shell_under_a_network_service() {
    let mut e = RuleEngine::new(RulePolicy::default());
    let found = e.observe(&exec("bash", "nginx"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].technique, "T1059.004");
    assert!(
        !found[0].evidence.iter().any(|(_, v)| v.contains("-c")),
        "no command line in evidence"
    );
    assert!(
        e.observe(&exec("bash", "sshd")).is_empty(),
        "a login shell is normal"
    );
    assert!(e.observe(&exec("ls", "nginx")).is_empty());
}

/// A TCP socket event on `port`, owned by `pid` when given.
fn sock(activity: SocketActivityKind, port: u16, pid: Option<i32>, t: u64) -> Event {
    Event::new(
        t,
        "h",
        "procfs",
        EventBody::SocketActivity(SocketActivity {
            activity,
            transport: Transport::Tcp,
            local: format!("0.0.0.0:{port}").parse().expect("addr"),
            remote: None,
            process: pid.map(|pid| ProcessRef {
                pid,
                name: "nc".into(),
                exe: "/usr/bin/nc".into(),
                uid: 0,
            }),
        }),
    )
}

fn listen(port: u16, t: u64) -> Event {
    sock(SocketActivityKind::Listen, port, Some(7), t)
}

#[test]
fn new_listening_port_once_per_window() {
    let mut e = RuleEngine::new(RulePolicy {
        listen_allow_ports: vec![22],
        ..RulePolicy::default()
    });
    assert_eq!(
        rules(&mut e, &[listen(4444, SEC), listen(4444, 2 * SEC)]),
        vec!["new_listening_port"]
    );
    assert!(e.observe(&listen(22, SEC)).is_empty(), "allow-listed port");
}

#[test]
fn listeners_open_at_start_are_the_baseline() {
    let mut e = RuleEngine::new(RulePolicy::default());
    // The first observation after start: these were already listening.
    e.seed_listeners([8080, 5432]);
    assert!(rules(&mut e, &[listen(8080, SEC), listen(5432, SEC)]).is_empty());
    // Only a listener that appears afterwards is new.
    assert_eq!(
        rules(&mut e, &[listen(4444, SEC)]),
        vec!["new_listening_port"]
    );
    // A baseline listener that closes and opens again is new.
    e.observe(&sock(SocketActivityKind::Close, 8080, Some(7), 2 * SEC));
    assert_eq!(
        rules(&mut e, &[listen(8080, 3 * SEC)]),
        vec!["new_listening_port"]
    );
    // A policy change keeps the baseline.
    e.set_policy(RulePolicy {
        window_secs: 30,
        ..RulePolicy::default()
    });
    assert!(e.observe(&listen(5432, 4 * SEC)).is_empty());
}

#[test]
fn the_node_never_alerts_on_its_own_sockets() {
    let mut e = RuleEngine::new(RulePolicy::default());
    e.set_own_sockets(OwnSockets {
        pid: Some(100),
        ports: vec![7300, 7301],
    });
    let listen = SocketActivityKind::Listen;
    // Any listener of the node's process, on any port.
    assert!(e.observe(&sock(listen, 45_000, Some(100), SEC)).is_empty());
    assert!(e.observe(&sock(listen, 7300, Some(100), SEC)).is_empty());
    // The node's ports when the owner is unknown.
    assert!(e.observe(&sock(listen, 7301, None, SEC)).is_empty());
    // Another process on the node's port, or anywhere else, is reported.
    assert_eq!(
        rules(&mut e, &[sock(listen, 7300, Some(200), 2 * SEC)]),
        vec!["new_listening_port"]
    );
    assert_eq!(
        rules(&mut e, &[sock(listen, 4444, None, 2 * SEC)]),
        vec!["new_listening_port"]
    );
    // A policy change keeps the node's own sockets.
    e.set_policy(RulePolicy {
        window_secs: 30,
        ..RulePolicy::default()
    });
    assert!(
        e.observe(&sock(listen, 45_001, Some(100), 3 * SEC))
            .is_empty()
    );
}

#[test]
fn policy_validation_and_toml() {
    assert!(RulePolicy::default().validate().is_empty());
    let bad = RulePolicy {
        window_secs: 0,
        flood_max_completed_ratio: 2.0,
        ..RulePolicy::default()
    };
    let problems = bad.validate();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("window_secs: 0"));
    let p: RulePolicy = toml::from_str("scan_min_ports = 5\nallow_sources = [\"192.0.2.1\"]")
        .expect("partial policy");
    assert_eq!((p.scan_min_ports, p.scan_min_hosts), (5, 10));
    assert!(
        toml::from_str::<RulePolicy>("scan_min_port = 5").is_err(),
        "unknown key refused"
    );
}

/// A UDP flow of one packet to `dst_port`, answered with `rev` packets.
fn udp(src: &str, dst: &str, dst_port: u16, t: u64, rev: u64) -> Event {
    let mut e = flow(src, dst, dst_port, t, "unanswered");
    if let EventBody::NetworkActivity(f) = &mut e.body {
        f.transport = Transport::Udp;
        f.tcp_flags = TcpFlagCounts::default();
        f.reverse.packets = rev;
    }
    e
}

#[test]
fn a_udp_scan_fires_on_unanswered_ports_and_answered_traffic_does_not() {
    let mut e = RuleEngine::new(RulePolicy::default());
    // DNS and SNMP that get answers, to many ports: not a scan.
    let answered: Vec<Event> = (0..50)
        .map(|p| udp("10.0.0.7", "10.0.0.1", 1_000 + p, 1_000 * SEC + p as u64, 1))
        .collect();
    assert!(rules(&mut e, &answered).is_empty());
    // nmap -sU --top-ports 50: nothing comes back on most of them.
    let scan: Vec<Event> = (0..50)
        .map(|p| udp("10.0.0.9", "10.0.0.1", 1_000 + p, 1_000 * SEC + p as u64, 0))
        .collect();
    assert_eq!(rules(&mut e, &scan), vec!["port_scan_udp"]);
}

#[test]
fn a_slow_scan_under_the_per_window_threshold_fires_once_over_the_long_window() {
    let mut e = RuleEngine::new(RulePolicy::default());
    // nmap --scan-delay 3200ms: 36 ports in about two minutes, under 20 a
    // minute, so the vertical rule never fires.
    let slow: Vec<Event> = (0..36)
        .map(|p| {
            let t = 1_000 * SEC + p as u64 * 3_200_000_000;
            flow("10.0.0.9", "10.0.0.1", 1_000 + p, t, "refused")
        })
        .collect();
    assert_eq!(rules(&mut e, &slow), vec!["port_scan_slow"]);
    // A fast scan by another source is reported once, as the fast one.
    let fast: Vec<Event> = (0..100)
        .map(|p| {
            flow(
                "10.0.0.8",
                "10.0.0.1",
                1_000 + p,
                2_000 * SEC + p as u64,
                "refused",
            )
        })
        .collect();
    assert_eq!(rules(&mut e, &fast), vec!["port_scan_vertical"]);
    // Ordinary failures (one service down, retried all hour) are one target.
    let retries: Vec<Event> = (0..500)
        .map(|i| {
            flow(
                "10.0.0.6",
                "10.0.0.2",
                5432,
                3_000 * SEC + i * 7 * SEC,
                "refused",
            )
        })
        .collect();
    assert!(rules(&mut e, &retries).is_empty());
}

#[test]
fn the_new_scan_keys_have_ranges() {
    let p = RulePolicy {
        udp_scan_min_ports: 1,
        slow_scan_window_secs: 10,
        slow_scan_min_targets: 0,
        ..RulePolicy::default()
    };
    let problems = p.validate().join("\n");
    for key in [
        "udp_scan_min_ports",
        "slow_scan_window_secs",
        "slow_scan_min_targets",
    ] {
        assert!(problems.contains(key), "{problems}");
    }
}
