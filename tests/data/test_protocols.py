"""Protocols: disjoint partitions, a guard that catches leaks, a leaky protocol that says so."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symaffect.data.protocols import (
    Fold,
    LeakageError,
    LeakyProtocolWarning,
    LeaveOneSubjectOut,
    SubjectHoldout,
    SubjectKFold,
    TrialHoldout,
    WindowMeta,
    WindowRandom,
    guard,
    load_splits,
    overlapping,
    protocol_from_json,
    save_splits,
)
from symaffect.data.windows import WindowConfig, make_window_index
from symaffect.errors import ConfigError, SymaffectError

T = 100


def make_meta(n_subjects=10, n_trials=6, n_samples=600, stride=20) -> WindowMeta:
    cfg = WindowConfig(window_seconds=T, stride_seconds=stride, baseline="keep")
    index = make_window_index([n_trials] * n_subjects, n_samples, 1.0, cfg)
    return WindowMeta(
        index=index,
        subjects=np.arange(1, n_subjects + 1) * 3,  # DEAP-like ids that are not positions
        trial_ids=tuple(np.arange(1, n_trials + 1) for _ in range(n_subjects)),
        window_samples=T,
        stride_samples=stride,
    )


@pytest.fixture(scope="module")
def metas():
    return make_meta(stride=20), make_meta(stride=T)


def subjects_of(rows: np.ndarray) -> set[int]:
    return set(rows[:, 0].tolist())


def trials_of(rows: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, rows[:, :2].tolist()))


SUBJECT_PROTOCOLS = [
    SubjectHoldout(),
    SubjectHoldout.paper("7:3", seed=3),
    SubjectHoldout.paper("6:4", val_ratio=0.0),
    SubjectKFold(n_splits=5, seed=1),
    LeaveOneSubjectOut(seed=2),
]


@pytest.mark.parametrize("protocol", SUBJECT_PROTOCOLS, ids=lambda p: f"{p.name}-{p.params()}")
def test_subject_protocols_are_disjoint(protocol, metas):
    train_meta, eval_meta = metas
    folds = protocol.split(train_meta, eval_meta)
    tested = []
    for f in folds:
        tr, va, te = subjects_of(f.train), subjects_of(f.val), subjects_of(f.test)
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert tr | va | te == set(range(10))
        assert len(te) >= 1 and len(tr) >= 1
        # declared subject lists are DEAP ids and match the windows
        assert set(f.test_subjects) == {int(train_meta.subjects[s]) for s in te}
        # training windows at the training stride, evaluation windows non-overlapping
        assert np.all(f.train[:, 2] % 20 == 0) and len(np.unique(f.train[:, 2])) == (600 - T) // 20 + 1
        assert np.array_equal(np.unique(f.test[:, 2]), np.arange(6) * T)
        tested += sorted(te)
    if protocol.name in ("subject-kfold", "loso"):
        assert sorted(tested) == list(range(10))  # every subject tested exactly once
    if protocol.name == "loso":
        assert len(folds) == 10
    if protocol.name == "subject-kfold":
        assert len(folds) == 5


def test_holdout_ratios(metas):
    for ratio, n_test in (("8:2", 2), ("7:3", 3), ("6:4", 4)):
        (f,) = SubjectHoldout.paper(ratio).split(*metas)
        assert len(f.test_subjects) == n_test
        assert len(f.val_subjects) == 1  # ceil(0.125 * training subjects)
    with pytest.raises(ConfigError):
        SubjectHoldout.paper("9:1")
    with pytest.raises(ConfigError):
        SubjectHoldout(test_ratio=1.0)


def test_trial_holdout_keeps_every_trial_in_one_partition(metas):
    (f,) = TrialHoldout(test_ratio=0.34, val_ratio=0.25, seed=4).split(*metas)
    tr, va, te = trials_of(f.train), trials_of(f.val), trials_of(f.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr | va | te) == 10 * 6
    for s in range(10):  # within-subject: every subject in every partition
        assert sum(1 for x in te if x[0] == s) == 3  # ceil(0.34 * 6)
        assert sum(1 for x in va if x[0] == s) == 1
    assert {(int(a), int(b)) for a, b in f.test_trials} == {
        (int(metas[0].subjects[s]), int(t) + 1) for s, t in te
    }


def test_seeds_are_deterministic(metas):
    a = SubjectKFold(seed=7).split(*metas)
    b = SubjectKFold(seed=7).split(*metas)
    assert [f.test_subjects for f in a] == [f.test_subjects for f in b]
    assert [f.val_subjects for f in a] == [f.val_subjects for f in b]
    others = {SubjectHoldout(seed=s).split(*metas)[0].test_subjects for s in range(6)}
    assert len(others) > 1
    t1 = TrialHoldout(seed=1).split(*metas)[0]
    assert t1.test_trials == TrialHoldout(seed=1).split(*metas)[0].test_trials


def test_window_random_is_leaky_and_measured(metas, caplog):
    with pytest.warns(LeakyProtocolWarning):
        p = WindowRandom(seed=0)
    assert p.leaky and p.name == "window-random" and p.to_json()["leaky"] is True
    with pytest.warns(LeakyProtocolWarning), caplog.at_level("WARNING"):
        (f,) = p.split(metas[0])
    assert "LEAKY" in caplog.text
    assert f.overlap["test_overlapping_train"] > 0.5
    assert f.overlap["shared_trials"]["train-test"] > 0
    with pytest.raises(LeakageError):
        guard(f, protocol_kind="window")
    # the same split checked as a trial protocol is refused
    with pytest.raises(LeakageError, match="trial"):
        guard(f, protocol_kind="trial")


def _fold(meta, train, val, test, *, subjects=None) -> Fold:
    ids = lambda rows: tuple(sorted(int(meta.subjects[s]) for s in set(rows[:, 0].tolist())))  # noqa: E731
    return Fold(0, np.asarray(train, np.int64).reshape(-1, 3), np.asarray(val, np.int64).reshape(-1, 3),
                np.asarray(test, np.int64).reshape(-1, 3), meta,
                *(subjects or (ids(np.asarray(train).reshape(-1, 3)), ids(np.asarray(val).reshape(-1, 3)),
                               ids(np.asarray(test).reshape(-1, 3)))))


def test_guard_catches_crafted_leaks():
    meta = make_meta(n_subjects=3)
    # subject overlap
    leak = _fold(meta, [[0, 0, 0], [1, 0, 0]], [], [[1, 3, 0]])
    with pytest.raises(LeakageError, match="subject"):
        guard(leak, protocol_kind="subject")
    guard(leak, protocol_kind="trial")  # different trials, no time overlap: fine for a trial protocol
    # trial overlap without time overlap
    leak = _fold(meta, [[0, 0, 0]], [], [[0, 0, 200]])
    with pytest.raises(LeakageError, match="trial"):
        guard(leak, protocol_kind="trial")
    guard(leak, protocol_kind="window")
    # time overlap: windows [0, 100) and [99, 199) of the same trial
    leak = _fold(meta, [[0, 0, 0]], [], [[0, 0, 99]])
    with pytest.raises(LeakageError, match="overlap"):
        guard(leak, protocol_kind="window")
    touching = _fold(meta, [[0, 0, 0]], [], [[0, 0, 100]])
    guard(touching, protocol_kind="window")  # adjacent windows do not overlap
    # a subject only declared in two partitions is caught too
    declared = _fold(meta, [[0, 0, 0]], [], [[1, 0, 0]], subjects=((3, 6), (), (6,)))
    with pytest.raises(LeakageError):
        guard(declared, protocol_kind="subject")
    assert issubclass(LeakageError, SymaffectError)
    stats = guard(leak, protocol_kind="window", mode="measure")
    assert stats["test_overlapping_train"] == 1.0


@pytest.mark.parametrize("protocol", [SubjectKFold(n_splits=3), TrialHoldout(seed=2)], ids=lambda p: p.name)
def test_splits_json_round_trip(protocol, metas, tmp_path):
    folds = protocol.split(*metas)
    path = save_splits(tmp_path, folds, protocol)
    assert path == tmp_path / "splits.json"
    obj = json.loads(path.read_text())
    assert obj["protocol"] == {"name": protocol.name, "kind": protocol.kind,
                               "params": protocol.params(), "leaky": False}
    assert obj["folds"][0]["test"] == list(folds[0].test_subjects)
    back_protocol, back = load_splits(path, *metas)
    assert back_protocol == protocol
    assert len(back) == len(folds)
    for a, b in zip(folds, back, strict=True):
        for part in ("train", "val", "test"):
            assert np.array_equal(a.partition(part), b.partition(part))
        assert a.test_subjects == b.test_subjects and a.test_trials == b.test_trials


def test_splits_json_round_trip_leaky(metas, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakyProtocolWarning)
        p = WindowRandom(seed=1)
        folds = p.split(metas[0])
        path = save_splits(tmp_path / "run" / "splits.json", folds, p)
        obj = json.loads(path.read_text())
        assert obj["protocol"]["leaky"] is True and obj["protocol"]["name"] == "window-random"
        assert obj["folds"][0]["overlap"]["test_overlapping_train"] > 0
        _, back = load_splits(path, metas[0])
    for part in ("train", "val", "test"):
        assert np.array_equal(folds[0].partition(part), back[0].partition(part))
    assert back[0].overlap["test_overlapping_train"] == folds[0].overlap["test_overlapping_train"]


def test_bad_inputs(metas, tmp_path):
    with pytest.raises(ConfigError):
        SubjectKFold(n_splits=20).split(*metas)
    with pytest.raises(ConfigError):
        SubjectKFold(n_splits=1)
    other = make_meta(n_subjects=4)
    with pytest.raises(ConfigError, match="different data"):
        SubjectHoldout().split(metas[0], other)
    (tmp_path / "splits.json").write_text("{not json")
    with pytest.raises(SymaffectError, match="splits"):
        load_splits(tmp_path, metas[0])
    with pytest.raises(ConfigError):
        protocol_from_json({"name": "random"})


def _brute_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), bool)
    for i, (s, t, x) in enumerate(a):
        same = (b[:, 0] == s) & (b[:, 1] == t)
        out[i] = bool(np.any(same & (b[:, 2] < x + T) & (x < b[:, 2] + T)))
    return out


rows = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 400)), max_size=25)


@settings(max_examples=150, deadline=None)
@given(a=rows, b=rows)
def test_overlapping_matches_brute_force(a, b):
    a = np.asarray(a, np.int64).reshape(-1, 3)
    b = np.asarray(b, np.int64).reshape(-1, 3)
    assert np.array_equal(overlapping(a, b, T), _brute_overlap(a, b))


@settings(max_examples=100, deadline=None)
@given(assign=st.lists(st.sampled_from([0, 1, 2]), min_size=12, max_size=12),
       extra=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from([0, 1, 2])), max_size=3))
def test_guard_passes_iff_no_shared_trial(assign, extra):
    """Random assignment of the 12 trials (4 subjects x 3) to partitions, plus a few trials
    copied into a second partition: the trial guard passes iff no trial is in two partitions."""
    meta = make_meta(n_subjects=4, n_trials=3, n_samples=300, stride=50)
    parts: list[list] = [[], [], []]
    units = [(s, t) for s in range(4) for t in range(3)]
    for (s, t), p in zip(units, assign, strict=True):
        parts[p] += meta.index[(meta.index[:, 0] == s) & (meta.index[:, 1] == t)].tolist()
    for s, t, p in extra:
        parts[p] += meta.index[(meta.index[:, 0] == s) & (meta.index[:, 1] == t)].tolist()
    fold = _fold(meta, *parts)
    owners: dict[tuple[int, int], set[int]] = {}
    for p, rs in enumerate(parts):
        for s, t, _ in rs:
            owners.setdefault((s, t), set()).add(p)
    leaky = any(len(v) > 1 for v in owners.values())
    if leaky:
        with pytest.raises(LeakageError):
            guard(fold, protocol_kind="trial")
    else:
        guard(fold, protocol_kind="trial")
    # the subject guard passes iff no subject is in two partitions
    subj_owner: dict[int, set[int]] = {}
    for (s, _), ps in owners.items():
        subj_owner.setdefault(s, set()).update(ps)
    if any(len(v) > 1 for v in subj_owner.values()):
        with pytest.raises(LeakageError):
            guard(fold, protocol_kind="subject")
    else:
        guard(fold, protocol_kind="subject")
