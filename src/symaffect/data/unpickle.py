"""Safe reading of untrusted pickles: a restricted unpickler and an opcode scanner.

A DEAP ``data_preprocessed_python/sNN.dat`` file is a Python-2 pickle of
``{"data": float64 (40, 40, 8064), "labels": float64 (40, 4)}`` (see
``docs/DEAP_FORMAT.md`` in the shared folder). Loading it is unpickling, which in
general runs code; here it goes through :class:`RestrictedUnpickler`, which admits only
the few numpy globals such a file holds and raises :class:`pickle.UnpicklingError`
for anything else, before anything is called (:func:`load_pickle` turns that into a
one-line :class:`~symaffect.errors.DataError` naming the file). Nothing a file declares
is allocated before it is checked against the file's size: every length, frame and memo
index of the stream first (:func:`check_pickle_stream`), then every array and byte
string built (at most :data:`ALLOC_FACTOR` times the file's size in all), so a 13 KB
file cannot become 400 trials of zeros.

:func:`load_pickle_fast` is the fast path for the common layout (numpy arrays stored as
raw bytes in a dict): it interprets the few opcodes such a file holds, through the same
allow-list and size checks, and converts big float arrays to float32 one trial at a
time straight from the file, without unpickling them.

The DEAP reader built on these is :mod:`symaffect.data.deap`.
"""

from __future__ import annotations

import codecs
import importlib
import io
import os
import pickle
import pickletools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from symaffect.errors import DataError

__all__ = [
    "ALLOC_FACTOR",
    "ALLOC_SLACK",
    "MAX_OPCODES",
    "OUT_OF_MEMORY",
    "RestrictedUnpickler",
    "check_pickle_stream",
    "load_pickle",
    "load_pickle_fast",
    "shorten",
]


MAX_OPCODES = 100_000
"""Most pickle opcodes a subject file may hold (a DEAP file, a dict of two arrays, holds
about 50; a stream of more is not a DEAP file, and is refused before it is unpickled)."""
ALLOC_FACTOR, ALLOC_SLACK = 3, 1 << 20
"""Unpickling may allocate at most ``ALLOC_FACTOR * file size + ALLOC_SLACK`` bytes for
arrays and byte strings: every array of a DEAP pickle is stored in the file, so a file
that declares more than it holds is corrupt or crafted."""


class _Refused(pickle.UnpicklingError):
    """The stream declares more than the file holds, or breaks a DEAP bound."""


def _numpy_attr(*candidates: str) -> Any:
    """First importable ``module:attr`` among ``candidates`` (numpy 2 names first)."""
    for cand in candidates:
        mod, _, attr = cand.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates} is available in this numpy")


def _safe_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype`` for plain numeric types only (no object or structured dtypes).

    Always a copy (``copy`` is ignored): a later ``BUILD`` must never reach numpy's
    shared built-in dtype objects.
    """
    if not isinstance(obj, (str, bytes, np.dtype)):
        raise pickle.UnpicklingError(f"dtype from a {type(obj).__name__} is not allowed (numeric arrays only)")
    dt = np.dtype(obj, align=bool(align), copy=True)
    if dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(f"dtype {dt!s} is not allowed (numeric arrays only)")
    return dt


def _fmt_bytes(n: int) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n} bytes"


class _Budget:
    """Bytes that unpickling one file may still allocate (see :data:`ALLOC_FACTOR`)."""

    def __init__(self, file_size: int):
        self.file_size = int(file_size)
        self.left = ALLOC_FACTOR * self.file_size + ALLOC_SLACK

    def charge(self, n: int, what: str) -> None:
        if n > self.left:
            raise _Refused(
                f"{what} of {_fmt_bytes(n)} in a file of {_fmt_bytes(self.file_size)}: "
                "it declares more data than it holds"
            )
        self.left -= n


def _nbytes(shape: Any, dtype: np.dtype) -> int:
    """Bytes of an array of ``shape`` (a tuple of non-negative ints) and ``dtype``."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or len(shape) > 32:
        raise pickle.UnpicklingError(f"array shape {shorten(repr(shape), 60)} is not a tuple of at most 32 sizes")
    n = dtype.itemsize
    for s in shape:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise pickle.UnpicklingError(f"array shape {shorten(repr(shape), 60)} is not a tuple of sizes >= 0")
        n *= s  # a Python int: no overflow
    return n


