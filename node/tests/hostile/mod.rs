//! Generated hostile requests for `hostile_bodies.rs`: valid shapes with
//! extreme values, nested garbage and garbage bytes, from a seeded
//! generator.

use reqwest::Method;
use serde_json::{Value, json};

/// SplitMix64: a small seeded generator, so a failure replays exactly.
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }

    fn hex(&mut self, digits: usize) -> String {
        (0..digits)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }

    fn number(&mut self) -> Value {
        self.pick(&[
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(60),
            json!(86_400),
            json!(31_536_000),
            json!(31_536_001),
            json!(1u64 << 53),
            json!(1u64 << 63),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.5),
            json!(-0.0),
            json!(1e308),
        ])
    }

    fn string(&mut self) -> String {
        match self.below(16) {
            0 => String::new(),
            1 => "x".repeat(200_000),
            2 => "é".repeat(150_000),
            3 => "\u{0}\u{7}\r\n\u{202e}".into(),
            4 => "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ 🦀".into(),
            5 => "not an address".into(),
            6 => "127.0.0.1:7301".into(),
            7 => "/ip4/192.0.2.7/tcp/7301".into(),
            8 => "198.51.100.7".into(),
            9 => "10.0.0.0/8".into(),
            10 => "evil.example".into(),
            11 => "d41d8cd98f00b204e9800998ecf8427e".into(),
            12 => "../../etc/passwd".into(),
            13 => self.hex(64),
            14 => "-1".into(),
            _ => "resolved".into(),
        }
    }

    fn garbage(&mut self, depth: usize) -> Value {
        match self.below(if depth > 4 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => self.number(),
            3 => json!(self.string()),
            4 => Value::Array(
                (0..self.below(4))
                    .map(|_| self.garbage(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let k = self.pick(&["a", "id", "kind", "", "🦀", "__proto__"]);
                    m.insert(k.into(), self.garbage(depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    /// A value for a field: often the right type with an extreme value,
    /// sometimes garbage, sometimes absent.
    fn field(&mut self, m: &mut serde_json::Map<String, Value>, key: &str, good: Value) {
        let v = match self.below(6) {
            0 => return,
            1 => good,
            2 => self.number(),
            3 => json!(self.string()),
            4 => self.garbage(0),
            _ => match good {
                Value::String(_) => json!(self.string()),
                _ => self.number(),
            },
        };
        m.insert(key.into(), v);
    }

    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(2048)).map(|_| self.next() as u8).collect()
    }
}

/// Percent-encodes every byte but letters and digits, of at most the first
/// 1,000 characters (a path or query is not a body: hyper bounds it apart).
fn encode(s: &str) -> String {
    let s: String = s.chars().take(1000).collect();
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Policy keys with numbers; `federated_every_minutes` only gets values
/// that schedule nothing, so no round starts on its own during the test.
const POLICY_KEYS: &[(&str, &str)] = &[
    ("rules", "window_secs"),
    ("rules", "scan_min_ports"),
    ("rules", "flood_min_syn"),
    ("rules", "flood_max_completed_ratio"),
    ("rules", "brute_force_max_secs"),
    ("rules", "campaign_min_nodes"),
    ("rules", "false_positive_suppress_secs"),
    ("learning", "retrain_hours"),
    ("learning", "federated_epochs"),
    ("learning", "federated_deadline_secs"),
    ("learning", "federated_min_participants"),
    ("learning", "drift_threshold"),
    ("learning", "drift_min_windows"),
    ("learning", "drift_windows"),
    ("membership", "voters"),
    ("membership", "voter_down_secs"),
];
const TOML_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "9007199254740992",
    "9223372036854775807",
    "18446744073709551615",
    "1e308",
    "nan",
    "inf",
    "\"str\"",
    "[1, [2]]",
    "{ a = 1 }",
    "true",
];

fn policy(g: &mut Gen) -> Vec<u8> {
    match g.below(5) {
        0 => g.bytes(),
        1 => format!("[rules]\nwindow_secs = 60\n{}", "#".repeat(300_000)).into_bytes(),
        2 => {
            let v = g.pick(&["0", "18446744073709551615", "9223372036854775807", "-1"]);
            format!("[learning]\nfederated_every_minutes = {v}\n").into_bytes()
        }
        _ => {
            let mut text = String::new();
            for _ in 0..1 + g.below(3) {
                let (section, key) = g.pick(POLICY_KEYS);
                text.push_str(&format!("[{section}]\n{key} = {}\n", g.pick(TOML_VALUES)));
            }
            text.into_bytes()
        }
    }
}

/// One generated request: method, path and body.
pub fn request(g: &mut Gen, alert: &str) -> (Method, String, Vec<u8>) {
    let mut m = serde_json::Map::new();
    let case_alert = if g.below(2) == 0 {
        alert.to_owned()
    } else {
        encode(&g.string())
    };
    let (method, path) = match g.below(17) {
        0 => return (Method::PUT, "/api/v1/policy".into(), policy(g)),
        1 => {
            let id = g.hex(64);
            g.field(&mut m, "id", json!(id));
            g.field(&mut m, "addr", json!("127.0.0.1:7301"));
            (Method::POST, "/api/v1/members".to_owned())
        }
        2 => {
            let id = if g.below(2) == 0 {
                g.hex(64)
            } else {
                g.string()
            };
            (Method::DELETE, format!("/api/v1/members/{}", encode(&id)))
        }
        3 => {
            g.field(&mut m, "indicator", json!("198.51.100.7"));
            g.field(&mut m, "reason", json!("fuzz"));
            g.field(&mut m, "expires_secs", json!(60));
            (Method::POST, "/api/v1/intel".to_owned())
        }
        4 => (
            Method::DELETE,
            format!("/api/v1/intel?indicator={}", encode(&g.string())),
        ),
        5 => {
            g.field(&mut m, "assignee", json!("ana"));
            (Method::POST, format!("/api/v1/cases/{case_alert}/ack"))
        }
        6 => {
            g.field(&mut m, "status", json!("resolved"));
            (Method::POST, format!("/api/v1/cases/{case_alert}/status"))
        }
        7 => {
            g.field(&mut m, "text", json!("looked at it"));
            (Method::POST, format!("/api/v1/cases/{case_alert}/notes"))
        }
        8 => {
            g.field(&mut m, "kind", json!("source"));
            g.field(&mut m, "epochs", json!(1));
            g.field(&mut m, "deadline_secs", json!(1));
            g.field(&mut m, "min_participants", json!(1));
            g.field(
                &mut m,
                "rule",
                json!({ "rule": "multi_krum", "byzantine": 1, "select": 1 }),
            );
            g.field(
                &mut m,
                "dp",
                json!({ "clip": 1.0, "noise_multiplier": 1.0, "delta": 1e-5 }),
            );
            (Method::POST, "/api/v1/learn/rounds".to_owned())
        }
        9 => (Method::POST, "/api/v1/models/train".to_owned()),
        10 => {
            let v = match g.below(3) {
                0 => g.number().to_string(),
                1 => g.string(),
                _ => "1".into(),
            };
            (
                Method::POST,
                format!("/api/v1/models/{}/activate", encode(&v)),
            )
        }
        11 => {
            let key = g.hex(64);
            g.field(&mut m, "name", json!("fuzz-op"));
            g.field(&mut m, "key", json!(key));
            g.field(&mut m, "role", json!("viewer"));
            (Method::POST, "/api/v1/operators".to_owned())
        }
        12 => {
            g.field(&mut m, "role", json!("analyst"));
            let name = if g.below(2) == 0 {
                "admin".to_owned()
            } else {
                g.string()
            };
            (Method::PUT, format!("/api/v1/operators/{}", encode(&name)))
        }
        13 => {
            let name = if g.below(2) == 0 {
                "admin".to_owned()
            } else {
                g.string()
            };
            (
                Method::DELETE,
                format!("/api/v1/operators/{}", encode(&name)),
            )
        }
        14 => {
            let (key, old, new) = (g.hex(64), g.hex(128), g.hex(128));
            g.field(&mut m, "key", json!(key));
            g.field(&mut m, "old_sig", json!(old));
            g.field(&mut m, "new_sig", json!(new));
            (Method::POST, "/api/v1/operators/admin/rotate".to_owned())
        }
        15 => {
            let id = match g.below(3) {
                0 => g.number().to_string(),
                1 => g.string(),
                _ => "1".into(),
            };
            (
                Method::POST,
                format!("/api/v1/proposals/{}/approve", encode(&id)),
            )
        }
        _ => {
            let peer = g.hex(64);
            g.field(&mut m, "peers", json!([peer]));
            (Method::POST, "/api/v1/cluster/init".to_owned())
        }
    };
    let body = match g.below(5) {
        0 => g.bytes(),
        1 => serde_json::to_vec(&g.garbage(0)).expect("json"),
        _ => serde_json::to_vec(&Value::Object(m)).expect("json"),
    };
    (method, path, body)
}

/// Every extreme number in every numeric field, the other fields valid:
/// the cases the random ones may miss.
pub fn extremes() -> Vec<(Method, String, Vec<u8>)> {
    let mut g = Gen(0);
    let numbers: Vec<Value> = (0..64).map(|_| g.number()).collect();
    let mut numbers: Vec<Value> = numbers.into_iter().fold(Vec::new(), |mut v, n| {
        if !v.contains(&n) {
            v.push(n);
        }
        v
    });
    numbers.push(json!(1e300));
    let mut out = Vec::new();
    let post = |path: &str, body: Value| {
        (
            Method::POST,
            path.to_owned(),
            serde_json::to_vec(&body).expect("json"),
        )
    };
    for n in &numbers {
        out.push(post(
            "/api/v1/intel",
            json!({ "indicator": "198.51.100.8", "expires_secs": n }),
        ));
        for key in ["epochs", "deadline_secs", "min_participants"] {
            let mut body = json!({ "kind": "source", "deadline_secs": 1 });
            body[key] = n.clone();
            out.push(post("/api/v1/learn/rounds", body));
        }
        for rule in [
            json!({ "rule": "krum", "byzantine": n }),
            json!({ "rule": "multi_krum", "byzantine": 1, "select": n }),
            json!({ "rule": "trimmed_mean", "trim": n }),
        ] {
            out.push(post(
                "/api/v1/learn/rounds",
                json!({ "kind": "source", "deadline_secs": 1, "rule": rule }),
            ));
        }
    }
    for v in TOML_VALUES {
        for (section, key) in POLICY_KEYS {
            let doc = format!("[{section}]\n{key} = {v}\n");
            out.push((Method::PUT, "/api/v1/policy".into(), doc.into_bytes()));
        }
        let doc = format!("[learning]\nfederated_every_minutes = {v}\n");
        if *v != "1" && *v != "3" {
            out.push((Method::PUT, "/api/v1/policy".into(), doc.into_bytes()));
        }
    }
    for addr in [
        "not an address",
        "127.0.0.1",
        "127.0.0.1:0",
        "/ip4/1.2.3/tcp/1",
        "🦀:7301",
    ] {
        out.push(post(
            "/api/v1/members",
            json!({ "id": "ab".repeat(32), "addr": addr }),
        ));
    }
    out
}
