"""One task specification: labels, heads, losses, the live predictor and the report agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symaffect.data.labels import PRESETS, Quadrant5, QuadrantMultiLabel
from symaffect.models import MultiTaskLoss, TaskHeads
from symaffect.spec import (
    QUADRANT_CODES,
    QUADRANT_RULE,
    TASK_SETS,
    QuadrantRule,
    quadrant,
    quadrant_of,
    task_set,
)
from symaffect.stream.prediction import Prediction


def _ratings(v, a):
    v, a = np.atleast_1d(v).astype(float), np.atleast_1d(a).astype(float)
    return np.stack([v, a, np.full_like(v, 5.0), np.full_like(v, 5.0)], axis=1)


def test_quadrant_rule_edges():
    # high is strictly above 5; Neutral when both are within [4, 6]
    assert quadrant(4.8, 4.6) == "Neutral"  # the dashboard once said "Q3" here
    assert quadrant(6.0, 4.0) == "Neutral" and quadrant(6.01, 4.0) == "Q4"
    assert quadrant(5.0, 7.0) == "Q2" and quadrant(5.01, 7.0) == "Q1"
    assert quadrant(3.0, 3.0) == "Q3"
    assert quadrant(float("nan"), 5.0) is None and quadrant(None, 5.0) is None
    assert QuadrantRule(neutral_band=0.0).code(4.8, 4.6) == "Q3"


def test_every_consumer_reads_the_same_task_sets():
    for name, spec in TASK_SETS.items():
        rules = PRESETS[name]
        assert tuple(rules) == spec.names
        heads = TaskHeads(in_features=4, task_set=name)
        loss = MultiTaskLoss(task_set=name)
        assert loss.tasks == spec.names and loss.kind == spec.kind
        out = heads(torch.zeros(2, 4))
        for t in spec.tasks:
            assert rules[t.name].class_names == t.class_names and rules[t.name].kind == t.kind
            assert out[t.name].shape == (2, t.n_classes)


def test_quadrant4_matches_the_label_rule_without_neutral():
    assert PRESETS["quadrant4"]["quadrant"] == Quadrant5(with_neutral=False)
    assert task_set("quadrant4").n_outputs == {"quadrant": 4}
    with pytest.raises(ValueError, match="quadrant5"):
        task_set("quadrant3")


@pytest.mark.parametrize("seed", [0, 1])
def test_live_quadrant_is_the_training_label(seed):
    """The quadrant the live path shows for a predicted (valence, arousal) is the label
    training gives those ratings -- Neutral included."""
    rng = np.random.default_rng(seed)
    grid = rng.uniform(1, 9, size=(400, 2))
    grid[:50] = rng.uniform(3.5, 6.5, size=(50, 2))  # many near the Neutral box
    labels = Quadrant5()(_ratings(grid[:, 0], grid[:, 1]))
    for (v, a), y in zip(grid, labels):
        # a binary distribution whose expected rating is exactly v (resp. a) on [1, 9]
        pv, pa = (v - 1) / 8, (a - 1) / 8
        pred = Prediction.from_probabilities(
            0.0, {"valence": [1 - pv, pv], "arousal": [1 - pa, pa]},
            modalities_used=("eeg",), n_modalities=1,
        )
        assert pred.valence == pytest.approx(v) and pred.arousal == pytest.approx(a)
        assert pred.quadrant == QUADRANT_CODES[y] == QUADRANT_RULE.code(v, a)
    assert "Neutral" in {QUADRANT_CODES[y] for y in labels}


def test_quadrant_model_outputs_read_as_the_labels_are_made():
    r = _ratings([4.5, 8.0], [5.5, 8.0])  # neutral (Q2 bit + Neutral bit), Q1
    multi = QuadrantMultiLabel()(r)
    assert multi.tolist() == [[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]]
    assert quadrant_of(multi[0], multilabel=True) == "Neutral"
    assert quadrant_of(multi[1], multilabel=True) == "Q1"
    single = Quadrant5()(r)
    assert [quadrant_of(np.eye(5)[y]) for y in single] == ["Neutral", "Q1"]
    pred = Prediction.from_probabilities(0.0, {"quadrant": [0.1, 0.6, 0.0, 0.0, 0.9]},
                                         modalities_used=("eeg",), n_modalities=1, multilabel=True)
    assert pred.quadrant == "Neutral"
    with pytest.raises(ValueError, match="4 or 5"):
        quadrant_of([0.5, 0.5])
