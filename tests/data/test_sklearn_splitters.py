"""Protocols as scikit-learn splitters: ``cv=protocol`` with the same leakage guard."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from symaffect.data.protocols import (
    LeakageError,
    LeakyProtocolWarning,
    LeaveOneSubjectOut,
    SubjectHoldout,
    SubjectKFold,
    TrialHoldout,
    WindowMeta,
    WindowRandom,
)
from symaffect.errors import ConfigError

N_SUBJECTS, N_TRIALS, N_WIN = 8, 4, 5


def _windows(seed: int = 0):
    """Synthetic features of 8 subjects x 4 trials x 5 windows; the label is learnable
    from feature 0 and every subject has an offset (what leaks when subjects are shared)."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(1, N_SUBJECTS + 1) * 3, N_TRIALS * N_WIN)  # ids that are not positions
    trial = np.tile(np.repeat(np.arange(1, N_TRIALS + 1), N_WIN), N_SUBJECTS)
    start = np.tile(np.arange(N_WIN) * 128, N_SUBJECTS * N_TRIALS)
    y = (rng.random(len(subject)) > 0.5).astype(int)
    X = rng.normal(size=(len(subject), 6))
    X[:, 0] += 2.0 * y
    X[:, 1:] += (subject[:, None] % 5)
    return X, y, subject, trial, start


def _subjects(idx, subject) -> set[int]:
    return set(subject[idx].tolist())


PROTOCOLS = [SubjectKFold(n_splits=4, seed=1), LeaveOneSubjectOut(seed=2), SubjectHoldout(test_ratio=0.25, seed=3)]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
def test_cross_validate_keeps_test_subjects_out_of_train(protocol):
    X, y, subject, _, _ = _windows()
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    res = cross_validate(pipe, X, y, groups=subject, cv=protocol, return_indices=True)
    trains, tests = res["indices"]["train"], res["indices"]["test"]
    n = protocol.get_n_splits(X, y, groups=subject)
    assert n == {"subject-kfold": 4, "loso": N_SUBJECTS, "subject-holdout": 1}[protocol.name]
    assert len(trains) == len(tests) == len(res["test_score"]) == n
    covered = np.zeros(len(y), int)
    for tr, te in zip(trains, tests, strict=True):
        assert tr.dtype.kind == "i" and te.dtype.kind == "i"
        assert not _subjects(tr, subject) & _subjects(te, subject)
        assert len(tr) + len(te) == len(y)  # validation subjects go back to training
        covered[te] += 1
    if protocol.name != "subject-holdout":
        assert np.all(covered == 1)  # every window tested exactly once
    assert np.all((res["test_score"] > 0.5) & (res["test_score"] <= 1.0))
    # the same test subjects as the metadata form of the same protocol
    meta = WindowMeta.from_ids(subject, np.zeros_like(subject), np.arange(len(y)), window_samples=1)
    assert [tuple(sorted(_subjects(te, subject))) for te in tests] == [f.test_subjects for f in protocol.split(meta)]


