"""A shallow filter-bank ConvNet (after Schirrmeister et al. 2017) and its symaffect model."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from symaffect_shallow.adapter import PlainNetAffect


class ShallowNet(nn.Module):
    """Shallow ConvNet: temporal conv -> spatial conv -> square -> mean pool -> log -> linear.

    The layout of braindecode's ``ShallowFBCSPNet`` (a learned filter bank followed by
    log band power), written here so that the example needs no braindecode.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        The signal contract: ``(B, n_chans, n_times) -> (B, n_outputs)``.
    n_filters : int
        Temporal and spatial filters (default 40).
    filter_time_length : int
        Temporal kernel in samples (default 25; shortened to fit ``n_times``).
    pool_time_length, pool_time_stride : int
        Mean-pool window and stride in samples (default 75 and 15; shortened to fit).
    drop_prob : float
        Dropout before the classifier (default 0.5).

    Shape
    -----
    x : (B, C, T) -> (B, n_outputs)

    References
    ----------
    Schirrmeister et al. (2017), "Deep learning with convolutional neural networks for
    EEG decoding and visualization", Human Brain Mapping 38(11).
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        *,
        n_filters: int = 40,
        filter_time_length: int = 25,
        pool_time_length: int = 75,
        pool_time_stride: int = 15,
        drop_prob: float = 0.5,
    ) -> None:
        super().__init__()
        k = min(filter_time_length, n_times)
        pool = min(pool_time_length, n_times - k + 1)
        stride = min(pool_time_stride, pool)
        self.temporal = nn.Conv2d(1, n_filters, (1, k))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1), bias=False)
        self.norm = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, pool), stride=(1, stride))
        self.drop = nn.Dropout(drop_prob)
        n_pooled = (n_times - k + 1 - pool) // stride + 1
        self.final_layer = nn.Linear(n_filters * n_pooled, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        z = self.temporal(x.unsqueeze(1))  # (B, 1, C, T) -> (B, F, C, T')
        z = self.norm(self.spatial(z))  # (B, F, 1, T')
        z = torch.log(torch.clamp(self.pool(z * z), min=1e-6))  # (B, F, 1, P): log band power
        return self.final_layer(self.drop(z.flatten(1)))  # (B, n_outputs)


class ShallowAffect(PlainNetAffect):
    """:class:`ShallowNet` per modality, then symaffect's fusion and task heads.

    Parameters
    ----------
    n_filters, filter_time_length, pool_time_length, pool_time_stride, drop_prob
        Of :class:`ShallowNet`.
    dim : int
        Token width D (:class:`~symaffect_shallow.adapter.PlainNetAffect`).
    **kw
        ``modalities``, ``task_set``, ``n_times`` and the fusion's parameters.

    Shape
    -----
    x : {modality: (B, C, T)}, mask : (B, M) bool -> {task: (B, n_outputs)}
    """

    test_kwargs: ClassVar[dict] = {"n_times": 64, "dim": 8, "n_filters": 4, "n_heads": 2}
    """Tiny build for tests (read by :func:`symaffect.models.registry.test_kwargs`)."""

    def __init__(
        self,
        *,
        n_filters: int = 40,
        filter_time_length: int = 25,
        pool_time_length: int = 75,
        pool_time_stride: int = 15,
        drop_prob: float = 0.5,
        **kw,
    ) -> None:
        self._net_kw = {"n_filters": n_filters, "filter_time_length": filter_time_length,
                        "pool_time_length": pool_time_length, "pool_time_stride": pool_time_stride,
                        "drop_prob": drop_prob}  # before super(): it calls make_encoder
        super().__init__(**kw)

    def make_net(self, n_chans: int, n_outputs: int, n_times: int) -> nn.Module:
        return ShallowNet(n_chans, n_outputs, n_times, **self._net_kw)
