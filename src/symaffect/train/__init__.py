"""symaffect.train: configs, the Lightning module and data module, runs.

* :mod:`symaffect.train.config` — :class:`~symaffect.train.config.RunConfig` (frozen
  dataclasses <-> YAML) and the ``"paper"`` / ``"quick"`` presets.
* :mod:`symaffect.train.module` — :class:`~symaffect.train.module.AffectModule`, any
  registered model + the multi-task loss + Adam.
* :mod:`symaffect.train.datamodule` — one fold's loaders (seeded, DDP-aware order).
* :mod:`symaffect.train.run` — :func:`~symaffect.train.run.train_run` and
  :func:`~symaffect.train.run.evaluate_run` (run folders, ``metrics.json``).
* :mod:`symaffect.train.xgb` — the XGBoost baseline on per-window spectral features.

Nothing heavy is imported here.
"""
