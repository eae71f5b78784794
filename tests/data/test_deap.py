"""The preprocessed DEAP reader/writer: format, safety, validation, folders, ratings."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symaffect.data.deap as deap_module
from symaffect.data.deap import (
    SubjectRecord,
    iter_subjects,
    list_subject_files,
    read_deap,
    read_ratings,
    read_subject,
    write_subject,
)
from symaffect.errors import DataError

RATINGS_HEADER = "Participant_id,Trial,Experiment_id,Start_time,Valence,Arousal,Dominance,Liking,Familiarity\n"


def _arrays(n_trials=2, n_samples=400, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((n_trials, 40, n_samples)) * 20).astype(dtype)
    labels = rng.uniform(1, 9, (n_trials, 4)).astype(dtype)
    return data, labels


def _dump(path: Path, obj, protocol=2) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# ------------------------------------------------------------------ writer format


def test_write_subject_is_deap_format_and_loads_with_plain_pickle(tmp_path):
    data, labels = _arrays(3, 500)
    p = tmp_path / "s05.dat"
    write_subject(p, data, labels)
    with open(p, "rb") as f:  # what any other DEAP loader does
        obj = pickle.load(f, encoding="latin1")
    assert set(obj) == {"data", "labels"}
    assert obj["data"].dtype == np.float64 and obj["data"].shape == (3, 40, 500)
    assert obj["labels"].dtype == np.float64 and obj["labels"].shape == (3, 4)
    np.testing.assert_array_equal(obj["data"], data)
    np.testing.assert_array_equal(obj["labels"], labels)
    # protocol 2, numpy globals under numpy.core (loadable by numpy 1.x too), raw bytes
    ops = list(pickletools.genops(p.read_bytes()))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert p.stat().st_size < data.nbytes + 2000  # raw float64, no text re-encoding
    assert not [q for q in tmp_path.iterdir() if q.name != "s05.dat"]  # no temp file left


def test_write_subject_converts_float32_input_and_reads_back(tmp_path):
    data, labels = _arrays(1, 400, dtype=np.float32)
    write_subject(tmp_path / "s01.dat", data, labels)
    rec = read_subject(tmp_path / "s01.dat")
    assert isinstance(rec, SubjectRecord)
    assert rec.subject == 1 and rec.sfreq == 128.0 and rec.n_trials == 1
    assert rec.data.dtype == np.float32 and rec.labels.dtype == np.float32
    assert rec.data.flags.c_contiguous
    np.testing.assert_array_equal(rec.data, data)
    np.testing.assert_array_equal(rec.trial_ids, [1])
    assert rec.source.endswith("s01.dat")


@pytest.mark.parametrize("protocol", [1, 2, 3, 4, 5])
def test_reads_pickles_written_by_python3_pickle_dump(tmp_path, protocol):
    data, labels = _arrays(2, 390, seed=protocol)
    p = _dump(tmp_path / "s02.dat", {"data": data, "labels": labels}, protocol)
    rec = read_subject(p)
    np.testing.assert_array_equal(rec.data, data.astype(np.float32))
    np.testing.assert_array_equal(rec.labels, labels.astype(np.float32))


@pytest.mark.parametrize("protocol", [None, 3, 4])
def test_fast_path_reads_raw_payloads_from_the_file(tmp_path, protocol):
    """Python 2 style (our writer), and Python 3 BINBYTES pickles, skip the unpickler."""
    data, labels = _arrays(2, 1000, seed=7)
    p = tmp_path / "s02.dat"
    if protocol is None:
        write_subject(p, data, labels)
    else:
        _dump(p, {"data": data, "labels": labels}, protocol)
    obj = deap_module._load_fast(p)
    assert obj is not None and obj["data"].dtype == np.float32
    np.testing.assert_array_equal(obj["data"], data.astype(np.float32))
    np.testing.assert_array_equal(obj["labels"], labels)
    # a malicious or truncated stream is not handled there: the unpickler reports it
    q = _dump(tmp_path / "s03.dat", {"data": _Evil(tmp_path / "x"), "labels": labels})
    assert deap_module._load_fast(q) is None
    p.write_bytes(p.read_bytes()[:-100])
    assert deap_module._load_fast(p) is None


def test_reads_mat_files(tmp_path):
    data, labels = _arrays(2, 400, seed=3)
    p = tmp_path / "s07.mat"
    scipy.io.savemat(p, {"data": data, "labels": labels})
    rec = read_subject(p)
    assert rec.subject == 7
    np.testing.assert_array_equal(rec.data, data.astype(np.float32))
    np.testing.assert_array_equal(rec.labels, labels.astype(np.float32))


def test_mat_with_wrong_shape_is_rejected(tmp_path):
    data, labels = _arrays(2, 400)
    p = tmp_path / "s07.mat"
    scipy.io.savemat(p, {"data": data[:, :32], "labels": labels})
    with pytest.raises(DataError, match=r"s07\.mat.*shape"):
        read_subject(p)


# ------------------------------------------------------------------ unpickling safety


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    p = _dump(tmp_path / "s01.dat", {"data": _Evil(marker), "labels": np.ones((1, 4))})
    with pytest.raises(DataError) as ei:
        read_subject(p)
    assert str(p) in str(ei.value) and "not allowed" in str(ei.value)
    assert not marker.exists()
    # plain pickle would have run it: proves the test file is really malicious
    with open(p, "rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlibq\x00\x86R.",
    ],
)
def test_other_forbidden_globals_are_refused(tmp_path, payload):
    p = tmp_path / "s01.dat"
    p.write_bytes(payload)
    with pytest.raises(DataError, match="s01.dat"):
        read_subject(p)


def test_object_arrays_are_refused(tmp_path):
    arr = np.empty((1, 40, 400), dtype=object)
    p = _dump(tmp_path / "s01.dat", {"data": arr, "labels": np.ones((1, 4))})
    with pytest.raises(DataError, match="s01.dat"):
        read_subject(p)


# ------------------------------------------------------------------ bad files


def test_truncated_file(tmp_path):
    data, labels = _arrays(1, 400)
    p = tmp_path / "s03.dat"
    write_subject(p, data, labels)
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(DataError) as ei:
        read_subject(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)) and "not a readable DEAP pickle (truncated or corrupt)" in msg
    assert "\n" not in msg


def test_not_a_pickle(tmp_path):
    p = tmp_path / "s03.dat"
    p.write_text("this is a text file\n")
    with pytest.raises(DataError, match=r"s03\.dat: not a readable DEAP pickle"):
        read_subject(p)


def test_empty_file(tmp_path):
    p = tmp_path / "s03.dat"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_subject(p)


@pytest.mark.parametrize(
    "obj, match",
    [
        ([1, 2], "expected a dict"),
        ({"data": np.zeros((1, 40, 400))}, "missing key.*labels"),
        ({"data": np.zeros((1, 32, 400)), "labels": np.ones((1, 4))}, r"shape \(1, 32, 400\)"),
        ({"data": np.zeros((1, 40, 384)), "labels": np.ones((1, 4))}, "n_samples > 384"),
        ({"data": np.zeros((0, 40, 400)), "labels": np.ones((0, 4))}, "n_trials >= 1"),
        ({"data": np.zeros((40, 400)), "labels": np.ones((1, 4))}, "shape"),
        ({"data": np.zeros((2, 40, 400)), "labels": np.ones((2, 3))}, r"'labels' has shape \(2, 3\)"),
        ({"data": np.zeros((2, 40, 400)), "labels": np.ones((3, 4))}, "2 trials but 'labels' has 3 rows"),
        ({"data": np.zeros((1, 40, 400), np.int32), "labels": np.ones((1, 4))}, "dtype int32"),
        ({"data": "x", "labels": np.ones((1, 4))}, "is a str"),
    ],
)
def test_wrong_content_is_rejected_naming_the_file(tmp_path, obj, match):
    p = _dump(tmp_path / "s04.dat", obj)
    with pytest.raises(DataError, match=match) as ei:
        read_subject(p)
    assert str(ei.value).startswith(str(p))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_non_finite_sample_names_trial_and_channel(tmp_path, bad):
    data, labels = _arrays(3, 400)
    data[2, 36, 123] = bad
    p = tmp_path / "s06.dat"
    write_subject(p, data, labels)
    with pytest.raises(DataError) as ei:
        read_subject(p)
    msg = str(ei.value)
    assert str(p) in msg and "trial 3" in msg and "channel GSR (index 36)" in msg and "sample 123" in msg


@pytest.mark.parametrize("value", [0.0, 0.999, 9.001, 10.0, np.nan, -5.0])
def test_label_out_of_range_is_rejected(tmp_path, value):
    data, labels = _arrays(2, 400)
    labels[1, 3] = value
    p = tmp_path / "s06.dat"
    write_subject(p, data, labels)
    with pytest.raises(DataError, match=r"s06\.dat: label liking of trial 2"):
        read_subject(p)


def test_label_bounds_are_inclusive(tmp_path):
    data, labels = _arrays(2, 400)
    labels[0] = [1.0, 9.0, 1.0, 9.0]
    write_subject(tmp_path / "s01.dat", data, labels)
    np.testing.assert_array_equal(read_subject(tmp_path / "s01.dat").labels[0], [1, 9, 1, 9])


# ------------------------------------------------------------------ folders


def _folder(tmp_path, ids=(3, 1, 2), n_trials=2, n_samples=400):
    for i, s in enumerate(ids):
        write_subject(tmp_path / f"s{s:02d}.dat", *_arrays(n_trials, n_samples, seed=i))
    return tmp_path


def test_list_subject_files_ignores_other_files_and_sorts(tmp_path):
    _folder(tmp_path)
    for junk in ("README", ".DS_Store", "s01.dat.bak", "s1.dat", "S01.DAT.txt", "notes.txt", ".s04.dat.tmp"):
        (tmp_path / junk).write_text("junk")
    files = list_subject_files(tmp_path)
    assert [f.name for f in files] == ["s01.dat", "s02.dat", "s03.dat"]
    deap = read_deap(tmp_path)
    assert deap.subject_ids == [1, 2, 3]
    assert deap.ratings is None and deap.sfreq == 128.0


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.mkdir(), "is a folder, not a subject file"),
        (lambda p: p.symlink_to(p.name), "symbolic link loop"),
        (lambda p: p.symlink_to("missing.dat"), "symbolic link to a missing file"),
        (lambda p: os.mkfifo(p), "not a regular file"),
    ],
    ids=["folder", "link-loop", "dangling-link", "fifo"],
)
def test_subject_named_entry_that_is_not_a_file_is_an_error(tmp_path, make, problem):
    """Named like a subject file but unreadable: an error naming it, never skipped silently."""
    _folder(tmp_path)
    make(tmp_path / "s09.dat")
    with pytest.raises(DataError) as ei:
        list_subject_files(tmp_path)
    assert str(ei.value) == f"{tmp_path / 's09.dat'}: {problem}" or problem in str(ei.value)
    assert str(ei.value).startswith(str(tmp_path / "s09.dat"))
    with pytest.raises(DataError, match=problem):
        read_subject(tmp_path / "s09.dat")  # a pipe is refused, never opened (it would block)


def test_empty_folder_and_missing_folder(tmp_path):
    (tmp_path / "README.md").write_text("only a readme")
    with pytest.raises(DataError, match="no DEAP subject files") as ei:
        list_subject_files(tmp_path)
    assert str(tmp_path) in str(ei.value)
    with pytest.raises(DataError, match="no such folder"):
        read_deap(tmp_path / "nope")


def test_both_formats_for_one_subject_is_an_error(tmp_path):
    _folder(tmp_path, ids=(1,))
    scipy.io.savemat(tmp_path / "s01.mat", dict(zip(("data", "labels"), _arrays(2, 400))))
    with pytest.raises(DataError, match="both s01"):
        list_subject_files(tmp_path)


def test_subject_subset_and_missing_subject(tmp_path):
    _folder(tmp_path)
    assert read_deap(tmp_path, subjects=[3, 1]).subject_ids == [1, 3]
    with pytest.raises(DataError, match="s07"):
        read_deap(tmp_path, subjects=[7])


def test_mixed_n_samples_names_the_offending_file(tmp_path):
    _folder(tmp_path, ids=(1, 2))
    write_subject(tmp_path / "s03.dat", *_arrays(2, 500))
    with pytest.raises(DataError) as ei:
        read_deap(tmp_path)
    assert str(ei.value).startswith(str(tmp_path / "s03.dat"))
    assert "500 samples" in str(ei.value) and "400" in str(ei.value)


def test_iter_subjects_streams_one_at_a_time(tmp_path):
    _folder(tmp_path)
    write_subject(tmp_path / "s04.dat", *_arrays(2, 400))
    (tmp_path / "s04.dat").write_bytes(b"garbage")
    it = iter_subjects(tmp_path)
    assert [next(it).subject for _ in range(3)] == [1, 2, 3]  # read before the bad file
    with pytest.raises(DataError, match="s04.dat"):
        next(it)


def test_data_preprocessed_mat_folder(tmp_path):
    for s in (1, 2):
        scipy.io.savemat(tmp_path / f"s{s:02d}.mat", dict(zip(("data", "labels"), _arrays(2, 400, seed=s))))
    deap = read_deap(tmp_path)
    assert deap.subject_ids == [1, 2] and deap.subjects[0].data.shape == (2, 40, 400)


# ------------------------------------------------------------------ ratings


def _ratings_text(rows):
    return RATINGS_HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows)


GOOD_ROWS = [
    (1, 1, 5, 1000, 6.5, 3.2, 5, 7.1, 3),
    (1, 2, 2, 2000, 1, 9, 2.5, 1.0, ""),
    (2, 1, 1, 3000, 4.4, 8.1, 7, 5.5, 5),
]


def test_read_ratings(tmp_path):
    p = tmp_path / "participant_ratings.csv"
    p.write_text(_ratings_text(GOOD_ROWS))
    r = read_ratings(p)
    np.testing.assert_array_equal(r["Participant_id"], [1, 1, 2])
    np.testing.assert_array_equal(r["Experiment_id"], [5, 2, 1])
    assert r["Trial"].dtype == np.int64 and r["Valence"].dtype == np.float64
    np.testing.assert_allclose(r["Valence"], [6.5, 1, 4.4])
    assert np.isnan(r["Familiarity"][1]) and r["Familiarity"][2] == 5


@pytest.mark.parametrize(
    "col, value, match",
    [
        (4, 0, r"column Valence, line 3: rating 0 is outside \[1, 9\]"),
        (7, 10, r"column Liking, line 3: rating 10"),
        (5, "high", r"column Arousal, line 3: 'high' is not a number"),
        (6, "", r"column Dominance, line 3: empty cell"),
        (8, 6, r"column Familiarity, line 3: rating 6 is outside \[1, 5\]"),
        (1, 1.5, r"column Trial, line 3: '1.5' is not an integer"),
    ],
)
def test_bad_ratings_name_file_column_and_line(tmp_path, col, value, match):
    rows = [list(r) for r in GOOD_ROWS]
    rows[1][col] = value
    p = tmp_path / "participant_ratings.csv"
    p.write_text(_ratings_text(rows))
    with pytest.raises(DataError, match=match) as ei:
        read_ratings(p)
    assert str(ei.value).startswith(str(p))


def test_ratings_missing_column(tmp_path):
    p = tmp_path / "participant_ratings.csv"
    p.write_text("Participant_id,Trial,Valence\n1,1,5\n")
    with pytest.raises(DataError, match="missing column.*Experiment_id"):
        read_ratings(p)


@pytest.mark.parametrize("where", ["folder", "metadata_csv"])
def test_read_deap_finds_ratings(tmp_path, where):
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    _folder(folder, ids=(1, 2))
    target = folder if where == "folder" else tmp_path / "metadata_csv"
    target.mkdir(exist_ok=True)
    (target / "participant_ratings.csv").write_text(_ratings_text(GOOD_ROWS))
    deap = read_deap(folder)
    assert deap.ratings is not None
    np.testing.assert_array_equal(deap.ratings["Participant_id"], [1, 1, 2])


def test_read_deap_rejects_bad_ratings_file(tmp_path):
    _folder(tmp_path, ids=(1,))
    rows = [list(r) for r in GOOD_ROWS]
    rows[0][4] = 11
    (tmp_path / "participant_ratings.csv").write_text(_ratings_text(rows))
    with pytest.raises(DataError, match="participant_ratings.csv: column Valence, line 2"):
        read_deap(tmp_path)


# ------------------------------------------------------------------ properties

_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_label = st.floats(min_value=1.0, max_value=9.0, allow_nan=False)


@st.composite
def _subject(draw):
    n_trials = draw(st.integers(1, 3))
    n_samples = draw(st.integers(385, 420))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((n_trials, 40, n_samples)) * 10 ** draw(st.integers(-3, 6))).astype(dtype)
    labels = np.array(draw(st.lists(_label, min_size=4 * n_trials, max_size=4 * n_trials)), dtype=dtype)
    return data, labels.reshape(n_trials, 4)


@_settings
@given(arrays=_subject())
def test_property_valid_files_round_trip_exactly(tmp_path, arrays):
    data, labels = arrays
    p = tmp_path / "s11.dat"
    write_subject(p, data, labels)
    rec = read_subject(p)
    np.testing.assert_array_equal(rec.data, data.astype(np.float64).astype(np.float32))
    np.testing.assert_array_equal(rec.labels, labels.astype(np.float64).astype(np.float32))
    assert rec.data.shape == data.shape and rec.subject == 11


@_settings
@given(
    arrays=_subject(),
    bad_label=st.one_of(
        st.floats(max_value=0.9999999, allow_nan=False),
        st.floats(min_value=9.000001, allow_nan=False),
        st.just(float("nan")),
    ),
    where=st.tuples(st.integers(0, 2), st.integers(0, 3)),
)
def test_property_out_of_range_label_is_rejected(tmp_path, arrays, bad_label, where):
    data, labels = arrays
    labels = labels.astype(np.float64)
    t, c = where[0] % labels.shape[0], where[1]
    labels[t, c] = bad_label
    p = tmp_path / "s12.dat"
    write_subject(p, data, labels)
    with pytest.raises(DataError) as ei:
        read_subject(p)
    assert str(ei.value).startswith(str(p)) and "label" in str(ei.value)


@_settings
@given(
    arrays=_subject(),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    where=st.tuples(st.integers(0, 2), st.integers(0, 39), st.integers(0, 384)),
)
def test_property_non_finite_sample_is_rejected(tmp_path, arrays, bad, where):
    data, labels = arrays
    t = where[0] % data.shape[0]
    data = data.copy()
    data[t, where[1], where[2]] = bad
    p = tmp_path / "s13.dat"
    write_subject(p, data, labels)
    with pytest.raises(DataError) as ei:
        read_subject(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)) and f"trial {t + 1}," in msg and f"(index {where[1]})" in msg
