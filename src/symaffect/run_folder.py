"""The run folder: one object that owns its file names, its paths and their loading.

Layout (training writes it, :mod:`symaffect.eval.scoring` adds the scores)::

    RUN_DIR/
      config.yaml              the RunConfig                                  (train)
      splits.json              subject ids (and trials / windows) of every fold (train)
      model.pt                 best model of the first fold and seed, loadable
                               without the trainer; absent for xgboost          (train)
      metrics.json             everything measured                             (eval)
      fold<k>-seed<s>/
        checkpoints/best.ckpt  Lightning checkpoint, lowest monitored val loss  (train)
        checkpoints/last.ckpt  end of the latest epoch (a killed run resumes)   (train)
        logs/version_N/        CSVLogger metrics.csv, hparams.yaml               (train)
        learning_curves.png    loss and accuracy per epoch                      (train)
        xgboost/               (xgboost only) one booster per task              (train)
        fit.json               what training did (best epoch, checkpoint, ...);
                               its presence marks the fold/seed finished        (train)
        result.json            the fold/seed's test report                      (eval)
        predictions.npz        per test window: subject, trial, start,
                               true_<task>, pred_<task>                         (eval)

Every path stored inside the folder (``fit.json``, ``result.json``, ``metrics.json``) is
relative to the run folder, so a folder moved or copied elsewhere resumes, scores and
serves as before. :meth:`RunFolder.resolve` refuses a stored path that leaves the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from symaffect._io import read_json, write_json
from symaffect.errors import DataError

CONFIG = "config.yaml"
SPLITS = "splits.json"
MODEL = "model.pt"
METRICS = "metrics.json"
FIT = "fit.json"
RESULT = "result.json"
PREDICTIONS = "predictions.npz"
CHECKPOINTS = "checkpoints"
CURVES = "learning_curves.png"
XGBOOST = "xgboost"


@dataclass(frozen=True)
class RunFolder:
    """A run folder (module docstring).

    Parameters
    ----------
    root : Path
        The folder; it need not exist yet (training creates it).
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------------ files
    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def splits(self) -> Path:
        return self.root / SPLITS

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    def fold_dir(self, fold: int, seed: int) -> Path:
        return self.root / f"fold{int(fold)}-seed{int(seed)}"

    def checkpoint_dir(self, fold: int, seed: int) -> Path:
        return self.fold_dir(fold, seed) / CHECKPOINTS

    def fit_path(self, fold: int, seed: int) -> Path:
        return self.fold_dir(fold, seed) / FIT

    def result_path(self, fold: int, seed: int) -> Path:
        return self.fold_dir(fold, seed) / RESULT

    def predictions_path(self, fold: int, seed: int) -> Path:
        return self.fold_dir(fold, seed) / PREDICTIONS

    def xgboost_dir(self, fold: int, seed: int) -> Path:
        return self.fold_dir(fold, seed) / XGBOOST

    # ------------------------------------------------------------------ paths
    def relative(self, path: Path) -> str:
        """``path`` as stored in the folder's JSON: relative to the run folder (POSIX)."""
        path = Path(path)
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise DataError(path, f"is outside the run folder {self.root}") from None

    def resolve(self, stored: str) -> Path:
        """A path stored in the folder's JSON, made absolute; it must stay inside the folder.

        Absolute paths written by older versions are accepted when they point inside the
        folder, or (for a moved folder) re-rooted by their part after the run folder's name.
        """
        if not isinstance(stored, str) or not stored:
            raise DataError(self.root, f"stored path {stored!r} is not a path")
        p = Path(stored)
        if p.is_absolute():
            p = self._rerooted(p)
        path = (self.root / p).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise DataError(path, f"is outside the run folder {self.root}; refusing to read it")
        return path

    def _rerooted(self, p: Path) -> Path:
        root = self.root.resolve()
        if p.is_relative_to(root):
            return p.relative_to(root)
        parts = p.parts
        for i in range(len(parts) - 1, -1, -1):  # .../<old run name>/fold0-seed0/...
            if parts[i].startswith("fold") and "-seed" in parts[i]:
                return Path(*parts[i:])
        raise DataError(p, f"absolute path outside the run folder {self.root}")

    # ------------------------------------------------------------------ state
    def is_run(self) -> bool:
        """True when the folder holds a run (``config.yaml`` and ``splits.json``)."""
        return self.config.is_file() and self.splits.is_file()

    def require(self) -> RunFolder:
        """``self``; DataError when the folder is not a run folder."""
        if not self.root.is_dir():
            raise DataError(self.root, "run folder not found")
        if not self.is_run():
            raise DataError(self.root, f"not a run folder ({CONFIG} or {SPLITS} missing)")
        return self

    def read_fit(self, fold: int, seed: int) -> dict | None:
        """The fold/seed's ``fit.json``, or None when training has not finished it."""
        path = self.fit_path(fold, seed)
        return read_json(path) if path.is_file() else None

    def write_fit(self, fold: int, seed: int, fit: dict) -> None:
        write_json(self.fit_path(fold, seed), fit)

    def read_metrics(self) -> dict:
        if not self.metrics.is_file():
            raise DataError(self.root, f"no {METRICS}: the run has not been scored")
        return read_json(self.metrics)


def model_file(path: str | Path) -> Path:
    """The model file of ``path``: ``model.pt`` inside a run folder, or the file itself.

    Raises
    ------
    DataError
        Neither a run folder with ``model.pt`` nor a file.
    """
    path = Path(path)
    if path.is_dir():
        f = RunFolder(path).model
        if not f.is_file():
            raise DataError(path, f"no {MODEL} in this folder (an xgboost run, or not a run folder)")
        return f
    if not path.is_file():
        raise DataError(path, "run folder or model file not found")
    return path
