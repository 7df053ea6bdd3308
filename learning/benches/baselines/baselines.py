"""Standard outlier baselines on the exact splits `amoskys eval dataset --out DIR` wrote.

Reads DIR/table.csv (label, then features) and DIR/splits.json, scales each
split's columns to [0, 1] by its training rows (as the node's model does),
fits Isolation Forest (scikit-learn) and ECOD (pyod) on the training rows
with labels hidden, scores the test rows, and writes DIR/baselines.json: one
entry per model with the same per-split figures the Rust report computes.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from pyod.models.ecod import ECOD
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score


def recall_at_fpr(scores, labels, fpr):
    """Share of outliers scoring above the (1 - fpr) quantile of normal rows."""
    cut = np.quantile(scores[~labels], 1.0 - fpr)
    return float(np.mean(scores[labels] > cut))


def figures(scores, labels, train_s, score_s):
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(scores, labels, 0.01),
        "recall_at_5pct_fpr": recall_at_fpr(scores, labels, 0.05),
        "train_seconds": train_s,
        "score_seconds": score_s,
    }


def models(seed):
    # Library defaults: the baselines are not tuned either.
    return {
        "isolation forest (scikit-learn)": lambda: IsolationForest(random_state=seed),
        "ECOD (pyod)": lambda: ECOD(),
    }


def score(model, x):
    if isinstance(model, IsolationForest):
        return -model.score_samples(x)
    return model.decision_function(x)


def main(out):
    table = np.loadtxt(out / "table.csv", delimiter=",", skiprows=1, ndmin=2)
    labels, x = table[:, 0] > 0.5, table[:, 1:]
    splits = json.loads((out / "splits.json").read_text())["splits"]
    results = {}
    for i, split in enumerate(splits):
        train, test = np.array(split["train"]), np.array(split["test"])
        lo, hi = x[train].min(0), x[train].max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        xtr = (x[train] - lo) / span
        xte = np.clip((x[test] - lo) / span, 0.0, 1.0)
        for name, make in models(i).items():
            started = time.perf_counter()
            model = make().fit(xtr)
            train_s = time.perf_counter() - started
            started = time.perf_counter()
            s = score(model, xte)
            score_s = time.perf_counter() - started
            results.setdefault(name, []).append(figures(s, labels[test], train_s, score_s))
    report = [{"model": name, "splits": figs} for name, figs in results.items()]
    (out / "baselines.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: baselines.py DIR (written by amoskys eval dataset --out DIR)")
    main(Path(sys.argv[1]))
