"""Label rules at their boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symaffect.data.labels import (
    PRESETS,
    QUADRANT_NAMES,
    Binary,
    NineClass,
    Quadrant5,
    QuadrantMultiLabel,
    TaskSet,
    rule_from_dict,
)
from symaffect.errors import ConfigError


def ratings(valence, arousal=5.0, dominance=5.0, liking=5.0) -> np.ndarray:
    v = np.atleast_1d(np.asarray(valence, dtype=np.float64))
    out = np.empty((len(v), 4))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = v, arousal, dominance, liking
    return out


def test_nine_class_rounds_half_up():
    r = [1.0, 1.49, 1.5, 2.5, 4.5, 4.49, 5.0, 5.5, 8.49, 8.5, 9.0]
    got = NineClass("valence")(ratings(r))
    # 4.5 -> rating 5 -> class 4 (numpy's half-to-even round would give 4 -> class 3)
    assert got.tolist() == [0, 0, 1, 2, 4, 3, 4, 5, 7, 8, 8]
    assert got.dtype == np.int64
    assert NineClass("valence").n_classes == 9


def test_nine_class_uses_its_column():
    lab = np.array([[1.0, 9.0, 3.0, 6.6]])
    assert NineClass("arousal")(lab).tolist() == [8]
    assert NineClass("liking")(lab).tolist() == [6]
    assert NineClass("dominance")(lab).tolist() == [2]
    with pytest.raises(ConfigError):
        NineClass("joy")


def test_binary_threshold():
    got = Binary("valence")(ratings([1.0, 4.99, 5.0, 5.01, 9.0]))
    assert got.tolist() == [0, 0, 0, 1, 1]
    assert Binary("valence", threshold=4.0)(ratings([4.0, 4.5])).tolist() == [0, 1]
    assert Binary("arousal").class_names == ("low", "high")


@pytest.mark.parametrize(
    "v,a,expected",
    [
        (7.0, 7.0, 0),  # Q1 HV-HA
        (3.0, 7.0, 1),  # Q2 LV-HA
        (3.0, 3.0, 2),  # Q3 LV-LA
        (7.0, 3.0, 3),  # Q4 HV-LA
        (5.0, 5.0, 4),  # neutral
        (6.0, 4.0, 4),  # band edges are inclusive
        (4.0, 6.0, 4),
        (6.01, 4.0, 3),  # just outside the band: a quadrant again
        (5.5, 6.5, 0),
        (5.0, 7.0, 1),  # 5.0 is low valence
    ],
)
def test_quadrant5(v, a, expected):
    assert Quadrant5()(ratings(v, a)).tolist() == [expected]


def test_quadrant_options():
    lab = ratings([5.0, 5.5], [5.0, 5.5])
    assert Quadrant5(with_neutral=False)(lab).tolist() == [2, 0]
    assert Quadrant5(with_neutral=False).n_classes == 4
    assert Quadrant5(neutral_band=0.25)(lab).tolist() == [4, 0]
    assert Quadrant5().class_names == QUADRANT_NAMES


def test_quadrant_multilabel():
    lab = ratings([5.5, 8.0, 4.0, 3.0], [5.5, 8.0, 6.0, 2.0])
    y = QuadrantMultiLabel()(lab)
    assert y.dtype == np.float32 and y.shape == (4, 5)
    assert y.tolist() == [
        [1, 0, 0, 0, 1],  # Q1 and neutral at once
        [1, 0, 0, 0, 0],
        [0, 1, 0, 0, 1],  # Q2 and neutral
        [0, 0, 1, 0, 0],
    ]
    assert QuadrantMultiLabel.kind == "multilabel"
    # exactly one quadrant bit per row
    assert np.all(y[:, :4].sum(1) == 1)


def test_task_sets_round_trip():
    assert list(PRESETS["multitask9"]) == ["valence", "arousal", "liking"]
    assert PRESETS["quadrant5"]["quadrant"].n_classes == 5
    for name, ts in PRESETS.items():
        back = TaskSet.from_dict(ts.to_dict())
        assert back == ts, name
    assert TaskSet.of("binary_valence") is PRESETS["binary_valence"]
    custom = TaskSet.of({"v": Binary("valence", threshold=6.0)})
    assert custom.apply(ratings([6.0, 6.5]))["v"].tolist() == [0, 1]
    with pytest.raises(ConfigError):
        TaskSet.of("nope")
    with pytest.raises(ConfigError):
        rule_from_dict({"rule": "unknown"})
    with pytest.raises(ConfigError):
        TaskSet((("a", Binary()), ("a", Binary())))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1.0, 9.0), min_size=1, max_size=20))
def test_nine_class_property(values):
    r = np.asarray(values)
    got = NineClass("valence")(ratings(r))
    assert got.min() >= 0 and got.max() <= 8
    assert np.all(np.abs(got + 1 - r) <= 0.5)  # the class is the nearest rating
    order = np.argsort(r, kind="stable")
    assert np.all(np.diff(got[order]) >= 0)  # monotone
