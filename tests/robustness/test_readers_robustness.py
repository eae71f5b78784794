"""Bad input to every reader: one specific one-line DataError naming the file (or row), and
nothing on disk changed or half-written.

Each case builds one bad file (or folder, or store) in a fresh folder, snapshots the
folder, runs the reader and checks the message and the snapshot. The crafted DEAP
pickles are the memory bombs of issue #11: small files that declare far more than they
hold (a 13 KB ``s01.dat`` that used to pass as 400 all-zero trials).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from symaffect.data.bdf import read_bdf_header, write_bdf
from symaffect.data.deap import list_subject_files, read_ratings, read_subject, write_subject
from symaffect.errors import DataError
from symaffect.stream.channel_map import load_channel_map
from symaffect.stream.lsl import read_markers_csv
from symaffect.stream.recording import read_recording
from symaffect.serve.report import load_report_data
from symaffect.stream.store import SCHEMA_VERSION, SessionStore

# ------------------------------------------------------------------ crafted pickles

G = pickle.GLOBAL


def _binint(n: int) -> bytes:
    return pickle.BININT + struct.pack("<i", n)


def _tuple(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _sstr(b: bytes) -> bytes:
    return pickle.SHORT_BINSTRING + bytes([len(b)]) + b


def _labels_ops(n: int) -> bytes:
    return pickle.dumps(np.full((n, 4), 5.0), protocol=2)[2:-1]  # without PROTO and STOP


def _dict(data_ops: bytes, n_labels: int = 400) -> bytes:
    return (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + _sstr(b"data") + data_ops
            + _sstr(b"labels") + _labels_ops(n_labels) + pickle.SETITEMS + pickle.STOP)


def _recon_bomb() -> bytes:
    """The issue's file: 13 KB, ``_reconstruct`` of a (400, 40, 8064) float64 array never filled."""
    return _dict(G + b"numpy.core.multiarray\n_reconstruct\n" + G + b"numpy\nndarray\n"
                 + _tuple(_binint(400), _binint(40), _binint(8064)) + _sstr(b"f8") + pickle.TUPLE3 + pickle.REDUCE)


def _ndarray_call() -> bytes:
    return _dict(G + b"numpy\nndarray\n" + _tuple(_tuple(_binint(400), _binint(40), _binint(8064)), _sstr(b"f8"))
                 + pickle.REDUCE)


def _encode_repeat(k: int = 60, n: int = 100_000) -> bytes:
    s = pickle.BINUNICODE + struct.pack("<I", n) + b"a" * n + pickle.BINPUT + b"\x01"
    call = G + b"_codecs\nencode\n" + pickle.BINGET + b"\x01" + _sstr(b"latin1") + pickle.TUPLE2 + pickle.REDUCE
    return pickle.PROTO + b"\x02" + s + pickle.MARK + call * k + pickle.LIST + pickle.STOP


