//! The procfs sensor sees a child this test spawns, with its lineage.

use std::process::Command;
use std::time::{Duration, Instant};

use amoskys_sensors::event::{ProcessActivityKind, SocketActivityKind};
use amoskys_sensors::procfs::{ProcfsConfig, ProcfsSensor};
use amoskys_sensors::{
    Event, EventBody, EventSink, HealthState, ProcessActivity, Sensor, SocketActivity, Transport,
    event_channel,
};
use tokio::sync::mpsc::Receiver;

/// Waits (bounded) for the first event `pick` accepts.
fn wait_for<T>(
    rx: &mut Receiver<Event>,
    deadline: Duration,
    pick: impl Fn(&EventBody) -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        match rx.try_recv() {
            Ok(ev) => {
                if let Some(found) = pick(&ev.body) {
                    return Some(found);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

fn process(
    pred: impl Fn(&ProcessActivity) -> bool,
) -> impl Fn(&EventBody) -> Option<ProcessActivity> {
    move |b| match b {
        EventBody::ProcessActivity(a) if pred(a) => Some(a.clone()),
        _ => None,
    }
}

fn socket(pred: impl Fn(&SocketActivity) -> bool) -> impl Fn(&EventBody) -> Option<SocketActivity> {
    move |b| match b {
        EventBody::SocketActivity(a) if pred(a) => Some(a.clone()),
        _ => None,
    }
}

#[test]
fn child_launch_and_exit_with_lineage() {
    let (tx, mut rx) = event_channel(100_000);
    let mut sensor = ProcfsSensor::new(ProcfsConfig {
        interval: Duration::from_millis(20),
        host: "test-host".into(),
        sockets: true,
    });
    sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect("procfs sensor starts");
    assert_eq!(sensor.stats().health().state, HealthState::Healthy);

    let me = std::process::id() as i32;
    let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
    let pid = child.id() as i32;

    let launch = wait_for(
        &mut rx,
        Duration::from_secs(10),
        process(|a| a.activity == ProcessActivityKind::Launch && a.process.pid == pid),
    )
    .expect("launch event of the child");
    assert_eq!(launch.process.ppid, me);
    assert!(
        launch.process.exe.ends_with("sleep"),
        "{:?}",
        launch.process.exe
    );
    assert_eq!(
        launch.process.cmdline,
        vec!["sleep".to_string(), "5".to_string()]
    );
    assert!(launch.process.start_time_ns > 0);
    assert_eq!(
        launch.lineage.first().map(|l| l.pid),
        Some(me),
        "parent first in lineage"
    );
    assert!(
        launch.lineage.len() >= 2,
        "lineage reaches past the test process: {:?}",
        launch.lineage
    );

    child.kill().expect("kill child");
    child.wait().expect("reap child");
    let exit = wait_for(
        &mut rx,
        Duration::from_secs(10),
        process(|a| a.activity == ProcessActivityKind::Terminate && a.process.pid == pid),
    )
    .expect("terminate event of the child");
    assert_eq!(exit.lineage.first().map(|l| l.pid), Some(me));

    sensor.stop();
    assert_eq!(sensor.stats().health().state, HealthState::Stopped);
    let (events, drops, _) = sensor.stats().counts();
    assert!(events >= 2 && drops == 0);
}

#[test]
fn socket_listen_connect_accept_close_with_owner() {
    let (tx, mut rx) = event_channel(100_000);
    let mut sensor = ProcfsSensor::new(ProcfsConfig {
        interval: Duration::from_millis(20),
        host: "test-host".into(),
        sockets: true,
    });
    sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect("procfs sensor starts");
    let me = std::process::id() as i32;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let listen = wait_for(
        &mut rx,
        Duration::from_secs(10),
        socket(|a| {
            a.activity == SocketActivityKind::Listen
                && a.transport == Transport::Tcp
                && a.local.port() == port
        }),
    )
    .expect("listen event");
    assert_eq!(
        listen.process.as_ref().map(|p| p.pid),
        Some(me),
        "owner is this test"
    );

    let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server_side, _) = listener.accept().expect("accept");
    let client_port = client.local_addr().expect("addr").port();
    let connect = wait_for(
        &mut rx,
        Duration::from_secs(10),
        socket(|a| a.activity == SocketActivityKind::Connect && a.local.port() == client_port),
    )
    .expect("connect event");
    assert_eq!(connect.remote.map(|r| r.port()), Some(port));
    assert_eq!(connect.process.as_ref().map(|p| p.pid), Some(me));

    drop(client);
    drop(server_side);
    drop(listener);
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        socket(|a| {
            a.activity == SocketActivityKind::Close && a.local.port() == port && a.remote.is_none()
        }),
    )
    .expect("close of the listener");
    sensor.stop();
}
