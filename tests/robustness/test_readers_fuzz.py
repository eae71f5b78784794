"""Fuzzing the readers with hypothesis: whatever the bytes, a reader returns valid data
or raises :class:`DataError` (never another exception), and never allocates far beyond
the size of the file it reads.

Inputs: random bytes, valid files with mutated bytes, truncated files, and (for the
DEAP unpickler) pickle streams assembled from the opcodes and globals it admits, with
extreme arguments. Each test is kept to a few seconds (``max_examples``).
"""

from __future__ import annotations

import pickle
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symaffect.data.bdf import read_bdf_header, write_bdf
from symaffect.data.deap import read_ratings, read_subject, write_subject
from symaffect.data.records import SubjectRecord
from symaffect.errors import DataError
from symaffect.stream.lsl import read_markers_csv
from symaffect.stream.recording import Recording, read_recording

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MEMORY_SLACK = 4 << 20
"""Bytes a read may allocate beyond a small multiple of the file size (numpy, MNE, ...)."""


def _read_bounded(read, path: Path, factor: int = 4):
    """Run ``read(path)``; only DataError may escape; peak traced memory stays bounded."""
    size = path.stat().st_size
    tracemalloc.start()
    try:
        try:
            out = read(path)
        except DataError as e:
            msg = str(e)
            assert "\n" not in msg and msg.startswith(str(path)), msg
            out = e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= factor * size + MEMORY_SLACK, f"{peak / 1e6:.1f} MB traced for a {size}-byte file"
    return out


# ------------------------------------------------------------------ DEAP pickles


def _deap_bytes(kind: str) -> bytes:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2, 40, 390)) * 20
    labels = rng.uniform(1, 9, (2, 4))
    if kind == "python2":  # our writer: DEAP's own layout
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "s01.dat"
            write_subject(p, data, labels)
            return p.read_bytes()
    proto = int(kind[-1])
    return pickle.dumps({"data": data, "labels": labels}, protocol=proto)


VALID = {k: _deap_bytes(k) for k in ("python2", "proto2", "proto4", "proto5")}


def _check_subject(out) -> None:
    if isinstance(out, SubjectRecord):
        assert out.data.dtype == np.float32 and out.data.shape[1] == 40
        assert np.isfinite(out.data).all() and out.labels.shape == (out.data.shape[0], 4)
        assert out.data.nbytes <= 4 * 2 * 40 * 390 + 1  # never more trials than the valid file
    else:
        assert isinstance(out, DataError)


@FUZZ
@given(raw=st.binary(max_size=3000))
def test_unpickler_random_bytes(tmp_path, raw):
    p = tmp_path / "s01.dat"
    p.write_bytes(raw)
    _check_subject(_read_bounded(read_subject, p))


@FUZZ
@given(
    kind=st.sampled_from(sorted(VALID)),
    edits=st.lists(
        st.tuples(st.one_of(st.integers(0, 400), st.integers(0, 10**6)), st.integers(0, 255)),
        min_size=1, max_size=6,
    ),
)
def test_unpickler_mutated_valid_files(tmp_path, kind, edits):
    """Byte edits, mostly in the opcode header (where shapes, lengths and globals are)."""
    b = bytearray(VALID[kind])
    for pos, val in edits:
        b[pos % len(b)] = val
    p = tmp_path / "s01.dat"
    p.write_bytes(bytes(b))
    _check_subject(_read_bounded(read_subject, p))


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1, exclude_max=True))
def test_unpickler_truncated_files(tmp_path, kind, cut):
    b = VALID[kind]
    p = tmp_path / "s01.dat"
    p.write_bytes(b[: int(cut * len(b))])
    out = _read_bounded(read_subject, p)
    assert isinstance(out, DataError)


def _binint(n: int) -> bytes:
    return pickle.BININT + struct.pack("<i", n)


_GLOBALS = [
    b"cnumpy\nndarray\n", b"cnumpy\ndtype\n", b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.numeric\n_frombuffer\n",
    b"c_codecs\nencode\n", b"c__builtin__\nbytes\n", b"cbuiltins\nbytearray\n",
]
_ATOMS = [
    pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3, pickle.REDUCE,
    pickle.BUILD, pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.APPEND, pickle.SETITEM,
    pickle.SETITEMS, pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE, pickle.NEWOBJ, pickle.POP,
    pickle.DUP, pickle.MEMOIZE, b"q\x00", b"h\x00", b"q\x01", b"h\x01",
    b"U\x02f8", b"U\x01b", b"U\x01<", b"U\x06latin1", b"U\x04data", b"U\x06labels",
    b"C\x08" + b"\x00" * 8, b"B\x40\x00\x00\x00" + b"\x00" * 64,
]