def _build_repeat(k: int = 60, n: int = 100_000) -> bytes:
    raw = pickle.BINSTRING + struct.pack("<i", n * 8) + b"\x00" * (n * 8) + pickle.BINPUT + b"\x01"
    dt = (G + b"numpy\ndtype\n" + _sstr(b"f8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE
          + pickle.BINPUT + b"\x02")
    arr = (G + b"numpy.core.multiarray\n_reconstruct\n" + G + b"numpy\nndarray\n" + _tuple(_binint(0)) + _sstr(b"b")
           + pickle.TUPLE3 + pickle.REDUCE
           + _tuple(_binint(1), _tuple(_binint(n)), pickle.BINGET + b"\x02", pickle.NEWFALSE, pickle.BINGET + b"\x01")
           + pickle.BUILD)
    return pickle.PROTO + b"\x02" + raw + dt + pickle.POP + pickle.MARK + arr * k + pickle.LIST + pickle.STOP


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def _valid_deap(tmp: Path) -> bytes:
    rng = np.random.default_rng(0)
    p = tmp / "valid.bin"
    write_subject(p, rng.standard_normal((2, 40, 400)), np.full((2, 4), 5.0))
    b = p.read_bytes()
    p.unlink()
    return b


PICKLES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "recon-bomb-13KB": (lambda t: _recon_bomb(),
                        r"refusing to unpickle: an array of shape \(400, 40, 8064\) \(float64\) of 1\.03 GB in a file "
                        r"of 13\.\d KB: it declares more data than it holds \(corrupt or crafted\)"),
    "ndarray-called": (lambda t: _ndarray_call(),
                       r"refusing to unpickle: calling global 'numpy\.ndarray' is not allowed"),
    "binbytes8-1GiB": (lambda t: b"\x80\x04\x8e" + struct.pack("<Q", 1 << 30) + b"abc",
                       r"not a readable DEAP pickle \(truncated or corrupt\): BINBYTES8 at byte 2 declares "
                       r"1073741824 bytes but 3 remain in the file"),
    "memo-index-2^26": (lambda t: b"\x80\x02N" + pickle.LONG_BINPUT + struct.pack("<I", 1 << 26) + b".",
                        r"LONG_BINPUT at byte 3: memo index 67108864 is out of range"),
    "frame-1GiB": (lambda t: b"\x80\x04\x95" + struct.pack("<Q", 1 << 30) + b"N.",
                   r"FRAME at byte 2 declares 1073741824 bytes but 2 remain in the file"),
    "encode-repeated": (lambda t: _encode_repeat(),
                        r"refusing to unpickle: a byte string of 100 KB in a file of 102 KB"),
    "build-repeated": (lambda t: _build_repeat(),
                       r"refusing to unpickle: an array of shape \(100000,\) \(float64\) of 800 KB"),
    "too-many-opcodes": (lambda t: b"\x80\x02" + pickle.MARK + pickle.NONE * 100_001 + pickle.LIST + pickle.STOP,
                         r"more than 100000 pickle opcodes \(a DEAP file holds a dict of two arrays\)"),
    "truncated": (lambda t: _valid_deap(t)[:5000],
                  r"not a readable DEAP pickle \(truncated or corrupt\): BINSTRING at byte \d+ declares"),
    "os-system": (lambda t: pickle.dumps({"data": _System(), "labels": 1}, protocol=2),
                  r"refusing to unpickle: global 'posix\.system' is not allowed"),
    "bytes-as-int": (lambda t: _dict(G + b"numpy.core.multiarray\n_reconstruct\n" + G + b"numpy\nndarray\n"
                                     + _tuple(_binint(0)) + _sstr(b"b") + pickle.TUPLE3 + pickle.REDUCE
                                     + _tuple(_binint(1), _tuple(_binint(4)), G + b"numpy\ndtype\n" + _sstr(b"f8")
                                              + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE,
                                              pickle.NEWFALSE, _binint(2**31 - 1)) + pickle.BUILD, 4),
                     r"not a readable DEAP pickle \(truncated or corrupt\)"),
}


# ------------------------------------------------------------------ crafted MAT files


def _mat(tmp: Path, compress: bool = False, data=None) -> bytes:
    p = tmp / "m.mat"
    data = np.ones((2, 40, 10)) if data is None else data
    scipy.io.savemat(p, {"data": data, "labels": np.full((data.shape[0], 4), 5.0)}, do_compression=compress)
    b = p.read_bytes()
    p.unlink()
    return b


def _mat_tag_bomb(tmp: Path) -> bytes:
    b = _mat(tmp)
    i = b.index(struct.pack("<II", 9, 800 * 8))  # the double data element of 'data'
    return b[:i] + struct.pack("<II", 9, 0xFFFFFFF0) + b[i + 8:]


def _mat4_bomb(tmp: Path) -> bytes:
    p = tmp / "m4.mat"
    scipy.io.savemat(p, {"data": np.ones((4, 10))}, format="4")
    b = p.read_bytes()
    p.unlink()
    return b[:4] + struct.pack("<ii", 100_000, 10_000) + b[12:]


MATS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "v5-tag-4GB": (_mat_tag_bomb, r"truncated or corrupt MAT file: an element of variable at byte 128 declares "
                                  r"4294967280 bytes, 6400 remain"),
    "v4-header-8GB": (_mat4_bomb, r"truncated or corrupt MATLAB v4 file: a 100000 x 10000 matrix at byte 0 needs "
                                  r"8000000000 bytes, \d+ remain"),
    "zip-bomb": (lambda t: _mat(t, True, np.zeros((40, 40, 2000))),
                 r"a compressed variable at byte 128 inflates beyond 8x its size"),
    "truncated": (lambda t: _mat(t)[:3000], r"truncated or corrupt MAT file: a variable at byte 128 declares"),
}


