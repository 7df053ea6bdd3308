//! Slow clients cannot starve the API. An attacker (raw TCP on loopback,
//! not the node's client) opens more connections than one source may hold
//! and trickles a `PUT /api/v1/policy` body a byte at a time; another
//! trickles headers. Meanwhile a real policy change from another address
//! completes at once; the attacker's extra connections are closed at once,
//! the trickled bodies get `408` after the body timeout and the trickled
//! headers are cut after the header timeout, as is an idle keep-alive
//! connection.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use amoskys_node::Node;
use common::{eventually, get_json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const ATTACKERS: usize = 80;
const PER_SOURCE: usize = 64;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test connection is watched before the test gives up on it.
const WATCH: Duration = Duration::from_secs(15);

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const ADMIN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HEADER_ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const IDLER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));

/// What the server did to one slow connection.
#[derive(Debug)]
struct Cut {
    /// From connecting to the server closing it; `None` if it never did.
    after: Option<Duration>,
    /// What the server sent before closing.
    answer: String,
}

/// Connects from `local`, sends `head`, then one byte every 100 ms until
/// the server closes the connection.
async fn trickle(addr: SocketAddr, local: IpAddr, head: &'static str, byte: u8) -> Cut {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(local, 0)).expect("bind");
    let start = Instant::now();
    let stream = match socket.connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            return Cut {
                after: Some(start.elapsed()),
                answer: String::new(),
            };
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    let writer = async move {
        if wr.write_all(head.as_bytes()).await.is_ok() {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wr.write_all(&[byte]).await.is_err() {
                    break;
                }
            }
        }
        // The reader sees the close.
        std::future::pending::<()>().await;
    };
    let reader = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::select! {
        got = reader => Cut {
            after: Some(start.elapsed()),
            answer: String::from_utf8_lossy(&got).into_owned(),
        },
        () = writer => unreachable!("the writer never ends"),
        () = tokio::time::sleep(WATCH) => Cut { after: None, answer: String::new() },
    }
}

/// Sends one keep-alive request, reads its answer, then idles: how long
/// after the answer the server closes the connection.
async fn idle_after_one_request(addr: SocketAddr) -> Option<Duration> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(IDLER, 0)).expect("bind");
    let mut stream = socket.connect(addr).await.expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .expect("request sent");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let answered = Instant::now();
    match tokio::time::timeout(WATCH, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => Some(answered.elapsed()),
        Ok(Ok(_)) => panic!("nothing more was asked"),
        Err(_) => None,
    }
}

const SLOW_BODY: &str = "PUT /api/v1/policy HTTP/1.1\r\nHost: node\r\nContent-Type: application/toml\r\nContent-Length: 100000\r\n\r\n# ";
const SLOW_HEADERS: &str = "PUT /api/v1/policy HTTP/1.1\r\nHost: node\r\nX-Slow: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_uploads_do_not_keep_a_policy_change_out() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("dir");
    let header_ms = format!("api.header_timeout_ms={}", HEADER_TIMEOUT.as_millis());
    let body_ms = format!("api.body_timeout_ms={}", BODY_TIMEOUT.as_millis());
    let per_source = format!("api.max_connections_per_source={PER_SOURCE}");
    let n = Node::start(common::quiet_config(
        dir.path(),
        &[
            "sensors.procfs.enabled=false",
            "learning.enabled=false",
            "api.max_connections=64",
            &header_ms,
            &body_ms,
            &per_source,
        ],
    ))
    .await
    .expect("node starts");
    let addr = n.api_addr();
    let leader = eventually(Duration::from_secs(20), || async {
        let (_, v) = get_json(addr, "/api/v1/cluster").await;
        v["cluster"]["leader"].is_string().then_some(())
    })
    .await;
    assert!(leader.is_some(), "a one-node cluster with a leader");

    let policy = "[rules]\nscan_min_ports = 25\n";
    let auth = common::admin_authorization(addr, "PUT", "/api/v1/policy", policy.as_bytes()).await;
    // Signed before the attack: during it, 127.0.0.1 (the attacker's
    // address, where the helper asks /healthz) has no connection left.
    let read = common::admin_authorization(addr, "GET", "/api/v1/policy", b"").await;
    let attack = Instant::now();
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..ATTACKERS {
        slow.spawn(trickle(addr, ATTACKER, SLOW_BODY, b'x'));
    }
    let headers = tokio::spawn(trickle(addr, HEADER_ATTACKER, SLOW_HEADERS, b'a'));
    let idle = tokio::spawn(idle_after_one_request(addr));
    // Every slow connection is open and inside its body.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let admin = reqwest::Client::builder()
        .local_address(ADMIN)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let resp = admin
        .put(format!("http://{addr}/api/v1/policy"))
        .header("authorization", auth)
        .body(policy)
        .send()
        .await
        .expect("the policy change is answered");
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    let changed_at = attack.elapsed();
    eprintln!("policy change under {ATTACKERS} slow connections took {took:?}");
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(3),
        "the policy change took {took:?} under attack"
    );
    // Reads from the admin's address are served too (the attacker's is full).
    let v: serde_json::Value = admin
        .get(format!("http://{addr}/api/v1/policy"))
        .header("authorization", read)
        .send()
        .await
        .expect("policy read")
        .json()
        .await
        .expect("JSON");
    assert_eq!(v["committed"]["version"], 1, "{v}");

    let mut refused = 0;
    let mut timed_out = 0;
    while let Some(cut) = slow.join_next().await {
        let cut = cut.expect("attacker task");
        let after = cut.after.expect("the server closed every slow connection");
        if after < Duration::from_secs(1) && cut.answer.is_empty() {
            refused += 1;
        } else {
            assert!(
                cut.answer.starts_with("HTTP/1.1 408"),
                "a trickled body gets 408: {:?}",
                cut.answer
            );
            assert!(
                after >= BODY_TIMEOUT - Duration::from_millis(500)
                    && after < BODY_TIMEOUT + Duration::from_secs(3),
                "cut after {after:?}, the body timeout is {BODY_TIMEOUT:?}"
            );
            assert!(
                after > changed_at,
                "the slow connections were still open when the policy changed"
            );
            timed_out += 1;
        }
    }
    assert_eq!(
        (refused, timed_out),
        (ATTACKERS - PER_SOURCE, PER_SOURCE),
        "connections beyond the per-source limit are closed at once"
    );
    let cut = headers.await.expect("header attacker");
    let after = cut.after.expect("trickled headers are cut");
    assert!(
        after >= HEADER_TIMEOUT - Duration::from_millis(500)
            && after < HEADER_TIMEOUT + Duration::from_secs(3),
        "headers cut after {after:?}, the header timeout is {HEADER_TIMEOUT:?}"
    );
    let after = idle
        .await
        .expect("idler")
        .expect("an idle connection is closed");
    assert!(
        after >= HEADER_TIMEOUT - Duration::from_millis(500)
            && after < HEADER_TIMEOUT + Duration::from_secs(3),
        "idle keep-alive connection closed {after:?} after its request, the header timeout is {HEADER_TIMEOUT:?}"
    );
    // The node still serves after the attack.
    let (code, _) = common::get(addr, "/healthz").await;
    assert_eq!(code, 200);
    n.shutdown().await;
}