class _PickledArray(np.ndarray):
    """An array being unpickled: its ``BUILD`` (``__setstate__``) is charged to the budget.

    Handed back as a plain ``numpy.ndarray`` (a view) once loading ends.
    """

    _budget: _Budget | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("ndarray state is not a (version, shape, dtype, fortran, data) tuple")
        shape, dtype = state[-4], state[-3]
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"ndarray state has a {type(dtype).__name__} as its dtype")
        _safe_dtype(dtype)
        budget = type(self)._budget
        if budget is None:
            raise pickle.UnpicklingError("ndarray state outside a restricted load")
        budget.charge(_nbytes(shape, dtype), f"an array of shape {shorten(repr(shape), 60)} ({dtype})")
        super().__setstate__(state)


class _NdarrayToken:
    """What ``numpy.ndarray`` resolves to: only ``_reconstruct`` may receive it."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError("calling global 'numpy.ndarray' is not allowed (only _reconstruct may use it)")

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _allowed_globals(budget: _Budget) -> dict[tuple[str, str], Any]:
    """The globals a DEAP pickle may name, each bound to ``budget`` where it allocates."""
    recon = _numpy_attr("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
    scalar = _numpy_attr("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
    frombuf = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
    # one subclass per load, so that concurrent loads never share a budget
    array_cls = type("_PickledArray", (_PickledArray,), {"_budget": budget})

    def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("_reconstruct of anything but numpy.ndarray is not allowed")
        dt = _safe_dtype(dtype)
        budget.charge(_nbytes(shape, dt), f"an array of shape {shorten(repr(shape), 60)} ({dt})")
        arr = recon(array_cls, shape, dt)
        arr.view(np.uint8)[...] = 0  # never hand out uninitialised memory (numpy pickles BUILD it next)
        return arr

    def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, *rest: Any) -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray)):
            raise pickle.UnpicklingError(f"_frombuffer of a {type(buf).__name__} is not allowed")
        dt = _safe_dtype(dtype)
        _nbytes(shape, dt)
        return frombuf(buf, dt, shape, order, *rest).view(array_cls)  # a view: no copy

    def _scalar(dtype: Any, *args: Any) -> Any:
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"scalar of a {type(dtype).__name__} dtype is not allowed")
        return scalar(_safe_dtype(dtype), *args)

    def _latin1_encode(obj: Any, encoding: str = "latin1", errors: str = "strict") -> bytes:
        """``_codecs.encode`` restricted to latin-1: how Python 3 stores bytes in protocol 2."""
        if not isinstance(encoding, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "iso88591",
        ):
            raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
        if not isinstance(obj, str) or errors != "strict":
            raise pickle.UnpicklingError("_codecs.encode of anything but a str is not allowed")
        budget.charge(len(obj), "a byte string")
        return codecs.encode(obj, "latin1", "strict")

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _safe_dtype}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = _scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = _frombuffer
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("__builtin__", "bytes")] = allowed[("builtins", "bytes")] = _empty_bytes
    return allowed


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` without arguments: how Python 3 pickles ``b""`` under protocol 2."""
    if args:
        raise pickle.UnpicklingError("global 'builtins.bytes' with arguments is not allowed")
    return b""