# ------------------------------------------------------------------ EDF / BDF

N_SIG = 4  # Fp1, GSR, Resp, Status


def _bdf(tmp: Path, seconds: int = 3) -> bytes:
    p = tmp / "seed.bdf"
    rng = np.random.default_rng(1)
    write_bdf(p, rng.standard_normal((3, 128 * seconds)) * 10, ["Fp1", "GSR", "Resp"], 128,
              status=np.zeros(128 * seconds, dtype=int))
    b = p.read_bytes()
    p.unlink()
    return b


def _patch_fixed(b: bytes, start: int, text: str, width: int) -> bytes:
    return b[:start] + text.encode().ljust(width) + b[start + width:]


def _patch_signal(b: bytes, offset: int, width: int, index: int, text: str) -> bytes:
    at = 256 + offset * N_SIG + index * width
    return b[:at] + text.encode().ljust(width) + b[at + width:]


_DMIN, _DMAX, _PMIN, _PMAX, _SPR = 16 + 80 + 24, 16 + 80 + 32, 16 + 80 + 8, 16 + 80 + 16, 16 + 80 + 40 + 80

BDFS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "data-truncated": (lambda t: _bdf(t)[:-500],
                       r"truncated: the header declares 3 data records of 1 s, the file holds 2 and 1036 bytes of one more"),
    "header-truncated": (lambda t: _bdf(t)[:600], r"truncated header: 4 signals need 1280 header bytes, the file has 600"),
    "signal-count-negative": (lambda t: _patch_fixed(_bdf(t), 252, "-1", 4),
                              r"corrupt header: signal count -1 \(at least 1 expected\)"),
    "signal-count-junk": (lambda t: _patch_fixed(_bdf(t), 252, "x4", 4),
                          r"corrupt header: the signal count is 'x4', not a whole number"),
    "header-size-wrong": (lambda t: _patch_fixed(_bdf(t), 184, "1024", 8),
                          r"corrupt header: header size 1024 bytes, but 4 signals need 1280"),
    "zero-records": (lambda t: _patch_fixed(_bdf(t), 236, "0", 8),
                     r"corrupt header: 0 data records \(at least 1, or -1 = unknown\)"),
    "records-beyond-file": (lambda t: _patch_fixed(_bdf(t), 236, "99", 8),
                            r"truncated: the header declares 99 data records of 1 s, the file holds 3"),
    "duration-zero": (lambda t: _patch_fixed(_bdf(t), 244, "0", 8), r"corrupt header: record duration 0 s \(must be > 0\)"),
    "duration-nan": (lambda t: _patch_fixed(_bdf(t), 244, "nan", 8),
                     r"corrupt header: the record duration is 'nan', not a finite number"),
    "digital-range-empty": (lambda t: _patch_signal(_patch_signal(_bdf(t), _DMIN, 8, 0, "0"), _DMAX, 8, 0, "0"),
                            r"corrupt header: digital range \[0, 0\] of signal 1 \(Fp1\) is empty"),
    "physical-range-empty": (lambda t: _patch_signal(_patch_signal(_bdf(t), _PMIN, 8, 1, "5"), _PMAX, 8, 1, "5"),
                             r"corrupt header: physical range \[5, 5\] of signal 2 \(GSR\) is empty"),
    "samples-per-record-junk": (lambda t: _patch_signal(_bdf(t), _SPR, 8, 1, "12x"),
                                r"corrupt header: samples per record of signal 2 \(GSR\) is '12x', not a whole number"),
    "samples-per-record-negative": (lambda t: _patch_signal(_bdf(t), _SPR, 8, 2, "-128"),
                                    r"corrupt header: negative samples per record of signal 3 \(Resp\)"),
    "bad-version": (lambda t: b"\x00" * 8 + _bdf(t)[8:], r"not a BDF/EDF file \(bad version field\)"),
}


# ------------------------------------------------------------------ text files

