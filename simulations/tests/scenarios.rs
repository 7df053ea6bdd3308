//! Small scenarios end to end, in the test profile: alerts reach every
//! node, a killed leader is replaced and the restarted node catches up, a
//! partitioned group gets the other side's alerts once healed, forged
//! alerts are refused, and every invariant holds.

use amoskys_simulations::run::run;
use amoskys_simulations::scenario::Scenario;

async fn check(text: &str) -> amoskys_simulations::run::Outcome {
    let s = Scenario::parse(text).expect("scenario");
    let o = run(&s, &mut |_| {}).await.expect("runs");
    for i in &o.invariants {
        assert!(i.held, "{}: {} ({})", s.name, i.name, i.detail);
    }
    assert_eq!(o.delivered, o.expected);
    assert!(o.expected > 0);
    eprintln!(
        "{}: {} deliveries, p95 {:?} ms",
        s.name,
        o.delivered,
        o.quantile(0.95)
    );
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_node_and_forged_ones_none() {
    check(
        "name = \"small\"\nnodes = 8\nseed = 3\nattacks = 6\ninterval_ms = 200\nwarmup_secs = 3\nsettle_secs = 60\nbyzantine = 1\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_catches_up_when_back() {
    check(
        "name = \"leader\"\nnodes = 5\nseed = 9\nattacks = 6\ninterval_ms = 300\nwarmup_secs = 3\nsettle_secs = 90\n\n[[faults]]\nat_ms = 300\nkind = \"kill\"\n\n[[faults]]\nat_ms = 1200\nkind = \"restart\"\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_group_gets_every_alert_once_healed() {
    let o = check(
        "name = \"partition\"\nnodes = 6\nseed = 5\nattacks = 8\ninterval_ms = 250\nwarmup_secs = 3\nsettle_secs = 90\n\n[[faults]]\nat_ms = 250\nkind = \"partition\"\nnodes = [0, 1]\n\n[[faults]]\nat_ms = 2000\nkind = \"heal\"\n",
    )
    .await;
    // The partition held: some deliveries waited for the heal.
    let slowest = o.quantile(1.0).unwrap_or(0.0);
    assert!(
        slowest > 1_000.0,
        "no delivery waited for the heal ({slowest} ms)"
    );
}
