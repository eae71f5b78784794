"""Size checks of a MATLAB ``.mat`` file before SciPy reads it.

SciPy's ``loadmat`` allocates what a file declares before reading it: a data element
whose tag says 4 GB gets a 4 GB buffer even when the file is 7 KB, a MATLAB v4 matrix
header of 100000 x 10000 gets 8 GB, and a compressed variable is inflated to whatever
it decompresses to (a 1 MB file of zeros inflates to 1.3 GB). :func:`check_mat_sizes`
walks the file's structure first, without building anything, and raises
:class:`~symaffect.errors.DataError` when a declared size does not fit in the file
(or in its decompressed variable), when a cell or struct array declares more elements
than it has bytes, or when a compressed variable inflates more than
:data:`MAX_COMPRESSION_RATIO` times. MATLAB v7.3 (HDF5) files are left to the caller.

Layouts: MAT v5 (MathWorks, "MAT-File Format", 2019: a 128-byte header, then tagged
data elements; ``miCOMPRESSED`` elements hold a zlib stream of one element); MAT v4
(a 20-byte header per matrix: type, rows, columns, imaginary flag, name length).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from symaffect.errors import DataError

__all__ = ["MAX_COMPRESSION_RATIO", "check_mat_sizes"]

MAX_COMPRESSION_RATIO = 8
"""Largest inflated / compressed size accepted for the file's compressed variables
(with 1 MB of slack). Recorded signals (floating point, noisy) compress by well under
2x; a higher ratio is a file of zeros or a zip bomb."""
_SLACK = 1 << 20
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CELL, _STRUCT, _OBJECT = 1, 2, 3
_MAX_DEPTH = 64
_V4_ITEMSIZE = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}


def check_mat_sizes(path: str | Path) -> None:
    """Check every declared size of a MAT v4 / v5 file against the file.

    Raises
    ------
    DataError
        Naming the file and the first size that does not fit.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(128)
            if len(head) >= 4 and 0 in head[:4]:  # SciPy's own test: a v4 file
                _check_v4(f, size, path)
            elif len(head) == 128 and head[126:128] in (b"IM", b"MI"):
                if struct.unpack(">H" if head[126:128] == b"MI" else "<H", head[124:126])[0] == 0x0200:
                    return  # v7.3: HDF5, read (or refused) by the caller
                _check_v5(f, size, path, "<" if head[126:128] == b"IM" else ">")
    except OSError as e:
        raise DataError(path, f"cannot open: {e.strerror or e}") from None


