"""Colours shared by the live dashboard and the session report."""

from __future__ import annotations

from symaffect.spec import QUADRANT_CODES, RATING_COLUMNS

RATING_COLORS: dict[str, str] = dict(zip(RATING_COLUMNS, ("#1b7837", "#c2410c", "#2b5c9e")))
"""One colour per rating of :data:`symaffect.spec.RATING_COLUMNS`."""

QUADRANT_COLORS: dict[str, str] = dict(
    zip(QUADRANT_CODES, ("#e6a11a", "#c0392b", "#4a6fa5", "#3e9b6a", "#9a9a9a"))
)
"""One colour per code of :data:`symaffect.spec.QUADRANT_CODES` (Neutral is grey)."""
