//! Entry points for fuzzing: each takes bytes as a sensor receives them
//! (a captured frame, a ring-buffer record, an SNMP answer, an MQTT
//! payload) and runs them through the code the sensor uses. The targets of
//! `sensors/fuzz/` call one function each, and `tests/fuzz_corpus.rs`
//! replays the seed corpora and the regressions through the same functions
//! in plain `cargo test`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use snmp2::v3;

use crate::ebpf::records;
use crate::flows::{DuplicateFilter, FlowTable, TableConfig, parse};
use crate::mqtt::mapping::TopicMapping;

/// The SNMPv3 user of the seed answers: `amoskys`, SHA-1 and AES-128, both
/// passwords `fuzzing-password`, engine id `80001f8880` + `fuzz`.
pub const SNMP_USER: &str = "amoskys";
pub const SNMP_PASSWORD: &str = "fuzzing-password";
pub const SNMP_ENGINE_ID: &[u8] = b"\x80\x00\x1f\x88\x80fuzz";

/// The v3 security of the seed answers, its keys derived once (deriving
/// hashes a megabyte); each input gets a copy.
pub fn snmp_security() -> &'static v3::Security {
    static SECURITY: OnceLock<v3::Security> = OnceLock::new();
    SECURITY.get_or_init(|| {
        let s = v3::Security::new(SNMP_USER.as_bytes(), SNMP_PASSWORD.as_bytes())
            .with_auth_protocol(v3::AuthProtocol::Sha1)
            .with_auth(v3::Auth::AuthPriv {
                cipher: v3::Cipher::Aes128,
                privacy_password: SNMP_PASSWORD.as_bytes().to_vec(),
            });
        match s.clone().with_engine_id(SNMP_ENGINE_ID) {
            Ok(keyed) => keyed.with_engine_boots_and_time(1, 100),
            Err(_) => s,
        }
    })
}

/// A captured Ethernet frame: the loopback duplicate filter, the parser,
/// and the flow table (seen twice, then expired and flushed).
pub fn flow_frame(frame: &[u8]) {
    let mut dedup = DuplicateFilter::new(1_000_000);
    let mut table = FlowTable::new(
        "fuzz0",
        &TableConfig {
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            end_grace: Duration::from_secs(1),
            half_open: Duration::from_millis(500),
            max_flows: 4,
        },
    );
    let mut out = Vec::new();
    for ts in [1_000_000_000u64, 1_000_500_000, 2_000_000_000] {
        if dedup.is_duplicate(frame, ts) {
            continue;
        }
        if let Ok(meta) = parse(frame) {
            table.update(&meta, ts, &mut out);
        }
    }
    table.expire(20_000_000_000, &mut out);
    table.flush(&mut out);
    assert!(table.is_empty(), "a flushed table holds no flow");
}

/// A record from the eBPF ring buffer.
pub fn ebpf_record(bytes: &[u8]) {
    let _ = records::parse(bytes);
}

/// An SNMP answer datagram (v1, v2c, or v3 for [`snmp_security`]), in a
/// buffer of its own as the session receives it: snmp2 zeroes a v3
/// answer's authentication parameters in place before it checks the HMAC,
/// writing through the shared slice it is given.
pub fn snmp_answer(bytes: &[u8]) {
    let datagram = bytes.to_vec();
    let mut security = snmp_security().clone();
    let _ = crate::snmp::read_answer(&datagram, Some(&mut security));
}

/// The topic mapping of the fuzz target: devices `site/<device>/...`.
pub fn mqtt_mapping() -> TopicMapping {
    TopicMapping {
        filter: "site/+/telemetry/#".into(),
        device: "dev-{2}".into(),
        metrics: BTreeMap::from([
            ("temperature".into(), "/temp".into()),
            ("power".into(), "/readings/0/watts".into()),
            ("online".into(), "/status/online".into()),
        ]),
    }
}

/// An MQTT message: the topic up to the first newline, the payload after
/// it (no newline: the payload alone, on a fixed topic).
pub fn mqtt_message(bytes: &[u8]) {
    let (topic, payload) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&bytes[..i]), &bytes[i + 1..]),
        None => ("site/a/telemetry/x".into(), bytes),
    };
    let m = mqtt_mapping();
    if crate::mqtt::mapping::matches(&m.filter, &topic)
        && let Ok(r) = m.read(&topic, payload)
    {
        assert!(r.metrics.values().all(|x| x.is_finite()));
        assert!(!r.device.is_empty());
    }
}