def _check_v4(f, size: int, path: Path) -> None:
    pos = 0
    while pos < size:
        f.seek(pos)
        hdr = f.read(20)
        if len(hdr) < 20:
            raise DataError(path, f"truncated MATLAB v4 file: {len(hdr)} bytes of a matrix header at byte {pos}")
        mopt = struct.unpack("<i", hdr[:4])[0]
        endian = "<" if 0 <= mopt < 5000 else ">"
        mopt, rows, cols, imag, namlen = struct.unpack(endian + "5i", hdr)
        itemsize = _V4_ITEMSIZE.get((mopt % 100) // 10)
        if itemsize is None or min(rows, cols, namlen) < 0 or not 0 <= mopt < 5000:
            raise DataError(path, f"corrupt MATLAB v4 matrix header at byte {pos}")
        nbytes = rows * cols * itemsize * (2 if imag else 1)
        left = size - pos - 20 - namlen
        if nbytes > left:
            raise DataError(
                path, f"truncated or corrupt MATLAB v4 file: a {rows} x {cols} matrix at byte {pos} "
                f"needs {nbytes} bytes, {max(left, 0)} remain",
            )
        pos += 20 + namlen + nbytes


def _check_v5(f, size: int, path: Path, e: str) -> None:
    inflated_total = 0
    compressed_total = 0
    pos = 128
    while pos < size:
        f.seek(pos)
        tag = f.read(8)
        if len(tag) < 8:
            break  # SciPy stops at a trailing partial tag, as MATLAB does
        mtype, nbytes = struct.unpack(e + "II", tag)
        if mtype >> 16:  # small data element: 4 bytes in the tag itself
            pos += 8
            continue
        left = size - pos - 8
        if nbytes > left:
            raise DataError(path, f"truncated or corrupt MAT file: a variable at byte {pos} declares {nbytes} bytes, {left} remain")
        if mtype == _MI_COMPRESSED:
            compressed_total += nbytes
            limit = MAX_COMPRESSION_RATIO * compressed_total + _SLACK - inflated_total
            body = _inflate(f, nbytes, limit, path, pos)
            inflated_total += len(body)
            _walk(body, 0, len(body), e, path, f"compressed variable at byte {pos}", 0)
            pos += 8 + nbytes
        else:
            f.seek(pos)
            body = f.read(8 + nbytes)
            _walk(body, 0, len(body), e, path, f"variable at byte {pos}", 0)
            pos += 8 + _pad8(nbytes)


def _inflate(f, nbytes: int, limit: int, path: Path, pos: int) -> bytes:
    """The zlib stream of ``nbytes`` at the file's position, inflated up to ``limit`` bytes."""
    d = zlib.decompressobj()
    out = bytearray()
    left = nbytes
    try:
        while left > 0 and not d.eof:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            while chunk:
                out += d.decompress(chunk, max(1, limit - len(out) + 1))
                if len(out) > limit:
                    raise DataError(
                        path, f"a compressed variable at byte {pos} inflates beyond {MAX_COMPRESSION_RATIO}x "
                        "its size: no recorded signal compresses so well (a file of zeros, or a zip bomb)",
                    )
                chunk = d.unconsumed_tail
    except zlib.error as err:
        raise DataError(path, f"corrupt compressed variable at byte {pos} ({err})") from None
    return bytes(out)


def _pad8(n: int) -> int:
    return n + (-n % 8)


def _elements(buf: bytes, pos: int, end: int, e: str, path: Path, where: str):
    """Yield ``(type, nbytes, data_pos)`` of the tagged elements in ``buf[pos:end]``."""
    while pos + 8 <= end:
        mtype, nbytes = struct.unpack_from(e + "II", buf, pos)
        if mtype >> 16:  # small data element: up to 4 bytes inside the tag
            yield mtype & 0xFFFF, mtype >> 16, pos + 4
            pos += 8
            continue
        if nbytes > end - pos - 8:
            raise DataError(
                path, f"truncated or corrupt MAT file: an element of {where} declares {nbytes} bytes, "
                f"{end - pos - 8} remain",
            )
        yield mtype, nbytes, pos + 8
        pos += 8 + _pad8(nbytes)


def _walk(buf: bytes, pos: int, end: int, e: str, path: Path, where: str, depth: int) -> None:
    """Check the tagged elements in ``buf[pos:end]``: sizes in bounds, recursing into matrices."""
    for mtype, nbytes, dpos in _elements(buf, pos, end, e, path, where):
        if mtype == _MI_MATRIX and nbytes:
            _check_matrix(buf, dpos, dpos + nbytes, e, path, where, depth + 1)


def _check_matrix(buf: bytes, pos: int, end: int, e: str, path: Path, where: str, depth: int) -> None:
    """One ``miMATRIX`` (its data in ``buf[pos:end]``): element counts fit, nested matrices too."""
    if depth > _MAX_DEPTH:
        raise DataError(path, f"{where}: cells or structs nested deeper than {_MAX_DEPTH}")
    subs = _elements(buf, pos, end, e, path, where)
    try:
        _, fbytes, fpos = next(subs)  # array flags
        _, dbytes, dpos = next(subs)  # dimensions
        next(subs)  # array name
        if fbytes < 4 or dbytes % 4:
            raise StopIteration
        cls = struct.unpack_from(e + "I", buf, fpos)[0] & 0xFF
        n = 1
        for d in struct.unpack_from(e + f"{dbytes // 4}i", buf, dpos):
            if d < 0:
                raise DataError(path, f"corrupt MAT file: a negative dimension in {where}")
            n *= d
        per = 1
        if cls == _OBJECT:
            next(subs)  # class name
        if cls in (_STRUCT, _OBJECT):
            _, lbytes, lpos = next(subs)  # field name length
            _, nbytes, _ = next(subs)  # field names
            namelen = struct.unpack_from(e + "i", buf, lpos)[0] if lbytes >= 4 else 0
            per = max(1, nbytes // namelen) if namelen > 0 else 1
    except (StopIteration, struct.error):
        raise DataError(path, f"truncated or corrupt MAT file: a matrix header of {where}") from None
    if cls in (_CELL, _STRUCT, _OBJECT) and n * per * 8 > end - pos:
        raise DataError(
            path, f"truncated or corrupt MAT file: a cell/struct array of {n} x {per} elements in {where} "
            f"holds only {end - pos} bytes",
        )
    for mtype, nbytes, dpos in subs:
        if mtype == _MI_MATRIX and nbytes:
            _check_matrix(buf, dpos, dpos + nbytes, e, path, where, depth + 1)
