"""Shared helpers for the model tests."""

from __future__ import annotations

import pytest
import torch

from symaffect.models.registry import build_model, test_kwargs


def make_batch(model, batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random input ``{modality: (B, C, T)}`` for ``model``'s specs."""
    g = torch.Generator().manual_seed(seed)
    return {
        m: torch.randn(batch, s.n_chans, s.n_times, generator=g) for m, s in model.specs.items()
    }


def build_tiny(name: str, **overrides):
    kw = test_kwargs(name)
    if kw is None:
        pytest.fail(f"model {name!r} is registered without test_kwargs")
    return build_model(name, **{**kw, **overrides})
