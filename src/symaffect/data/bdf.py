"""A small BioSemi BDF (24-bit EDF variant) writer and header reader.

Layout written (the published BDF format): a 256-byte fixed header (version field
``"\\xffBIOSEMI"``, reserved field ``"24BIT"``), 256 bytes per signal (label,
transducer, physical dimension, physical min/max, digital min/max, prefiltering,
samples per record, reserved), then 1-s data records, each holding every signal's
samples as 24-bit little-endian two's-complement integers, one signal after the other.

Physical values map to digital ones linearly:
``digital = dmin + (x - pmin) * (dmax - dmin) / (pmax - pmin)``, rounded, with
``dmin, dmax = -2**23, 2**23 - 1``. A ``Status`` channel holds raw integer codes
(physical range = digital range), so a BioSemi trigger word such as
``0x190000 | code`` is stored bit for bit (24 bits).

Used by the tests to build DEAP-original-layout recordings, and by users converting
data to BDF. The reader side is MNE (``mne.io.read_raw_bdf``); :func:`read_bdf_header`
only parses the header (channel labels, units, rates) without touching the samples.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symaffect._io import atomic_write
from symaffect.errors import DataError

__all__ = ["ANNOTATION_LABELS", "BdfHeader", "DIGITAL_MAX", "DIGITAL_MIN", "read_bdf_header", "write_bdf"]

logger = logging.getLogger(__name__)

DIGITAL_MIN = -(2**23)
DIGITAL_MAX = 2**23 - 1
_VERSION = b"\xffBIOSEMI"


def _field(value: object, width: int) -> bytes:
    """Left-justified, space-padded ASCII field of exactly ``width`` bytes."""
    b = str(value).encode("latin-1")
    if len(b) > width:
        raise ValueError(f"{value!r} does not fit a {width}-character header field")
    return b.ljust(width, b" ")


def _num(x: float, width: int = 8) -> str:
    """Shortest decimal text for ``x`` of at most ``width`` characters."""
    if float(x).is_integer() and len(str(int(x))) <= width:
        return str(int(x))
    for prec in range(width, 0, -1):
        s = f"{x:.{prec}g}"
        if len(s) <= width:
            return s
    raise ValueError(f"{x!r} cannot be written in {width} characters")


def write_bdf(
    path: str | Path,
    data: np.ndarray,
    ch_names: Sequence[str],
    sfreq: float,
    *,
    phys_range: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
    units: str | Sequence[str] = "uV",
    status: np.ndarray | None = None,
    status_name: str = "Status",
    patient: str = "X X X X",
    recording: str = "Startdate X X X X",
    start: _dt.datetime | None = None,
) -> None:
    """Write signals (and an optional Status channel) to a BDF file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination ``.bdf`` file.
    data : ndarray, shape (n_channels, n_samples)
        Signals in physical units (``units``).
    ch_names : sequence of str, length n_channels
        Labels (at most 16 characters).
    sfreq : float
        Sampling rate in Hz; must be a whole number (1-s records of ``sfreq`` samples).
    phys_range : (float, float) or sequence of (float, float), optional
        Physical minimum and maximum, for all channels or per channel. Default: per
        channel, the data's own range (widened slightly, never empty). BioSemi's EEG
        range is (-262144, 262143) uV, i.e. 1/32 uV per bit. Values outside the range
        are clipped (with a warning in the log).
    units : str or sequence of str
        Physical dimension per channel (at most 8 characters): "uV", "mV", "Ohm", ...
    status : ndarray of int, shape (n_samples,), optional
        Raw trigger/status words, written as the last channel with the low 24 bits
        of each value (BioSemi's high bits, e.g. ``0x190000 | code``, are kept).
    status_name : str
        Label of the status channel (BioSemi: "Status").
    patient, recording : str
        Free-text header fields (80 characters each).
    start : datetime, optional
        Recording start (default: 2000-01-01 00:00:00, so files are reproducible).

    Notes
    -----
    ``n_samples`` not a multiple of ``sfreq`` is padded with each channel's last
    value (Status: its last code) up to a whole record.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"data must be (n_channels, n_samples), got shape {data.shape}")
    n_ch, n_samp = data.shape
    names = list(ch_names)
    if len(names) != n_ch:
        raise ValueError(f"{len(names)} channel names for {n_ch} channels")
    spr = int(round(sfreq))
    if spr <= 0 or abs(spr - sfreq) > 1e-9:
        raise ValueError(f"sfreq must be a positive whole number of Hz, got {sfreq}")
    unit_list = [units] * n_ch if isinstance(units, str) else list(units)
    if len(unit_list) != n_ch:
        raise ValueError(f"{len(unit_list)} units for {n_ch} channels")

    # physical ranges, written as text: the gains are computed from the parsed text
    if n_samp == 0:
        raise ValueError("data has no samples")
    if phys_range is None:
        lo, hi = data.min(axis=1), data.max(axis=1)
        pad = np.maximum((hi - lo) * 1e-3, 1e-3)
        ranges = list(zip(lo - pad, hi + pad))
    elif np.ndim(phys_range) == 1:
        ranges = [tuple(phys_range)] * n_ch  # type: ignore[list-item]
    else:
        ranges = [tuple(r) for r in phys_range]  # type: ignore[union-attr]
    if len(ranges) != n_ch:
        raise ValueError(f"{len(ranges)} physical ranges for {n_ch} channels")
    pmin_txt = [_num(np.floor(r[0] * 1e3) / 1e3 if phys_range is None else r[0]) for r in ranges]
    pmax_txt = [_num(np.ceil(r[1] * 1e3) / 1e3 if phys_range is None else r[1]) for r in ranges]
    pmin = np.array([float(s) for s in pmin_txt])
    pmax = np.array([float(s) for s in pmax_txt])
    if np.any(pmax <= pmin):
        raise ValueError("each physical range must have max > min")

    n_rec = max(1, -(-n_samp // spr))
    total = n_rec * spr
    gain = (DIGITAL_MAX - DIGITAL_MIN) / (pmax - pmin)
    dig = np.rint((data - pmin[:, None]) * gain[:, None] + DIGITAL_MIN)
    n_clip = int(np.count_nonzero((dig < DIGITAL_MIN) | (dig > DIGITAL_MAX)))
    if n_clip:
        logger.warning("%s: %d samples outside the physical range were clipped", path, n_clip)
    dig = np.clip(dig, DIGITAL_MIN, DIGITAL_MAX).astype(np.int32)

    labels = names
    unit_txt = unit_list
    pmin_all, pmax_all = pmin_txt, pmax_txt
    dmin_all, dmax_all = [str(DIGITAL_MIN)] * n_ch, [str(DIGITAL_MAX)] * n_ch
    transducer = ["Active electrode"] * n_ch
    prefilt = ["HP:DC; LP:417 Hz"] * n_ch
    if status is not None:
        st = np.asarray(status)
        if st.shape != (n_samp,):
            raise ValueError(f"status must have shape ({n_samp},), got {st.shape}")
        st24 = (st.astype(np.int64) & 0xFFFFFF).astype(np.int32)
        st24 = np.where(st24 >= 2**23, st24 - 2**24, st24).astype(np.int32)  # two's complement
        dig = np.vstack([dig, st24[None, :]])
        labels = names + [status_name]
        unit_txt = unit_list + ["Boo"]
        pmin_all = pmin_txt + [str(DIGITAL_MIN)]
        pmax_all = pmax_txt + [str(DIGITAL_MAX)]
        dmin_all = dmin_all + [str(DIGITAL_MIN)]
        dmax_all = dmax_all + [str(DIGITAL_MAX)]
        transducer = transducer + ["Triggers and Status"]
        prefilt = prefilt + ["No filtering"]
    n_sig = dig.shape[0]
    if total > n_samp:  # pad the last record with each channel's last value
        last = dig[:, -1:]
        dig = np.hstack([dig, np.repeat(last, total - n_samp, axis=1)])

    start = start or _dt.datetime(2000, 1, 1)
    header = b"".join(
        [
            _VERSION,
            _field(patient, 80),
            _field(recording, 80),
            _field(start.strftime("%d.%m.%y"), 8),
            _field(start.strftime("%H.%M.%S"), 8),
            _field(256 * (n_sig + 1), 8),
            _field("24BIT", 44),
            _field(n_rec, 8),
            _field(1, 8),
            _field(n_sig, 4),
        ]
        + [_field(v, 16) for v in labels]
        + [_field(v, 80) for v in transducer]
        + [_field(v, 8) for v in unit_txt]
        + [_field(v, 8) for v in pmin_all]
        + [_field(v, 8) for v in pmax_all]
        + [_field(v, 8) for v in dmin_all]
        + [_field(v, 8) for v in dmax_all]
        + [_field(v, 80) for v in prefilt]
        + [_field(spr, 8) for _ in range(n_sig)]
        + [_field("", 32) for _ in range(n_sig)]
    )
    assert len(header) == 256 * (n_sig + 1)
    # (n_sig, n_rec, spr) -> records: (n_rec, n_sig, spr) -> 3 low bytes of each int32
    rec = np.ascontiguousarray(dig.reshape(n_sig, n_rec, spr).transpose(1, 0, 2), dtype="<i4")
    body = rec.view(np.uint8).reshape(-1, 4)[:, :3]
    with atomic_write(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(body).tobytes())


@dataclass(frozen=True)
class BdfHeader:
    """What :func:`read_bdf_header` finds in a BDF/EDF header.

    Attributes
    ----------
    labels, units : tuple of str
        Per signal, as written (stripped).
    samples_per_record : tuple of int
        Per signal; 0 for a signal that holds no samples.
    n_records : int
        Complete data records in the file (the header's count, or, when the header
        says -1 = unknown, as many whole records as the file holds).
    record_seconds : float
    is_bdf : bool
        Version field is ``"\\xffBIOSEMI"``.
    header_bytes : int
        ``256 * (n_signals + 1)``.
    """

    labels: tuple[str, ...]
    units: tuple[str, ...]
    samples_per_record: tuple[int, ...]
    n_records: int
    record_seconds: float
    is_bdf: bool
    header_bytes: int = 0

    def sfreq(self, index: int) -> float:
        return self.samples_per_record[index] / self.record_seconds

    @property
    def empty_signals(self) -> tuple[str, ...]:
        """Labels of the signals with 0 samples per record (no data at all)."""
        return tuple(lab for lab, n in zip(self.labels, self.samples_per_record) if n == 0)


ANNOTATION_LABELS = ("edf annotations", "bdf annotations")
"""Labels (lower-cased) of EDF+/BDF+ annotation signals (text, not samples)."""


def _int_field(path: Path, raw: bytes, what: str) -> int:
    txt = raw.decode("latin-1").strip()
    try:
        return int(txt)
    except ValueError:
        raise DataError(path, f"corrupt header: {what} is {txt!r}, not a whole number") from None


def _float_field(path: Path, raw: bytes, what: str) -> float:
    txt = raw.decode("latin-1").strip()
    try:
        val = float(txt)
    except ValueError:
        raise DataError(path, f"corrupt header: {what} is {txt!r}, not a number") from None
    if not np.isfinite(val):
        raise DataError(path, f"corrupt header: {what} is {txt!r}, not a finite number")
    return val


def read_bdf_header(path: str | Path) -> BdfHeader:
    """Parse and check a BDF (or EDF) header against the file's size.

    Every field a reader relies on is checked: version, header size, signal count,
    record count and duration, per signal the digital and physical ranges and the
    samples per record, and that the file holds the data records the header declares.
    Nothing is allocated from a declared size before it is checked against the file.

    Raises
    ------
    DataError
        The file is missing, not an EDF/BDF file, its header is truncated or corrupt
        (naming the field and the signal), or its data records are truncated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            fixed = f.read(256)
            if len(fixed) < 256:
                raise DataError(path, "not a BDF file (shorter than a 256-byte header)")
            is_bdf = fixed[:8] == _VERSION
            if not (is_bdf or fixed[:8] == b"0       "):
                raise DataError(path, "not a BDF/EDF file (bad version field)")
            ns = _int_field(path, fixed[252:256], "the signal count")
            if ns < 1:
                raise DataError(path, f"corrupt header: signal count {ns} (at least 1 expected)")
            if 256 * (ns + 1) > size:
                raise DataError(
                    path, f"truncated header: {ns} signals need {256 * (ns + 1)} header bytes, the file has {size}"
                )
            sig = f.read(256 * ns)
    except OSError as e:
        raise DataError(path, f"cannot open: {e.strerror or e}") from None
    if len(sig) < 256 * ns:  # the file shrank while being read
        raise DataError(path, "truncated BDF header")
    header_bytes = 256 * (ns + 1)
    declared = _int_field(path, fixed[184:192], "the header size")
    if declared != header_bytes:
        raise DataError(path, f"corrupt header: header size {declared} bytes, but {ns} signals need {header_bytes}")
    n_records = _int_field(path, fixed[236:244], "the number of data records")
    record_seconds = _float_field(path, fixed[244:252], "the record duration")
    if n_records < -1 or n_records == 0:
        raise DataError(path, f"corrupt header: {n_records} data records (at least 1, or -1 = unknown)")
    if record_seconds <= 0:
        raise DataError(path, f"corrupt header: record duration {record_seconds:g} s (must be > 0)")

    def block(offset: int, width: int) -> list[bytes]:
        start = offset * ns
        return [sig[start + i * width : start + (i + 1) * width] for i in range(ns)]

    labels = [b.decode("latin-1").strip() for b in block(0, 16)]
    units = [b.decode("latin-1").strip() for b in block(16 + 80, 8)]
    shown = ["".join(c if c.isprintable() else "?" for c in lab) for lab in labels]  # no control codes in errors
    where = [f"signal {i + 1} ({lab or 'unlabelled'})" for i, lab in enumerate(shown)]
    spr = tuple(
        _int_field(path, b, f"samples per record of {w}") for b, w in zip(block(16 + 80 + 8 * 5 + 80, 8), where)
    )
    bad = [w for n, w in zip(spr, where) if n < 0]
    if bad:
        raise DataError(path, f"corrupt header: negative samples per record of {bad[0]}")
    ranges = zip(block(16 + 80 + 8, 8), block(16 + 80 + 16, 8), block(16 + 80 + 24, 8), block(16 + 80 + 32, 8))
    for (pmin, pmax, dmin, dmax), w, lab in zip(ranges, where, labels):
        if lab.lower() in ANNOTATION_LABELS:
            continue  # text, not samples: its ranges are never used
        lo, hi = _float_field(path, pmin, f"physical minimum of {w}"), _float_field(path, pmax, f"physical maximum of {w}")
        dlo, dhi = _int_field(path, dmin, f"digital minimum of {w}"), _int_field(path, dmax, f"digital maximum of {w}")
        if dhi <= dlo:
            raise DataError(path, f"corrupt header: digital range [{dlo}, {dhi}] of {w} is empty")
        if hi == lo:
            raise DataError(path, f"corrupt header: physical range [{lo:g}, {hi:g}] of {w} is empty")
    record_bytes = sum(spr) * (3 if is_bdf else 2)
    if record_bytes == 0:
        raise DataError(path, "corrupt header: every signal has 0 samples per record (no data)")
    n_whole, rest = divmod(size - header_bytes, record_bytes)
    if n_records == -1:  # unknown (a recording that was not closed): what the file holds
        if n_whole == 0:
            raise DataError(path, "holds no complete data record")
        if rest:
            logger.warning("%s: the last data record is incomplete (%d of %d bytes): ignored", path, rest, record_bytes)
        n_records = n_whole
    elif n_whole < n_records:
        raise DataError(
            path,
            f"truncated: the header declares {n_records} data records of {record_seconds:g} s, "
            f"the file holds {n_whole}" + (f" and {rest} bytes of one more" if rest else ""),
        )
    elif size - header_bytes > n_records * record_bytes:
        logger.warning("%s: %d bytes after the last of the %d data records: ignored",
                       path, size - header_bytes - n_records * record_bytes, n_records)
    return BdfHeader(tuple(labels), tuple(units), spr, n_records, record_seconds, is_bdf, header_bytes)
