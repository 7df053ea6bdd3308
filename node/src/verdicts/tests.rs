//! The learner over a real store: verdicts recorded from cases, the head
//! in force only at the count, the policy's switch, the review's order.

use super::*;
use crate::policy::Policy;
use crate::workspace::cases::Stamp;

fn case(alert: &str, status: Status, at_ms: u64) -> Case {
    Case {
        alert: alert.into(),
        status,
        status_set: Some(Stamp {
            by: String::new(),
            at_ms,
            operator: None,
            operator_verified: false,
        }),
        ..Case::default()
    }
}

fn window(attack: bool, i: usize) -> Window {
    let width = EntityKind::Source.features().len();
    let level = if attack { 0.8 } else { 0.2 };
    Window {
        kind: "source".into(),
        time_ns: 1_000 + i as u64,
        score: 1.0,
        features: (0..width).map(|j| level + (i + j) as f32 * 1e-3).collect(),
    }
}

fn policy(head: &str, min: u64) -> watch::Receiver<Arc<InForce>> {
    let doc = format!("[learning]\nhead = \"{head}\"\nhead_min_per_class = {min}\n");
    let policy = Policy::parse(&doc).expect("policy");
    watch::channel(Arc::new(InForce {
        policy,
        version: None,
        error: None,
    }))
    .1
}

#[test]
fn verdicts_teach_a_head_in_force_only_at_the_count() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    // Ten alerts: even ones attacks, odd ones not.
    let ws: Vec<(String, Window)> = (0..10)
        .map(|i| (format!("a{i}"), window(i % 2 == 0, i)))
        .collect();
    store.put_windows(&ws).expect("windows");
    let learner = Learner::new(store.clone(), policy("local", 3));

    // Two of each: recorded, trained, not in force.
    let mut cases: Vec<Case> = (0..4)
        .map(|i| {
            let status = if i % 2 == 0 {
                Status::Resolved
            } else {
                Status::FalsePositive
            };
            case(&format!("a{i}"), status, 10)
        })
        .collect();
    cases.push(case("not-here", Status::Resolved, 10));
    assert!(learner.record(&cases).expect("record"));
    assert!(
        !learner.record(&cases).expect("again"),
        "nothing new the second time"
    );
    learner.train().expect("train");
    assert_eq!(store.verdicts().expect("verdicts").len(), 4);
    assert!(learner.score(&ws[8].1).is_none(), "below the count");
    let review = learner.review(3, &|_| false).expect("review");
    assert!(review.iter().all(|r| r.probability.is_none()));

    // The third of each: in force; attacks above 0.5, the others below.
    cases.push(case("a4", Status::Resolved, 11));
    cases.push(case("a5", Status::FalsePositive, 11));
    assert!(learner.record(&cases).expect("record"));
    learner.train().expect("train");
    let attack = learner.score(&ws[8].1).expect("in force");
    let normal = learner.score(&ws[9].1).expect("in force");
    assert!(
        attack.probability > 0.5 && normal.probability < 0.5,
        "{attack:?} {normal:?}"
    );
    assert!(attack.logit > normal.logit);
    let state = learner.state();
    let source = state.iter().find(|s| s.entity == "source").expect("source");
    assert!(source.in_force);
    assert_eq!((source.local_attacks, source.local_normals), (3, 3));

    // The review offers only unjudged alerts, the most uncertain first.
    let review = learner.review(4, &|id| id == "a9").expect("review");
    let ids: Vec<&str> = review.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(ids.len(), 3, "a6, a7, a8 (a9 is closed): {ids:?}");
    let p = |r: &Review| (r.probability.expect("p") - 0.5).abs();
    assert!(review.iter().all(|r| p(&review[0]) <= p(r)), "{review:?}");

    // Reopened: the verdict is taken back.
    cases.push(case("a5", Status::Acknowledged, 12));
    cases.retain(|c| !(c.alert == "a5" && c.status == Status::FalsePositive));
    assert!(learner.record(&cases).expect("record"));
    learner.train().expect("train");
    assert!(
        learner.score(&ws[8].1).is_none(),
        "two false positives left"
    );

    // Off: no head, whatever the verdicts.
    let off = Learner::new(store, policy("off", 1));
    off.train().expect("train");
    assert!(off.score(&ws[8].1).is_none());
    assert_eq!(off.state()[0].source, "none");
}
