//! Five real nodes in network namespaces behind a bridge of their own, an
//! SNMP device and an attacker: the nodes form a Raft cluster; a real nmap
//! scan raises a signed alert that every node holds; two nodes are
//! partitioned away, alerts are raised on both sides and the minority
//! cannot change the policy; after healing every node holds every alert
//! and the majority's policy. Needs root (CI runs as root), iproute2,
//! iptables and nmap; cleans up on failure too (`Drop`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use amoskys_mesh::Alert;
use amoskys_testnet::{Options, Testnet};

fn alerts(net: &Testnet, i: usize) -> Vec<Alert> {
    let api = format!("127.0.0.1:{}", amoskys_testnet::API_PORT);
    let bin = net.amoskys.to_string_lossy().into_owned();
    match net.exec(&net.hosts[i].ns, &[&bin, "alerts", "export", "--api", &api]) {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn scan(net: &Testnet, target: usize) {
    let cmd = amoskys_testnet::scan_command(&net.hosts[target].addr);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    net.exec(&net.attacker_ns, &args).expect("nmap runs");
}

/// Ids of the port-scan alerts that node `origin` raised, as held by `i`.
fn scans_by(net: &Testnet, i: usize, origin: usize) -> BTreeSet<String> {
    alerts(net, i)
        .into_iter()
        .filter(|a| a.body.rule.starts_with("port_scan") && a.origin == net.hosts[origin].peer_id)
        .map(|a| a.id)
        .collect()
}

fn policy_version(net: &Testnet, i: usize) -> Option<u64> {
    net.api(i, &["policy", "show", "--json"])
        .ok()
        .and_then(|v| v["in_force"]["version"].as_u64())
}

#[test]
fn five_nodes_hold_every_alert_through_a_partition_and_the_minority_cannot_change_policy() {
    if let Some(why) = amoskys_testnet::unavailable() {
        eprintln!("SKIPPED netns testnet: {why}");
        return;
    }
    if !std::path::Path::new("/usr/bin/nmap").exists() {
        eprintln!("SKIPPED netns testnet: /usr/bin/nmap missing (apt-get install nmap)");
        return;
    }
    let bin = amoskys_testnet::built_amoskys();
    assert!(
        bin.exists(),
        "{} not built (cargo test --workspace builds it)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("amoskys-testnet-{}", std::process::id()));
    let started = Instant::now();
    let net = Testnet::up(&Options {
        nodes: 5,
        amoskys: bin,
        dir: dir.clone(),
        sets: vec![
            "sensors.procfs.enabled=false".into(),
            "learning.enabled=false".into(),
            "cluster.heartbeat_ms=100".into(),
            "cluster.election_min_ms=400".into(),
            "cluster.election_max_ms=800".into(),
        ],
    })
    .expect("testnet up");

    // A cluster of five: three voters, two learners.
    net.until("a cluster of five", Duration::from_secs(60), |n| {
        (0..5).all(|i| {
            n.api(i, &["cluster", "status", "--json"]).is_ok_and(|v| {
                let c = &v["cluster"];
                c["voters"].as_array().map_or(0, Vec::len) == 3
                    && c["learners"].as_array().map_or(0, Vec::len) == 2
            })
        })
    })
    .expect("cluster formed");
    eprintln!("cluster of five after {:?}", started.elapsed());

    // A real scan of node 1: every node holds node 1's signed alert.
    scan(&net, 1);
    net.until(
        "the scan alert on every node",
        Duration::from_secs(60),
        |n| (0..5).all(|i| !scans_by(n, i, 1).is_empty()),
    )
    .expect("alert everywhere");

    // The leader and a learner are cut off from the other three (two
    // voters and a learner), which elect a leader of their own.
    let status = net
        .api(0, &["cluster", "status", "--json"])
        .expect("status");
    let index_of = |peer: &serde_json::Value| {
        net.hosts
            .iter()
            .position(|h| Some(h.peer_id.as_str()) == peer.as_str())
            .expect("a known node")
    };
    let leader = index_of(&status["cluster"]["leader"]);
    let learner = index_of(&status["cluster"]["learners"][0]);
    let minority = [leader, learner];
    let majority: Vec<usize> = (0..5).filter(|i| !minority.contains(i)).collect();
    eprintln!("partition: minority {minority:?} (leader, learner), majority {majority:?}");
    net.partition(&majority, &minority).expect("partition");
    // Node 1 was scanned already (a second scan would be suppressed).
    let m = *majority.iter().find(|&&i| i != 1).expect("a majority node");
    let n = *minority.iter().find(|&&i| i != 1).expect("a minority node");
    scan(&net, m);
    scan(&net, n);
    net.until("alerts on both sides", Duration::from_secs(60), |t| {
        majority.iter().all(|&i| !scans_by(t, i, m).is_empty())
            && minority.iter().all(|&i| !scans_by(t, i, n).is_empty())
    })
    .expect("alerts raised on both sides");
    for &i in &minority {
        assert!(
            scans_by(&net, i, m).is_empty(),
            "the partition leaked to {i}"
        );
    }
    for &i in &majority {
        assert!(
            scans_by(&net, i, n).is_empty(),
            "the partition leaked to {i}"
        );
    }

    // The minority cannot change the policy; the majority can.
    let doc = dir.join("policy.toml");
    std::fs::write(&doc, "[rules]\nscan_min_ports = 12\n").expect("policy file");
    let doc = doc.to_string_lossy().into_owned();
    let api = format!("127.0.0.1:{}", amoskys_testnet::API_PORT);
    let bin = net.amoskys.to_string_lossy().into_owned();
    let refused = net.exec(
        &net.hosts[minority[1]].ns,
        &[&bin, "policy", "set", &doc, "--api", &api],
    );
    assert!(refused.is_err(), "the minority committed a policy");
    net.until("a majority leader commits", Duration::from_secs(30), |t| {
        t.exec(
            &t.hosts[majority[1]].ns,
            &[&bin, "policy", "set", &doc, "--api", &api],
        )
        .is_ok()
    })
    .expect("the majority commits");
    // A try that timed out may have committed too (a write with no answer
    // may have happened), so the majority's version is what it holds now.
    let mut agreed = None;
    net.until(
        "the majority applies its policy",
        Duration::from_secs(30),
        |t| {
            agreed = majority.iter().filter_map(|&i| policy_version(t, i)).max();
            agreed.is_some()
        },
    )
    .expect("the majority's policy");

    // Healed: every node converges on every alert and the majority's policy.
    net.heal().expect("heal");
    net.until("convergence", Duration::from_secs(120), |t| {
        (0..5).all(|i| {
            [1, m, n].iter().all(|&o| !scans_by(t, i, o).is_empty())
                && policy_version(t, i) == agreed
        })
    })
    .unwrap_or_else(|e| {
        for i in 0..5 {
            let held: Vec<usize> = [1, m, n]
                .into_iter()
                .filter(|&o| !scans_by(&net, i, o).is_empty())
                .collect();
            eprintln!(
                "node {i}: holds scans by {held:?}, policy {:?}, cluster {:?}",
                policy_version(&net, i),
                net.api(i, &["cluster", "status", "--json"])
                    .ok()
                    .map(|v| v["cluster"]["leader"].clone())
            );
        }
        panic!("not converged: {e}");
    });
    let all: Vec<BTreeSet<String>> = (0..5)
        .map(|i| {
            alerts(&net, i)
                .into_iter()
                .filter(|a| a.body.rule.starts_with("port_scan"))
                .map(|a| a.id)
                .collect()
        })
        .collect();
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "nodes hold different alerts: {all:?}"
    );
    eprintln!("five-node testnet done in {:?}", started.elapsed());
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
}
