//! Configuration: layering, unknown keys, and one named problem per bad key.

use std::io::Write;
use std::process::Command;

use amoskys_node::Config;
use amoskys_node::config::{ConfigError, Source};

fn with_sets(sets: &[&str]) -> Result<Config, ConfigError> {
    Config::load(&[
        Source::Embedded,
        Source::Set(sets.iter().map(|s| s.to_string()).collect()),
    ])
}

fn problems(sets: &[&str]) -> Vec<String> {
    match with_sets(sets) {
        Ok(c) => c.validate().iter().map(ToString::to_string).collect(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default().expect("defaults load");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert_eq!(c.api.listen, "127.0.0.1:7300", "API is loopback by default");
}

#[test]
fn each_bad_value_names_its_key_and_expected_form() {
    let cases: &[(&str, &str)] = &[
        (
            r#"mesh.listen=["0.0.0.0:7301", "10.0.0.1:99999"]"#,
            r#"mesh.listen[1]: "10.0.0.1:99999" is not a socket address"#,
        ),
        ("mesh.listen=[]", "mesh.listen: is empty"),
        (
            r#"mesh.bootstrap=["no port"]"#,
            "mesh.bootstrap[0]: \"no port\" is not a peer address (expected HOST:PORT",
        ),
        (
            "api.listen=localhost",
            "api.listen: \"localhost\" is not a socket address (expected IP:PORT",
        ),
        (
            "api.max_connections=0",
            "api.max_connections: 0 is out of range (expected 1 to 10000)",
        ),
        (
            "api.write_reserve=64",
            "api.write_reserve: 64 is out of range (expected 0 to 63)",
        ),
        (
            "api.body_timeout_ms=9223372036854775807",
            "api.body_timeout_ms: 9223372036854775807 is out of range (expected 100 to 600000)",
        ),
        (
            "log.format=xml",
            "log.format: \"xml\" is not a log format (expected \"text\" or \"json\")",
        ),
        (
            "log.level=foo=verbose",
            "log.level: \"foo=verbose\" is not a log filter",
        ),
        ("node.event_queue=0", "node.event_queue: 0 is out of range"),
        (
            "storage.event_retention_hours=0",
            "storage.event_retention_hours: 0 is out of range",
        ),
        (
            "sensors.procfs.interval_ms=1",
            "sensors.procfs.interval_ms: 1 is out of range (expected 10 to 600000)",
        ),
        (
            "api.max_connections=\"many\"",
            "api.max_connections: expected an integer, found a string \"many\"",
        ),
        (
            "sensors.procfs.enabled=3",
            "sensors.procfs.enabled: expected a boolean, found an integer 3",
        ),
        (
            "mesh.listen=[1]",
            "mesh.listen[0]: expected a string, found an integer 1",
        ),
        (
            "sensors.flows.active_timeout_ms=10000",
            "sensors.flows.active_timeout_ms: 10000 is shorter than sensors.flows.idle_timeout_ms (15000)",
        ),
        (
            r#"sensors.flows.interfaces=["a/b"]"#,
            "sensors.flows.interfaces[0]: \"a/b\" is not an interface name",
        ),
        (
            r#"sensors.snmp.devices=[{name="sw", address="127.0.0.1:161"}]"#,
            "sensors.snmp.devices[0].community: is empty; v2c needs a community",
        ),
        (
            r#"sensors.snmp.devices=[{name="sw", address="127.0.0.1:161", comunity="public"}]"#,
            "sensors.snmp.devices[0].comunity: unknown key in --set (expected one of: ",
        ),
        (
            r#"sensors.snmp.devices=[{name="sw", address="127.0.0.1:161", version="v3", user="u", auth_password="short", privacy_protocol="none"}]"#,
            "sensors.snmp.devices[0].auth_password: expected at least 8 characters",
        ),
        (
            r#"sensors.snmp.devices=["sw"]"#,
            "sensors.snmp.devices[0]: expected a table, found a string \"sw\"",
        ),
        (
            "sensors.snmp.timeout_ms=60000",
            "sensors.snmp.timeout_ms: 60000 is not shorter than sensors.snmp.interval_ms",
        ),
        (
            r#"sensors.ebpf.watch_paths=["etc/shadow"]"#,
            "sensors.ebpf.watch_paths[0]: \"etc/shadow\" is not an absolute path",
        ),
        (
            "privacy.addresses=hash",
            "privacy.salt: expected at least 16 characters",
        ),
        (
            "privacy.addresses=blur",
            "privacy.addresses: \"blur\" is not \"keep\" or \"hash\"",
        ),
        (
            "detection.policy=/nonexistent/policy.toml",
            "detection.policy: cannot read \"/nonexistent/policy.toml\"",
        ),
    ];
    for (set, expected) in cases {
        let found = problems(&[set]);
        assert_eq!(found.len(), 1, "{set}: {found:?}");
        assert!(
            found[0].starts_with(expected),
            "{set}:\n  got      {}\n  expected {expected}",
            found[0]
        );
    }
}

#[test]
fn snmp_devices_from_a_file_take_per_device_defaults() {
    let f = file(
        "[[sensors.snmp.devices]]\nname = \"sw1\"\naddress = \"127.0.0.1:1161\"\ncommunity = \"public\"\n\n\
         [[sensors.snmp.devices]]\nname = \"sw2\"\naddress = \"router.site:161\"\nversion = \"v3\"\nuser = \"amoskys\"\n\
         auth_password = \"authpass1\"\nprivacy_password = \"privpass1\"\n",
    );
    let c = Config::load(&[Source::Embedded, Source::File(f.path().into())]).expect("loads");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert_eq!(c.sensors.snmp.devices.len(), 2);
    assert_eq!(c.sensors.snmp.devices[0].version, "v2c");
    assert_eq!(c.sensors.snmp.devices[1].auth_protocol, "sha");
    assert_eq!(c.sensors.snmp.devices[1].privacy_protocol, "aes");
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = problems(&["api.listen=nope", "log.format=xml", "node.event_queue=0"]);
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn unknown_keys_are_refused_in_every_layer() {
    let f = file("[api]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n\n[telemetry]\nx = 1\n");
    let err =
        Config::load(&[Source::Embedded, Source::File(f.path().into())]).expect_err("unknown keys");
    let text: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text.iter()
            .any(|p| p.starts_with("api.lisen: unknown key")
                && p.contains("listen, max_connections"))
    );
    assert!(text.iter().any(|p| p.starts_with("telemetry: unknown key")));

    let env = vec![("AMOSKYS_API__LISEN".to_string(), "x".to_string())];
    let err = Config::load(&[Source::Embedded, Source::Env(env)]).expect_err("unknown env key");
    assert!(
        err.problems()[0]
            .to_string()
            .starts_with("api.lisen: unknown key in environment")
    );

    assert!(with_sets(&["sensors.pcap.enabled=true"]).is_err());
    assert!(
        with_sets(&["nonsense"]).is_err(),
        "--set without = is refused"
    );
}

#[test]
fn layers_apply_in_order_file_env_set() {
    let f = file("[api]\nlisten = \"127.0.0.1:1111\"\n[sensors.procfs]\ninterval_ms = 500\n");
    let env = vec![
        (
            "AMOSKYS_API__LISTEN".to_string(),
            "127.0.0.1:2222".to_string(),
        ),
        (
            "AMOSKYS_SENSORS__PROCFS__ENABLED".to_string(),
            "false".to_string(),
        ),
        ("AMOSKYS_NODE__NAME".to_string(), "1234".to_string()),
        // Not configuration: no double underscore, or no prefix.
        ("AMOSKYS_CACHE".to_string(), "/tmp".to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    let c = Config::load(&[
        Source::Embedded,
        Source::File(f.path().into()),
        Source::Env(env.clone()),
    ])
    .expect("loads");
    assert_eq!(c.api.listen, "127.0.0.1:2222", "env beats file");
    assert_eq!(c.sensors.procfs.interval_ms, 500, "file beats default");
    assert!(!c.sensors.procfs.enabled, "typed env value");
    assert_eq!(c.node.name, "1234", "string keys take the raw text");

    let c = Config::load(&[
        Source::Embedded,
        Source::File(f.path().into()),
        Source::Env(env),
        Source::Set(vec!["api.listen=127.0.0.1:3333".into()]),
    ])
    .expect("loads");
    assert_eq!(c.api.listen, "127.0.0.1:3333", "flags beat env");
}

#[test]
fn syntax_errors_and_missing_files_name_the_file() {
    let f = file("[api\nlisten=");
    let err =
        Config::load(&[Source::Embedded, Source::File(f.path().into())]).expect_err("bad toml");
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(
        err.to_string().contains(&f.path().display().to_string()),
        "{err}"
    );

    let err = Config::load(&[
        Source::Embedded,
        Source::File("/nonexistent/amoskys.toml".into()),
    ])
    .expect_err("missing");
    assert!(
        err.to_string().contains("/nonexistent/amoskys.toml"),
        "{err}"
    );
}

#[test]
fn config_check_command_prints_every_problem() {
    let bin = env!("CARGO_BIN_EXE_amoskys");
    let bad =
        file("[mesh]\nlisten = [\"0.0.0.0:7301\", \"10.0.0.1:99999\"]\n[log]\nformat = \"xml\"\n");
    let out = Command::new(bin)
        .args(["config", "check"])
        .arg(bad.path())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("2 problem(s)"), "{stdout}");
    assert!(
        stdout.contains(r#"mesh.listen[1]: "10.0.0.1:99999" is not a socket address"#),
        "{stdout}"
    );
    assert!(stdout.contains("log.format:"), "{stdout}");

    let good = file("[api]\nlisten = \"127.0.0.1:7400\"\n");
    let out = Command::new(bin)
        .args(["config", "check"])
        .arg(good.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));

    // The node refuses to start on an invalid configuration.
    let out = Command::new(bin)
        .args(["run", "--api-listen", "127.0.0.1:99999"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("api.listen: \"127.0.0.1:99999\" is not a socket address")
    );
}
