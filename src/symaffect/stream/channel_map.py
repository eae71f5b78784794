"""Channel maps: a recording's channel names -> the model's (DEAP) channel names.

A map is a small YAML file::

    name: neurokit
    identity: none          # all | eeg | none: DEAP names (any case) map to themselves
    channels:               # pattern -> DEAP channel name; first match wins
      EDA: GSR
      PPG*: BVP
    ignore:                 # pattern -> note (logged, kept in Recording.notes)
      ECG: "no DEAP channel"
    prefixes: [EEG, POL]    # leading words removed before a second try ("EEG Fp1" -> "Fp1")
    references: [REF, LE]   # trailing reference labels removed ("Fp1-REF" -> "Fp1")

Patterns are shell-style (``fnmatch``) and case-insensitive. Rules are tried in order:
``channels`` then the identity rule on the name as given; if neither matches, the same
two on the *bare* name (:meth:`ChannelMap.bare`: trailing dots, one leading ``prefixes``
word followed by a space, ``_`` or ``:``, and one trailing ``-``/``/``/``_``/space +
``references`` label removed, e.g. ``EEG FP1-LE`` -> ``FP1``, ``POL T3`` -> ``T3``,
``Fp1-A1`` -> ``Fp1``); then ``ignore`` (name as given, then bare). A recording channel
that matches nothing is ignored with a note. Two recording channels mapped to the same
DEAP channel: the first keeps it, the second is ignored with a note. Prefix and
reference words are plain words (not patterns), case-insensitive; a map without them
strips nothing (only trailing dots).

:meth:`ChannelMap.match` returns a :class:`MatchReport` (which name went to which DEAP
channel and by which rule, which were left out and why, which DEAP channels no input
gave); :meth:`ChannelMap.resolve` is its ``(mapping, notes)`` short form.

Shipped maps (by name): ``default`` (identity for all 40 DEAP names, the old 10-20
names T3/T4/T5/T6 -> T7/T8/P7/P8, common peripheral sensor names, and the usual EDF /
MNE prefixes and reference labels), ``deap``, ``eeg`` (EEG names only, same aliases and
stripping), ``neurokit``, ``biosppy``; see ``stream/maps/*.yaml``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
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
class ChannelMatch:
    """How one recording channel was matched.

    Parameters
    ----------
    source : str
        The recording's channel name.
    target : str or None
        DEAP channel name, or None when the channel was left out.
    how : str
        The rule: ``"identity"``, ``"rule 'PPG*'"``, either followed by
        ``" after stripping to 'Fp1'"`` when the bare name matched; or, for a channel
        left out, why (the note's text after ``"<source>: "``).
    """

    source: str
    target: str | None
    how: str

    @property
    def note(self) -> str:
        """One line ``"<source>: <why>"`` (the form of :attr:`Recording.notes`)."""
        return f"{self.source}: {self.how}"


@dataclass(frozen=True)
class MatchReport:
    """What a channel map did with a recording's channel names.

    Parameters
    ----------
    map_name : str
    entries : tuple of ChannelMatch
        One per input name, in input order.
    """

    map_name: str
    entries: tuple[ChannelMatch, ...] = ()

    @property
    def mapping(self) -> dict[str, str]:
        """Recording name -> DEAP name, in recording order."""
        return {e.source: e.target for e in self.entries if e.target is not None}

    @property
    def matched(self) -> list[ChannelMatch]:
        return [e for e in self.entries if e.target is not None]

    @property
    def left_out(self) -> list[ChannelMatch]:
        return [e for e in self.entries if e.target is None]

    @property
    def notes(self) -> list[str]:
        """``"<source>: <why>"`` for each channel left out."""
        return [e.note for e in self.left_out]

    @property
    def missing(self) -> tuple[str, ...]:
        """DEAP channels no recording channel gave, in DEAP order."""
        got = set(self.mapping.values())
        return tuple(c for c in DEAP_CHANNELS if c not in got)

    def to_dict(self) -> dict:
        """JSON-ready: ``map``, ``matched`` ``[{source, target, how}]``, ``left_out``
        ``[{source, why}]`` and ``missing`` (DEAP names)."""
        return {
            "map": self.map_name,
            "matched": [{"source": e.source, "target": e.target, "how": e.how} for e in self.matched],
            "left_out": [{"source": e.source, "why": e.how} for e in self.left_out],
            "missing": list(self.missing),
        }

    def summary(self) -> str:
        """One line: counts, the renamed channels and the left-out ones."""
        renamed = [f"{e.source}->{e.target}" for e in self.matched if e.source != e.target]
        parts = [f"channel map {self.map_name!r}: {len(self.matched)} of {len(self.entries)} channels matched"]
        if renamed:
            parts.append("renamed " + ", ".join(renamed[:48]) + (" ..." if len(renamed) > 48 else ""))
        if self.left_out:
            parts.append("left out " + "; ".join(self.notes))
        if self.missing:
            parts.append("no input for " + " ".join(self.missing))
        return "; ".join(parts)

    def __str__(self) -> str:
        lines = [f"channel map {self.map_name!r}: {len(self.matched)} of {len(self.entries)} channels matched"]
        lines += [f"  {e.source} -> {e.target} ({e.how})" for e in self.matched]
        lines += [f"  {e.source}: left out ({e.how})" for e in self.left_out]
        if self.missing:
            lines.append(f"  no input for: {' '.join(self.missing)}")
        return "\n".join(lines)


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
    prefixes : tuple of str
        Leading words removed (with the space, ``_`` or ``:`` after them) for the second
        try, e.g. ``EEG``, ``POL``.
    references : tuple of str
        Trailing reference labels removed (with the ``-``, ``/``, ``_`` or space before
        them) for the second try, e.g. ``REF``, ``LE``, ``A1``.
    """

    name: str
    channels: tuple[tuple[str, str], ...] = ()
    identity: str = "all"
    ignore: tuple[tuple[str, str], ...] = field(default=())
    prefixes: tuple[str, ...] = ()
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.identity not in IDENTITY_SETS:
            raise DataError("identity", f"must be one of {sorted(IDENTITY_SETS)}, got {self.identity!r}")
        bad = [t for _, t in self.channels if t not in DEAP_CHANNELS]
        if bad:
            raise DataError(f"channel map {self.name}", f"unknown target channel(s) {bad}; targets are DEAP names")
        words = [w for w in self.prefixes + self.references if not w.strip()]
        if words:
            raise DataError(f"channel map {self.name}", "empty word in 'prefixes' or 'references'")

    def bare(self, name: str) -> str:
        """The name without trailing dots, one prefix word and one reference label.

        ``"EEG Fp1-REF"`` -> ``"Fp1"``; a name that would become empty is kept.
        """
        s = name.strip().rstrip(".").strip() or name.strip()
        if self.prefixes:
            alt = "|".join(re.escape(w.strip()) for w in self.prefixes)
            m = re.fullmatch(rf"(?:{alt})[\s_:]+(\S.*)", s, flags=re.IGNORECASE)
            s = m.group(1).strip() if m else s
        if self.references:
            alt = "|".join(re.escape(w.strip()) for w in self.references)
            m = re.fullmatch(rf"(.*?\S)\s*[-/_ ]\s*(?:{alt})", s, flags=re.IGNORECASE)
            s = m.group(1) if m else s
        return s

    def _target(self, low: str, ident: dict[str, str]) -> tuple[str | None, str]:
        for p, t in self.channels:
            if fnmatch.fnmatchcase(low, p.lower()):
                return t, f"rule {p!r}"
        if low in ident:
            return ident[low], "identity"
        return None, ""

    def match(self, names: Sequence[str]) -> MatchReport:
        """Map recording channel names, saying how each was matched or why it was left out.

        Parameters
        ----------
        names : sequence of str
            The recording's channel names.

        Returns
        -------
        MatchReport
        """
        ident = {n.lower(): n for n in IDENTITY_SETS[self.identity]}
        entries: list[ChannelMatch] = []
        taken: dict[str, str] = {}
        for src in names:
            low = src.strip().lower()
            bare = self.bare(src)
            target, how = self._target(low, ident)
            if target is None and bare.lower() != low:
                target, how = self._target(bare.lower(), ident)
                how = f"{how} after stripping to {bare!r}" if target else ""
            if target is None:
                note = next((n for key in dict.fromkeys((low, bare.lower()))
                             for p, n in self.ignore if fnmatch.fnmatchcase(key, p.lower())), None)
                entries.append(ChannelMatch(src, None, note or f"not in channel map {self.name!r}; ignored"))
                continue
            if target in taken:
                entries.append(ChannelMatch(src, None, f"{target} already taken by {taken[target]}; ignored"))
                continue
            taken[target] = src
            entries.append(ChannelMatch(src, target, how))
        return MatchReport(self.name, tuple(entries))

    def resolve(self, names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """Map recording channel names (the short form of :meth:`match`).

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
        report = self.match(names)
        return report.mapping, report.notes


def _from_dict(d: object, source: str) -> ChannelMap:
    if not isinstance(d, dict):
        raise DataError(source, "a channel map must be a YAML mapping with 'channels'")
    unknown = set(d) - {"name", "identity", "channels", "ignore", "prefixes", "references"}
    if unknown:
        raise DataError(source, f"unknown key(s) {sorted(unknown)};"
                        " allowed: name, identity, channels, ignore, prefixes, references")
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
    words = {}
    for key in ("prefixes", "references"):
        v = d.get(key) or []
        if not isinstance(v, list) or not all(isinstance(w, scalars) for w in v):
            raise DataError(source, f"'{key}' must be a list of words")
        words[key] = tuple(str(w) for w in v)
    return ChannelMap(
        name=str(d.get("name", Path(source).stem)),
        channels=tuple((str(k), str(v)) for k, v in channels.items()),
        identity=str(d.get("identity", "none")),
        ignore=tuple((str(k), str(v)) for k, v in ignore.items()),
        **words,
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

