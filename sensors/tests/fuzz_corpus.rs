//! The fuzz corpora of `sensors/fuzz/` in plain `cargo test`: every seed of
//! `fuzz/corpus/<target>/` and every saved crash of
//! `fuzz/regressions/<target>/` goes through the entry point its fuzz
//! target calls ([`amoskys_sensors::fuzzing`]). `write_seeds` below writes
//! the seeds (run it with `--ignored`): frames from the pnet builders of
//! `flows::synth`, ring-buffer records in the layout of `ebpf/*.bpf.c`,
//! answers of a real `snmpd` (v2c and v3 authPriv) recorded by a relay on
//! loopback, and MQTT payloads of the shapes devices publish.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_sensors::ebpf::records::RECORD_VERSION;
use amoskys_sensors::flows::synth;
use amoskys_sensors::fuzzing::{self, SNMP_ENGINE_ID, SNMP_PASSWORD, SNMP_USER};
use snmp2::{Oid, SyncSession, v3};

type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 4] = [
    ("flow_frame", fuzzing::flow_frame),
    ("ebpf_record", fuzzing::ebpf_record),
    ("snmp_answer", fuzzing::snmp_answer),
    ("mqtt_message", fuzzing::mqtt_message),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn corpora_and_regressions_replay_without_a_panic() {
    for (name, entry) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "no seed corpus for {name}");
        for path in seeds
            .iter()
            .chain(&files(&fuzz_dir().join("regressions").join(name)))
        {
            entry(&fs::read(path).expect("read a corpus file"));
        }
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn v4(s: &str) -> std::net::Ipv4Addr {
    s.parse().expect("IPv4 address")
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let (a4, b4) = (addr("192.0.2.9:40000"), addr("192.0.2.1:22"));
    let (a6, b6) = (addr("[2001:db8::9]:40000"), addr("[2001:db8::1]:443"));
    let syn = synth::TcpFlags::SYN;
    vec![
        ("tcp4-syn", synth::tcp(a4, b4, syn, 0)),
        (
            "tcp4-synack",
            synth::tcp(b4, a4, syn | synth::TcpFlags::ACK, 0),
        ),
        (
            "tcp4-fin",
            synth::tcp(a4, b4, synth::TcpFlags::FIN | synth::TcpFlags::ACK, 10),
        ),
        ("tcp4-rst", synth::tcp(b4, a4, synth::TcpFlags::RST, 0)),
        ("tcp6-syn", synth::tcp(a6, b6, syn, 0)),
        (
            "udp4",
            synth::udp(addr("192.0.2.9:5353"), addr("192.0.2.1:53"), 40),
        ),
        ("udp6", synth::udp(a6, b6, 100)),
        ("mapped", synth::udp(a4, b6, 8)),
        ("echo4", synth::echo(a4.ip(), b4.ip(), false, 7)),
        ("echo6-reply", synth::echo(b6.ip(), a6.ip(), true, 7)),
        (
            "icmp4-unreach",
            synth::icmp(v4("192.0.2.1"), v4("192.0.2.9"), 3, 3),
        ),
        (
            "vlan-tcp4",
            synth::with_vlan(&synth::tcp(a4, b4, syn, 0), 100),
        ),
        (
            "qinq-udp6",
            synth::with_vlan(&synth::with_vlan(&synth::udp(a6, b6, 4), 20), 10),
        ),
    ]
}

/// A record header as the BPF programs write it.
fn header(kind: u16, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    b[0..2].copy_from_slice(&RECORD_VERSION.to_le_bytes());
    b[2..4].copy_from_slice(&kind.to_le_bytes());
    b[4..8].copy_from_slice(&4242u32.to_le_bytes());
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[12..16].copy_from_slice(&1000u32.to_le_bytes());
    b[16..20].copy_from_slice(b"curl");
    b
}

fn records() -> Vec<(&'static str, Vec<u8>)> {
    let mut exec = header(1, 804);
    let args = b"curl\0-s\0http://192.0.2.1/\0";
    exec[32..36].copy_from_slice(&(args.len() as u32).to_le_bytes());
    exec[36..49].copy_from_slice(b"/usr/bin/curl");
    exec[292..292 + args.len()].copy_from_slice(args);
    let mut connect4 = header(2, 64);
    connect4[32..34].copy_from_slice(&2u16.to_le_bytes());
    connect4[34..36].copy_from_slice(&80u16.to_be_bytes());
    connect4[36..40].copy_from_slice(&[192, 0, 2, 1]);
    let mut accept6 = header(3, 64);
    accept6[32..34].copy_from_slice(&10u16.to_le_bytes());
    accept6[34..36].copy_from_slice(&443u16.to_be_bytes());
    accept6[63] = 1;
    let mut open = header(4, 292);
    open[32..36].copy_from_slice(&0o2u32.to_le_bytes());
    open[36..47].copy_from_slice(b"/etc/shadow");
    vec![
        ("exec", exec),
        ("connect4", connect4),
        ("accept6", accept6),
        ("open", open),
    ]
}

fn mqtt() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("plain", br#"{"temp":21.5,"status":{"online":true}}"#),
        (
            "topic",
            b"site/pump-3/telemetry/power\n{\"readings\":[{\"watts\":1200}]}",
        ),
        ("not-a-number", b"site/a/telemetry/x\n{\"temp\":\"hot\"}"),
        ("unmatched", b"other/a\n{\"temp\":1}"),
        (
            "all",
            br#"{"temp":-4e2,"readings":[{"watts":0}],"status":{"online":false}}"#,
        ),
    ]
}