_CSV = "time,EDA,PPG\n" + "".join(f"{i / 64:.6f},{1 + 0.01 * i:.4f},{np.sin(i):.4f}\n" for i in range(300))

TEXTS: dict[str, tuple[str, Callable[[], bytes], Callable[[Path], object], str]] = {
    # name: (file name, content, reader, expected message)
    "csv-latin1": ("rec.csv", lambda: ("time,EDA (µS),PPG\n" + _CSV.split("\n", 1)[1]).encode("latin-1"),
                   read_recording, r"line 1: not UTF-8 text \(byte 10: invalid start byte\); save it as UTF-8"),
    "csv-latin1-later-line": ("rec.csv", lambda: (_CSV + "10.0,1.0,é\n").encode("latin-1"), read_recording,
                              r"line 302: not UTF-8 text"),
    "csv-field-too-large": ("rec.csv", lambda: (_CSV + "1," + "9" * 200_000 + ",1\n").encode(), read_recording,
                            r"line 302: not a readable CSV row \(field larger than field limit \(131072\)\)"),
    "csv-inf-cell": ("rec.csv", lambda: (_CSV + "5.0,inf,1\n").encode(), read_recording,
                     r"line 302: cell 'inf' is not a finite number"),
    "csv-ragged-row": ("rec.csv", lambda: (_CSV + "5.0,1\n").encode(), read_recording,
                       r"line 302: 2 cells, header has 3"),
    "csv-absurd-rate": ("rec.csv", lambda: ("time,EDA\n" + "".join(f"{i * 1e-12:.15f},{i}\n" for i in range(50))).encode(),
                        read_recording, r"sampling rate 1e\+12 Hz is outside \[1, 100000\] Hz"),
    "biosppy-latin1": ("rec.txt", lambda: "# Sampling Rate (Hz):= 100\n# Labels:= EDA µS\n1\n2\n3\n".encode("latin-1"),
                       read_recording, r"line 2: not UTF-8 text"),
    "markers-latin1": ("m.csv", lambda: "track,start,end\nCaf\xe9,1,2\n".encode("latin-1"), read_markers_csv,
                       r"line 2: not UTF-8 text"),
    "markers-end-before-start": ("m.csv", lambda: b"track,start,end\na,1,2\nb,10,5\n", read_markers_csv,
                                 r"line 3: end 5 s is before start 10 s"),
    "markers-nan-start": ("m.csv", lambda: b"track,start,end\na,nan,2\n", read_markers_csv,
                          r"line 2: start/end must be finite seconds >= 0"),
    "markers-negative-start": ("m.csv", lambda: b"track,start\na,-3\n", read_markers_csv,
                               r"line 2: start/end must be finite seconds >= 0"),
    "markers-empty-track": ("m.csv", lambda: b"track,start\n,3\n", read_markers_csv, r"line 2: empty track name"),
    "channel-map-latin1": ("map.yaml", lambda: "channels:\n  EDA \xb5S: GSR\n".encode("latin-1"), load_channel_map,
                           r"line 2: not UTF-8 text"),
    "channel-map-list-value": ("map.yaml", lambda: b"channels:\n  EDA: [GSR, BVP]\n", load_channel_map,
                               r"'channels' must map each pattern to a single value"),
    "channel-map-alias-bomb": ("map.yaml", lambda: (b"a: &a [x, x, x, x, x, x, x, x, x]\n"
                                                    + b"".join(b"%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n"
                                                               % ((c,) * 2 + (c - 1,) * 8) for c in range(98, 106))
                                                    + b"name: *i\nchannels: {}\n"),
                               load_channel_map, r"unknown key\(s\)|'name' must be a single value"),
    "ratings-latin1": ("participant_ratings.csv",
                       lambda: "Participant_id,Trial,Experiment_id,Start_time,Valence,Arousal,Dominance,Liking,"
                               "Familiarity\n1,1,1,0,5,5,5,5,\xe9\n".encode("latin-1"),
                       read_ratings, r"not a text \(UTF-8\) CSV file"),
}


# ------------------------------------------------------------------ session stores


