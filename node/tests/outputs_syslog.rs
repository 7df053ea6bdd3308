//! Syslog outputs against Debian's rsyslogd, started by each test with its
//! own configuration on loopback: UDP, TCP (octet counting) and TLS.

mod common;
#[path = "outputs/support.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Node;
use common::{eventually, get_json};
use support::{config_with, free_port, lines, listening, rsyslogd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslogd_gets_each_alert_once_over_udp_and_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, tcp) = (free_port(), free_port());
    let received = dir.path().join("received.log");
    let _rsyslogd = rsyslogd(
        dir.path(),
        "",
        &format!(
            r#"module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="alerts")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="alerts")"#
        ),
        &received,
    );
    listening(tcp).await;
    // imudp binds with imtcp; give it a moment more.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "syslog-udp"
kind = "syslog"
address = "127.0.0.1:{udp}"
app_name = "amoskys-udp"
rules = ["port_scan_vertical"]

[[outputs]]
name = "syslog-tcp"
kind = "syslog"
address = "127.0.0.1:{tcp}"
transport = "tcp"
format = "cef"
app_name = "amoskys-tcp"
min_severity = "medium"
"#
        ),
    ))
    .await
    .expect("node starts");
    let mut raised = Vec::new();
    for i in 1..=5 {
        raised.push(common::raise(&node, Ipv4Addr::new(10, 7, 0, i)).await);
    }
    assert!(raised.iter().all(|a| a.body.rule == "port_scan_vertical"));
    let all_in = eventually(Duration::from_secs(15), || async {
        let l = lines(&received);
        let udp = l.iter().filter(|x| x.starts_with("amoskys-udp ")).count();
        let tcp = l.iter().filter(|x| x.starts_with("amoskys-tcp ")).count();
        (udp >= 5 && tcp >= 5).then_some(())
    })
    .await;
    assert!(all_in.is_some(), "rsyslogd got: {:?}", lines(&received));
    // Anything sent twice would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = lines(&received);

    // UDP: the signed alert's JSON, which parses and verifies.
    let from_udp: Vec<Alert> = got
        .iter()
        .filter_map(|l| l.strip_prefix("amoskys-udp "))
        .map(|m| Alert::decode(m.trim().as_bytes()).expect("the message is a signed alert"))
        .collect();
    // TCP: CEF, whose externalId is the alert id.
    let from_tcp: Vec<String> = got
        .iter()
        .filter_map(|l| l.strip_prefix("amoskys-tcp "))
        .map(|m| {
            let m = m.trim();
            let fields: Vec<&str> = m.splitn(8, '|').collect();
            assert_eq!(fields.len(), 8, "a CEF message: {m}");
            assert_eq!(&fields[..3], ["CEF:0", "AMOSKYS", "AMOSKYS"]);
            assert_eq!(fields[4], "port_scan_vertical");
            fields[7]
                .split(' ')
                .find_map(|kv| kv.strip_prefix("externalId="))
                .expect("externalId")
                .to_owned()
        })
        .filter(|id| raised.iter().any(|a| &a.id == id))
        .collect();
    let ids: Vec<String> = raised.iter().map(|a| a.id.clone()).collect();
    let udp_ids: Vec<String> = from_udp.iter().map(|a| a.id.clone()).collect();
    assert_eq!(udp_ids, ids, "each alert once, in order, over UDP");
    assert_eq!(from_tcp, ids, "each alert once, in order, over TCP");

    let (_, status) = get_json(node.api_addr(), "/api/v1/node").await;
    let outputs = status["outputs"].as_array().expect("outputs in the status");
    assert_eq!(outputs.len(), 2);
    for o in outputs {
        assert_eq!(o["state"], "ok", "{o}");
        assert_eq!(o["sent"], 5, "{o}");
        assert_eq!(o["spooled"], 0, "{o}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslogd_gets_each_alert_once_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).expect("write key");
    let port = free_port();
    let received = dir.path().join("received.log");
    let _rsyslogd = rsyslogd(
        dir.path(),
        &format!(
            r#"DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{c}" DefaultNetstreamDriverCertFile="{c}" DefaultNetstreamDriverKeyFile="{k}""#,
            c = cert_file.display(),
            k = key_file.display()
        ),
        &format!(
            r#"module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="alerts")"#
        ),
        &received,
    );
    listening(port).await;
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "syslog-tls"
kind = "syslog"
address = "127.0.0.1:{port}"
transport = "tls"
ca_file = "{}"
rules = ["port_scan_vertical"]
"#,
            cert_file.display()
        ),
    ))
    .await
    .expect("node starts");
    let mut raised = Vec::new();
    for i in 1..=3 {
        raised.push(common::raise(&node, Ipv4Addr::new(10, 9, 0, i)).await);
    }
    let all_in = eventually(Duration::from_secs(15), || async {
        (lines(&received).len() >= 3).then_some(())
    })
    .await;
    assert!(all_in.is_some(), "rsyslogd got: {:?}", lines(&received));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<String> = lines(&received)
        .iter()
        .map(|l| {
            let m = l.strip_prefix("amoskys ").expect("APP-NAME amoskys");
            Alert::decode(m.trim().as_bytes())
                .expect("a signed alert")
                .id
        })
        .collect();
    let want: Vec<String> = raised.iter().map(|a| a.id.clone()).collect();
    assert_eq!(got, want, "each alert once, in order, over TLS");
    node.shutdown().await;
}