/// A UDP relay between a session and snmpd that records every answer.
fn relay(agent: SocketAddr, stop: Instant) -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let local = sock.local_addr().expect("relay addr");
    let handle = std::thread::spawn(move || {
        let mut answers = Vec::new();
        let mut client = None;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < stop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if from == agent {
                answers.push(buf[..n].to_vec());
                if let Some(c) = client {
                    let _ = sock.send_to(&buf[..n], c);
                }
            } else {
                client = Some(from);
                let _ = sock.send_to(&buf[..n], agent);
            }
        }
        answers
    });
    (local, handle)
}

/// snmpd, killed when dropped, and its directory, removed after it.
struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers of a real snmpd to the poller's requests, v2c and v3.
fn snmp_answers() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("snmpd.conf");
    let engine: String = SNMP_ENGINE_ID.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(
        &conf,
        format!(
            "rocommunity amoskys-ro 127.0.0.1\nexactEngineID 0x{engine}\n\
             createUser {SNMP_USER} SHA \"{SNMP_PASSWORD}\" AES \"{SNMP_PASSWORD}\"\n\
             rouser {SNMP_USER} priv\n"
        ),
    )
    .expect("conf");
    let port = UdpSocket::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new("/usr/sbin/snmpd")
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(&conf)
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snmpd");
    let _agent = Agent { child, _dir: dir };
    std::thread::sleep(Duration::from_secs(1));
    let (relay_addr, handle) = relay(
        addr(&format!("127.0.0.1:{port}")),
        Instant::now() + Duration::from_secs(8),
    );
    let target = relay_addr.to_string();
    let timeout = Some(Duration::from_secs(1));
    let scalars: Vec<Oid> = [
        &[1u64, 3, 6, 1, 2, 1, 1, 3, 0][..],
        &[1, 3, 6, 1, 2, 1, 1, 1, 0],
        &[1, 3, 6, 1, 4, 1, 2021, 10, 1, 3, 1],
        &[1, 3, 6, 1, 4, 1, 2021, 4, 5, 0],
    ]
    .iter()
    .map(|a| Oid::from(a).expect("oid"))
    .collect();
    let refs: Vec<&Oid> = scalars.iter().collect();
    let columns: Vec<Oid> = [
        &[1u64, 3, 6, 1, 2, 1, 2, 2, 1, 2][..],
        &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6],
        &[1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2],
        &[1, 3, 6, 1, 9, 9, 9],
    ]
    .iter()
    .map(|a| Oid::from(a).expect("oid"))
    .collect();
    let mut v2 =
        SyncSession::new_v2c(target.as_str(), b"amoskys-ro", timeout, 1).expect("v2c session");
    let _ = v2.get_many(&refs);
    for c in &columns {
        let _ = v2.getbulk(&[c], 0, 32);
    }
    let security = v3::Security::new(SNMP_USER.as_bytes(), SNMP_PASSWORD.as_bytes())
        .with_auth_protocol(v3::AuthProtocol::Sha1)
        .with_auth(v3::Auth::AuthPriv {
            cipher: v3::Cipher::Aes128,
            privacy_password: SNMP_PASSWORD.as_bytes().to_vec(),
        });
    let mut s3 = SyncSession::new_v3(target.as_str(), timeout, 1, security).expect("v3 session");
    let _ = s3.init();
    for _ in 0..2 {
        if s3.get_many(&refs).is_ok() {
            break;
        }
    }
    for c in &columns[..2] {
        let _ = s3.getbulk(&[c], 0, 8);
    }
    handle.join().expect("relay")
}

/// Writes the seed corpora.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change (needs snmpd)"]
fn write_seeds() {
    for (name, f) in frames() {
        write("flow_frame", &format!("{name}.bin"), &f);
    }
    for (name, r) in records() {
        write("ebpf_record", &format!("{name}.bin"), &r);
    }
    for (name, m) in mqtt() {
        write("mqtt_message", &format!("{name}.txt"), m);
    }
    let answers = snmp_answers();
    assert!(
        answers.len() >= 6,
        "snmpd answered {} requests",
        answers.len()
    );
    for (i, a) in answers.iter().enumerate() {
        write("snmp_answer", &format!("answer-{i:02}.ber"), a);
    }
}
