"""A memory-mappable float32 cache of prepared data, keyed by file content and config.

Layout of one entry, ``<cache_dir>/prepared-<key>/``:

``data.npy``
    All trials of all subjects, shape (n_total_trials, n_channels, n_stored), float32,
    opened with ``np.load(mmap_mode="r")`` (no read at open; pages come in on use).
``labels.npy``
    Ratings, shape (n_total_trials, 4), float32.
``moments.npz``
    Per-subject per-channel count/mean/m2 of the (pre-normalisation) stored signal.
``manifest.json``
    Key, version, file fingerprints, configs, subject ids, trial offsets and ids, sfreq,
    channel names, shape. Written last; an entry without it is never read.

Entries are never deleted automatically (each is about the float32 size of the data set,
1.5 GB for DEAP); delete the cache folder to reclaim the space.

An entry is found only through its key, which hashes the content fingerprint of the input
files together with the config fields that change the stored array; a folder's mere
existence is never trusted. The entry is built in a hidden temporary folder and renamed
into place, so a killed run leaves no half-written entry under a valid name.

**Content fingerprint trade-off.** Hashing all of DEAP's files (3.3 GB as distributed,
about 5 GB when re-pickled by Python 3) would take longer than the whole 2-s budget of a
repeat preparation, so each file's fingerprint is its name, size and
modification time (ns) plus a BLAKE2b hash of *sampled* blocks: the first and last
1 MiB and 16 evenly spaced 64 KiB blocks. Any rewrite of a file (new mtime), any size
change, and any change inside a sampled block is a cache miss. An in-place edit of
unsampled bytes that also restores the old mtime would go unnoticed; use
``prepare(..., cache=False)`` or delete the entry if files are edited that way.

The data file is a shared memory mapping written in place, without an explicit fsync
of its 1.5 GB (that alone could double a first preparation on slow disks): a killed
process leaves no visible entry (only a hidden ``.prepared-*.tmp`` folder), but after a
power loss delete the cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from symaffect._io import write_json

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bump when the stored layout or the preparation changes meaning."""

EDGE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 16
N_BLOCKS = 16


