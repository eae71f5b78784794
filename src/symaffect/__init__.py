"""symaffect: affect and music-preference inference from multi-modal physiology."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("symaffect")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
