"""Numbers, times and the segment table as the report prints them (HTML and PDF alike)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from symaffect.spec import RATING_COLUMNS

NOISE_POINTS = 0.5
"""A change from baseline smaller than this is printed greyed (within the model's noise)."""


def fmt_dur(s: float) -> str:
    """A duration in words: ``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    s = max(float(s), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s" if sec else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_clock(s: float) -> str:
    """Stream time as a clock: ``"4:59"``, ``"1:02:03"``."""
    m, sec = divmod(round(max(s, 0.0)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_pct(frac: float) -> str:
    """A fraction as a whole percentage (``"8 %"``) that never rounds a part to all or none:
    ``"<1 %"`` above 0 and ``">99 %"`` below 1."""
    pct = 100 * float(frac)
    if 0 < pct < 0.5:
        return "<1 %"
    if 99.5 <= pct < 100:
        return ">99 %"
    return f"{pct:.0f} %"


MODALITY_LABELS = {"eeg": "EEG", "eog": "EOG"}
"""How modality names are printed in sentences (others as they are)."""


def modality_label(name: str) -> str:
    """A modality's name for a sentence: ``"EEG"``, ``"EOG"``, ``"peripheral"``."""
    return MODALITY_LABELS.get(name, name)


def fmt_num(x: float | None, signed: bool = False, digits: int = 1) -> str:
    """``x`` rounded to ``digits`` (``"—"`` when missing or not finite; never ``"-0.0"``)."""
    if x is None or not math.isfinite(x):
        return "—"
    x = round(float(x), digits) + 0.0
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_when(ts: float | None) -> str:
    """A wall-clock Unix time in local time, ``"YYYY-MM-DD HH:MM"`` (``"—"`` when None)."""
    if ts is None:
        return "—"
    try:
        return dt.datetime.fromtimestamp(ts, tz=dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):  # a finite time beyond the calendar
        return str(ts)


def change_kind(x: float) -> str:
    """How a change from baseline is shown: ``"up"``, ``"down"``, ``"muted"`` (within
    :data:`NOISE_POINTS`) or ``""`` (missing)."""
    if not math.isfinite(x):
        return ""
    if abs(x) < NOISE_POINTS:
        return "muted"
    return "up" if x > 0 else "down"


@dataclass(frozen=True)
class Cell:
    """One cell of the segment table: its text and how to show it (:func:`change_kind`)."""

    text: str
    kind: str = ""


def segment_table(summaries: Sequence) -> list[list[Cell]]:
    """The segment table's rows: track, time, n, then mean / change / trend per rating.

    Parameters
    ----------
    summaries : sequence of SegmentSummary

    Returns
    -------
    list of list of Cell
        ``3 + 3 * len(RATING_COLUMNS)`` cells per row, in the order of
        :data:`symaffect.spec.RATING_COLUMNS`.
    """
    rows = []
    for s in summaries:
        end = fmt_clock(s.end) + ("" if s.segment.end is not None else " (open)")
        row = [Cell(s.segment.track), Cell(f"{fmt_clock(s.segment.start)}–{end}"), Cell(str(s.n))]
        for k in RATING_COLUMNS:
            row += [
                Cell(fmt_num(s.means[k])),
                Cell(fmt_num(s.changes[k], signed=True), change_kind(s.changes[k])),
                Cell(fmt_num(s.slopes_per_min[k], signed=True, digits=2)),
            ]
        rows.append(row)
    return rows


def ratings_table(summaries: Sequence) -> list[list[Cell]]:
    """The listener's ratings beside the model's estimates: track, time, then per rating the
    listener's own rating and the model's segment mean, then which model estimated it.

    Parameters
    ----------
    summaries : sequence of SegmentSummary

    Returns
    -------
    list of list of Cell
        ``2 + 2 * len(RATING_COLUMNS) + 1`` cells per row; a rating not given is ``"—"``.
    """
    rows = []
    for s in summaries:
        end = fmt_clock(s.end) + ("" if s.segment.end is not None else " (open)")
        row = [Cell(s.segment.track), Cell(f"{fmt_clock(s.segment.start)}–{end}")]
        for k in RATING_COLUMNS:
            row += [Cell(fmt_num(s.own.get(k))), Cell(fmt_num(s.means[k]))]
        row.append(Cell(s.model or "—"))
        rows.append(row)
    return rows


def baseline_sentence(baseline) -> str:
    """One sentence: how the baseline was chosen, its span, size and mean ratings.

    Parameters
    ----------
    baseline : Baseline
    """
    b = baseline
    means = ", ".join(
        f"{'mean ' if i == 0 else ''}{k} {fmt_num(b.means[k])}" for i, k in enumerate(RATING_COLUMNS)
    )
    return f"Baseline: {b.rule} — {fmt_clock(b.start)}–{fmt_clock(b.end)}, {b.n} predictions; {means}."


def wall_clock_text(data) -> str | None:
    """``"1 min 35 s (replayed at 2x)"`` for a session replayed at a speed other than 1, else
    None (the report's duration is always stream time; this is the wall clock beside it).

    Parameters
    ----------
    data : ReportData
    """
    if data.wall_s is None or data.replay_speed is None:
        return None
    return f"{fmt_dur(data.wall_s)} (replayed at {data.replay_speed:g}x)"
