"""The report as a PDF: every page A4 portrait (matplotlib ``PdfPages``).

The text pages carry the same sections as the HTML page (header, caveat, summary, the
segment table, quality notes) and flow onto as many pages as they need; the segment table
is a real table (:class:`matplotlib.table.Table`) that repeats its header on every page it
spans. The last page holds the figures, each with its number, title and caption.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.table import Table

from symaffect._io import atomic_write
from symaffect.serve.report.data import CAVEAT, CONFIDENCE_EXPLAINED, ReportData, provenance_rows
from symaffect.serve.report.figures import ReportFigure, report_figures
from symaffect.serve.report.formatting import (
    NOISE_POINTS,
    Cell,
    baseline_sentence,
    fmt_clock,
    fmt_dur,
    fmt_when,
    ratings_table,
    segment_table,
    wall_clock_text,
)
from symaffect.spec import RATING_COLUMNS

A4_IN = (210 / 25.4, 297 / 25.4)
"""A4 portrait (width, height) in inches: 595.3 x 841.9 PDF points."""
MARGIN_IN = 0.6
TEXT_W_IN = A4_IN[0] - 2 * MARGIN_IN
CHARS_AT_10PT = 92
"""Characters of a text line at 10 pt across :data:`TEXT_W_IN` (DejaVu Sans)."""
LINE_SPACING = 1.45
TEXT_COLOR = "#222222"
NOTE_COLOR = "#555555"
KIND_COLORS = {"up": "#1b7837", "down": "#b2182b", "muted": "#888888", "": TEXT_COLOR}
"""Text colour of a table cell by :func:`~symaffect.serve.report.formatting.change_kind`."""
TABLE_FONT_PT = 7.5
TRACK_CHARS = 30
"""Longer track names are cut in the PDF table (the HTML shows them whole)."""
SEGMENT_COL_IN = (1.55, 1.15, 0.4) + (0.44,) * (3 * len(RATING_COLUMNS))
"""Column widths of the segment table: track, time, n, then mean / change / trend per rating."""
RATINGS_COL_IN = (1.45,) + (0.85,) * len(RATING_COLUMNS) + (3.05,)
"""Column widths of the listener's-ratings table: track, ``own / model`` per rating, which model."""
MODEL_CHARS = 56
"""Longer model descriptions are cut in the PDF table (the line above the table has it whole)."""
FIGURE_EXTRA_IN = 1.0
"""Height added to each figure on the figure page for its title and caption."""
CAPTION_CHARS = 125


class _Flow:
    """Text and tables laid out top to bottom over as many A4 pages as they need.

    Parameters
    ----------
    pdf : PdfPages
        Each finished page is saved into it.
    """

    def __init__(self, pdf: PdfPages):
        self._pdf = pdf
        self._page: Figure | None = None
        self._y = 0.0  # inches from the bottom of the page

    def _room(self, height: float) -> Figure:
        """The current page, or a new one when less than ``height`` inches are left."""
        if self._page is not None and self._y - height < MARGIN_IN:
            self.close()
        if self._page is None:
            self._page = Figure(figsize=A4_IN)
            self._y = A4_IN[1] - MARGIN_IN
        return self._page

    def close(self) -> None:
        """Save the current page (if any)."""
        if self._page is not None:
            self._pdf.savefig(self._page)
            self._page = None

    def space(self, height: float) -> None:
        """Leave ``height`` inches blank."""
        self._room(0.0)
        self._y -= height

    def text(self, txt: str, size: float = 10.0, *, weight: str = "normal", color: str = TEXT_COLOR) -> None:
        """A paragraph, wrapped to the text width."""
        line_h = size * LINE_SPACING / 72
        for line in textwrap.wrap(txt, int(CHARS_AT_10PT * 10 / size)) or [""]:
            page = self._room(line_h)
            page.text(MARGIN_IN / A4_IN[0], self._y / A4_IN[1], line, fontsize=size, weight=weight,
                      color=color, va="top")
            self._y -= line_h

    def table(
        self, header: Sequence[Sequence[str]], rows: Sequence[Sequence[Cell]], widths: Sequence[float], *,
        wide_last: bool = False,
    ) -> None:
        """A table across the text width; it continues on the next page (header repeated).

        Parameters
        ----------
        header : sequence of sequence of str
            Header rows; the first of two is a group row (its labels centred).
        rows : sequence of sequence of Cell
        widths : sequence of float
            Relative column widths.
        wide_last : bool
            The last column is left-aligned text (cut at :data:`MODEL_CHARS`).
        """
        row_h = TABLE_FONT_PT * 2.0 / 72
        done = 0
        while True:
            page = self._room((len(header) + 1) * row_h)  # the header and at least one row
            fit = int((self._y - MARGIN_IN) / row_h) - len(header)
            part = rows[done:done + fit]
            _draw_table(page, header, part, widths, top=self._y, row_h=row_h, wide_last=wide_last)
            self._y -= row_h * (len(part) + len(header))
            done += len(part)
            if done >= len(rows):
                return
            self.close()


