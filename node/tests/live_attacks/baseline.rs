//! First start and restart: a node in its own namespace, with the socket
//! sensor on, raises no `new_listening_port` for its own API and mesh
//! sockets nor for the listeners open when it started; a listener another
//! process opens later still raises it.

use std::time::Duration;

use super::lab::{Lab, alerts, skip_reason, start_node, wait_for_alert};

/// Listening in the target namespace before the node starts.
const BEFORE: u16 = 8081;
/// Opened by another process after the restart.
const AFTER: u16 = 8082;

fn listener_alerts(lab: &Lab, api: &str) -> Vec<String> {
    alerts(lab, api)
        .into_iter()
        .filter(|a| a.body.rule == "new_listening_port")
        .map(|a| a.body.subject)
        .collect()
}

#[test]
fn a_fresh_and_a_restarted_node_take_their_own_and_existing_listeners_as_baseline() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED live listener baseline test: {reason}");
        return;
    }
    let mut lab = Lab::new("b");
    let dir = lab.dir.path().to_owned();
    lab.listen(BEFORE);
    // The socket sensor on (the lab's default is off), scanning every 100 ms.
    let sets = [
        "sensors.procfs.enabled=true",
        "sensors.procfs.sockets=true",
        "sensors.procfs.interval_ms=100",
    ];
    for start in ["first start", "restart"] {
        let api = start_node(&mut lab, &dir, &sets);
        // Many socket scans see the node's API and mesh listeners.
        std::thread::sleep(Duration::from_secs(3));
        let raised = listener_alerts(&lab, &api);
        assert!(raised.is_empty(), "{start}: {raised:?}");
        if start == "restart" {
            lab.listen(AFTER);
            let alert = wait_for_alert(&lab, &api, "new_listening_port");
            assert_eq!(alert.body.subject, format!("listener:{AFTER}"));
            let raised = listener_alerts(&lab, &api);
            assert_eq!(raised, [format!("listener:{AFTER}")], "{start}");
        }
        lab.stop_node();
    }
}
