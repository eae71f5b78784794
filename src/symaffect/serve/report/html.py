"""The report as one self-contained HTML page, rendered from ``templates/report.html.j2``.

The page loads nothing: the CSS is inline and the figures are inline PNGs (``data:`` URIs).
The template environment escapes every value (track names and pseudonyms are user input).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path

import jinja2
from matplotlib.figure import Figure

from symaffect.serve.report.data import CAVEAT, CONFIDENCE_EXPLAINED, ReportData, provenance_rows
from symaffect.serve.report.figures import report_figures
from symaffect.serve.report.formatting import (
    NOISE_POINTS,
    baseline_sentence,
    fmt_clock,
    fmt_dur,
    fmt_when,
    ratings_table,
    segment_table,
    wall_clock_text,
)
from symaffect.spec import RATING_COLUMNS

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE = "report.html.j2"
MAX_GAPS_LISTED = 20

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def png_data_uri(fig: Figure) -> str:
    """``fig`` as an inline PNG (``data:image/png;base64,...``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page (inline PNG figures, inline CSS).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    str
    """
    figures = {
        name: {"number": i, "title": f.title, "caption": f.caption, "src": png_data_uri(f.figure())}
        for i, (name, f) in enumerate(report_figures(data).items(), 1)
    }
    return _ENV.get_template(TEMPLATE).render(
        session=data.session,
        started=fmt_when(data.session.started_at),
        duration=fmt_dur(data.duration_s),
        wall_clock=wall_clock_text(data),
        confidence_explained=CONFIDENCE_EXPLAINED,
        n_predictions=len(data.series),
        caveat=CAVEAT,
        summary=data.summary,
        figures=figures,
        baseline=baseline_sentence(data.baseline) if data.baseline is not None else None,
        ratings=RATING_COLUMNS,
        rows=segment_table(data.summaries),
        rating_rows=ratings_table(data.summaries),
        models=data.models,
        n_rated=data.n_rated,
        noise=f"{NOISE_POINTS:g}",
        quality_notes=data.quality.notes,
        gaps=[f"{fmt_clock(a)}–{fmt_clock(b)}" for a, b in data.quality.gaps[:MAX_GAPS_LISTED]],
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        provenance=provenance_rows(data.provenance),
    )