def _draw_table(
    page: Figure, header: Sequence[Sequence[str]], rows: Sequence[Sequence[Cell]], widths: Sequence[float], *,
    top: float, row_h: float, wide_last: bool = False,
) -> None:
    """Draw ``header`` and ``rows`` as a table whose top edge is ``top`` inches up the page
    (``wide_last``: the last column is left-aligned text, cut at :data:`MODEL_CHARS`)."""
    n_head = len(header)
    height = row_h * (len(rows) + n_head)
    ax = page.add_axes((MARGIN_IN / A4_IN[0], (top - height) / A4_IN[1], TEXT_W_IN / A4_IN[0], height / A4_IN[1]))
    ax.set_axis_off()
    table = Table(ax, bbox=(0, 0, 1, 1))
    total = sum(widths)
    for r, row in enumerate([*([Cell(h) for h in head] for head in header), *rows]):
        for c, (cell, w) in enumerate(zip(row, widths)):
            is_head = r < n_head
            last = c == len(widths) - 1 and wide_last
            limit = MODEL_CHARS if last else TRACK_CHARS
            text = cell.text if is_head or (c and not last) or len(cell.text) <= limit else cell.text[:limit - 1] + "…"
            loc = "center" if is_head and n_head > 1 and r == 0 else "left" if c == 0 or last else "right"
            mc = table.add_cell(r, c, w / total, 1.0, text=text, loc=loc,
                                facecolor="#f0f0f0" if is_head else "none",
                                edgecolor="#f0f0f0" if is_head else "#d0d0d0")
            mc.visible_edges = "closed" if is_head else "B"
            mc.set_linewidth(0.5)
            mc.get_text().set_color(KIND_COLORS[cell.kind])
            if is_head:
                mc.get_text().set_weight("bold")
    table.auto_set_font_size(False)
    table.set_fontsize(TABLE_FONT_PT)
    ax.add_table(table)


def figure_page(figures: Sequence[ReportFigure]) -> Figure:
    """One A4 page with ``figures`` stacked, each under its number and title, above its caption.

    Parameters
    ----------
    figures : sequence of ReportFigure

    Returns
    -------
    matplotlib.figure.Figure
    """
    rect = (MARGIN_IN / A4_IN[0], MARGIN_IN / A4_IN[1], TEXT_W_IN / A4_IN[0], 1 - 2 * MARGIN_IN / A4_IN[1])
    page = Figure(figsize=A4_IN, layout=ConstrainedLayoutEngine(rect=rect))
    heights = [TEXT_W_IN * f.size[1] / f.size[0] + FIGURE_EXTRA_IN for f in figures]
    subs = page.subfigures(len(figures), 1, height_ratios=heights, squeeze=False)[:, 0]
    for i, (f, sub) in enumerate(zip(figures, subs), 1):
        f.draw(sub)
        sub.suptitle(f"Figure {i}. {f.title}", x=0.0, ha="left", fontsize=10, weight="bold")
        caption = textwrap.fill(f.caption, CAPTION_CHARS, break_on_hyphens=False)
        sub.supxlabel(caption, x=0.0, ha="left", fontsize=8, color=NOTE_COLOR)
    return page