_LENGTH_PREFIX = {
    pickletools.TAKEN_FROM_ARGUMENT1: ("<B", 1),
    pickletools.TAKEN_FROM_ARGUMENT4: ("<i", 4),
    pickletools.TAKEN_FROM_ARGUMENT4U: ("<I", 4),
    pickletools.TAKEN_FROM_ARGUMENT8U: ("<Q", 8),
}
_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def check_pickle_stream(f: Any, size: int) -> None:
    """Walk a pickle's opcodes without building anything; raise on a declared size too big.

    Python's unpickler allocates what a stream declares before it reads it: a byte
    string's length, a protocol-4 frame, a memo index (the memo table is grown to twice
    the index). This pass checks, before any of that happens, that every length fits in
    the bytes left in the file, that every memo index is below the number of opcodes
    seen, and that there are at most :data:`MAX_OPCODES` opcodes. Large payloads are
    skipped with ``seek``, never read. ``f`` is left where the stream started.

    Parameters
    ----------
    f : binary file
        Seekable, positioned at the start of the pickle.
    size : int
        Size of the whole file in bytes.

    Raises
    ------
    pickle.UnpicklingError
        Unknown opcode, truncated stream, a declared length beyond the end of the
        file, a memo index out of range, too many opcodes.
    """
    start = f.tell()
    n_ops = 0
    try:
        while True:
            pos = f.tell()
            code = f.read(1)
            if not code:
                raise pickle.UnpicklingError(f"stream ends at byte {pos} without a STOP opcode (truncated)")
            n_ops += 1
            if n_ops > MAX_OPCODES:
                raise pickle.UnpicklingError(f"more than {MAX_OPCODES} pickle opcodes (a DEAP file holds a dict of two arrays)")
            op = pickletools.code2op.get(code.decode("latin-1"))
            if op is None:
                raise pickle.UnpicklingError(f"unknown pickle opcode {code[0]:#04x} at byte {pos}")
            arg = op.arg
            value = None
            if arg is not None and arg.n in _LENGTH_PREFIX:
                fmt, k = _LENGTH_PREFIX[arg.n]
                raw = f.read(k)
                if len(raw) < k:
                    raise pickle.UnpicklingError(f"{op.name} at byte {pos} is truncated")
                (n,) = struct.unpack(fmt, raw)
                left = size - f.tell()
                if n < 0 or n > left:
                    raise pickle.UnpicklingError(f"{op.name} at byte {pos} declares {n} bytes but {left} remain in the file")
                f.seek(n, 1)
            elif arg is not None:
                try:
                    value = arg.reader(f)  # a fixed few bytes, or one line
                except (ValueError, UnicodeError, OverflowError, struct.error) as e:
                    raise pickle.UnpicklingError(f"{op.name} at byte {pos}: {shorten(str(e), 80)}") from None
            if op.name == "FRAME" and value > size - f.tell():
                raise pickle.UnpicklingError(f"FRAME at byte {pos} declares {value} bytes but {size - f.tell()} remain in the file")
            if op.name in _MEMO_PUTS and not 0 <= int(value) < n_ops:
                raise pickle.UnpicklingError(f"{op.name} at byte {pos}: memo index {value} is out of range")
            if op.name == "STOP":
                return
    finally:
        f.seek(start)


def _stream_size(f: Any) -> int:
    """Total size of a seekable binary file, or raise UnpicklingError."""
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        pos = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return int(end)
    except (AttributeError, OSError, ValueError):
        raise pickle.UnpicklingError("the restricted unpickler needs a seekable file (to check sizes)") from None


