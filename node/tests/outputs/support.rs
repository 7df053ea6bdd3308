//! What the output tests run against: test nodes, rsyslogd, an HTTP
//! receiver, `amoskys run`. Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Config;
use amoskys_node::config::Source;

use crate::common::eventually;

/// How long the webhook receiver is down (`AMOSKYS_TEST_OUTAGE_SECS`,
/// default 30).
pub fn outage() -> Duration {
    let secs = std::env::var("AMOSKYS_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// A test node's configuration with `outputs` (TOML `[[outputs]]` tables).
pub fn config_with(dir: &Path, outputs: &str) -> Config {
    let file = dir.join("outputs.toml");
    std::fs::write(&file, outputs).expect("write config");
    Config::load(&[
        Source::Embedded,
        Source::File(file),
        Source::Set(vec![
            format!("node.data_dir={}", dir.join("data").display()),
            "node.name=node-a".into(),
            "api.listen=127.0.0.1:0".into(),
            "mesh.listen=[\"127.0.0.1:0\"]".into(),
            "sensors.flows.enabled=false".into(),
            "sensors.ebpf.enabled=false".into(),
        ]),
    ])
    .expect("config loads")
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let u = std::net::UdpSocket::bind(("127.0.0.1", l.local_addr().expect("addr").port()));
    match u {
        Ok(_) => l.local_addr().expect("addr").port(),
        Err(_) => free_port(),
    }
}

pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rsyslogd with its own configuration: `inputs` (modules and inputs of
/// ruleset `alerts`; `global` adds to the global settings), every message
/// written as `APP-NAME MSG` to `out`.
pub fn rsyslogd(dir: &Path, global: &str, inputs: &str, out: &Path) -> KillOnDrop {
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k" {global})
template(name="line" type="string" string="%app-name% %msg%\n")
ruleset(name="alerts") {{
  action(type="omfile" file="{out}" template="line")
}}
{inputs}
"#,
            work = dir.display(),
            out = out.display(),
        ),
    )
    .expect("write rsyslog.conf");
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd runs (apt-get install rsyslog; .ci/deps installs it)");
    KillOnDrop(child)
}

/// Waits until something listens on TCP `port`.
pub async fn listening(port: u16) {
    let up = eventually(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    assert!(up.is_some(), "rsyslogd listens on {port}");
}

/// The lines of a file (none while it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Bodies POSTed to a test receiver, in arrival order.
pub type Bodies = Arc<Mutex<Vec<String>>>;

/// An HTTP receiver on `port` storing every POST body; stops when the
/// returned sender is dropped.
/// At `/picky` it answers 400 to an alert about 10.3.0.1 and 503 to the
/// first try of one about 10.3.0.2, storing neither.
pub async fn receiver(port: u16, bodies: Bodies) -> tokio::sync::oneshot::Sender<()> {
    use axum::http::StatusCode;
    let busy_once = Arc::new(Mutex::new(true));
    let picky_bodies = bodies.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move |body: String| {
                let bodies = bodies.clone();
                async move {
                    bodies.lock().expect("lock").push(body);
                    "ok"
                }
            }),
        )
        .route(
            "/picky",
            axum::routing::post(move |body: String| {
                let (bodies, busy_once) = (picky_bodies.clone(), busy_once.clone());
                async move {
                    if body.contains("source_ip:10.3.0.1\"") {
                        return (StatusCode::BAD_REQUEST, "no such index");
                    }
                    if body.contains("source_ip:10.3.0.2\"")
                        && std::mem::take(&mut *busy_once.lock().expect("lock"))
                    {
                        return (StatusCode::SERVICE_UNAVAILABLE, "busy");
                    }
                    bodies.lock().expect("lock").push(body);
                    (StatusCode::OK, "ok")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the receiver binds its port again");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// The alerts among `bodies`, in arrival order.
pub fn alerts_in(bodies: &Bodies) -> Vec<Alert> {
    bodies
        .lock()
        .expect("lock")
        .iter()
        .map(|b| Alert::decode(b.as_bytes()).expect("a POST body is a signed alert"))
        .collect()
}

/// `amoskys run` with `config`; returns the process and its API address.
pub fn run_node(data: &Path, config: &Path) -> (KillOnDrop, SocketAddr) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["run", "--log-format", "json", "--api-listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env_remove("RUST_LOG")
            .env("AMOSKYS_CONFIG", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("amoskys run starts"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && line.contains("node started")
                && let Some(api) = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["api"].as_str().map(str::to_owned))
            {
                sent = tx.send(api).is_ok();
            }
        }
    });
    let api = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the node says where its API listens");
    (child, api.parse().expect("an API address"))
}
