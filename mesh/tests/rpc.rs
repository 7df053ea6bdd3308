//! Request-response between meshes over loopback: answers come back, each
//! service's size limit and timeout hold, a peer that was never admitted is
//! refused, and a handler's error reaches the caller.

use std::time::{Duration, Instant};

use amoskys_mesh::net::{self, MeshHandle};
use amoskys_mesh::{
    InboundRequest, MeshConfig, MeshError, Received, Reject, Service, ValidatorConfig,
};
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use tokio::sync::mpsc;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

async fn start(
    seed: u8,
    admitted: &[u8],
    bootstrap: Vec<Multiaddr>,
    requests: Option<mpsc::Sender<InboundRequest>>,
) -> (MeshHandle, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, mut rx) = mpsc::channel::<Received>(16);
    let (handle, task) = net::start(
        MeshConfig {
            bootstrap,
            validator: ValidatorConfig {
                admitted: admitted
                    .iter()
                    .map(|s| key(*s).verifying_key().to_bytes())
                    .collect(),
                ..ValidatorConfig::default()
            },
            requests,
            ..MeshConfig::loopback(Keypair::ed25519_from_bytes(key(seed).to_bytes()).expect("key"))
        },
        tx,
    )
    .await
    .expect("mesh starts");
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    (handle, vec![task, drain])
}

async fn addr(h: &MeshHandle) -> Multiaddr {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let a = h.listen_addrs().await.expect("addrs");
        if let Some(a) = a.into_iter().find(|a| a.to_string().contains("/tcp/")) {
            return a;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connected(h: &MeshHandle) {
    let end = Instant::now() + Duration::from_secs(10);
    while h.peers().await.expect("peers").is_empty() {
        assert!(Instant::now() < end, "not connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_within_limits_and_only_for_members() {
    // b serves: Raft requests are echoed reversed, except "slow", never
    // answered; it keeps no blobs.
    let (req_tx, mut req_rx) = mpsc::channel::<InboundRequest>(16);
    let server = tokio::spawn(async move {
        let mut parked = Vec::new();
        while let Some(r) = req_rx.recv().await {
            match r.service {
                Service::Raft if r.body == b"slow" => parked.push(r.reply),
                Service::Raft => {
                    let mut b = r.body;
                    b.reverse();
                    let _ = r.reply.send(Ok(b));
                }
                _ => {
                    let _ = r
                        .reply
                        .send(Err(format!("no {} store here", r.service.as_str())));
                }
            }
        }
    });
    let (b, _b_tasks) = start(2, &[1, 2], vec![], Some(req_tx)).await;
    let b_addr = addr(&b).await;
    let (a, _a_tasks) = start(1, &[1, 2], vec![b_addr.clone()], None).await;
    let (outsider, _o_tasks) = start(9, &[1, 2, 9], vec![b_addr], None).await;
    connected(&a).await;
    connected(&outsider).await;
    let b_id = b.peer_id();

    let echoed = a
        .request(b_id, Service::Raft, b"append".to_vec())
        .await
        .expect("answered");
    assert_eq!(echoed, b"dneppa");

    let reason = |e: MeshError| match e {
        MeshError::Request { reason, .. } => reason,
        other => panic!("unexpected {other}"),
    };
    let too_big = vec![0u8; Service::Raft.max_request() + 1];
    let e = a
        .request(b_id, Service::Raft, too_big)
        .await
        .expect_err("over the limit");
    assert!(reason(e).contains("limit"));

    let e = a
        .request(b_id, Service::Blob, vec![1; 32])
        .await
        .expect_err("no blobs");
    assert_eq!(reason(e), "no blob store here");

    let e = outsider
        .request(b_id, Service::Raft, b"vote".to_vec())
        .await
        .expect_err("refused");
    assert!(reason(e).contains("not an admitted member"));
    assert_eq!(b.stats().rejected(Reject::OutsiderRequest), 1);

    let started = Instant::now();
    let e = a
        .request(b_id, Service::Raft, b"slow".to_vec())
        .await
        .expect_err("timeout");
    assert!(reason(e).contains("the handler timed out"));
    assert!(started.elapsed() < Service::Raft.timeout() + Duration::from_secs(2));

    // The mesh still answers after all that.
    let again = a
        .request(b_id, Service::Raft, b"ok".to_vec())
        .await
        .expect("answered");
    assert_eq!(again, b"ko");
    server.abort();
}
