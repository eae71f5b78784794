"""Session reports: what a music therapist reads after a monitored session.

``symaffect report SESSION_ID`` reads one session from the SQLite session store
(:class:`symaffect.stream.store.SessionStore`) and writes a self-contained HTML page, and
optionally an A4 PDF of the same content; the dashboard serves the HTML page at
``/sessions/{id}/report``.

* :mod:`~symaffect.serve.report.data`: loading and statistics (:class:`ReportData`; the
  definitions of baseline, trend, quadrant shares and gaps are in its docstring).
* :mod:`~symaffect.serve.report.figures`: the matplotlib figures and their captions.
* :mod:`~symaffect.serve.report.html`: the page, from ``templates/report.html.j2``.
* :mod:`~symaffect.serve.report.pdf`: the PDF.
"""

from __future__ import annotations

import logging
from pathlib import Path

from symaffect._io import write_text
from symaffect.serve.report.data import (
    CAVEAT,
    CONFIDENCE_EXPLAINED,
    LOW_CONFIDENCE,
    ReportData,
    build_report_data,
    compute_baseline,
    load_report_data,
    session_counts,
)
from symaffect.serve.report.html import render_html
from symaffect.serve.report.pdf import write_pdf

log = logging.getLogger(__name__)

__all__ = [
    "CAVEAT",
    "CONFIDENCE_EXPLAINED",
    "LOW_CONFIDENCE",
    "ReportData",
    "build_report_data",
    "compute_baseline",
    "load_report_data",
    "render_html",
    "session_counts",
    "write_pdf",
    "write_report",
]


def write_report(
    db_path: str | Path, session_id: int, out: str | Path | None = None, *, pdf: bool = False
) -> list[Path]:
    """Render the report of one session to HTML (and PDF beside it when ``pdf``).

    Parameters
    ----------
    db_path : str or Path
        The session store (SQLite file).
    session_id : int
    out : str or Path, optional
        HTML path; default ``session-<id>-report.html`` in the working directory.
    pdf : bool
        Also write ``<out>.pdf``.

    Returns
    -------
    list of Path
        The files written.
    """
    data = load_report_data(db_path, session_id)
    out = Path(out) if out is not None else Path(f"session-{int(session_id)}-report.html")
    write_text(out, render_html(data))
    written = [out]
    if pdf:
        written.append(write_pdf(data, out.with_suffix(".pdf")))
    log.info("wrote %s", ", ".join(map(str, written)))
    return written
