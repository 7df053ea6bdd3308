//! Live attacks between two network namespaces the test creates: a node
//! captures flows in the target namespace; a quiet period raises nothing;
//! a real `nmap -sS` scan, an `hping3` SYN burst and `hydra` password guessing
//! against a real `sshd` each raise the right signed alert; so do an
//! `nmap -sU` UDP scan and a slow `nmap --scan-delay` scan that stays under
//! the per-minute threshold. A SYN flood from random spoofed sources is
//! alerted per destination within 2 s and an ordinary burst of connections
//! is not (`flood.rs`); a fresh and a restarted node take their own
//! listeners and those open at start as baseline (`baseline.rs`); ordinary
//! traffic between two meshed nodes raises nothing (`quiet.rs`). Needs root
//! and the Debian packages iproute2, nmap, hping3, hydra, openssh-server,
//! python3 (and snmpd for `quiet.rs`).

#[path = "live_attacks/baseline.rs"]
mod baseline;
#[path = "live_attacks/flood.rs"]
mod flood;
#[path = "live_attacks/lab.rs"]
mod lab;
#[path = "live_attacks/quiet.rs"]
mod quiet;

use std::process::Stdio;
use std::time::Duration;

use lab::{
    ATTACKER, Lab, SLOW, SLOW_SOURCE, TARGET, alerts, run, skip_reason, start_node, wait_for_alert,
};

#[test]
fn nmap_hping3_and_hydra_are_alerted_and_quiet_traffic_is_not() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED live attack test: {reason}");
        return;
    }
    let mut lab = Lab::new("s");
    let dir = lab.dir.path().to_owned();

    // A real sshd in the target namespace.
    std::fs::create_dir_all("/run/sshd").expect("sshd privilege separation dir");
    let key = dir.join("hostkey");
    run(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        &key.to_string_lossy(),
    ]);
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port 22\nListenAddress {TARGET}\nHostKey {}\nPasswordAuthentication yes\nPermitRootLogin yes\nUsePAM no\nPidFile {}\n",
            key.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .expect("sshd config");
    let sshd = lab
        .exec(
            &lab.target,
            &["/usr/sbin/sshd", "-D", "-f", &conf.to_string_lossy()],
        )
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    lab.children.push(sshd);

    let api = start_node(&mut lab, &dir, &[]);

    // Quiet period: a few ordinary connections raise nothing.
    for _ in 0..3 {
        lab.attack(
            5,
            &[
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{TARGET}/22; head -c 20 <&3"),
            ],
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        alerts(&lab, &api).is_empty(),
        "quiet traffic raised {:?}",
        alerts(&lab, &api)
    );

    lab.attack(
        60,
        &[
            "/usr/bin/nmap",
            "-sS",
            "-p",
            "1-200",
            "--max-rate",
            "100",
            "-n",
            "-Pn",
            "--max-retries",
            "1",
            TARGET,
        ],
    );
    let scan = wait_for_alert(&lab, &api, "port_scan_vertical");
    assert_eq!(scan.body.technique, "T1046");
    assert_eq!(scan.body.subject, format!("source_ip:{ATTACKER}"));

    lab.attack(
        30,
        &[
            "/usr/sbin/hping3",
            "-S",
            "-p",
            "80",
            "-i",
            "u2000",
            "-c",
            "400",
            TARGET,
        ],
    );
    let flood = wait_for_alert(&lab, &api, "syn_flood");
    assert_eq!(flood.body.technique, "T1498.001");
    assert_eq!(flood.body.subject, format!("source_ip:{ATTACKER}"));

    // sshd answers before hydra starts (bounded: 20 tries, 1 s each).
    let ready = (0..20).any(|_| {
        lab.exec(
            &lab.attacker,
            &[
                "timeout",
                "1",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{TARGET}/22"),
            ],
        )
        .status()
        .is_ok_and(|s| s.success())
            || {
                std::thread::sleep(std::time::Duration::from_millis(500));
                false
            }
    });
    assert!(
        ready,
        "sshd in the target namespace does not answer on port 22"
    );
    let passwords = dir.join("passwords");
    let list: String = (1..=20).map(|i| format!("wrong-password-{i}\n")).collect();
    std::fs::write(&passwords, list).expect("password list");
    // hydra gives up at once when its first connection fails (seen once
    // under a full CI load, with sshd answering a moment before).
    lab.attack_tries(
        3,
        120,
        &[
            "/usr/bin/hydra",
            "-l",
            "root",
            "-P",
            &passwords.to_string_lossy(),
            "-t",
            "4",
            "-I",
            &format!("ssh://{TARGET}"),
        ],
    );
    let brute = wait_for_alert(&lab, &api, "brute_force");
    assert_eq!(brute.body.technique, "T1110");
    assert_eq!(brute.body.subject, format!("source_ip:{ATTACKER}"));

    let rules: Vec<String> = alerts(&lab, &api)
        .into_iter()
        .map(|a| a.body.rule)
        .collect();
    assert_eq!(rules.len(), 3, "one alert per attack: {rules:?}");
}

#[test]
fn a_udp_scan_and_a_slow_scan_are_alerted() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED live UDP and slow scan test: {reason}");
        return;
    }
    let mut lab = Lab::new("u");
    let dir = lab.dir.path().to_owned();
    // Flows end sooner than the default 15 s idle time, so the test is short.
    let api = start_node(&mut lab, &dir, &["sensors.flows.idle_timeout_ms=2000"]);

    // nmap -sU --top-ports 50: no UDP service answers in the target.
    lab.attack(
        90,
        &[
            "/usr/bin/nmap",
            "-sU",
            "--top-ports",
            "50",
            "-n",
            "-Pn",
            "--max-retries",
            "0",
            TARGET,
        ],
    );
    let udp = wait_for_alert(&lab, &api, "port_scan_udp");
    assert_eq!(udp.body.technique, "T1046");
    assert_eq!(udp.body.subject, format!("source_ip:{ATTACKER}"));

    // 36 ports, one every 3.2 s: under 20 a minute, so no vertical scan.
    // The UDP scan above already flagged this source as a fast scanner, so
    // the slow one comes from a second address of the attacker.
    run(&[
        "ip",
        "-n",
        &lab.attacker,
        "addr",
        "add",
        SLOW_SOURCE,
        "dev",
        &lab.attacker_if,
    ]);
    lab.attack(
        180,
        &[
            "/usr/bin/nmap",
            "-sS",
            "-p",
            "1-36",
            "--scan-delay",
            "3200ms",
            "-S",
            SLOW,
            "-e",
            &lab.attacker_if,
            "-n",
            "-Pn",
            "--max-retries",
            "0",
            TARGET,
        ],
    );
    let slow = wait_for_alert(&lab, &api, "port_scan_slow");
    assert_eq!(slow.body.subject, format!("source_ip:{SLOW}"));
    let rules: Vec<String> = alerts(&lab, &api)
        .into_iter()
        .map(|a| a.body.rule)
        .collect();
    assert!(
        !rules.iter().any(|r| r == "port_scan_vertical"),
        "the slow scan stays under the per-minute threshold: {rules:?}"
    );
}
