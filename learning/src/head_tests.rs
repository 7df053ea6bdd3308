use super::*;

/// Windows of two features: attacks have a high first feature; the rare
/// normal windows that score as high as attacks have a high second one.
fn verdicts(rows: &[[f32; 2]], attack: impl Fn(&[f32; 2]) -> bool) -> Vec<Verdict<'_>> {
    rows.iter()
        .map(|r| Verdict {
            score: 0.0,
            features: r,
            attack: attack(r),
        })
        .collect()
}

fn grid() -> Vec<[f32; 2]> {
    (0..40)
        .map(|i| {
            let t = (i % 10) as f32 / 10.0;
            if i < 20 {
                [0.8 + t / 5.0, t]
            } else {
                [t / 5.0, 0.8 + t / 5.0]
            }
        })
        .collect()
}

#[test]
fn the_prior_ranks_as_the_unsupervised_score_and_falls_back() {
    let cfg = HeadConfig::default();
    let prior = Head::prior(2, &cfg);
    assert!(!prior.in_force(&cfg));
    let (lo, hi) = (score_input(1.0, 4.0), score_input(9.0, 4.0));
    assert!(lo < 0.0 && hi > 0.0);
    assert_eq!(score_input(f64::INFINITY, 4.0), 6.0);
    assert_eq!(score_input(0.0, 4.0), -6.0);
    assert!(prior.logit(hi, &[0.0, 1.0]) > prior.logit(lo, &[1.0, 0.0]));
    // Too few verdicts of one class: the unsupervised order stands.
    let rows = grid();
    let few: Vec<Verdict> = verdicts(&rows, |r| r[0] > 0.7)
        .into_iter()
        .filter(|v| !v.attack)
        .chain(verdicts(&rows[..cfg.min_per_class as usize - 1], |_| true))
        .collect();
    let head = prior.train(&few, &cfg).expect("trains");
    assert_eq!(head.attacks, cfg.min_per_class - 1);
    assert!(!head.in_force(&cfg));
    assert_eq!(head.rank(&cfg, hi, &[0.0, 1.0]), f64::from(hi));
}

#[test]
fn training_learns_the_verdicts_and_replays() {
    let cfg = HeadConfig::default();
    let rows = grid();
    let v = verdicts(&rows, |r| r[0] > 0.7);
    let head = Head::prior(2, &cfg).train(&v, &cfg).expect("trains");
    assert_eq!((head.attacks, head.normals), (20, 20));
    assert!(head.in_force(&cfg));
    assert!(head.probability(0.0, &[0.9, 0.1]) > 0.75);
    assert!(head.probability(0.0, &[0.1, 0.9]) < 0.3);
    assert!(head.rank(&cfg, 0.0, &[0.9, 0.1]) > head.rank(&cfg, 0.0, &[0.1, 0.9]));
    assert_eq!(head, Head::prior(2, &cfg).train(&v, &cfg).expect("again"));
    let bad = [Verdict {
        score: 0.0,
        features: &[0.0],
        attack: true,
    }];
    assert!(matches!(
        head.train(&bad, &cfg),
        Err(HeadError::Width {
            index: 0,
            found: 1,
            expected: 2
        })
    ));
    let wrong = HeadConfig {
        steps: 0,
        ..cfg.clone()
    };
    assert!(matches!(head.train(&v, &wrong), Err(HeadError::Config(_))));
    // A head from elsewhere with too few or non-finite parameters is
    // refused for training and scores without a panic.
    for params in [vec![], vec![1.0], vec![0.0, f32::NAN, 1.0, 1.0]] {
        let odd = Head {
            params,
            attacks: 20,
            normals: 20,
        };
        assert!(!odd.problems().is_empty());
        assert!(matches!(odd.train(&v, &cfg), Err(HeadError::Config(_))));
        let _ = odd.rank(&cfg, 1.0, &[0.5, 0.5]);
    }
}

#[test]
fn heads_of_several_sites_combine() {
    let cfg = HeadConfig::default();
    let rows = grid();
    let base = Head::prior(2, &cfg);
    // Two sites each hold half of both classes; a third holds only
    // false positives and sends nothing.
    let (a, b): (Vec<[f32; 2]>, Vec<[f32; 2]>) = {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, r) in rows.iter().enumerate() {
            if i % 2 == 0 { a.push(*r) } else { b.push(*r) }
        }
        (a, b)
    };
    let attack = |r: &[f32; 2]| r[0] > 0.7;
    let ua = local_update(&base, 1, &verdicts(&a, attack), &cfg).expect("a");
    let ub = local_update(&base, 1, &verdicts(&b, attack), &cfg).expect("b");
    let only_fp = local_update(&base, 1, &verdicts(&rows[20..], attack), &cfg).expect("c");
    assert!(only_fp.is_none());
    let updates: Vec<HeadUpdate> = [ua, ub].into_iter().flatten().collect();
    assert_eq!(updates.len(), 2);
    for rule in [Rule::FedAvg, Rule::Median, Rule::TrimmedMean { trim: 0.0 }] {
        let head = combine(&base, &updates, rule).expect("combines");
        assert_eq!((head.attacks, head.normals), (20, 20), "{rule:?}");
        assert!(head.in_force(&cfg));
        assert!(head.probability(0.0, &[0.9, 0.1]) > 0.75, "{rule:?}");
        assert!(head.probability(0.0, &[0.1, 0.9]) < 0.3, "{rule:?}");
    }
    // FedAvg of equal sites is the mean of their vectors.
    let avg = combine(&base, &updates, Rule::FedAvg).expect("fedavg");
    for (k, p) in avg.params.iter().enumerate() {
        let mean = (updates[0].vector[k] + updates[1].vector[k]) / 2.0;
        assert!((p - mean).abs() < 1e-5, "{k}");
    }
    assert_eq!(combine(&base, &[], Rule::FedAvg).expect("none"), base);
    let mut short = updates[0].clone();
    short.vector.pop();
    assert!(matches!(
        combine(&base, &[short], Rule::FedAvg),
        Err(HeadError::Width { .. })
    ));
}
