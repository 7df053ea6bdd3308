//! The flow sensor records real traffic between two network namespaces.
//!
//! Each test creates its own pair of namespaces (`amk-fl-<pid>-<tag>a`/`b`)
//! joined by a veth pair created directly inside them, so no interface or
//! address of the host is touched; a guard deletes both namespaces even when
//! an assertion fails. The sensor runs in namespace b: a helper thread enters
//! it with setns(2) and starts the sensor there, so the capture threads and
//! the test's server sockets live in b. Clients run in namespace a under
//! `ip netns exec` with bash's /dev/tcp and /dev/udp. Needs root; without it
//! (or without `ip netns`) the namespace tests print a SKIPPED line and pass.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_sensors::event::FlowEnd;
use amoskys_sensors::flows::{FlowConfig, FlowSensor};
use amoskys_sensors::{
    Event, EventBody, EventSink, FlowRecord, HealthState, Sensor, SensorError, Transport,
    event_channel,
};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio::sync::mpsc::Receiver;

const TCP_BYTES: usize = 5000;
const UDP_DATAGRAMS: u64 = 3;

/// Two namespaces joined by veth-a (in a) and veth-b (in b); deleted on drop.
struct Lab {
    a: String,
    b: String,
    ip_a: IpAddr,
    ip_b: IpAddr,
    created: Vec<String>,
}

