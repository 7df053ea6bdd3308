//! Tests of the anomaly model: training, scoring, storage and its checks.
use super::*;

fn normal_rows() -> Vec<Vec<f32>> {
    // Normal rows lie on a line; anomalies do not.
    (0..512)
        .map(|i| {
            let t = (i % 64) as f32 / 64.0;
            vec![t, 1.0 - t, t * 0.5, 0.25]
        })
        .collect()
}

fn small(kind: ModelKind) -> TrainConfig {
    TrainConfig {
        kind,
        bins: 16,
        top_k: 2,
        hidden: 8,
        bottleneck: 2,
        epochs: 30,
        batch: 64,
        learning_rate: 1e-2,
        members: 2,
        ..TrainConfig::default()
    }
}

#[test]
fn every_kind_flags_the_odd_row() {
    let normal = normal_rows();
    let rows: Vec<&[f32]> = normal.iter().map(Vec::as_slice).collect();
    // Each value is common on its own; together they break the line.
    let odd = [0.1f32, 0.1, 0.05, 0.25];
    // One value far outside anything seen.
    let extreme = [0.5f32, 0.5, 0.25, 0.9];
    for kind in [
        ModelKind::Tails,
        ModelKind::Autoencoder,
        ModelKind::Combined,
        ModelKind::Forest,
        ModelKind::Auto,
    ] {
        let model = AnomalyModel::train("test@1", &rows, &small(kind)).expect("trains");
        let s = model.score(&[rows[10], &odd, &extreme, &[0.0, 1.0]]);
        // A forest never splits a column that was constant in training, so
        // a value off it goes unseen: `auto` leaves such rows to the tails.
        let blind = kind == ModelKind::Forest;
        assert!(blind || s[2] > model.threshold(), "{kind:?}: extreme {s:?}");
        if blind {
            // Off the line, but the line's own ends isolate as fast.
            assert!(s[1] > s[0] + 0.05, "{kind:?}: odd {s:?}");
        } else if matches!(kind, ModelKind::Autoencoder | ModelKind::Combined) {
            // Tails (and `auto`, which chose them here) see each value alone.
            assert!(s[1] > model.threshold(), "{kind:?}: odd {s:?}");
        }
        assert!(s[0] < model.threshold(), "{kind:?}: normal {s:?}");
        assert_eq!(s[3], f64::INFINITY, "wrong width");
        assert!(blind || model.baseline_rank(s[2]) > 0.99);
        assert!(model.baseline_rank(s[0]) < 0.99);
        let at = model.threshold_at(model.config().threshold_quantile);
        assert!((at - model.threshold()).abs() <= 0.05 * model.threshold().abs() + 1e-9);
        assert!(model.threshold_at(0.5) <= model.threshold());
        if kind == ModelKind::Tails {
            // The out-of-range last feature is what makes it extreme.
            assert_eq!(model.explain(&extreme, 1)[0].0, 3);
        }
    }
}

#[test]
fn stored_model_scores_the_same_and_bad_bytes_are_refused() {
    let normal = normal_rows();
    let rows: Vec<&[f32]> = normal.iter().map(Vec::as_slice).collect();
    let model = AnomalyModel::train("test@1", &rows, &small(ModelKind::Combined)).expect("trains");
    let bytes = model.to_bytes();
    let back = AnomalyModel::from_bytes(&bytes).expect("loads");
    assert_eq!(back.score(&rows[..20]), model.score(&rows[..20]));
    assert_eq!(back.schema(), "test@1");
    assert_eq!(back.to_bytes(), bytes);

    assert!(matches!(
        AnomalyModel::from_bytes(b"{nope"),
        Err(ModelError::Decode(_))
    ));
    let text = String::from_utf8(bytes).expect("json");
    let newer = text.replacen("\"format\":1", "\"format\":9", 1);
    assert_eq!(
        AnomalyModel::from_bytes(newer.as_bytes()).err(),
        Some(ModelError::Format { found: 9 })
    );
    let wrong = text.replacen("\"inputs\":4", "\"inputs\":5", 1);
    assert!(AnomalyModel::from_bytes(wrong.as_bytes()).is_err());
}

#[test]
fn bad_training_input_is_named() {
    let cfg = small(ModelKind::Tails);
    assert_eq!(
        AnomalyModel::train("t", &[], &cfg).err(),
        Some(TrainError::Empty)
    );
    let a = [0.1f32, 0.2];
    let b = [0.1f32];
    let c = [0.1f32, f32::NAN];
    assert_eq!(
        AnomalyModel::train("t", &[&a, &b], &cfg).err(),
        Some(TrainError::Width {
            row: 1,
            found: 1,
            expected: 2
        })
    );
    assert_eq!(
        AnomalyModel::train("t", &[&a, &c], &cfg).err(),
        Some(TrainError::NotFinite { row: 1, feature: 1 })
    );
    let bad = TrainConfig { top_k: 0, ..cfg };
    assert!(matches!(
        AnomalyModel::train("t", &[&a], &bad),
        Err(TrainError::Config(p)) if p[0].contains("top_k")
    ));
}

#[test]
fn forest_and_auto_models_store_their_trees_and_choice() {
    // A band along the diagonal: each column alone spans [0, 1].
    let band: Vec<Vec<f32>> = (0..512)
        .map(|i| {
            let t = (i % 97) as f32 / 97.0;
            vec![t, (t + 0.01 * (i % 3) as f32).min(1.0), 1.0 - t]
        })
        .collect();
    let rows: Vec<&[f32]> = band.iter().map(Vec::as_slice).collect();
    let auto = AnomalyModel::train("test@1", &rows, &small(ModelKind::Auto)).expect("trains");
    let chosen = auto.selection().expect("a choice").chosen;
    assert_eq!(auto.detector(), chosen);
    // The forest's region hugs the band; the tails' is the whole cube.
    assert_eq!(chosen, Detector::Forest, "{:?}", auto.selection());
    let back = AnomalyModel::from_bytes(&auto.to_bytes()).expect("reads");
    assert_eq!(back.score(&rows[..20]), auto.score(&rows[..20]));
    // Trees that point backwards are refused, not followed.
    let text = String::from_utf8(auto.to_bytes()).expect("utf-8");
    let broken = text.replacen("\"left\":1,", "\"left\":0,", 1);
    assert_ne!(broken, text);
    let err = AnomalyModel::from_bytes(broken.as_bytes()).expect_err("refused");
    assert!(err.to_string().contains("not a valid split"), "{err}");
    // A forest's trees do not average into a federated model.
    let forest = AnomalyModel::train("test@1", &rows, &small(ModelKind::Forest)).expect("trains");
    let (v, t, c) = forest.federated_parts();
    let err = forest
        .with_federated_parts(&v, t.clone(), c.to_vec(), 1)
        .expect_err("refused");
    assert!(
        err.to_string().contains("do not combine by averaging"),
        "{err}"
    );
}
