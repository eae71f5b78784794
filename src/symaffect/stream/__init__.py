"""symaffect.stream: recordings -> predictions, LSL replay/stream, signal quality, session store.

Import-light public API (no torch): :class:`SessionStore`, :func:`default_db_path`,
:class:`Prediction`. Heavier pieces live in their modules:
:mod:`symaffect.stream.recording` (``read_recording``, ``Recording``),
:mod:`symaffect.stream.channel_map` (``ChannelMap``, ``load_channel_map``),
:mod:`symaffect.stream.preprocess` (``StreamPreprocessor``),
:mod:`symaffect.stream.quality` (``check_window``),
:mod:`symaffect.stream.pipeline` (``Predictor``, ``load_run``, ``predict_recording``),
:mod:`symaffect.stream.session` (``LiveSession``: one live session, source-agnostic),
:mod:`symaffect.stream.lsl` (``replay``, ``run_stream``, ``LslConnection``),
:mod:`symaffect.stream.calibrate` (a listener's calibration from rated segments or a
recording's ratings file).
This package never imports :mod:`symaffect.train`. Quadrant codes and the Neutral rule
are :data:`symaffect.spec.QUADRANT_CODES` / :class:`symaffect.spec.QuadrantRule`.
"""

from symaffect.stream.prediction import Prediction, expected_rating
from symaffect.stream.store import SCHEMA_VERSION, SessionStore, default_db_path

__all__ = [
    "SCHEMA_VERSION",
    "Prediction",
    "SessionStore",
    "default_db_path",
    "expected_rating",
]
