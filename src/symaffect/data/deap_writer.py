"""Writer of DEAP's preprocessed pickle format (``sNN.dat``).

:func:`write_subject` writes the exact preprocessed format, byte-compatible with the
files Python 2 produced (protocol 2, arrays stored as raw ``BINSTRING`` bytes, numpy
globals under ``numpy.core.multiarray``), so any DEAP loader reads it with
``pickle.load(f, encoding="latin1")`` under numpy 1.x or 2.x. It is what the synthetic
generator (:mod:`symaffect.data.synth`) and the tests write; the reader is
:mod:`symaffect.data.deap`.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from symaffect._io import atomic_write

__all__ = ["write_subject"]


def _binstring(b: bytes) -> bytes:
    if len(b) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(b)]) + b
    return pickle.BINSTRING + struct.pack("<i", len(b)) + b


def _binint(n: int) -> bytes:
    if 0 <= n < 256:
        return pickle.BININT1 + bytes([n])
    if 0 <= n < 65536:
        return pickle.BININT2 + struct.pack("<H", n)
    return pickle.BININT + struct.pack("<i", n)


def _array_header(arr: np.ndarray) -> bytes:
    """Pickle opcodes of a C-contiguous little-endian float64 array, up to its raw bytes.

    The stream is what numpy under Python 2 wrote (and what DEAP's files hold):
    ``_reconstruct(ndarray, (0,), 'b')`` then ``BUILD`` with
    ``(1, shape, dtype('f8'), False, <raw bytes as a BINSTRING>)``.
    """
    if arr.nbytes > 2**31 - 1:
        raise ValueError("an array over 2 GiB does not fit a protocol-2 BINSTRING")
    shape = b"".join(_binint(n) for n in arr.shape)
    dtype = (
        pickle.GLOBAL + b"numpy\ndtype\n"
        + _binstring(b"f8") + pickle.BININT1 + b"\x00" + pickle.BININT1 + b"\x01" + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK + pickle.BININT1 + b"\x03" + _binstring(b"<") + pickle.NONE * 3
        + pickle.BININT + struct.pack("<i", -1) + pickle.BININT + struct.pack("<i", -1)
        + pickle.BININT1 + b"\x00" + pickle.TUPLE
        + pickle.BUILD
    )
    return (
        pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n"
        + pickle.GLOBAL + b"numpy\nndarray\n"
        + pickle.BININT1 + b"\x00" + pickle.TUPLE1 + _binstring(b"b") + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.MARK + shape + pickle.TUPLE
        + dtype + pickle.NEWFALSE
        + pickle.BINSTRING + struct.pack("<i", arr.nbytes)
    )


def _array_footer() -> bytes:
    return pickle.TUPLE + pickle.BUILD


def write_subject(path: str | Path, data: np.ndarray, labels: np.ndarray) -> None:
    """Write one subject in DEAP's exact preprocessed format, atomically.

    The file is a protocol-2 pickle of ``{"data": float64 (n, 40, S), "labels":
    float64 (n, 4)}`` laid out as Python 2 wrote DEAP's own files (raw array bytes,
    ``numpy.core.multiarray`` globals): ``pickle.load(f, encoding="latin1")`` reads it
    under numpy 1.x and 2.x. The array bytes are written straight from ``data`` (no
    copy when it is already C-contiguous little-endian float64). Python 3's own
    ``pickle.dump(..., protocol=2)`` would re-encode the bytes as UTF-8 text: for one
    DEAP-size subject (40 x 40 x 8064) we measured 2.2 s and 161 MB that way against
    0.3 s and 103 MB here (one run on the development machine, fsync included).

    Parameters
    ----------
    path : str or Path
        Destination (``sNN.dat``); written through a temporary file and renamed.
    data : ndarray, shape (n_trials, 40, n_samples)
        Any real dtype; stored as float64.
    labels : ndarray, shape (n_trials, 4)
        Ratings; stored as float64.

    Notes
    -----
    Nothing is validated here beyond array-ness; :func:`~symaffect.data.deap.read_subject` validates.
    """
    d = np.ascontiguousarray(data, dtype="<f8")
    lab = np.ascontiguousarray(labels, dtype="<f8")
    with atomic_write(path, "wb") as f:
        f.write(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK)
        for key, arr in ((b"data", d), (b"labels", lab)):
            f.write(_binstring(key))
            f.write(_array_header(arr))
            if arr.size:
                f.write(memoryview(arr).cast("B"))
            f.write(_array_footer())
        f.write(pickle.SETITEMS + pickle.STOP)
