//! The SNMP sensor against a real Debian `snmpd` started by the test on a
//! 127.0.0.1 high port, with v2c and a v3 authPriv (SHA/AES) user.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_sensors::snmp::{
    AuthProtocol, DeviceState, PrivProtocol, SnmpAuth, SnmpConfig, SnmpDevice, SnmpSensor,
};
use amoskys_sensors::{Event, EventBody, EventSink, HealthState, Sensor, event_channel};

const SNMPD: &str = "/usr/sbin/snmpd";

/// A snmpd process that is killed when dropped.
struct Agent {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn start_agent() -> Option<Agent> {
    if !Path::new(SNMPD).exists() {
        eprintln!("SKIPPED snmp tests: {SNMPD} not installed (apt-get install snmpd)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("snmpd.conf");
    std::fs::write(
        &conf,
        "rocommunity amoskys-ro 127.0.0.1\n\
         createUser amoskys SHA \"auth-pass-123\" AES \"priv-pass-123\"\n\
         rouser amoskys priv\n",
    )
    .expect("conf");
    let port = free_udp_port();
    let child = Command::new(SNMPD)
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(&conf)
        .arg("-p")
        .arg(dir.path().join("snmpd.pid"))
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snmpd");
    let agent = Agent {
        child,
        port,
        _dir: dir,
    };
    // Wait until it answers (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let probe = Command::new("snmpget")
            .args(["-v2c", "-c", "amoskys-ro", "-t", "0.3", "-r", "0"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1.3.6.1.2.1.1.3.0")
            .output();
        match probe {
            Ok(out) if out.status.success() => return Some(agent),
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            // No snmpget: give the agent a moment and go on.
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                return Some(agent);
            }
        }
    }
    panic!("snmpd did not answer on 127.0.0.1:{port} within 10 s");
}

fn device(name: &str, port: u16, auth: SnmpAuth) -> SnmpDevice {
    SnmpDevice {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        auth,
    }
}

fn v3(auth_password: &str) -> SnmpAuth {
    SnmpAuth::V3 {
        user: "amoskys".into(),
        auth_protocol: AuthProtocol::Sha1,
        auth_password: auth_password.into(),
        privacy: Some((PrivProtocol::Aes128, "priv-pass-123".into())),
    }
}

#[test]
fn polls_v2c_and_v3_and_reports_bad_devices_without_stalling() {
    let Some(agent) = start_agent() else { return };
    let dead_port = free_udp_port();
    let mut sensor = SnmpSensor::new(SnmpConfig {
        host: "test-host".into(),
        interval: Duration::from_millis(300),
        timeout: Duration::from_millis(300),
        devices: vec![
            device(
                "v2c",
                agent.port,
                SnmpAuth::V2c {
                    community: "amoskys-ro".into(),
                },
            ),
            device("v3", agent.port, v3("auth-pass-123")),
            device("v3-wrong-password", agent.port, v3("not-the-password")),
            device(
                "unreachable",
                dead_port,
                SnmpAuth::V2c {
                    community: "amoskys-ro".into(),
                },
            ),
        ],
    });
    let (tx, mut rx) = event_channel(10_000);
    sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect("starts");

    // Two good polls of each working device: the second carries rates.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut polls: std::collections::HashMap<String, Vec<Event>> = Default::default();
    while Instant::now() < deadline
        && !["v2c", "v3"]
            .iter()
            .all(|d| polls.get(*d).is_some_and(|p| p.len() >= 2))
    {
        match rx.try_recv() {
            Ok(ev) => {
                if let EventBody::DeviceMetrics(m) = &ev.body {
                    polls.entry(m.device.clone()).or_default().push(ev.clone());
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for name in ["v2c", "v3"] {
        let got = polls.get(name).map(Vec::len).unwrap_or(0);
        assert!(
            got >= 2,
            "{name}: {got} polls; status {:?}",
            sensor.devices()
        );
        let EventBody::DeviceMetrics(m) = &polls[name][1].body else {
            unreachable!()
        };
        assert!(
            m.description.contains("Linux"),
            "sysDescr: {:?}",
            m.description
        );
        assert!(m.uptime_ticks > 0);
        let lo = m
            .interfaces
            .iter()
            .find(|i| i.name == "lo")
            .expect("lo interface");
        assert!(
            lo.in_bytes_per_sec.is_some(),
            "rate on the second poll: {lo:?}"
        );
        assert!(m.memory_total_kib.is_some_and(|k| k > 0));
        assert!(m.load.is_some());
    }
    assert!(!polls.contains_key("v3-wrong-password") && !polls.contains_key("unreachable"));

    let status = sensor.devices();
    let by_name = |n: &str| status.iter().find(|d| d.name == n).expect("device").clone();
    assert_eq!(by_name("v2c").state, DeviceState::Ok);
    assert_eq!(by_name("v3").state, DeviceState::Ok);
    let wrong = by_name("v3-wrong-password");
    assert_eq!(wrong.state, DeviceState::AuthFailed, "{wrong:?}");
    assert!(
        wrong.message.contains("authentication failed"),
        "{}",
        wrong.message
    );
    let dead = by_name("unreachable");
    assert_eq!(dead.state, DeviceState::Unreachable, "{dead:?}");
    assert!(dead.failures >= 1);

    let health = sensor.stats().health();
    assert_eq!(health.state, HealthState::Degraded);
    assert!(
        health.message.contains("unreachable") && health.message.contains("v3-wrong-password"),
        "{}",
        health.message
    );

    let t = Instant::now();
    sensor.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
}