impl Lab {
    fn new(tag: &str) -> Result<Self, String> {
        let pid = std::process::id();
        let net = format!("10.254.{}", pid % 250);
        let mut lab = Lab {
            a: format!("amk-fl-{pid}-{tag}a"),
            b: format!("amk-fl-{pid}-{tag}b"),
            ip_a: format!("{net}.1").parse().map_err(|e| format!("{e}"))?,
            ip_b: format!("{net}.2").parse().map_err(|e| format!("{e}"))?,
            created: Vec::new(),
        };
        for ns in [lab.a.clone(), lab.b.clone()] {
            ip(&["netns", "add", &ns])?;
            lab.created.push(ns);
        }
        let (a, b) = (lab.a.as_str(), lab.b.as_str());
        ip(&[
            "-n", a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b,
        ])?;
        ip(&[
            "-n",
            a,
            "addr",
            "add",
            &format!("{net}.1/30"),
            "dev",
            "veth-a",
        ])?;
        ip(&[
            "-n",
            b,
            "addr",
            "add",
            &format!("{net}.2/30"),
            "dev",
            "veth-b",
        ])?;
        for (ns, dev) in [(a, "veth-a"), (b, "veth-b"), (a, "lo"), (b, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(lab)
    }

    /// Runs `script` with bash inside namespace `ns`, for at most 10 s.
    fn bash(&self, ns: &str, script: &str) -> Result<(), String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn ip netns exec: {e}"))?;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("bash in {ns} failed ({status}): {err}"))
                };
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("bash in {ns} timed out: {script}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("cleanup of namespace {ns} failed: {e}");
            }
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A lab, or None after printing why the test is skipped.
fn lab_or_skip(tag: &str) -> Option<Lab> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        eprintln!("SKIPPED flow netns test: not root (euid {euid:?})");
        return None;
    }
    match Lab::new(tag) {
        Ok(lab) => Some(lab),
        Err(e) => {
            eprintln!("SKIPPED flow netns test: {e}");
            None
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`; threads and
/// sockets it creates stay in that namespace.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(format!("/run/netns/{ns}")).expect("open netns file");
            move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
                .expect("setns into the test namespace");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

fn config(interfaces: &[&str]) -> FlowConfig {
    FlowConfig {
        interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
        idle_timeout: Duration::from_secs(1),
        active_timeout: Duration::from_secs(60),
        max_flows: 1024,
        ..FlowConfig::new("test-host")
    }
}

/// Collects flow records until `done` holds or `limit` passes.
fn collect(
    rx: &mut Receiver<Event>,
    limit: Duration,
    done: impl Fn(&[FlowRecord]) -> bool,
) -> Vec<FlowRecord> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    while Instant::now() < end && !done(&got) {
        match rx.try_recv() {
            Ok(Event {
                body: EventBody::NetworkActivity(r),
                ..
            }) => got.push(r),
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    got
}

/// Accepts one connection and reads it to the end; (peer, bytes).
fn serve_tcp(listener: TcpListener) -> std::thread::JoinHandle<Option<(SocketAddr, usize)>> {
    std::thread::spawn(move || {
        listener.set_nonblocking(true).ok()?;
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    stream.set_nonblocking(false).ok()?;
                    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    let mut buf = Vec::new();
                    stream.read_to_end(&mut buf).ok()?;
                    return Some((peer, buf.len()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        None
    })
}

/// Answers each datagram with "pong"; returns the last peer and the count.
fn serve_udp(sock: UdpSocket) -> std::thread::JoinHandle<Option<(SocketAddr, u64)>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .ok()?;
        let (mut peer, mut n) = (None, 0);
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1500];
        while n < UDP_DATAGRAMS && Instant::now() < end {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                sock.send_to(b"pong", from).ok()?;
                peer = Some(from);
                n += 1;
            }
        }
        peer.map(|p| (p, n))
    })
}

fn tcp_end(records: &[FlowRecord], interface: &str, port: u16) -> Option<FlowRecord> {
    records
        .iter()
        .find(|r| r.interface == interface && r.dst_port == port && r.end == FlowEnd::End)
        .cloned()
}

#[test]
fn tcp_udp_and_loopback_flows_between_namespaces() {
    let Some(lab) = lab_or_skip("t") else { return };
    let started = Instant::now();
    let ip_b = lab.ip_b;
    let (mut sensor, mut rx, tcp, udp, lo) = in_netns(&lab.b, || {
        let (tx, rx) = event_channel(10_000);
        let mut sensor = FlowSensor::new(config(&["veth-b", "lo"]));
        sensor
            .start(EventSink::new(tx, sensor.stats()))
            .expect("flow sensor starts in namespace b");
        let tcp = TcpListener::bind((ip_b, 0)).expect("bind tcp");
        let udp = UdpSocket::bind((ip_b, 0)).expect("bind udp");
        let lo = TcpListener::bind(("127.0.0.1", 0)).expect("bind lo");
        (sensor, rx, tcp, udp, lo)
    });
    assert_eq!(sensor.stats().health().state, HealthState::Healthy);
    let tcp_port = tcp.local_addr().expect("addr").port();
    let udp_port = udp.local_addr().expect("addr").port();
    let lo_port = lo.local_addr().expect("addr").port();
    let (tcp_server, udp_server, lo_server) = (serve_tcp(tcp), serve_udp(udp), serve_tcp(lo));

    lab.bash(
        &lab.a,
        &format!(
            "exec 3<>/dev/tcp/{ip_b}/{tcp_port} && head -c {TCP_BYTES} /dev/zero >&3 && exec 3>&-"
        ),
    )
    .expect("tcp client");
    lab.bash(
        &lab.a,
        &format!(
            "exec 3<>/dev/udp/{ip_b}/{udp_port}; for i in $(seq {UDP_DATAGRAMS}); do \
             printf 'ping-%s' $i >&3; sleep 0.05; done; sleep 0.3"
        ),
    )
    .expect("udp client");
    lab.bash(
        &lab.b,
        &format!("exec 3<>/dev/tcp/127.0.0.1/{lo_port} && printf hello >&3 && exec 3>&-"),
    )
    .expect("loopback client");
    let (tcp_peer, tcp_read) = tcp_server.join().expect("join").expect("tcp served");
    let (udp_peer, udp_n) = udp_server.join().expect("join").expect("udp served");
    let (_, lo_read) = lo_server.join().expect("join").expect("lo served");
    assert_eq!((tcp_read, udp_n, lo_read), (TCP_BYTES, UDP_DATAGRAMS, 5));

    let records = collect(&mut rx, Duration::from_secs(15), |got| {
        tcp_end(got, "veth-b", tcp_port).is_some()
            && tcp_end(got, "lo", lo_port).is_some()
            && got
                .iter()
                .any(|r| r.dst_port == udp_port && r.end == FlowEnd::Idle)
    });
    let health = sensor.stats().health();
    sensor.stop();
    let (events, drops, errors) = sensor.stats().counts();
    eprintln!("flow records: {records:#?}");

    let t = tcp_end(&records, "veth-b", tcp_port).expect("tcp record with end=end");
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(
        (t.src, t.src_port),
        (lab.ip_a, tcp_peer.port()),
        "initiator is a"
    );
    assert_eq!((t.dst, t.dst_port), (lab.ip_b, tcp_port));
    assert!(t.forward.bytes >= TCP_BYTES as u64 + 4 * 40, "{t:?}");
    assert!(t.forward.packets >= 4, "SYN, ACK, data, FIN: {t:?}");
    assert!(t.reverse.packets >= 2, "SYN-ACK, FIN: {t:?}");
    assert!(t.reverse.bytes >= 2 * 40, "{t:?}");
    let f = t.tcp_flags;
    assert_eq!((f.syn_no_ack, f.syn_ack, f.rst), (1, 1, 0), "{t:?}");
    assert!(f.fin >= 2, "{t:?}");
    assert!(t.first_ns <= t.last_ns && t.last_ns - t.first_ns < 10_000_000_000);

    let udp_records: Vec<_> = records
        .iter()
        .filter(|r| r.transport == Transport::Udp && r.dst_port == udp_port)
        .collect();
    let u = udp_records.first().expect("udp record");
    assert_eq!(udp_records.len(), 1, "{udp_records:?}");
    assert_eq!(u.transport, Transport::Udp);
    assert_eq!(
        (u.src, u.src_port, u.dst),
        (lab.ip_a, udp_peer.port(), lab.ip_b)
    );
    assert!(u.forward.packets >= UDP_DATAGRAMS, "{u:?}");
    assert!(u.forward.bytes >= UDP_DATAGRAMS * (20 + 8 + 6), "{u:?}");
    assert!(u.reverse.packets >= 1, "the pongs: {u:?}");
    assert_eq!(u.end, FlowEnd::Idle);

    // Loopback: each frame is captured twice and must count once.
    let l = tcp_end(&records, "lo", lo_port).expect("loopback tcp record");
    assert_eq!(l.src, IpAddr::from([127, 0, 0, 1]));
    let f = l.tcp_flags;
    assert_eq!(
        (f.syn, f.syn_no_ack, f.syn_ack, f.rst),
        (2, 1, 1, 0),
        "{l:?}"
    );

    assert_eq!(health.state, HealthState::Healthy, "{health:?}");
    assert_eq!(errors, 0, "no malformed frame on a real link");
    assert_eq!(drops, 0);
    assert!(events >= 3);
    eprintln!("netns flow test took {:.2?}", started.elapsed());
}

#[test]
fn deleted_interface_degrades_then_recovers() {
    let Some(lab) = lab_or_skip("d") else { return };
    let b = lab.b.clone();
    let add = [
        "-n", &b, "link", "add", "tmp-x", "type", "veth", "peer", "name", "tmp-y",
    ];
    ip(&add).expect("add tmp-x");
    ip(&["-n", &b, "link", "set", "tmp-x", "up"]).expect("tmp-x up");
    let (mut sensor, _rx) = in_netns(&b, || {
        let (tx, rx) = event_channel(1000);
        let mut sensor = FlowSensor::new(config(&["tmp-x"]));
        sensor
            .start(EventSink::new(tx, sensor.stats()))
            .expect("starts on tmp-x");
        (sensor, rx)
    });
    let stats = sensor.stats();
    assert_eq!(stats.health().state, HealthState::Healthy);

    ip(&["-n", &b, "link", "del", "tmp-x"]).expect("delete tmp-x");
    let wait = |pred: &dyn Fn(&amoskys_sensors::Health) -> bool| {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !pred(&stats.health()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stats.health()
    };
    let h = wait(&|h| h.message.contains("disappeared"));
    assert_eq!(h.state, HealthState::Degraded, "{h:?}");
    assert!(h.message.contains("interface tmp-x disappeared"), "{h:?}");

    ip(&add).expect("re-add tmp-x");
    ip(&["-n", &b, "link", "set", "tmp-x", "up"]).expect("tmp-x up again");
    let h = wait(&|h| h.state == HealthState::Healthy);
    assert_eq!(h.state, HealthState::Healthy, "capture reopened: {h:?}");

    let t = Instant::now();
    sensor.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(stats.health().state, HealthState::Stopped);
}

#[test]
fn unknown_interface_is_unavailable() {
    let (tx, _rx) = event_channel(10);
    let mut sensor = FlowSensor::new(config(&["amk-nosuch0"]));
    let err = sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect_err("no such interface");
    assert!(matches!(err, SensorError::Unavailable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "flows: interface amk-nosuch0 is unavailable: no such interface"
    );
    assert_eq!(sensor.stats().health().state, HealthState::Unhealthy);
}

/// Set in the environment of the re-executed probe below.
const PROBE_ENV: &str = "AMK_FLOWS_NO_NET_RAW_PROBE";

/// Started without CAP_NET_RAW, the sensor must refuse with a clear message.
/// As root, the test re-runs this binary under `setpriv` with CAP_NET_RAW
/// dropped from the bounding set, so the probe runs without it.
#[test]
fn capture_without_cap_net_raw_is_unavailable() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !is_root {
        assert_permission_denied();
        return;
    }
    let exe = std::env::current_exe().expect("own test binary");
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_raw", "--inh-caps", "-net_raw"])
        .arg(exe)
        .args(["--ignored", "--exact", "probe_without_cap_net_raw"])
        .env(PROBE_ENV, "1")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => assert!(
            out.status.success(),
            "probe failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("SKIPPED flow permission test: cannot run setpriv: {e}"),
    }
}

#[test]
#[ignore = "run by capture_without_cap_net_raw_is_unavailable"]
fn probe_without_cap_net_raw() {
    if std::env::var_os(PROBE_ENV).is_some() {
        assert_permission_denied();
    }
}

fn assert_permission_denied() {
    let (tx, _rx) = event_channel(10);
    let mut sensor = FlowSensor::new(config(&["lo"]));
    let err = sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect_err("no CAP_NET_RAW");
    assert_eq!(
        err.to_string(),
        "flows: AF_PACKET capture on lo is unavailable: \
         permission denied (needs root or CAP_NET_RAW)"
    );
    assert_eq!(sensor.stats().health().state, HealthState::Unhealthy);
}