def _plain(obj: Any) -> Any:
    """Unpickled arrays as plain ``numpy.ndarray`` (the object, its dict values, its items)."""

    def one(x: Any) -> Any:
        return x.view(np.ndarray) if isinstance(x, _PickledArray) else x

    if isinstance(obj, dict):
        return {k: one(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [one(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(one(v) for v in obj)
    return one(obj)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array-reconstruction globals, within a size budget.

    Allowed: ``numpy.ndarray`` (only as the argument of ``_reconstruct``, never called),
    ``numpy.dtype`` (numeric kinds only), and ``_reconstruct`` / ``scalar`` /
    ``_frombuffer`` under ``numpy.core`` or ``numpy._core``, plus ``_codecs.encode``
    restricted to latin-1 and ``bytes()`` without arguments (how Python 3 writes bytes
    under protocol 2). Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` before it can be called.

    Sizes: :meth:`load` first walks the stream (:func:`check_pickle_stream`), then
    every array and byte string built is charged to a budget of
    ``ALLOC_FACTOR * file size + ALLOC_SLACK`` bytes *before* it is allocated; a file
    that declares more than it holds raises :class:`pickle.UnpicklingError`.

    Parameters
    ----------
    file : binary file
        Seekable (its size bounds what may be allocated).
    **kwargs
        As for :class:`pickle.Unpickler` (DEAP files need ``encoding="latin1"``).
    """

    def __init__(self, file: Any, **kwargs: Any):
        super().__init__(file, **kwargs)
        self._file = file
        self._size: int | None = None
        self._allowed: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None

    def load(self) -> Any:
        self._size = _stream_size(self._file)
        check_pickle_stream(self._file, self._size)
        self._allowed = _allowed_globals(_Budget(self._size))
        return _plain(super().load())


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (``encoding="latin1"``).

    Raises
    ------
    DataError
        Forbidden global, truncated or corrupt file, a declared size beyond what the
        file holds, not a pickle at all, or not enough memory.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except OSError as e:
        raise DataError(path, f"cannot open: {e.strerror or e}") from None
    except _Refused as e:
        raise DataError(path, f"refusing to unpickle: {shorten(str(e), 200)} (corrupt or crafted)") from None
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "not allowed" in msg:
            raise DataError(path, f"refusing to unpickle: {msg} (DEAP files hold only numpy arrays)") from None
        raise DataError(path, f"not a readable DEAP pickle (truncated or corrupt): {shorten(msg)}") from None
    except MemoryError:
        raise DataError(path, OUT_OF_MEMORY) from None
    except Exception as e:  # EOFError, ValueError, TypeError, struct errors, RecursionError, ...
        reason = shorten(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        raise DataError(path, f"not a readable DEAP pickle (truncated or corrupt): {reason}") from None


OUT_OF_MEMORY = "not enough memory to load this file (is it really a DEAP subject file?)"
"""The :class:`~symaffect.errors.DataError` message when loading a file runs out of memory."""


def shorten(s: str, n: int = 120) -> str:
    """``s`` on one line (whitespace runs collapsed), cut to ``n`` characters with ``...``."""
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


# ------------------------------------------------------------------ fast path

_FAST_MIN_BYTES = 1 << 16
"""Raw array payloads at least this large stay in the file until converted."""


class _Payload:
    """Raw bytes left in the file: where they start and how many there are."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int):
        self.offset, self.length = offset, length


class _ArraySpec:
    """An ndarray being rebuilt: ``_reconstruct(...)`` then ``BUILD`` with its state."""

    __slots__ = ("dtype", "fortran", "payload", "shape")

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.fortran = False
        self.payload: _Payload | None = None


class _Fallback(Exception):
    """The stream is not in the layout the fast path understands."""


def load_pickle_fast(
    path: Path, *, check_trial: Callable[[np.ndarray, Any, int, Path], None] | None = None
) -> dict | None:
    """Read a DEAP pickle without unpickling its big arrays; None when it cannot.

    Interprets a small subset of the pickle opcodes (what numpy arrays in a dict
    need: protocols 1-4, Python 2 ``BINSTRING`` or Python 3 ``BINBYTES`` payloads),
    resolving globals through the same allow-list as :class:`RestrictedUnpickler`
    and calling nothing else. Large raw payloads are not read into memory: the
    float arrays among them are converted to float32 trial by trial straight from
    the file, so the peak memory of a subject is its float32 array plus one trial.
    Sizes are checked as in :class:`RestrictedUnpickler` (:func:`check_pickle_stream`
    first, then every array charged to the file's budget before it is allocated).
    Anything else (another opcode, a forbidden global, a truncated stream, a declared
    size beyond the file, protocol-2 files written by Python 3, whose bytes are UTF-8
    text) returns None, and the caller falls back to :func:`load_pickle`, which gives
    the proper error.

    Parameters
    ----------
    path : Path
        The pickle file.
    check_trial : callable, optional
        Called as ``check_trial(trial32, trial, t, path)`` on every trial ``t`` of a 3-d
        float array as soon as it is converted (``trial32`` the float32 trial, ``trial``
        the values it was converted from); an exception it raises (other than
        MemoryError) makes this return None, like any other problem.

    Returns
    -------
    dict or None
        The unpickled dict, its big float arrays already float32; None when the file
        is not in the layout this path reads (or is rejected).
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            check_pickle_stream(f, size)  # every declared length fits in the file
            budget = _Budget(size)
            obj = _scan(f, budget)
            if not isinstance(obj, dict):
                return None
            out = {}
            for key, val in obj.items():
                out[key] = _materialise(val, f, path, budget, check_trial) if isinstance(val, _ArraySpec) else val
            return out
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - anything unexpected: the restricted unpickler reports it
        return None


def _scan(f: Any, budget: _Budget) -> Any:
    allowed = _allowed_globals(budget)
    recon = allowed[("numpy._core.multiarray", "_reconstruct")]
    stack: list[Any] = []
    marks: list[list[Any]] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        nonlocal stack
        items, stack = stack, marks.pop()
        return items

    while True:
        code = f.read(1)
        if not code:
            raise _Fallback("truncated")
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None:
            raise _Fallback("unknown opcode")
        name = op.name
        if name in ("BINSTRING", "BINBYTES"):
            (n,) = struct.unpack("<i" if name == "BINSTRING" else "<I", f.read(4))
            if n < 0:
                raise _Fallback("negative length")
            if n >= _FAST_MIN_BYTES:
                stack.append(_Payload(f.tell(), n))
                f.seek(n, 1)
            else:
                b = f.read(n)
                if len(b) != n:
                    raise _Fallback("truncated")
                stack.append(b.decode("latin-1") if name == "BINSTRING" else b)
            continue
        arg = op.arg.reader(f) if op.arg is not None else None
        if name in ("PROTO", "FRAME"):
            continue
        if name in ("SHORT_BINSTRING", "SHORT_BINUNICODE", "BINUNICODE", "SHORT_BINBYTES",
                    "BININT", "BININT1", "BININT2", "INT"):
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "MARK":
            marks.append(stack)
            stack = []
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[int(arg)])
        elif name == "TUPLE":
            items = pop_mark()  # rebinds `stack`: append after, not in one expression
            stack.append(tuple(items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
            stack.append(allowed[(module, attr)])  # KeyError -> fallback -> proper error
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if func is _NDARRAY:
                raise _Fallback("ndarray called directly")
            if func is recon:
                if not args or args[0] is not _NDARRAY:
                    raise _Fallback("unexpected _reconstruct")
                stack.append(_ArraySpec())
            elif any(isinstance(a, _Payload) for a in args):
                raise _Fallback("payload passed to a function")
            else:
                stack.append(func(*args))
        elif name == "BUILD":
            state, obj = stack.pop(), stack[-1]
            if isinstance(obj, np.dtype):
                obj.__setstate__(state)
            elif isinstance(obj, _ArraySpec) and isinstance(state, tuple) and len(state) == 5:
                _, shape, dtype, fortran, raw = state
                if not isinstance(dtype, np.dtype):
                    raise _Fallback("bad dtype")
                obj.shape = tuple(int(n) for n in shape)
                obj.dtype, obj.fortran = dtype, bool(fortran)
                if isinstance(raw, _Payload):
                    obj.payload = raw
                elif not isinstance(raw, (str, bytes)):
                    raise _Fallback("array data is not a byte string")
                else:  # a small array: build it now
                    _safe_dtype(dtype)
                    budget.charge(_nbytes(obj.shape, dtype), "an array")
                    buf = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
                    arr = np.frombuffer(buf, dtype=dtype).reshape(obj.shape, order="F" if fortran else "C")
                    stack[-1] = arr.copy()
            else:
                raise _Fallback("unexpected BUILD")
        elif name == "SETITEM":
            v, k = stack.pop(), stack.pop()
            stack[-1][k] = v
        elif name == "SETITEMS":
            items = pop_mark()
            target = stack[-1]
            if not isinstance(target, dict):
                raise _Fallback("SETITEMS on a non-dict")
            for k, v in zip(items[::2], items[1::2]):
                target[k] = v
        elif name == "STOP":
            return stack.pop()
        else:
            raise _Fallback(f"opcode {name}")


def _materialise(
    spec: _ArraySpec,
    f: Any,
    path: Path,
    budget: _Budget,
    check_trial: Callable[[np.ndarray, Any, int, Path], None] | None,
) -> np.ndarray:
    """Read an array left in the file; float arrays become float32 one trial at a time."""
    if spec.shape is None or spec.dtype is None or spec.payload is None:
        raise _Fallback("incomplete array")
    shape, dtype, payload = spec.shape, _safe_dtype(spec.dtype), spec.payload
    if _nbytes(shape, dtype) != payload.length:
        raise _Fallback("payload size does not match the shape")
    budget.charge(payload.length, "an array")  # one payload may be referenced twice
    f.seek(payload.offset)
    if dtype.kind != "f" or spec.fortran or len(shape) < 2:
        buf = np.empty(shape, dtype=dtype, order="F" if spec.fortran else "C")
        if f.readinto(memoryview(buf.reshape(-1, order="A")).cast("B")) != payload.length:
            raise _Fallback("truncated")
        return buf
    out = np.empty(shape, dtype=np.float32)
    chunk = np.empty(shape[1:], dtype=dtype)
    view = memoryview(chunk.reshape(-1)).cast("B")
    for t in range(shape[0]):
        if f.readinto(view) != chunk.nbytes:
            raise _Fallback("truncated")
        with np.errstate(over="ignore"):
            out[t] = chunk
        if len(shape) == 3 and check_trial is not None:
            check_trial(out[t], chunk, t, path)
    return out