def _make_store(db: Path, n: int = 3) -> int:
    from symaffect.stream.prediction import Prediction

    with SessionStore(db) as s:
        sid = s.create_session("P-1", "m", meta={"hop": 1.0})
        for i in range(n):
            p = Prediction.from_probabilities(float(i), {"valence": [1 / 9] * 9, "arousal": [1 / 9] * 9},
                                              modalities_used=("eeg",), n_modalities=3)
            s.add_prediction(sid, p)
        s.add_segment(sid, "a", 0.0, 1.0)
    return sid


def _raw_sql(db: Path, sql: str) -> None:
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()


STORES: dict[str, tuple[str | None, str]] = {
    # name: (SQL that damages the store, expected message)
    "session-meta-not-json": ("UPDATE sessions SET meta = '{oops' WHERE id = 1",
                              r"sessions row 1: column meta is not valid JSON \(JSONDecodeError"),
    "session-meta-a-list": ("UPDATE sessions SET meta = '[1, 2]' WHERE id = 1",
                            r"sessions row 1: column meta holds a list, not a dict \(corrupt row\)"),
    "prediction-probabilities-not-json": ("UPDATE predictions SET probabilities = 'nan]' WHERE id = 2",
                                          r"predictions row 2: column probabilities is not valid JSON"),
    "prediction-t-text": ("UPDATE predictions SET t = 'abc' WHERE id = 3",
                          r"predictions row 3: column t holds 'abc', not a finite number \(corrupt row\)"),
    "prediction-flags-not-strings": ("UPDATE predictions SET flags = '[1, 2]' WHERE id = 1",
                                     r"predictions row 1: column flags is not a list of strings"),
    "segment-start-text": ("UPDATE segments SET start = 'x' WHERE id = 1",
                           r"segments row 1: column start holds 'x', not a finite number"),
    "schema-v99": ("PRAGMA user_version = 99",
                   rf"session database schema v99 is newer than this code \(v{SCHEMA_VERSION}\): upgrade symaffect"),
}


# ------------------------------------------------------------------ the checks