def default_cache_dir() -> Path:
    """``$SYMAFFECT_CACHE`` if set, else ``~/.cache/symaffect``."""
    env = os.environ.get("SYMAFFECT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "symaffect"


def file_fingerprint(path: str | Path) -> dict:
    """Name, size, mtime_ns and a BLAKE2b hash of sampled blocks of one file (module docstring)."""
    path = Path(path)
    st = path.stat()
    size = st.st_size
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= 2 * EDGE_BYTES + N_BLOCKS * BLOCK_BYTES:
            h.update(f.read())
        else:
            h.update(f.read(EDGE_BYTES))
            inner = size - 2 * EDGE_BYTES - BLOCK_BYTES
            for k in range(N_BLOCKS):
                f.seek(EDGE_BYTES + (inner * k) // max(N_BLOCKS - 1, 1))
                h.update(f.read(BLOCK_BYTES))
            f.seek(size - EDGE_BYTES)
            h.update(f.read(EDGE_BYTES))
    return {"name": path.name, "size": size, "mtime_ns": st.st_mtime_ns, "blake2b": h.hexdigest()}


def files_fingerprint(paths: Sequence[str | Path]) -> list[dict]:
    """Fingerprints of ``paths`` in the given order."""
    return [file_fingerprint(p) for p in paths]


def cache_key(files: list[dict], config: dict) -> str:
    """Hex key of (format version, file fingerprints, config)."""
    blob = json.dumps({"version": CACHE_VERSION, "files": files, "config": config}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def entry_dir(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"prepared-{key}"


NPY_HEADER_BYTES = 128


def npy_header(shape: tuple[int, ...], dtype: np.dtype = np.dtype(np.float32)) -> bytes:
    """A ``.npy`` (format 1.0) header of exactly :data:`NPY_HEADER_BYTES` bytes for a C-order array."""
    d = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (np.dtype(dtype).str, tuple(int(n) for n in shape))
    pad = NPY_HEADER_BYTES - 10 - 1 - len(d)
    if pad < 0:  # pragma: no cover - only for absurd shapes
        raise ValueError(f"shape {shape} does not fit a {NPY_HEADER_BYTES}-byte header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", NPY_HEADER_BYTES - 10) + (d + " " * pad + "\n").encode("latin1")


def _map_file(path: Path, nbytes: int) -> mmap.mmap:
    """A shared, writable mapping of a new file of ``nbytes``, pre-faulted where the OS can."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except (AttributeError, OSError):  # pragma: no cover - filesystems without fallocate
            os.ftruncate(fd, nbytes)
        m = mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        # MADV_POPULATE_WRITE (Linux >= 5.14): one call instead of a page fault per 4 KiB
        m.madvise(getattr(mmap, "MADV_POPULATE_WRITE", 23))
    return m


class CacheWriter:
    """Builds one entry in a hidden temporary folder; :meth:`commit` renames it into place.

    The prepared array itself lives in the entry's ``data.npy``: :meth:`alloc` maps the
    (pre-allocated) file and the pipeline writes the normalised signal straight into it,
    so the data are written once, with no second copy in anonymous memory. The kernel
    writes the dirty pages back in its own time (no fsync, see the module docstring).

    Parameters
    ----------
    cache_dir : path
    key : str
    """

    def __init__(self, cache_dir: str | Path, key: str):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.tmp = Path(tempfile.mkdtemp(prefix=f".prepared-{key}.", suffix=".tmp", dir=self.cache_dir))
        self._map: mmap.mmap | None = None
        self.array: np.ndarray | None = None

    def alloc(self, shape: tuple[int, int, int], *, keep: int = 0) -> np.ndarray:
        """A float32 array of ``shape`` backed by ``data.npy``; the first ``keep`` trials of
        the previous array (if any) are copied over (growing, for unequal trial counts)."""
        nbytes = NPY_HEADER_BYTES + int(np.prod(shape)) * 4
        path = self.tmp / ("data.npy" if self._map is None else "data.grow.npy")
        m = _map_file(path, nbytes)
        arr = np.frombuffer(m, dtype=np.float32, offset=NPY_HEADER_BYTES).reshape(shape)
        if self.array is not None:
            arr[:keep] = self.array[:keep]
            os.replace(path, self.tmp / "data.npy")
        self._map, self.array = m, arr
        return arr

    def commit(self, used_trials: int, labels: np.ndarray, moments: dict[str, np.ndarray], manifest: dict) -> Path:
        """Finish ``data.npy`` (header, size), write the small files and the manifest, rename into place."""
        if self.array is None or self._map is None:
            raise ValueError("nothing was allocated")
        shape = (int(used_trials), *self.array.shape[1:])
        self._map[:NPY_HEADER_BYTES] = npy_header(shape)
        used_bytes = NPY_HEADER_BYTES + int(np.prod(shape)) * 4
        if used_bytes < len(self._map):
            # fewer trials than allocated: cut the file (the mapping beyond is never read)
            os.truncate(self.tmp / "data.npy", used_bytes)
        np.save(self.tmp / "labels.npy", np.asarray(labels, dtype=np.float32))
        np.savez(self.tmp / "moments.npz", **moments)
        write_json(
            self.tmp / "manifest.json",
            {**manifest, "shape": list(shape), "key": self.key, "version": CACHE_VERSION},
        )
        final = entry_dir(self.cache_dir, self.key)
        try:
            os.replace(self.tmp, final)
        except OSError:
            # another process committed the same key first, or a broken entry is in the way
            if _valid_manifest(final, self.key) is not None:
                log.info("cache entry %s appeared meanwhile; keeping it", final.name)
                shutil.rmtree(self.tmp, ignore_errors=True)
                return final
            shutil.rmtree(final, ignore_errors=True)
            os.replace(self.tmp, final)
        log.info("wrote cache entry %s", final)
        return final

    def abort(self) -> None:
        """Remove the temporary folder (nothing visible is left behind)."""
        self.array = None
        self._map = None  # unmapped once no array refers to it
        shutil.rmtree(self.tmp, ignore_errors=True)


def _valid_manifest(entry: Path, key: str) -> dict | None:
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key or manifest.get("version") != CACHE_VERSION:
        return None
    return manifest


def load_entry(cache_dir: str | Path, key: str) -> tuple[dict, np.ndarray, np.ndarray, dict] | None:
    """Open an entry: (manifest, data memmap (read-only), labels, moments) or None on a miss."""
    entry = entry_dir(cache_dir, key)
    manifest = _valid_manifest(entry, key)
    if manifest is None:
        return None
    try:
        data = np.load(entry / "data.npy", mmap_mode="r")
        labels = np.load(entry / "labels.npy")
        with np.load(entry / "moments.npz") as z:
            moments = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        log.warning("cache entry %s unreadable (%s); rebuilding", entry, e)
        return None
    if list(data.shape) != manifest.get("shape") or data.dtype != np.float32:
        log.warning("cache entry %s does not match its manifest; rebuilding", entry)
        return None
    return manifest, data, labels, moments
