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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_cross_slow_links_and_the_delay_shows() {
    let o = check(
        "name = \"slow\"\nnodes = 5\nseed = 2\nattacks = 6\ninterval_ms = 200\nwarmup_secs = 3\nsettle_secs = 60\n\n[[faults]]\nat_ms = 0\nkind = \"slow\"\nnodes = [1, 2, 3, 4]\ndelay_ms = 300\n",
    )
    .await;
    // Every node but one is slow: most deliveries waited at least once.
    let median = o.quantile(0.5).unwrap_or(0.0);
    assert!(
        median >= 300.0,
        "slow links did not slow delivery ({median} ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_keeps_poisoned_sites_out_and_goes_on_without_a_straggler() {
    // The deadline leaves room for five sites training at once in a debug
    // build on two busy cores; the straggler is later still.
    let o = check(
        "name = \"fed\"\nnodes = 6\nseed = 4\nattacks = 2\ninterval_ms = 200\nwarmup_secs = 3\nsettle_secs = 60\nsettings = [\"learning.enabled=true\", \"learning.window_secs=1\", \"learning.min_windows=50\", \"learning.retrain_hours=0\", \"learning.members=1\"]\n\n[federated]\nrounds = 1\nrule = { rule = \"multi_krum\", byzantine = 1, select = 2 }\nepochs = 1\ndeadline_secs = 25\nhistory_secs = 120\npoisoned = [3]\nstragglers = [5]\nstraggle_ms = 60000\n",
    )
    .await;
    let r = o.rounds.first().expect("a round ran");
    assert_eq!(r.status, "done", "{r:?}");
    // The straggler missed the deadline; the poisoned site sent in time.
    assert_eq!(r.participants, 5, "{r:?}");
    let auc = r.roc_auc.expect("the combined model scores");
    assert!(auc > 0.9, "the poisoned update got in: ROC-AUC {auc}");
}