@st.composite
def _pickle_streams(draw):
    parts = [pickle.PROTO + bytes([draw(st.sampled_from([2, 4, 5]))])]
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            parts.append(draw(st.sampled_from(_GLOBALS)))
        elif kind == 1:
            parts.append(_binint(draw(st.one_of(
                st.integers(-3, 3), st.integers(0, 2**31 - 1), st.integers(-(2**31), -1),
                st.sampled_from([400, 8064, 40, 2**20, 2**30]),
            ))))
        else:
            parts.append(draw(st.sampled_from(_ATOMS)))
    return b"".join(parts) + pickle.STOP


def _sstr(b: bytes) -> bytes:
    return pickle.SHORT_BINSTRING + bytes([len(b)]) + b


def _tuple(items) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


_INTS = st.one_of(st.integers(-2, 3), st.sampled_from([4, 40, 400, 8064, 2**20, 2**31 - 1, -(2**31)]))
_SHAPES = st.one_of(
    st.lists(_INTS, max_size=4),
    st.sampled_from([[400, 40, 8064], [40, 40, 8064], [2**31 - 1], [2**16, 2**16], [2**20, 4], [0, 2**31 - 1]]),
).map(lambda xs: _tuple([_binint(x) for x in xs]))
_DTYPES = st.sampled_from([b"f8", b"f4", b"<f8", b">f8", b"b", b"i8", b"O", b"V8", b"U3", b"S2", b"c16"])
_LEAVES = st.one_of(
    _INTS.map(_binint), _SHAPES, _DTYPES.map(_sstr),
    st.binary(max_size=64).map(lambda b: pickle.BINSTRING + struct.pack("<i", len(b)) + b),
    st.sampled_from([pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE, pickle.BINGET + b"\x00", _sstr(b"latin1")]),
    st.sampled_from(_GLOBALS[:7]),
)


def _call(fn_and_args) -> bytes:
    fn, args = fn_and_args
    return fn + _tuple(args) + pickle.REDUCE + pickle.BINPUT + b"\x00"


def _build(obj_state) -> bytes:
    obj, state = obj_state
    return obj + state + pickle.BUILD


_EXPRS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(_GLOBALS[:7]), st.lists(inner, max_size=5)).map(_call),
        st.tuples(inner, st.lists(inner, max_size=5).map(_tuple)).map(_build),
        st.lists(inner, max_size=5).map(_tuple),
    ),
    max_leaves=24,
)


_G = {k: g for k, g in zip(("nd", "dtype", "recon", "scalar", "frombuf", "encode", "bytes"), _GLOBALS)}