def test_grid_search_and_cross_val_score_take_the_protocol():
    X, y, subject, _, _ = _windows(1)
    protocol = SubjectKFold(n_splits=4, seed=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    gs = GridSearchCV(pipe, {"logisticregression__C": [0.01, 1.0]}, cv=protocol)
    gs.fit(X, y, groups=subject)
    assert gs.n_splits_ == 4
    assert gs.best_params_["logisticregression__C"] in (0.01, 1.0)
    assert 0.5 < gs.best_score_ <= 1.0
    scores = cross_val_score(pipe, X, y, groups=subject, cv=LeaveOneSubjectOut())
    assert scores.shape == (N_SUBJECTS,) and np.all(scores > 0.5)
    # nested: the outer protocol is cloned with the GridSearchCV (deepcopy of a frozen dataclass)
    nested = cross_val_score(gs, X, y, groups=subject, cv=SubjectKFold(n_splits=2, seed=5),
                             params={"groups": subject})
    assert nested.shape == (2,) and np.all(nested > 0.5)


def _trial_groups(subject, trial):
    """(subject, trial) groups as an (n, 2) array and as a structured (record) array."""
    return np.stack([subject, trial], axis=1), np.rec.fromarrays([subject, trial], names="subject,trial")


def test_trial_protocol_takes_subject_and_trial():
    X, y, subject, trial, _ = _windows()
    p = TrialHoldout(test_ratio=0.25, seed=4)
    two_col, rec = _trial_groups(subject, trial)
    (tr, te), = list(p.split(X, y, two_col))
    (tr2, te2), = list(p.split(X, y, groups=rec))
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert p.get_n_splits(X, y, two_col) == 1
    pair = lambda idx: set(zip(subject[idx].tolist(), trial[idx].tolist(), strict=True))  # noqa: E731
    assert not pair(tr) & pair(te)
    assert len(tr) + len(te) == len(y)
    assert _subjects(te, subject) == set(subject.tolist())  # within-subject: every subject is tested
    assert len(pair(te)) == N_SUBJECTS * 1  # ceil(0.25 * 4) = 1 trial per subject
    # the same trials as the metadata form
    meta = WindowMeta.from_ids(subject, trial, np.arange(len(y)), window_samples=1)
    assert pair(te) == set(p.split(meta)[0].test_trials)
    res = cross_validate(make_pipeline(StandardScaler(), LogisticRegression()), X, y, groups=rec, cv=p)
    assert res["test_score"].shape == (1,) and res["test_score"][0] > 0.5


def test_groups_as_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y, subject, trial, _ = _windows()
    two_col, _ = _trial_groups(subject, trial)
    frame = pd.DataFrame({"other": 0, "trial": trial, "subject": subject})
    p = TrialHoldout(test_ratio=0.25, seed=4)
    (tr, te), = list(p.split(X, y, frame))
    (tr2, te2), = list(p.split(X, y, two_col))
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    # a frame with subjects only is enough for subject protocols, not for the trial protocol
    only = frame[["subject"]]
    folds = list(SubjectKFold(n_splits=4).split(X, y, only))
    assert len(folds) == 4 and all(not _subjects(a, subject) & _subjects(b, subject) for a, b in folds)
    with pytest.raises(LeakageError, match="no trial ids"):
        p.split(X, y, only)


def test_leaky_requests_are_refused():
    X, y, subject, trial, _ = _windows()
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    with pytest.raises(LeakageError, match="groups=None"):
        cross_validate(pipe, X, y, cv=SubjectKFold(n_splits=4))
    with pytest.raises(LeakageError, match="no trial ids"):
        list(TrialHoldout().split(X, y, groups=subject))
    with pytest.raises(LeakageError, match="groups=None"):
        LeaveOneSubjectOut().get_n_splits(X, y)
    with pytest.raises(ConfigError, match="rows"):
        SubjectKFold(n_splits=4).split(X, y, groups=subject[:-1])


@dataclasses.dataclass(frozen=True)
class _SharesOneSubject(SubjectKFold):
    """A broken protocol: the first test subject is also trained on."""

    def _split(self, meta, eval_meta):
        folds = super()._split(meta, eval_meta)
        f = folds[0]
        return [dataclasses.replace(f, train=np.concatenate([f.train, f.test[:1]]))] + folds[1:]


def test_the_guard_refuses_a_leaky_split_in_both_forms():
    X, y, subject, trial, start = _windows()
    p = _SharesOneSubject(n_splits=4)
    meta = WindowMeta.from_ids(subject, trial, start, window_samples=128)
    with pytest.raises(LeakageError, match="subject") as by_meta:
        p.split(meta)
    with pytest.raises(LeakageError, match="subject") as by_sklearn:
        cross_validate(make_pipeline(StandardScaler(), LogisticRegression()), X, y, groups=subject, cv=p)
    leaked = str(by_meta.value).split("subject(s) ")[1].split("]")[0]
    assert leaked in str(by_sklearn.value)  # the same subject is named


def test_metadata_form_still_works_and_is_told_apart():
    _, _, subject, trial, start = _windows()
    meta = WindowMeta.from_ids(subject, trial, start, window_samples=128)
    p = SubjectKFold(n_splits=4, seed=1)
    a, b = p.split(meta), p.split(meta, eval_meta=meta)
    assert isinstance(a, list) and len(a) == 4 == p.get_n_splits(meta)
    assert [f.test_subjects for f in a] == [f.test_subjects for f in b]
    assert LeaveOneSubjectOut().get_n_splits(meta) == N_SUBJECTS
    with pytest.raises(ConfigError, match="groups are for the scikit-learn form"):
        p.split(meta, groups=subject)
    with pytest.raises(ConfigError, match="must be a WindowMeta"):
        p.split(meta, np.zeros(len(subject)))
    assert p.get_metadata_routing().split.requests == {"groups": True}


def test_window_random_splits_without_groups_and_warns():
    X, y, _, _, _ = _windows()
    with pytest.warns(LeakyProtocolWarning):
        p = WindowRandom(test_ratio=0.25, seed=0)
    with pytest.warns(LeakyProtocolWarning):
        (tr, te), = list(p.split(X, y))
    assert len(te) == 40 and len(tr) == 120 and not set(tr.tolist()) & set(te.tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakyProtocolWarning)
        assert p.get_n_splits() == 1
