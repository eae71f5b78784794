"""prepare() and its cache: hits only for the same content and config, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from symaffect.data import cache as cache_mod
from symaffect.data import deap
from symaffect.data.normalize import NormConfig
from symaffect.data.prepare import STORAGE_CHANNELS, prepare, prepare_records
from symaffect.data.windows import WindowConfig
from symaffect.errors import DataError

WIN = WindowConfig(window_seconds=2.0, stride_seconds=1.0)
N_SAMPLES = 384 + 128 * 6


def write_folder(folder: Path, subjects=(1, 2, 3), n_trials=3, seed=0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for s in subjects:
        data = rng.normal(size=(n_trials, 40, N_SAMPLES)) * s + np.arange(40)[None, :, None]
        labels = rng.uniform(1, 9, (n_trials, 4))
        deap.write_subject(folder / f"s{s:02d}.dat", data, labels)
    (folder / "README.txt").write_text("not a subject file")
    return folder


def entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def is_hit(p) -> bool:
    """A cache hit is served from the memory-mapped file; a fresh build from memory."""
    return isinstance(p.array, np.memmap)


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "deap")


def test_first_build_then_hit(folder, tmp_path):
    cdir = tmp_path / "cache"
    p1 = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p1)
    assert len(entries(cdir)) == 1 and entries(cdir)[0].startswith("prepared-")
    p2 = prepare(folder, window=WIN, cache_dir=cdir)
    assert is_hit(p2) and not p2.array.flags.writeable
    assert p2.cache_path == p1.cache_path and p2.fingerprint == p1.fingerprint
    np.testing.assert_array_equal(p1.array, p2.array)
    np.testing.assert_array_equal(p1.ratings, p2.ratings)
    np.testing.assert_array_equal(p1.trial_ids, p2.trial_ids)
    assert p2.subjects == (1, 2, 3) and p2.ch_names == STORAGE_CHANNELS
    for s in p1.subjects:
        np.testing.assert_array_equal(p1.moments[s].mean, p2.moments[s].mean)
        np.testing.assert_array_equal(p1.moments[s].m2, p2.moments[s].m2)
    np.testing.assert_array_equal(p1.window_index(), p2.window_index())
    # a different window length or stride reuses the same stored array
    p3 = prepare(folder, window=WindowConfig(window_seconds=4.0, stride_seconds=4.0), cache_dir=cdir)
    assert is_hit(p3) and len(entries(cdir)) == 1
    assert p3.window_index().shape == (9 * 1, 3)


def test_prepare_equals_in_memory_records(folder, tmp_path):
    recs = [deap.read_subject(f) for f in deap.list_subject_files(folder)]
    ref = prepare_records(recs, window=WIN)
    p = prepare(folder, window=WIN, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(p.array, ref.array)
    np.testing.assert_array_equal(p.ratings, ref.ratings)
    q = prepare(folder, window=WIN, cache=False)
    assert not (tmp_path / "c2").exists() and not is_hit(q)
    np.testing.assert_array_equal(q.array, ref.array)


@pytest.mark.parametrize(
    "change",
    ["norm", "baseline", "baseline_seconds"],
)
def test_config_change_is_a_miss(folder, tmp_path, change):
    cdir = tmp_path / "cache"
    prepare(folder, window=WIN, cache_dir=cdir)
    kw = {"window": WIN, "norm": NormConfig()}
    if change == "norm":
        kw["norm"] = NormConfig("train_subjects")
    elif change == "baseline":
        kw["window"] = WindowConfig(window_seconds=2.0, baseline="subtract_mean")
    else:
        kw["window"] = WindowConfig(window_seconds=2.0, baseline_seconds=2.0)
    p = prepare(folder, cache_dir=cdir, **kw)
    assert not is_hit(p) and len(entries(cdir)) == 2
    assert is_hit(prepare(folder, cache_dir=cdir, **kw))


def test_content_and_file_set_changes_are_misses(folder, tmp_path):
    cdir = tmp_path / "cache"
    base = prepare(folder, window=WIN, cache_dir=cdir)
    # rewrite one file with new content (new mtime)
    rng = np.random.default_rng(99)
    deap.write_subject(folder / "s02.dat", rng.normal(size=(3, 40, N_SAMPLES)), rng.uniform(1, 9, (3, 4)))
    p = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p) and not np.array_equal(p.data[1], base.data[1])
    np.testing.assert_array_equal(p.data[0], base.data[0])
    # overwrite a few bytes in the middle and restore the old mtime: the sampled-block hash
    # (whole file for files this small) still notices
    f = folder / "s03.dat"
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.seek(st.st_size // 2)
        chunk = fh.read(8)
        fh.seek(st.st_size // 2)
        fh.write(bytes(b ^ 0xFF for b in chunk))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns
    p = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p)
    # an added file, then a removed file
    write_folder(folder, subjects=(4,), seed=5)
    p = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p) and p.subjects == (1, 2, 3, 4)
    (folder / "s01.dat").unlink()
    p = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p) and p.subjects == (2, 3, 4)
    assert is_hit(prepare(folder, window=WIN, cache_dir=cdir))


def test_sampled_fingerprint_of_large_file(tmp_path):
    f = tmp_path / "big.bin"
    size = 2 * cache_mod.EDGE_BYTES + 40 * cache_mod.BLOCK_BYTES
    f.write_bytes(bytes(size))
    a = cache_mod.file_fingerprint(f)
    with open(f, "r+b") as fh:  # change the first byte: inside the first 1 MiB
        fh.write(b"\x01")
    os.utime(f, ns=(f.stat().st_atime_ns, a["mtime_ns"]))
    b = cache_mod.file_fingerprint(f)
    assert a["size"] == b["size"] and a["mtime_ns"] == b["mtime_ns"] and a["blake2b"] != b["blake2b"]


def test_failed_build_leaves_nothing(folder, tmp_path):
    cdir = tmp_path / "cache"
    (folder / "s02.dat").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="s02.dat"):
        prepare(folder, window=WIN, cache_dir=cdir)
    assert entries(cdir) == []  # no entry and no hidden temporary folder


def test_broken_entry_is_rebuilt(folder, tmp_path):
    cdir = tmp_path / "cache"
    p1 = prepare(folder, window=WIN, cache_dir=cdir)
    entry = Path(p1.cache_path)
    (entry / "manifest.json").write_text("{}")
    p2 = prepare(folder, window=WIN, cache_dir=cdir)
    assert not is_hit(p2)
    assert is_hit(prepare(folder, window=WIN, cache_dir=cdir))
    np.testing.assert_array_equal(np.load(entry / "data.npy", mmap_mode="r"), p1.array)


def test_default_cache_dir_from_env(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMAFFECT_CACHE", str(tmp_path / "envcache"))
    assert cache_mod.default_cache_dir() == tmp_path / "envcache"
    prepare(folder, window=WIN)
    assert len(entries(tmp_path / "envcache")) == 1


def test_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        prepare(empty, cache_dir=tmp_path / "c")
    mixed = write_folder(tmp_path / "mixed", subjects=(1,))
    rng = np.random.default_rng(0)
    deap.write_subject(mixed / "s02.dat", rng.normal(size=(3, 40, N_SAMPLES + 128)), rng.uniform(1, 9, (3, 4)))
    with pytest.raises(DataError, match="s02.dat"):
        prepare(mixed, window=WIN, cache_dir=tmp_path / "c")
    assert entries(tmp_path / "c") == []


def test_unequal_trial_counts(tmp_path):
    folder = write_folder(tmp_path / "d", subjects=(1,), n_trials=2)
    write_folder(folder, subjects=(2,), n_trials=5, seed=1)
    p = prepare(folder, window=WIN, cache_dir=tmp_path / "c")
    assert list(p.n_trials) == [2, 5] and p.array.shape[0] == 7
    q = prepare(folder, window=WIN, cache_dir=tmp_path / "c")
    assert is_hit(q)
    np.testing.assert_array_equal(p.array, q.array)
    assert len(q.window_index()) == 7 * 5
