//! The node's Prometheus metrics in a real three-node cluster, scraped from
//! `/metrics` with a plain HTTP client: Raft (a term, exactly one leader,
//! the leader's replication lag for each other member, the applied index
//! rising with a committed change) and the process's own resource use.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{eventually, send};
use reqwest::Method;

/// `/metrics` without any credential (loopback needs none).
async fn scrape(addr: SocketAddr) -> String {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("metrics body")
}

/// The value of the series named exactly `series` (with its labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The `member` labels of the replication lag series, with their values.
fn lag_series(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("amoskys_raft_replication_lag_entries{member=\""))
        .filter_map(|rest| {
            let (member, v) = rest.split_once("\"} ")?;
            Some((member.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_reports_raft_and_process_metrics() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let (dirs, admitted) = common::keyed_dirs(3);
    let nodes = common::three_voters(&dirs, &admitted).await;
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| n.identity().peer_id().to_string())
        .collect();

    // Exactly one leader, which reports a lag for each of the two others.
    let (leader, texts) = eventually(Duration::from_secs(20), || async {
        let mut texts = Vec::new();
        for n in &nodes {
            texts.push(scrape(n.api_addr()).await);
        }
        let leaders: Vec<usize> = (0..3)
            .filter(|i| value(&texts[*i], "amoskys_raft_is_leader") == Some(1.0))
            .collect();
        let [l] = leaders[..] else {
            return None;
        };
        (lag_series(&texts[l]).len() == 2).then_some((l, texts))
    })
    .await
    .expect("one leader with two replication lag series");
    for (i, text) in texts.iter().enumerate() {
        assert!(value(text, "amoskys_raft_term") >= Some(1.0), "{text}");
        assert!(
            value(text, "amoskys_raft_leader_changes_total") >= Some(1.0),
            "{text}"
        );
        let lags = lag_series(text);
        if i == leader {
            let mut members: Vec<&str> = lags.iter().map(|(m, _)| m.as_str()).collect();
            members.sort_unstable();
            let mut others: Vec<&str> = (0..3)
                .filter(|j| *j != leader)
                .map(|j| ids[j].as_str())
                .collect();
            others.sort_unstable();
            assert_eq!(members, others, "{text}");
        } else {
            assert!(lags.is_empty(), "a follower reports no replication: {text}");
            assert_eq!(value(text, "amoskys_raft_is_leader"), Some(0.0));
        }
        let applied = value(text, "amoskys_raft_applied_index").expect("applied index");
        let commit = value(text, "amoskys_raft_commit_index").expect("commit index");
        let last = value(text, "amoskys_raft_last_log_index").expect("last log index");
        assert!(
            applied >= 1.0 && applied <= commit && commit <= last,
            "{text}"
        );
        assert!(
            value(text, "amoskys_raft_apply_lag_entries").is_some(),
            "{text}"
        );
        assert!(
            value(text, "amoskys_raft_commit_lag_entries").is_some(),
            "{text}"
        );

        // The process: memory, descriptors, CPU time.
        let rss = value(text, "amoskys_process_resident_memory_bytes").expect("rss");
        assert!(rss > 1e6, "{text}");
        let fds = value(text, "amoskys_process_open_fds").expect("open fds");
        assert!(fds > 3.0, "{text}");
        if let Some(max) = value(text, "amoskys_process_max_fds") {
            assert!(max >= fds, "{text}");
        }
        let cpu = value(text, "amoskys_process_cpu_seconds_total").expect("cpu");
        assert!(cpu > 0.0, "{text}");
        // No federated round has run; every series is there at 0.
        assert_eq!(
            value(
                text,
                "amoskys_federation_rounds_total{kind=\"model\",outcome=\"committed\"}"
            ),
            Some(0.0),
            "{text}"
        );
    }

    // A committed change raises the applied index on every node.
    let before: Vec<f64> = texts
        .iter()
        .map(|t| value(t, "amoskys_raft_applied_index").unwrap_or(0.0))
        .collect();
    let doc = "[rules]\nscan_min_ports = 9\n";
    let (status, body) = send(
        nodes[(leader + 1) % 3].api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some(doc.into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (i, n) in nodes.iter().enumerate() {
        let raised = eventually(Duration::from_secs(10), || async {
            let text = scrape(n.api_addr()).await;
            let applied = value(&text, "amoskys_raft_applied_index")?;
            (applied > before[i]).then_some(text)
        })
        .await;
        assert!(
            raised.is_some(),
            "node {i}'s applied index stayed at {}",
            before[i]
        );
    }
    for n in nodes {
        n.shutdown().await;
    }
}
