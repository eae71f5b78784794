"""Channel maps: a recording's channel names -> the model's (DEAP) channel names.

A map is a small YAML file::

    name: neurokit
    identity: none          # all | eeg | none: DEAP names (any case) map to themselves
    channels:               # pattern -> DEAP channel name; first match wins
      EDA: GSR
      PPG*: BVP
    ignore:                 # pattern -> note (logged, kept in Recording.notes)
      ECG: "no DEAP channel"

Patterns are shell-style (``fnmatch``) and case-insensitive. Rules are tried in order:
``channels`` first, then the identity rule, then ``ignore``; a recording channel that
matches nothing is ignored with a note. Two recording channels mapped to the same DEAP
channel: the first keeps it, the second is ignored with a note.

Shipped maps (by name): ``default`` (identity for all 40 DEAP names + common sensor
aliases), ``deap``, ``eeg``, ``neurokit``, ``biosppy``; see ``stream/maps/*.yaml``.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from symaffect._io import read_text
from symaffect.errors import DataError
from symaffect.spec import DEAP_CHANNELS, EEG_CHANNELS

log = logging.getLogger(__name__)

MAX_MAP_BYTES = 1 << 20
"""Largest channel-map file read (a map is a few hundred bytes)."""
IDENTITY_SETS: dict[str, tuple[str, ...]] = {"all": DEAP_CHANNELS, "eeg": EEG_CHANNELS, "none": ()}


@dataclass(frozen=True)
class ChannelMap:
    """Rules mapping recording channel names to DEAP channel names.

    Parameters
    ----------
    name : str
    channels : tuple of (pattern, target)
        Ordered rules; ``target`` is a DEAP channel name.
    identity : {"all", "eeg", "none"}
        Which DEAP names map to themselves (case-insensitively).
    ignore : tuple of (pattern, note)
    """

    name: str
    channels: tuple[tuple[str, str], ...] = ()
    identity: str = "all"
    ignore: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.identity not in IDENTITY_SETS:
            raise DataError("identity", f"must be one of {sorted(IDENTITY_SETS)}, got {self.identity!r}")
        bad = [t for _, t in self.channels if t not in DEAP_CHANNELS]
        if bad:
            raise DataError(f"channel map {self.name}", f"unknown target channel(s) {bad}; targets are DEAP names")

    def resolve(self, names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """Map recording channel names.

        Parameters
        ----------
        names : sequence of str
            The recording's channel names.

        Returns
        -------
        mapping : dict of str to str
            Recording name -> DEAP name, in recording order, one recording channel per
            DEAP channel.
        notes : list of str
            Why each other channel was left out.
        """
        ident = {n.lower(): n for n in IDENTITY_SETS[self.identity]}
        mapping: dict[str, str] = {}
        notes: list[str] = []
        taken: dict[str, str] = {}
        for src in names:
            low = src.strip().lower()
            target = next((t for p, t in self.channels if fnmatch.fnmatchcase(low, p.lower())), None)
            if target is None:
                target = ident.get(low)
            if target is None:
                note = next((n for p, n in self.ignore if fnmatch.fnmatchcase(low, p.lower())), None)
                notes.append(f"{src}: {note or 'not in channel map ' + repr(self.name) + '; ignored'}")
                continue
            if target in taken:
                notes.append(f"{src}: {target} already taken by {taken[target]}; ignored")
                continue
            taken[target] = src
            mapping[src] = target
        return mapping, notes


def _from_dict(d: object, source: str) -> ChannelMap:
    if not isinstance(d, dict):
        raise DataError(source, "a channel map must be a YAML mapping with 'channels'")
    unknown = set(d) - {"name", "identity", "channels", "ignore"}
    if unknown:
        raise DataError(source, f"unknown key(s) {sorted(unknown)}; allowed: name, identity, channels, ignore")
    channels = d.get("channels") or {}
    ignore = d.get("ignore") or {}
    if not isinstance(channels, dict) or not isinstance(ignore, dict):
        raise DataError(source, "'channels' and 'ignore' must be mappings")
    scalars = (str, int, float)
    for key in ("name", "identity"):
        if key in d and not isinstance(d[key], scalars):
            raise DataError(source, f"'{key}' must be a single value")
    for key, rules in (("channels", channels), ("ignore", ignore)):
        if not all(isinstance(k, scalars) and isinstance(v, scalars) for k, v in rules.items()):
            raise DataError(source, f"'{key}' must map each pattern to a single value")
    return ChannelMap(
        name=str(d.get("name", Path(source).stem)),
        channels=tuple((str(k), str(v)) for k, v in channels.items()),
        identity=str(d.get("identity", "none")),
        ignore=tuple((str(k), str(v)) for k, v in ignore.items()),
    )


def shipped_maps() -> list[str]:
    """Names of the channel maps shipped with the package."""
    folder = resources.files("symaffect.stream") / "maps"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_channel_map(spec: str | Path | ChannelMap | None = None) -> ChannelMap:
    """Load a channel map: a YAML path, a shipped map's name, or None (``default``).

    Raises
    ------
    DataError
        Missing file, bad YAML, unknown keys or target names.
    """
    if isinstance(spec, ChannelMap):
        return spec
    spec = "default" if spec is None else spec
    path = Path(spec)
    if not path.is_file():
        if str(spec) in shipped_maps():
            text = (resources.files("symaffect.stream") / "maps" / f"{spec}.yaml").read_text()
            return _from_dict(yaml.safe_load(text), str(spec))
        raise DataError(spec, f"channel map not found (a YAML file or one of {shipped_maps()})")
    if path.stat().st_size > MAX_MAP_BYTES:
        raise DataError(path, f"larger than {MAX_MAP_BYTES // 1024} KB: not a channel map")
    try:
        d = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise DataError(path, f"not valid YAML ({(str(e).splitlines() or [''])[0]})") from None
    except RecursionError:
        raise DataError(path, "not a channel map (YAML nested too deeply)") from None
    return _from_dict(d, str(path))

