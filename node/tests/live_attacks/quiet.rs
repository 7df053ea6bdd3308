//! Quiet time: two nodes, each in its own namespace and capturing its side
//! of the veth between them, meshed over it, while ordinary traffic runs
//! between the namespaces: HTTP requests to a web server, SSH logins with a
//! key to a real sshd, DNS queries to a small resolver, the client node's
//! SNMP sensor polling a real snmpd, and the mesh itself. At the default
//! policy nothing is alerted on either node. 60 s by default;
//! `AMOSKYS_QUIET_SECS=600` runs the ten minutes of docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::lab::{ATTACKER, Lab, TARGET, alerts_in, run, skip_reason, start_node_in};

/// Seconds of traffic unless `AMOSKYS_QUIET_SECS` says otherwise.
const DEFAULT_SECS: u64 = 60;

/// A resolver that answers every A question with the target's address.
const RESOLVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, a = s.recvfrom(512)
    if len(q) < 17:
        continue
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    answer = b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + socket.inet_aton(sys.argv[1])
    s.sendto(q[:2] + b'\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00' + question + answer, a)
"#;

/// The client's ordinary traffic for argv[1] seconds: every 2 s an HTTP
/// request and a DNS query, every 20 s an SSH login (key argv[3]) running
/// `true`; prints what succeeded as JSON.
const CLIENT: &str = r#"
import json, random, socket, struct, subprocess, sys, time, urllib.request
secs, target, key = float(sys.argv[1]), sys.argv[2], sys.argv[3]
done = {"http": 0, "dns": 0, "ssh": 0, "failed": 0}
end = time.time() + secs
next_ssh = time.time()
while time.time() < end:
    t0 = time.time()
    try:
        urllib.request.urlopen(f"http://{target}:8080/", timeout=3).read()
        done["http"] += 1
    except Exception as e:
        done["failed"] += 1
        print("http:", e, file=sys.stderr)
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    q += b"\x03www\x07example\x03lan\x00\x00\x01\x00\x01"
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    try:
        u.sendto(q, (target, 53))
        u.recvfrom(512)
        done["dns"] += 1
    except Exception as e:
        done["failed"] += 1
        print("dns:", e, file=sys.stderr)
    u.close()
    if time.time() >= next_ssh:
        next_ssh += 20
        r = subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                            f"root@{target}", "true"], capture_output=True, timeout=20)
        if r.returncode == 0:
            done["ssh"] += 1
        else:
            done["failed"] += 1
            print("ssh:", r.stderr.decode(errors="replace"), file=sys.stderr)
    time.sleep(max(0.0, 2.0 - (time.time() - t0)))
print(json.dumps(done))
"#;

/// A node key in `dir/node`, as `start_node_in` uses it; its public key.
fn node_key(dir: &std::path::Path) -> String {
    let data = dir.join("node");
    std::fs::create_dir_all(&data).expect("data dir");
    let id = amoskys_node::identity::Identity::generate();
    id.write(&data.join(amoskys_node::identity::KEY_FILE), false)
        .expect("key written");
    id.public_key_hex()
}

