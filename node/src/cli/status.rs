//! `amoskys status`: a running node at a glance, from `GET /api/v1/node`.

use std::time::Duration;

use amoskys_node::api::NodeStatus;

use super::client::{Api, ClientError};
use super::cluster::quorum_line;
use super::show::{self, print_table};

pub(super) async fn show(api: Api, json: bool) -> Result<(), ClientError> {
    let body = api.get("/api/v1/node", &[]).await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let s: NodeStatus = serde_json::from_value(body)
        .map_err(|e| ClientError::Local(format!("unexpected answer from {}: {e}", api.addr())))?;
    print(&s);
    Ok(())
}

fn print(s: &NodeStatus) {
    let c = &s.cluster;
    println!("node      {}", s.info.id);
    println!("name      {}", s.info.name);
    println!("version   {}", s.info.version);
    println!(
        "started   {} (up {})",
        s.info.started_at,
        humantime::format_duration(Duration::from_secs(s.uptime_secs))
    );
    println!("data dir  {}", s.info.data_dir);
    if let Some(fp) = &s.info.tls_fingerprint {
        println!("tls       sha256 {fp}");
    }
    println!("events    {} stored", s.events_stored);
    if c["initialized"] == true {
        let leader = match c["leader"].as_str() {
            Some(l) if l == s.info.id => "this node".to_owned(),
            Some(l) => l.to_owned(),
            None => "none".to_owned(),
        };
        println!(
            "cluster   {} in term {}, leader {leader}, {} voters, {} learners",
            show::text(&c["state"]).to_lowercase(),
            c["term"],
            c["voters"].as_array().map_or(0, Vec::len),
            c["learners"].as_array().map_or(0, Vec::len),
        );
        if let Some(q) = quorum_line(&c["quorum"]) {
            println!("quorum    {q}");
        }
    } else {
        println!("cluster   not in a cluster yet");
    }
    match s.policy_version {
        Some(v) => println!("policy    version {v}"),
        None => println!("policy    none committed (this node's configuration applies)"),
    }
    if let Some(e) = &s.policy_error {
        println!("policy    NOT APPLIED: {e}");
    }
    match s.model_version {
        Some(v) => println!("model     version {v} (the registry's active version)"),
        None => println!("model     none registered (local models only)"),
    }
    if let Some(r) = &s.response {
        let refused: u64 = r.refused.values().sum();
        match &r.reason {
            Some(why) if !r.healthy => {
                println!("response  {} mode, bouncer UNHEALTHY: {why}", r.mode)
            }
            _ => println!(
                "response  {} mode, bouncer healthy, {} enforced, {refused} refused",
                r.mode, r.enforced
            ),
        }
    }
    println!();
    let sensors = s
        .sensors
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.state.clone(),
                x.events.to_string(),
                x.drops.to_string(),
                x.errors.to_string(),
                x.message.clone(),
            ]
        })
        .collect();
    print_table(
        &["SENSOR", "STATE", "EVENTS", "DROPS", "ERRORS", "NOTE"],
        sensors,
        "sensors   none enabled",
    );
    if !s.snmp_devices.is_empty() {
        println!();
        let devices = s
            .snmp_devices
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.address.clone(),
                    show::text(&serde_json::to_value(d.state).unwrap_or_default()),
                    d.polls.to_string(),
                    d.failures.to_string(),
                    d.message.clone(),
                ]
            })
            .collect();
        print_table(
            &["DEVICE", "ADDRESS", "STATE", "POLLS", "FAILURES", "NOTE"],
            devices,
            "",
        );
    }
    if let Some(m) = &s.mqtt {
        println!();
        print_table(
            &[
                "BROKER",
                "STATE",
                "CONNECTS",
                "MESSAGES",
                "MALFORMED",
                "OVERSIZED",
                "NOTE",
            ],
            vec![vec![
                m.broker.clone(),
                show::text(&serde_json::to_value(m.state).unwrap_or_default()),
                m.connects.to_string(),
                m.messages.to_string(),
                m.malformed.to_string(),
                m.oversized.to_string(),
                [m.message.as_str(), m.last_dropped.as_str()]
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            ]],
            "",
        );
    }
    if !s.outputs.is_empty() {
        println!();
        let outputs = s
            .outputs
            .iter()
            .map(|o| {
                vec![
                    o.name.clone(),
                    o.kind.clone(),
                    o.state.clone(),
                    o.sent.to_string(),
                    o.failed.to_string(),
                    o.retried.to_string(),
                    o.spooled.to_string(),
                    o.dropped.to_string(),
                    if o.message.is_empty() {
                        o.target.clone()
                    } else {
                        o.message.clone()
                    },
                ]
            })
            .collect();
        print_table(
            &[
                "OUTPUT", "KIND", "STATE", "SENT", "FAILED", "RETRIED", "SPOOLED", "DROPPED",
                "NOTE",
            ],
            outputs,
            "",
        );
    }
    println!();
    let peers = s
        .peers
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.address.clone(),
                p.latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
                humantime::format_duration(Duration::from_secs(p.connected_for_secs)).to_string(),
            ]
        })
        .collect();
    print_table(
        &["PEER ID", "ADDRESS", "LATENCY", "CONNECTED"],
        peers,
        "peers     none connected",
    );
}