def _or_leaf(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly (7 in 8) the well-formed value, else any leaf."""
    return st.one_of(*[good] * 7, _LEAVES)


_DTYPE_CALL = st.tuples(_DTYPES.map(_sstr), st.sampled_from([pickle.NEWFALSE, pickle.NEWTRUE])).map(
    lambda t: _G["dtype"] + _tuple([t[0], pickle.NEWFALSE, t[1]]) + pickle.REDUCE
)
_RAW = st.one_of(
    st.binary(max_size=256).map(lambda b: pickle.BINSTRING + struct.pack("<i", len(b)) + b),
    st.binary(max_size=256).map(lambda b: pickle.SHORT_BINBYTES + bytes([min(len(b), 255)]) + b[:255]),
)
_ARRAY_STATE = st.tuples(
    _or_leaf(st.just(_binint(1))), _or_leaf(_SHAPES), _or_leaf(_DTYPE_CALL),
    _or_leaf(st.sampled_from([pickle.NEWFALSE, pickle.NEWTRUE])), _or_leaf(_RAW),
).map(lambda t: _tuple(list(t)))
_RECON = st.tuples(_or_leaf(st.just(_G["nd"])), _or_leaf(_SHAPES), _or_leaf(_DTYPES.map(_sstr))).map(
    lambda t: _G["recon"] + _tuple(list(t)) + pickle.REDUCE
)
_ARRAYS = st.one_of(
    _RECON,  # an allocated, never filled, array of any declared shape
    st.tuples(_RECON, _ARRAY_STATE).map(lambda t: t[0] + t[1] + pickle.BUILD),
    st.tuples(_RECON, _ARRAY_STATE).map(lambda t: t[0] + t[1] + pickle.BUILD),
    st.tuples(_or_leaf(_RAW), _or_leaf(_DTYPE_CALL), _or_leaf(_SHAPES), _or_leaf(st.just(_sstr(b"C")))).map(
        lambda t: _G["frombuf"] + _tuple(list(t)) + pickle.REDUCE),
    st.tuples(_or_leaf(_DTYPE_CALL), _or_leaf(_RAW)).map(lambda t: _G["scalar"] + _tuple(list(t)) + pickle.REDUCE),
)


@settings(FUZZ, max_examples=400)
@given(data=_ARRAYS, labels=_ARRAYS, repeat=st.integers(1, 3))
def test_unpickler_array_calls_with_extreme_arguments(tmp_path, data, labels, repeat):
    """``_reconstruct`` / ``BUILD`` / ``_frombuffer`` / ``scalar`` as numpy writes them, with
    any field replaced by an extreme or wrong value; the same call repeated (each a copy)."""
    stream = (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + _sstr(b"data")
              + _tuple([data] * repeat) * (repeat > 1) + (data if repeat == 1 else b"")
              + _sstr(b"labels") + labels + pickle.SETITEMS + pickle.STOP)
    p = tmp_path / "s01.dat"
    p.write_bytes(stream)
    _check_subject(_read_bounded(read_subject, p))


@FUZZ
@given(data=_EXPRS, labels=_EXPRS)
def test_unpickler_calls_of_admitted_globals(tmp_path, data, labels):
    """``{"data": e1, "labels": e2}`` with e1, e2 nested calls of the admitted globals on
    extreme shapes, dtypes and states: sizes stay in budget, errors stay DataError."""
    stream = (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + _sstr(b"data") + data
              + _sstr(b"labels") + labels + pickle.SETITEMS + pickle.STOP)
    p = tmp_path / "s01.dat"
    p.write_bytes(stream)
    _check_subject(_read_bounded(read_subject, p))


@FUZZ
@given(stream=_pickle_streams())
def test_unpickler_streams_of_admitted_opcodes_and_globals(tmp_path, stream):
    """The allow-listed globals fed extreme shapes, dtypes and states: sizes stay in budget."""
    p = tmp_path / "s01.dat"
    p.write_bytes(stream)
    _check_subject(_read_bounded(read_subject, p))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1)), compress=st.booleans())
def test_mat_reader_mutated_and_truncated(tmp_path, edits, cut, compress):
    rng = np.random.default_rng(1)
    p = tmp_path / "s01.mat"
    scipy.io.savemat(p, {"data": rng.standard_normal((2, 40, 200)), "labels": np.full((2, 4), 5.0)},
                     do_compression=compress)
    b = bytearray(p.read_bytes())
    for pos, val in edits:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[: int(cut * len(b))]
    p.write_bytes(bytes(b))
    out = _read_bounded(read_subject, p, factor=12)
    assert isinstance(out, (SubjectRecord, DataError))


# ------------------------------------------------------------------ EDF / BDF

_CSV_SEED = ("time,EDA,PPG,RSP\n" + "".join(
    f"{i / 64:.6f},{1 + 0.01 * i},{np.sin(i / 5):.4f},{np.cos(i / 9):.4f}\n" for i in range(200)
)).encode()


def _bdf_bytes() -> bytes:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "seed.bdf"
        write_bdf(p, rng.standard_normal((3, 128 * 3)) * 10, ["Fp1", "GSR", "Resp"], 128,
                  status=np.zeros(128 * 3, dtype=int))
        return p.read_bytes()


def _edf_bytes() -> bytes:
    """A 16-bit EDF with 2 signals, 2 records of 1 s at 64 Hz."""
    ns, spr, nrec = 2, 64, 2

    def f(v, w):
        return str(v).encode().ljust(w)

    head = (b"0       " + f("X", 80) + f("Startdate X", 80) + b"01.01.00" + b"00.00.00" + f(256 * (ns + 1), 8)
            + f("", 44) + f(nrec, 8) + f(1, 8) + f(ns, 4))
    sig = b"".join(f(x, 16) for x in ("EDA", "PPG")) + f("", 80) * ns + f("uS", 8) * ns
    sig += f(-100, 8) * ns + f(100, 8) * ns + f(-32768, 8) * ns + f(32767, 8) * ns + f("", 80) * ns
    sig += f(spr, 8) * ns + f("", 32) * ns
    rng = np.random.default_rng(3)
    data = rng.integers(-3000, 3000, size=nrec * ns * spr).astype("<i2").tobytes()
    return head + sig + data


def _read_rec(path: Path):
    return read_recording(path)


BDF_SEED, EDF_SEED = _bdf_bytes(), _edf_bytes()


@pytest.fixture(scope="module", autouse=True)
def _warm_up(tmp_path_factory):
    """Read each kind of file once untraced: MNE's lazy imports are not the reader's memory."""
    d = tmp_path_factory.mktemp("warm")
    for name, b in (("a.bdf", BDF_SEED), ("a.edf", EDF_SEED), ("a.csv", _CSV_SEED)):
        (d / name).write_bytes(b)
        read_recording(d / name)


def _mutate(b: bytes, edits, cut) -> bytes:
    out = bytearray(b)
    for pos, val in edits:
        out[pos % len(out)] = val
    if cut is not None:
        out = out[: int(cut * len(out))]
    return bytes(out)


_HEADER_EDITS = st.lists(
    st.tuples(st.one_of(st.integers(0, 1279), st.integers(0, 10**5)),
              st.sampled_from(list(b"0123456789 -.+eE\xff") + [0, 200])),
    min_size=0, max_size=6,
)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=_HEADER_EDITS, cut=st.one_of(st.none(), st.floats(0, 1)), ext=st.sampled_from([".bdf", ".edf"]))
def test_edf_bdf_reader_mutated_and_truncated(tmp_path, edits, cut, ext):
    """Digits, signs and junk written into the header fields; files cut anywhere."""
    assume(edits or cut is not None)
    p = tmp_path / f"rec{ext}"
    p.write_bytes(_mutate(BDF_SEED if ext == ".bdf" else EDF_SEED, edits, cut))
    for read in (read_bdf_header, _read_rec, _read_raw):
        out = _read_bounded(read, p, factor=40)  # MNE holds float64 copies of 2-3 byte samples
        assert isinstance(out, (DataError, Recording)) or out.__class__.__name__ == "BdfHeader"


def _read_raw(path: Path):
    """DEAP's raw-recording reader (data/raw.py); the seeds have no video onsets."""
    from symaffect.data.raw import read_raw_subject

    return read_raw_subject(path, subject=1)


@FUZZ
@given(raw=st.binary(max_size=2000), ext=st.sampled_from([".bdf", ".edf"]))
def test_edf_bdf_reader_random_bytes(tmp_path, raw, ext):
    p = tmp_path / f"rec{ext}"
    p.write_bytes(raw)
    assert isinstance(_read_bounded(_read_rec, p), DataError)


# ------------------------------------------------------------------ CSV and text


_CELLS = st.sampled_from([b",", b"\n", b"\r", b"\"", b"\x00", b"nan", b"inf", b"-1e309", b"\xe9",
                          b"\xff\xfe", b"1e-12", b"0", b"time", b";", b"\t"])


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**5), _CELLS), min_size=1, max_size=5),
       cut=st.one_of(st.none(), st.floats(0, 1)), ext=st.sampled_from([".csv", ".tsv", ".txt"]))
