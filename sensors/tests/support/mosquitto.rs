//! A real Mosquitto broker (Debian `mosquitto`) on a 127.0.0.1 port, started
//! by a test and killed when dropped, and `mosquitto_pub` to publish to it.
//! Shared by the sensor's tests and the node's (`#[path]`).

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";

/// Why the broker tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    for tool in [MOSQUITTO, MOSQUITTO_PUB, "/usr/bin/mosquitto_passwd"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} not installed (apt-get install mosquitto mosquitto-clients)"
            ));
        }
    }
    None
}

/// How the broker is reached.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Username and password; anonymous clients are refused when set.
    pub login: Option<(String, String)>,
    /// TLS with a self-signed certificate for 127.0.0.1 (`Broker::ca`).
    pub tls: bool,
}

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    options: Options,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Broker {
    pub fn start(options: Options) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conf = format!(
            "listener {{port}} 127.0.0.1\npersistence false\nuser root\nlog_dest file {}\n",
            dir.path().join("mosquitto.log").display()
        );
        match &options.login {
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                run(Command::new("/usr/bin/mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password]));
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        if options.tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            run(Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null()));
            conf.push_str(&format!(
                "certfile {}\nkeyfile {}\n",
                cert.display(),
                key.display()
            ));
        }
        std::fs::write(dir.path().join("template.conf"), conf).expect("conf");
        let mut broker = Broker {
            child: None,
            port: free_port(),
            dir,
            options,
        };
        broker.restart();
        broker
    }

    /// The broker's certificate (with `tls`), to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let template =
            std::fs::read_to_string(self.dir.path().join("template.conf")).expect("template");
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(&conf, template.replace("{port}", &self.port.to_string())).expect("conf");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on 127.0.0.1:{} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A publisher to this broker that may move to another thread.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            port: self.port,
            login: self.options.login.clone(),
            ca: self.options.tls.then(|| self.ca()),
        }
    }

    /// Publishes one message with `mosquitto_pub`.
    pub fn publish(&self, topic: &str, payload: &str) {
        self.publisher().publish(topic, payload);
    }
}

/// `mosquitto_pub` towards one broker.
#[derive(Debug, Clone)]
pub struct Publisher {
    port: u16,
    login: Option<(String, String)>,
    ca: Option<PathBuf>,
}

impl Publisher {
    fn command(&self, topic: &str) -> Command {
        let mut cmd = Command::new(MOSQUITTO_PUB);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic]);
        if let Some((user, password)) = &self.login {
            cmd.args(["-u", user, "-P", password]);
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--cafile").arg(ca);
        }
        cmd
    }

    /// Publishes one message.
    pub fn publish(&self, topic: &str, payload: &str) {
        run(self.command(topic).args(["-m", payload]));
    }

    /// Publishes each line as one message, from one `mosquitto_pub -l`
    /// session, `per_sec` lines a second.
    pub fn publish_lines(&self, topic: &str, lines: &[String], per_sec: u32) {
        let mut child = self
            .command(topic)
            .arg("-l")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_pub");
        let mut stdin = child.stdin.take().expect("stdin");
        let gap = Duration::from_secs(1) / per_sec.max(1);
        let started = Instant::now();
        for (i, line) in lines.iter().enumerate() {
            let due = started + gap * u32::try_from(i).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
        drop(stdin);
        let _ = child.wait();
    }
}

/// Polls `done` every 50 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