def _snapshot(folder: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under ``folder`` (SQLite's transient -wal/-shm aside): kind, size, hash."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.name.endswith(("-wal", "-shm", "-journal")):
            continue
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = ("link", 0, os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", 0, "")
        elif p.is_file():
            out[rel] = ("file", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[rel] = ("other", 0, "")
    return out


def _expect_one_line_error(read: Callable[[], object], source: Path | str, pattern: str, folder: Path) -> str:
    before = _snapshot(folder)
    with pytest.raises(DataError) as ei:
        read()
    msg = str(ei.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert msg.startswith(f"{source}: "), msg
    assert re.search(pattern, msg), msg
    after = _snapshot(folder)
    assert after == before, "the reader changed or left files on disk"
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]
    return msg


@pytest.mark.parametrize("case", sorted(PICKLES))
def test_crafted_deap_pickle(tmp_path, case):
    make, pattern = PICKLES[case]
    p = tmp_path / "s01.dat"
    p.write_bytes(make(tmp_path))
    _expect_one_line_error(lambda: read_subject(p), p, pattern, tmp_path)


def test_the_issue_bomb_fails_data_check_in_one_line(tmp_path):
    """``symaffect data check`` on the 13 KB file: exit 2, one line, no 562 MB of zeros."""
    import subprocess
    import sys

    (tmp_path / "s01.dat").write_bytes(_recon_bomb())
    assert 13_000 < (tmp_path / "s01.dat").stat().st_size < 13_200
    r = subprocess.run([sys.executable, "-m", "symaffect.cli", "data", "check", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-2000:])
    assert "s01.dat" in lines[0] and "declares more data than it holds" in lines[0]


@pytest.mark.parametrize("case", sorted(MATS))
def test_crafted_mat_file(tmp_path, case):
    make, pattern = MATS[case]
    p = tmp_path / "s01.mat"
    p.write_bytes(make(tmp_path))
    _expect_one_line_error(lambda: read_subject(p), p, pattern, tmp_path)


@pytest.mark.parametrize(
    ("case", "make", "problem"),
    [
        ("folder", lambda p: p.mkdir(), "is a folder, not a subject file"),
        ("link-loop", lambda p: p.symlink_to(p.name), "symbolic link loop: it cannot be read"),
        ("dangling-link", lambda p: p.symlink_to("gone.dat"), "symbolic link to a missing file"),
    ],
)
def test_subject_named_entry_that_is_not_a_file(tmp_path, case, make, problem):
    data = tmp_path / "deap"
    data.mkdir()
    write_subject(data / "s02.dat", np.random.default_rng(0).standard_normal((1, 40, 400)), np.full((1, 4), 5.0))
    make(data / "s01.dat")
    _expect_one_line_error(lambda: list_subject_files(data), data / "s01.dat", re.escape(problem), tmp_path)


@pytest.mark.parametrize("case", sorted(BDFS))
@pytest.mark.parametrize("reader", ["header", "recording"])
def test_corrupt_or_truncated_bdf(tmp_path, case, reader):
    make, pattern = BDFS[case]
    p = tmp_path / "rec.bdf"
    p.write_bytes(make(tmp_path))
    read = (lambda: read_bdf_header(p)) if reader == "header" else (lambda: read_recording(p))
    _expect_one_line_error(read, p, pattern, tmp_path)


def test_zero_samples_per_record_channel_is_reported(tmp_path, caplog):
    """A signal with 0 samples per record: left out with a note (MNE would give zeros)."""
    b = _bdf(tmp_path)
    ns = N_SIG
    recs = np.frombuffer(b[256 * (ns + 1):], np.uint8).reshape(3, ns, 128 * 3)
    body = np.concatenate([recs[:, 0], recs[:, 2], recs[:, 3]], axis=1).tobytes()  # GSR's samples removed
    p = tmp_path / "rec.bdf"
    p.write_bytes(_patch_signal(b[: 256 * (ns + 1)], _SPR, 8, 1, "0") + body)
    before = _snapshot(tmp_path)
    rec = read_recording(p)
    assert "GSR" not in rec.ch_names and set(rec.ch_names) == {"Fp1", "Resp"}
    assert "GSR: 0 samples per record in the header (no data); left out" in rec.notes
    assert "0 samples per record" in caplog.text
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", sorted(TEXTS))
def test_bad_text_file(tmp_path, case):
    name, content, read, pattern = TEXTS[case]
    p = tmp_path / name
    p.write_bytes(content())
    _expect_one_line_error(lambda: read(p), p, pattern, tmp_path)


@pytest.mark.parametrize("case", sorted(STORES))
@pytest.mark.parametrize("reader", ["store", "report"])
def test_corrupt_session_store(tmp_path, case, reader):
    sql, pattern = STORES[case]
    db = tmp_path / "sessions.db"
    _make_store(db)
    _raw_sql(db, sql)

    def read():
        if reader == "report":
            return load_report_data(db, 1)
        with SessionStore(db) as s:
            return s.session(1), s.predictions(1), s.segments(1)

    _expect_one_line_error(read, db, pattern, tmp_path)


def test_not_a_database(tmp_path):
    db = tmp_path / "sessions.db"
    db.write_bytes(b"SQLite format 2\x00" + b"\x17" * 4000)
    _expect_one_line_error(lambda: SessionStore(db), db, r"cannot open session database \(file is not a database\)",
                           tmp_path)


def test_store_row_error_is_json_serialisable_one_line(tmp_path):
    """The dashboard turns the same DataError into its JSON message (see test_http_robustness)."""
    db = tmp_path / "sessions.db"
    _make_store(db)
    _raw_sql(db, "UPDATE predictions SET modalities_used = '{\"a\": 1}' WHERE id = 1")
    with SessionStore(db) as s, pytest.raises(DataError) as ei:
        s.predictions(1)
    assert json.loads(json.dumps({"message": str(ei.value)}))["message"].startswith(str(db))
    assert "column modalities_used holds a dict, not a list" in str(ei.value)


def test_compressed_mat_of_real_looking_data_still_reads(tmp_path):
    """The compression-ratio bound does not refuse noisy signals (the normal case)."""
    rng = np.random.default_rng(5)
    p = tmp_path / "s03.mat"
    scipy.io.savemat(p, {"data": rng.standard_normal((2, 40, 1000)) * 20, "labels": np.full((2, 4), 5.0)},
                     do_compression=True)
    rec = read_subject(p)
    assert rec.data.shape == (2, 40, 1000)
