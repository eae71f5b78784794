"""Metrics and trivial baselines against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from symaffect.eval import metrics as M

Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


def test_classification_metrics_by_hand():
    m = M.classification_metrics(Y_TRUE, Y_PRED, n_classes=3)
    assert m["acc"] == pytest.approx(0.6)
    # per class F1: 0.5, 0.8, 0.0; precision: 0.5, 2/3, 0 (class 2 never predicted)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.8) / 5)
    assert m["weighted_precision"] == pytest.approx((2 * 0.5 + 2 * 2 / 3) / 5)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["n"] == 5


def test_confusion_has_all_classes_even_if_absent():
    m = M.classification_metrics(np.array([0, 0]), np.array([0, 0]), n_classes=9)
    assert np.asarray(m["confusion"]).shape == (9, 9)
    # absent classes are not averaged in as zeros
    assert m["macro_f1"] == pytest.approx(1.0)


def test_ordinal_metrics_by_hand():
    m = M.ordinal_metrics(Y_TRUE, Y_PRED)
    assert m["mae"] == pytest.approx(0.6)  # errors 0, 1, 0, 0, 2
    assert m["within_one"] == pytest.approx(0.8)


def test_majority_uses_training_labels():
    y_train = np.array([1, 1, 1, 0, 2])
    m = M.majority_baseline(y_train, Y_TRUE, n_classes=3, ordinal=True)
    assert m["class"] == 1
    assert m["acc"] == pytest.approx(0.4)
    f1_1 = 2 * 0.4 * 1.0 / 1.4
    assert m["macro_f1"] == pytest.approx(f1_1 / 3)
    assert m["macro_precision"] == pytest.approx(0.4 / 3)
    assert m["mae"] == pytest.approx((1 + 1 + 0 + 0 + 1) / 5)


def test_majority_test_oracle_uses_test_labels_and_breaks_ties_low():
    m = M.majority_test_oracle(Y_TRUE, n_classes=3)
    assert m["class"] == 0  # 0 and 1 tie at 2 windows each
    assert m["acc"] == pytest.approx(0.4)
    m = M.majority_test_oracle(np.array([2, 2, 1]), n_classes=3)
    assert m["class"] == 2 and m["acc"] == pytest.approx(2 / 3)


def test_prior_random_exact_expectations():
    y_train = np.array([1, 1, 1, 0, 2])  # p_train = .2 .6 .2
    m = M.prior_random_baseline(y_train, Y_TRUE, n_classes=3, ordinal=True)  # p_test .4 .4 .2
    assert m["acc"] == pytest.approx(0.2 * 0.4 + 0.6 * 0.4 + 0.2 * 0.2)
    assert m["mae"] == pytest.approx(0.4 * 1.0 + 0.4 * 0.4 + 0.2 * 1.0)
    assert m["within_one"] == pytest.approx(0.4 * 0.8 + 0.4 * 1.0 + 0.2 * 0.8)


def test_prior_random_simulation_matches_expectation_and_is_seeded():
    rng = np.random.default_rng(1)
    y_train = rng.choice(4, size=3000, p=[0.5, 0.3, 0.1, 0.1])
    y_test = rng.choice(4, size=2000, p=[0.25, 0.25, 0.25, 0.25])
    a = M.prior_random_baseline(y_train, y_test, n_classes=4, seed=3)
    b = M.prior_random_baseline(y_train, y_test, n_classes=4, seed=3)
    assert a == b
    assert a["acc_simulated"] == pytest.approx(a["acc"], abs=0.01)
    # plug-in approximation of the expected per-class F1: 2 p q / (p + q)
    p = np.bincount(y_train, minlength=4) / y_train.size
    q = np.bincount(y_test, minlength=4) / y_test.size
    assert a["macro_f1"] == pytest.approx(np.mean(2 * p * q / (p + q)), abs=0.02)


def test_fast_scores_equal_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_classes = int(rng.integers(2, 9))
        yt = rng.integers(0, n_classes, size=int(rng.integers(1, 60)))
        yp = rng.integers(0, n_classes, size=yt.size)
        got = M._fast_scores(yt, yp, n_classes)
        assert got[0] == pytest.approx(np.mean(yt == yp))
        assert got[1] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=0))
        assert got[2] == pytest.approx(
            precision_score(yt, yp, average="macro", zero_division=0)
        )
        assert got[3] == pytest.approx(f1_score(yt, yp, average="weighted", zero_division=0))
        assert got[4] == pytest.approx(
            precision_score(yt, yp, average="weighted", zero_division=0)
        )


def test_multilabel_by_hand():
    yt = np.array([[1, 0], [1, 1], [0, 0]])
    yp = np.array([[1, 0], [0, 1], [0, 1]])
    m = M.multilabel_metrics(yt, yp, label_names=["a", "b"])
    assert m["subset_acc"] == pytest.approx(1 / 3)
    assert m["hamming_acc"] == pytest.approx(4 / 6)
    assert m["per_label_f1"] == pytest.approx({"a": 2 / 3, "b": 2 / 3})
    assert m["per_label_precision"] == pytest.approx({"a": 1.0, "b": 0.5})
    r = M.multilabel_task_report(yt, yp, np.array([[0, 0], [0, 0], [1, 1]]), label_names="ab")
    assert r["majority"]["vector"] == [0, 0]
    assert r["majority"]["subset_acc"] == pytest.approx(1 / 3)


def test_task_report_and_aggregate():
    y_train = np.array([1, 1, 1, 0, 2])
    r1 = M.task_report(Y_TRUE, Y_PRED, y_train, n_classes=3, ordinal=True)
    r2 = M.task_report(Y_TRUE, Y_TRUE, y_train, n_classes=3, ordinal=True)
    assert set(r1) >= {"model", "majority", "majority_test_oracle", "prior_random"}
    agg = M.aggregate_reports([r1, r2])
    assert agg["model"]["acc"]["mean"] == pytest.approx(0.8)
    assert agg["model"]["acc"]["std"] == pytest.approx(np.std([0.6, 1.0], ddof=1))
    assert agg["model"]["acc"]["n"] == 2
    assert agg["majority"]["acc"]["std"] == 0.0
    assert np.asarray(agg["model"]["confusion_sum"]).sum() == 10
    assert M.aggregate([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        M.classification_metrics(np.array([0, 1]), np.array([0]), n_classes=2)
    with pytest.raises(ValueError):
        M.classification_metrics(np.array([]), np.array([]), n_classes=2)


# --- uncertainty over test subjects ------------------------------------------------------
def test_per_subject_accuracy_by_hand():
    subjects = np.array([3, 1, 3, 1, 3])
    ids, acc = M.per_subject_accuracy(subjects, np.array([0, 1, 2, 1, 0]), np.array([0, 0, 2, 1, 1]))
    assert ids.tolist() == [1, 3]
    assert acc == pytest.approx([0.5, 2 / 3])
    # multi-label: a window is right only when its whole label vector is
    yt = np.array([[1, 0], [1, 1], [0, 0]])
    yp = np.array([[1, 0], [1, 0], [0, 0]])
    ids, acc = M.per_subject_accuracy(np.array([5, 5, 7]), yt, yp)
    assert ids.tolist() == [5, 7] and acc == pytest.approx([0.5, 1.0])
    ids, means = M.mean_by_subject(np.array([2, 1, 2]), np.array([0.2, 0.4, 0.6]))
    assert ids.tolist() == [1, 2] and means == pytest.approx([0.4, 0.4])
    with pytest.raises(ValueError):
        M.per_subject_accuracy(np.array([1, 2]), np.array([0, 1, 1]), np.array([0, 1, 1]))


def test_identical_scores_give_zero_difference_and_p_one():
    a = np.array([0.3, 0.5, 0.9, 0.1, 0.7])
    c = M.paired_comparison(a, a.copy(), seed=0)
    assert c["delta"] == 0 and c["ci_low"] == 0 and c["ci_high"] == 0
    assert c["p_value"] == 1.0 and c["ties"] == 5 and c["n_subjects"] == 5


def test_model_right_where_majority_wrong_is_significant():
    n = 10
    c = M.paired_comparison(np.ones(n), np.zeros(n), seed=0)
    assert c["delta"] == 1.0 and c["ci_low"] == 1.0 and c["ci_high"] == 1.0
    assert c["exact"] and c["p_value"] == pytest.approx(2 / 2**n)  # only all-+ and all-- are as extreme
    assert c["wins"] == n and c["losses"] == 0
    rng = np.random.default_rng(0)
    model, maj = rng.uniform(0.6, 1.0, size=30), rng.uniform(0.0, 0.4, size=30)
    c = M.paired_comparison(model, maj, seed=1)
    assert 0 < c["ci_low"] < c["delta"] < c["ci_high"]
    assert not c["exact"] and c["p_value"] == pytest.approx(1 / (1 + M.PERMUTATIONS))
    # the sign is the direction: b better than a gives a negative interval
    c = M.paired_comparison(maj, model, seed=1)
    assert c["ci_high"] < 0 and c["delta"] < 0


def test_bootstrap_ci_by_hand_and_seeded():
    # two subjects, differences 0 and 1: resampled means are 0, 0.5, 1 (p = 1/4, 1/2, 1/4)
    ci = M.paired_bootstrap_ci(np.array([0.0, 1.0]), np.zeros(2), seed=0)
    assert ci["delta"] == 0.5 and ci["ci_low"] == 0.0 and ci["ci_high"] == 1.0
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=12), rng.uniform(size=12)
    assert M.paired_comparison(a, b, seed=4) == M.paired_comparison(a, b, seed=4)
    x, y = M.paired_bootstrap_ci(a, b, seed=4), M.paired_bootstrap_ci(a, b, seed=5)
    assert (x["ci_low"], x["ci_high"]) != (y["ci_low"], y["ci_high"]) and x["delta"] == y["delta"]
    assert x["ci_low"] < x["delta"] < x["ci_high"]
    # a 99 % interval is wider than a 90 % one
    w = lambda c: c["ci_high"] - c["ci_low"]  # noqa: E731
    assert w(M.paired_bootstrap_ci(a, b, confidence=0.99)) > w(M.paired_bootstrap_ci(a, b, confidence=0.9))


def test_sign_flip_test_exact_by_enumeration_and_monte_carlo():
    import itertools

    d = np.array([0.3, -0.1, 0.2, 0.25, 0.05, -0.02, 0.15])
    brute = np.mean([abs(np.mean(np.array(s) * d)) >= abs(d.mean()) - 1e-12
                     for s in itertools.product([-1, 1], repeat=d.size)])
    t = M.sign_flip_test(d, np.zeros_like(d))
    assert t["exact"] and t["n_permutations"] == 2**7 and t["p_value"] == pytest.approx(brute)
    mc = M.sign_flip_test(d, np.zeros_like(d), exact_max=0, n_permutations=20000, seed=3)
    assert not mc["exact"] and mc["p_value"] == pytest.approx(brute, abs=0.01)
    assert mc == M.sign_flip_test(d, np.zeros_like(d), exact_max=0, n_permutations=20000, seed=3)
    assert M.sign_flip_test(np.array([0.7]), np.array([0.2]))["p_value"] == 1.0  # one subject: no evidence


def test_paired_comparison_rejects_bad_input():
    with pytest.raises(ValueError):
        M.paired_comparison(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        M.paired_comparison(np.array([0.1, 0.2]), np.array([0.1]))
    with pytest.raises(ValueError):
        M.paired_comparison(np.array([np.nan]), np.array([0.1]))
