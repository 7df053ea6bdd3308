//! Feature window tests: schemas, ranges, the entity kinds' signals.

use super::*;
use amoskys_sensors::event::{
    FlowCounters, FlowEnd, InterfaceRates, LineageEntry, ProcessInfo, ProcessRef, TcpFlagCounts,
    Transport,
};

const S: u64 = 1_000_000_000;

fn flow(t: u64, src: &str, dst: &str, port: u16, answered: bool) -> Event {
    let body = EventBody::NetworkActivity(FlowRecord {
        interface: "eth0".into(),
        transport: Transport::Tcp,
        src: src.parse().expect("ip"),
        src_port: 40_000,
        dst: dst.parse().expect("ip"),
        dst_port: port,
        first_ns: t,
        last_ns: t,
        forward: FlowCounters {
            packets: 1,
            bytes: 60,
        },
        reverse: FlowCounters {
            packets: u64::from(answered),
            bytes: if answered { 60 } else { 0 },
        },
        tcp_flags: TcpFlagCounts {
            syn: 1,
            syn_no_ack: 1,
            syn_ack: u32::from(answered),
            ..Default::default()
        },
        end: if answered {
            FlowEnd::End
        } else {
            FlowEnd::Idle
        },
    });
    Event::new(t, "h", "flows", body)
}

fn launch(t: u64, exe: &str, parent: &str) -> Event {
    let name = exe.rsplit('/').next().unwrap_or(exe).to_owned();
    Event::new(
        t,
        "h",
        "procfs",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid: 10,
                ppid: 1,
                name,
                exe: exe.into(),
                cmdline: vec![],
                uid: 0,
                start_time_ns: t,
                cwd: String::new(),
            },
            lineage: vec![LineageEntry {
                pid: 1,
                name: "p".into(),
                exe: parent.into(),
            }],
        }),
    )
}

fn value(w: &FeatureWindow, name: &str) -> f32 {
    let i = w
        .kind
        .features()
        .iter()
        .position(|f| *f == name)
        .expect("feature");
    w.values[i]
}

#[test]
fn every_window_matches_its_schema_and_stays_in_range() {
    let mut fx = FeatureExtractor::new(60 * S, 100);
    fx.push(&flow(S, "10.0.0.1", "10.0.0.2", 22, true));
    fx.push(&launch(2 * S, "/usr/bin/bash", "/usr/sbin/sshd"));
    fx.push(&Event::new(
        3 * S,
        "h",
        "sockets",
        EventBody::SocketActivity(SocketActivity {
            activity: SocketActivityKind::Accept,
            transport: Transport::Tcp,
            local: "10.0.0.2:22".parse().expect("addr"),
            remote: Some("10.0.0.1:40000".parse().expect("addr")),
            process: Some(ProcessRef {
                pid: 5,
                name: "sshd".into(),
                exe: "/usr/sbin/sshd".into(),
                uid: 0,
            }),
        }),
    ));
    let windows = fx.close();
    assert_eq!(windows.len(), 4, "source, host, sshd, bash");
    for w in &windows {
        assert_eq!(w.values.len(), w.kind.features().len(), "{:?}", w.kind);
        assert!(w.values.iter().all(|v| (0.0..=1.0).contains(v)), "{w:?}");
        assert_eq!((w.start_ns, w.end_ns), (0, 60 * S));
    }
    let sshd = windows
        .iter()
        .find(|w| {
            w.subject
                == Subject::Process {
                    pid: 0,
                    exe: "/usr/sbin/sshd".into(),
                }
        })
        .expect("sshd window");
    assert!(value(sshd, "shell_children") > 0.0);
    assert!(value(sshd, "accepts") > 0.0);
    assert!(fx.close().is_empty(), "closing twice gives nothing");
}

#[test]
fn a_scan_differs_from_a_session() {
    let mut fx = FeatureExtractor::new(60 * S, 100);
    for port in 1..=500u16 {
        fx.push(&flow(S, "10.0.0.9", "10.0.0.2", port, false));
    }
    fx.push(&flow(S, "10.0.0.1", "10.0.0.2", 443, true));
    // The next window's first event closes this one.
    let closed = fx.push(&flow(61 * S, "10.0.0.1", "10.0.0.2", 443, true));
    let scan = &closed[1];
    let session = &closed[0];
    assert_eq!(
        scan.subject,
        Subject::SourceIp("10.0.0.9".parse().expect("ip"))
    );
    assert!(value(scan, "distinct_dst_ports") > 0.5);
    assert_eq!(value(scan, "failed_tcp_ratio"), 1.0);
    assert_eq!(value(scan, "syn_without_ack_ratio"), 1.0);
    assert_eq!(
        value(session, "distinct_dst_ports"),
        0.0f32.max(log_scale(1.0, 65_536.0))
    );
    assert_eq!(value(session, "completed_tcp_ratio"), 1.0);
    assert_eq!(fx.flush(100 * S).len(), 0, "the open window runs to 120 s");
    assert_eq!(fx.flush(120 * S).len(), 1);
}

#[test]
fn a_pair_is_rare_until_seen_twice() {
    let mut fx = FeatureExtractor::new(60 * S, 100);
    let rare = |fx: &mut FeatureExtractor, t: u64| {
        fx.push(&launch(t, "/usr/bin/ls", "/usr/bin/bash"));
        let w = fx.close();
        value(&w[0], "rare_parent_child")
    };
    assert!(rare(&mut fx, S) > 0.0);
    assert!(rare(&mut fx, 61 * S) > 0.0);
    assert_eq!(rare(&mut fx, 121 * S), 0.0);
}

#[test]
fn a_rate_jump_raises_the_zscore() {
    let mut fx = FeatureExtractor::new(60 * S, 100);
    let poll = |t: u64, rate: f64| {
        Event::new(
            t,
            "h",
            "snmp",
            EventBody::DeviceMetrics(DeviceMetrics {
                device: "sw1".into(),
                address: "127.0.0.1:161".into(),
                uptime_ticks: 1,
                description: String::new(),
                rebooted: false,
                load: Some([0.5, 0.5, 0.5]),
                cpu_percent: vec![10, 30],
                memory_total_kib: Some(1000),
                memory_available_kib: Some(250),
                interfaces: vec![InterfaceRates {
                    index: 1,
                    name: "eth0".into(),
                    in_bytes_per_sec: Some(rate),
                    out_bytes_per_sec: Some(rate),
                    in_packets_per_sec: Some(rate / 100.0),
                    out_packets_per_sec: Some(rate / 100.0),
                    in_errors_per_sec: Some(0.0),
                    out_errors_per_sec: Some(0.0),
                }],
                ..Default::default()
            }),
        )
    };
    let mut last = Vec::new();
    for i in 0..10u64 {
        fx.push(&poll(i * 60 * S, 1000.0 + (i % 2) as f64 * 50.0));
        last = fx.close();
    }
    let calm = value(&last[0], "max_rate_zscore");
    assert!((value(&last[0], "cpu") - 0.2).abs() < 1e-6);
    assert!((value(&last[0], "memory_used_ratio") - 0.75).abs() < 1e-6);
    fx.push(&poll(11 * 60 * S, 1e8));
    let jump = value(&fx.close()[0], "max_rate_zscore");
    assert!(calm < 0.2 && jump > 0.9, "calm {calm}, jump {jump}");
}

#[test]
fn entity_tables_are_bounded() {
    let mut fx = FeatureExtractor::new(60 * S, 3);
    for i in 0..10 {
        fx.push(&flow(S, &format!("10.0.0.{i}"), "10.0.0.100", 80, true));
    }
    assert_eq!(fx.close().len(), 3);
}