def write_pdf(data: ReportData, path: str | Path) -> Path:
    """Write the report as an A4 PDF: text pages, then a page of figures (when there are predictions).

    Parameters
    ----------
    data : ReportData
    path : str or Path

    Returns
    -------
    Path
    """
    path = Path(path)
    ses = data.session
    with atomic_write(path, "wb") as f, PdfPages(
        f, metadata={"Title": f"Session {ses.id} report", "Creator": "symaffect"}
    ) as pdf:
        flow = _Flow(pdf)
        flow.text(f"Session report: {ses.participant}", 16, weight="bold")
        flow.space(0.05)
        open_ = " (session still open)" if ses.ended_at is None else ""
        wall = wall_clock_text(data)
        flow.text(f"Session #{ses.id} · started {fmt_when(ses.started_at)} · {fmt_dur(data.duration_s)} of "
                  f"stream time{open_} · {len(data.series)} predictions")
        if wall:
            flow.text(f"Wall-clock length: {wall}")
        flow.text(f"Model: {ses.model} · estimates by: {data.models}")
        flow.space(0.12)
        flow.text("Please read: " + CAVEAT, 9, color="#7a5b00")
        flow.space(0.12)
        flow.text("Summary", 12, weight="bold")
        for line in data.summary:
            flow.text("• " + line)
        flow.space(0.05)
        flow.text(CONFIDENCE_EXPLAINED, 8, color=NOTE_COLOR)
        flow.space(0.12)
        flow.text("Music segments", 12, weight="bold")
        if data.baseline is not None:
            flow.text(baseline_sentence(data.baseline), 9)
        if data.summaries:
            flow.space(0.05)
            groups, columns = ["", "", ""], ["Track", "Time", "n"]
            for k in RATING_COLUMNS:  # the rating's name centred over its three columns
                groups += ["", k.capitalize(), ""]
                columns += ["mean", "Δ", "/min"]
            flow.table([groups, columns], segment_table(data.summaries), SEGMENT_COL_IN)
            flow.space(0.05)
            flow.text(
                f"Means on 1-9. Δ: segment mean minus baseline mean (greyed under {NOISE_POINTS:g} points: "
                "within the model's noise). /min: trend, the slope of a straight-line fit in rating points "
                "per minute (— when the segment has too few predictions).", 8, color=NOTE_COLOR,
            )
        else:
            flow.text("No music segments were marked in this session.", 9)
        if data.summaries:
            flow.space(0.12)
            flow.text("The listener's own ratings", 12, weight="bold")
            groups = [""] + [k.capitalize() for k in RATING_COLUMNS] + [""]
            columns = ["Track"] + ["own / model"] * len(RATING_COLUMNS) + ["Estimated by"]
            rows = [[row[0]] + [Cell(f"{row[i].text} / {row[i + 1].text}") for i in range(2, len(row) - 1, 2)]
                    + [row[-1]] for row in ratings_table(data.summaries)]
            flow.table([groups, columns], rows, RATINGS_COL_IN, wide_last=True)
            flow.space(0.05)
            flow.text(
                "Own: the listener's own rating of the segment (1-9), as entered during the session (— when "
                "not given). Model: the model's mean estimate over the segment. Estimated by: the base model, or "
                "one calibrated to this listener from their rated segments (K = how many); \"mixed\" names the "
                "time the model changed.", 8, color=NOTE_COLOR,
            )
        flow.space(0.12)
        flow.text("Signal quality", 12, weight="bold")
        for note in data.quality.notes:
            flow.text("• " + note, 9)
        if data.quality.gaps:
            flow.text("Gaps: " + ", ".join(f"{fmt_clock(a)}–{fmt_clock(b)}" for a, b in data.quality.gaps), 9)
        figures = list(report_figures(data).values())
        flow.space(0.2)
        flow.text(f"Generated by symaffect on {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M')}."
                  + (" Figures on the last page." if figures else ""), 8, color=NOTE_COLOR)
        for label, text in provenance_rows(data.provenance):
            flow.text(f"{label}: {text}", 8, color=NOTE_COLOR)
        flow.close()
        if figures:
            pdf.savefig(figure_page(figures))
    return path