/// The services of the target namespace: sshd (key logins), a web server,
/// the resolver and snmpd. Returns the client's key file.
fn services(lab: &mut Lab, dir: &std::path::Path) -> String {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (host_key, client_key) = (path("hostkey"), path("client"));
    for key in [&host_key, &client_key] {
        run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]);
    }
    std::fs::copy(format!("{client_key}.pub"), path("authorized_keys")).expect("authorized key");
    std::fs::create_dir_all("/run/sshd").expect("sshd privilege separation dir");
    std::fs::write(
        path("sshd_config"),
        format!(
            "Port 22\nListenAddress {TARGET}\nHostKey {host_key}\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile {}\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile {}\n",
            path("authorized_keys"),
            path("sshd.pid")
        ),
    )
    .expect("sshd config");
    std::fs::write(
        path("snmpd.conf"),
        format!("rocommunity amoskys-ro {ATTACKER}/32\n"),
    )
    .expect("snmpd config");
    std::fs::create_dir_all(path("www")).expect("web root");
    std::fs::write(path("www/index.html"), "<p>quiet</p>\n").expect("index");
    let target = lab.target.clone();
    let sshd_conf = path("sshd_config");
    lab.spawn(&target, &["/usr/sbin/sshd", "-D", "-f", &sshd_conf]);
    let www = path("www");
    lab.spawn(
        &target,
        &[
            "timeout",
            "3600",
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            TARGET,
            "--directory",
            &www,
        ],
    );
    lab.spawn(
        &target,
        &["timeout", "3600", "python3", "-c", RESOLVER, TARGET],
    );
    let snmpd = lab
        .exec(
            &target,
            &[
                "/usr/sbin/snmpd",
                "-f",
                "-Lo",
                "-C",
                "-c",
                &path("snmpd.conf"),
                "-p",
                &path("snmpd.pid"),
                &format!("udp:{TARGET}:161"),
            ],
        )
        .env("SNMP_PERSISTENT_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snmpd");
    lab.children.push(snmpd);
    // Every service listens before the nodes start (their baseline).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let out = lab
            .exec(&target, &["ss", "-Hln"])
            .output()
            .expect("ss runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if [":22 ", ":8080 ", ":53 ", ":161 "]
            .iter()
            .all(|p| text.contains(p))
        {
            break;
        }
        assert!(Instant::now() < end, "services do not listen: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    client_key
}

/// `GET path` of the node in `ns`, signed by the CLI.
fn api_get(lab: &Lab, ns: &str, api: &str, path: &str) -> serde_json::Value {
    let out = lab
        .exec(
            ns,
            &[
                env!("CARGO_BIN_EXE_amoskys"),
                "api",
                "GET",
                path,
                "--api",
                api,
            ],
        )
        .output()
        .expect("api runs");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn peers(lab: &Lab, ns: &str, api: &str) -> usize {
    api_get(lab, ns, api, "/api/v1/peers")["peers"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Flow records the node in `ns` stored, by the lower of their two ports
/// (the service's), and its SNMP device readings.
fn seen(lab: &Lab, ns: &str, api: &str) -> (BTreeMap<u64, usize>, usize) {
    fn find<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => {
                m.get(key).or_else(|| m.values().find_map(|x| find(x, key)))
            }
            _ => None,
        }
    }
    let flows = api_get(
        lab,
        ns,
        api,
        "/api/v1/events?kind=network_activity&limit=10000",
    );
    let mut ports = BTreeMap::new();
    for e in flows["events"].as_array().into_iter().flatten() {
        let port = |k| find(e, k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        *ports
            .entry(port("src_port").min(port("dst_port")))
            .or_insert(0) += 1;
    }
    let devices = api_get(
        lab,
        ns,
        api,
        "/api/v1/events?kind=device_metrics&limit=10000",
    );
    (ports, devices["events"].as_array().map_or(0, Vec::len))
}

#[test]
fn ordinary_traffic_between_two_meshed_nodes_raises_nothing() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED quiet-time test: {reason}");
        return;
    }
    if !std::path::Path::new("/usr/sbin/snmpd").exists() {
        eprintln!("SKIPPED quiet-time test: /usr/sbin/snmpd missing (apt-get install snmpd)");
        return;
    }
    let secs: u64 = std::env::var("AMOSKYS_QUIET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let mut lab = Lab::new("q");
    let dir = lab.dir.path().to_owned();
    let client_key = services(&mut lab, &dir);

    // Two nodes meshed over the veth, each capturing its side of it.
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let admitted = format!(
        "mesh.admitted=[\"{}\",\"{}\"]",
        node_key(&a_dir),
        node_key(&b_dir)
    );
    let (target, client) = (lab.target.clone(), lab.attacker.clone());
    let (target_if, client_if) = (lab.target_if.clone(), lab.attacker_if.clone());
    let a_listen = format!("mesh.listen=[\"{TARGET}:7301\"]");
    let a = start_node_in(
        &mut lab,
        &target,
        &target_if,
        &a_dir,
        &[&admitted, &a_listen],
    );
    let b_listen = format!("mesh.listen=[\"{ATTACKER}:7301\"]");
    let bootstrap = format!("mesh.bootstrap=[\"{TARGET}:7301\"]");
    let device = format!(
        "sensors.snmp.devices=[{{name=\"target\", address=\"{TARGET}:161\", community=\"amoskys-ro\"}}]"
    );
    let b = start_node_in(
        &mut lab,
        &client,
        &client_if,
        &b_dir,
        &[
            &admitted,
            &b_listen,
            &bootstrap,
            &device,
            "sensors.snmp.interval_ms=5000",
        ],
    );
    let end = Instant::now() + Duration::from_secs(30);
    while peers(&lab, &target, &a) == 0 || peers(&lab, &client, &b) == 0 {
        assert!(Instant::now() < end, "the two nodes do not connect");
        std::thread::sleep(Duration::from_millis(250));
    }

    let started = Instant::now();
    let secs_arg = secs.to_string();
    let out = lab
        .exec(
            &client,
            &["python3", "-c", CLIENT, &secs_arg, TARGET, &client_key],
        )
        .output()
        .expect("the client runs");
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "client: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Flows still open end within the idle timeout (15 s).
    std::thread::sleep(Duration::from_secs(17));
    let (a_alerts, b_alerts) = (alerts_in(&lab, &target, &a), alerts_in(&lab, &client, &b));
    let (a_seen, b_seen) = (seen(&lab, &target, &a), seen(&lab, &client, &b));
    eprintln!("flows by service port: target node {a_seen:?}, client node {b_seen:?}");
    // Both nodes saw every service, the mesh and the SNMP polls.
    for (ports, _) in [&a_seen, &b_seen] {
        for port in [22, 53, 161, 7301, 8080] {
            assert!(
                ports.contains_key(&port),
                "no flow on port {port}: {ports:?}"
            );
        }
    }
    assert!(b_seen.1 > 0, "the client node read no SNMP device");
    let shown = |alerts: &[amoskys_mesh::Alert]| -> Vec<String> {
        alerts
            .iter()
            .map(|x| format!("{} {} {:?}", x.body.rule, x.body.subject, x.body.evidence))
            .collect()
    };
    eprintln!(
        "quiet time: {secs} s of traffic ({done}) in {:.0} s; alerts: target node {}, client node {}",
        started.elapsed().as_secs_f64(),
        a_alerts.len(),
        b_alerts.len()
    );
    let per_login = secs / 20;
    assert!(
        done["ssh"].as_u64() >= Some(per_login.saturating_sub(1).max(1)),
        "{done}"
    );
    assert!(done["http"].as_u64() >= Some(secs / 4), "{done}");
    assert!(done["dns"].as_u64() >= Some(secs / 4), "{done}");
    assert!(
        a_alerts.is_empty() && b_alerts.is_empty(),
        "target node: {:?}\nclient node: {:?}",
        shown(&a_alerts),
        shown(&b_alerts)
    );
}
