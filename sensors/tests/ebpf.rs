//! The eBPF sensor on the real kernel: exec of a spawned `/bin/true` with its
//! parent and argv, a TCP connect and accept on loopback, and an open under a
//! watched prefix (and none outside it). Needs root and kernel BTF.

#![cfg(feature = "ebpf")]

use std::time::{Duration, Instant};

use amoskys_sensors::ebpf::{EbpfConfig, EbpfSensor};
use amoskys_sensors::event::{ProcessActivityKind, SocketActivityKind};
use amoskys_sensors::{Event, EventBody, EventSink, HealthState, Sensor, event_channel};
use tokio::sync::mpsc::Receiver;

fn skip_reason() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some("not running as root (CI runs as root)".into());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    None
}

fn wait_for(rx: &mut Receiver<Event>, what: &str, pred: impl Fn(&EventBody) -> bool) -> EventBody {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match rx.try_recv() {
            Ok(ev) if pred(&ev.body) => return ev.body,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    panic!("no {what} event within 10 s");
}

#[test]
fn exec_connect_accept_and_watched_opens() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED ebpf tests: {reason}");
        return;
    }
    let watched = tempfile::tempdir().expect("tempdir");
    let watched_path = watched.path().to_string_lossy().into_owned();
    let mut sensor = EbpfSensor::new(EbpfConfig {
        host: "test-host".into(),
        watch_paths: vec![watched_path.clone()],
    });
    let (tx, mut rx) = event_channel(100_000);
    sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect("eBPF sensor starts");
    assert_eq!(sensor.stats().health().state, HealthState::Healthy);
    let me = std::process::id() as i32;

    // exec
    let status = std::process::Command::new("/bin/true")
        .arg("amoskys-ebpf-test")
        .status()
        .expect("run /bin/true");
    assert!(status.success());
    let body = wait_for(&mut rx, "exec", |b| {
        matches!(b, EventBody::ProcessActivity(p)
            if p.activity == ProcessActivityKind::Launch && p.process.cmdline.iter().any(|a| a == "amoskys-ebpf-test"))
    });
    let EventBody::ProcessActivity(exec) = body else {
        unreachable!()
    };
    assert_eq!(exec.process.ppid, me, "parent is this test");
    assert_eq!(exec.process.exe, "/bin/true");
    assert_eq!(exec.process.cmdline, vec!["/bin/true", "amoskys-ebpf-test"]);
    assert_eq!(exec.lineage.first().map(|l| l.pid), Some(me));

    // connect and accept
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_server, peer) = listener.accept().expect("accept");
    let body = wait_for(&mut rx, "connect", |b| {
        matches!(b, EventBody::SocketActivity(s)
            if s.activity == SocketActivityKind::Connect && s.remote.map(|r| r.port()) == Some(port))
    });
    let EventBody::SocketActivity(connect) = body else {
        unreachable!()
    };
    assert_eq!(connect.process.as_ref().map(|p| p.pid), Some(me));
    let body = wait_for(
        &mut rx,
        "accept",
        |b| matches!(b, EventBody::SocketActivity(s) if s.activity == SocketActivityKind::Accept && s.remote == Some(peer)),
    );
    assert!(matches!(body, EventBody::SocketActivity(_)));
    drop(client);

    // opens: outside the prefixes first, then inside
    let _ = std::fs::read_to_string("/etc/hostname");
    let secret = watched.path().join("secret.txt");
    std::fs::write(&secret, "x").expect("write watched file");
    let body = wait_for(
        &mut rx,
        "open",
        |b| matches!(b, EventBody::FileActivity(f) if f.path.starts_with(&watched_path)),
    );
    let EventBody::FileActivity(open) = body else {
        unreachable!()
    };
    assert_eq!(open.path, secret.to_string_lossy());
    assert_eq!(open.process.pid, me);

    sensor.stop();
    // Nothing reported /etc/hostname: only watched prefixes pass the kernel filter.
    while let Ok(ev) = rx.try_recv() {
        if let EventBody::FileActivity(f) = ev.body {
            assert!(
                f.path.starts_with(&watched_path),
                "unwatched open reported: {}",
                f.path
            );
        }
    }
}