def test_csv_and_text_readers(tmp_path, edits, cut, ext):
    b = bytearray(_CSV_SEED)
    for pos, piece in edits:
        i = pos % (len(b) + 1)
        b[i:i + len(piece)] = piece
    if cut is not None:
        b = b[: int(cut * len(b))]
    p = tmp_path / f"rec{ext}"
    p.write_bytes(bytes(b))
    out = _read_bounded(lambda q: read_recording(q, sfreq=64.0 if ext == ".txt" else None), p, factor=200)
    assert isinstance(out, (DataError, Recording))


@FUZZ
@given(raw=st.binary(max_size=600))
def test_csv_reader_random_bytes(tmp_path, raw):
    p = tmp_path / "rec.csv"
    p.write_bytes(raw)
    out = _read_bounded(read_recording, p, factor=200)
    assert isinstance(out, (DataError, Recording))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("track,start,end\n\r\"0123456789.-e né\x00")), max_size=300),
       latin1=st.booleans())
def test_markers_and_ratings_csv(tmp_path, text, latin1):
    p = tmp_path / "m.csv"
    p.write_bytes(text.encode("latin-1" if latin1 else "utf-8"))
    out = _read_bounded(read_markers_csv, p)
    if not isinstance(out, DataError):
        for track, start, end in out:
            assert np.isfinite(start) and start >= 0 and (end is None or end >= start)
    _read_bounded(read_ratings, p)
