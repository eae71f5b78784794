"""braindecode's ``ShallowFBCSPNet`` as a symaffect model (needs ``pip install braindecode``)."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from symaffect_shallow.adapter import PlainNetAffect


class BraindecodeShallow(PlainNetAffect):
    """``braindecode.models.ShallowFBCSPNet`` per modality, then symaffect's fusion and heads.

    Parameters
    ----------
    n_filters_time, n_filters_spat, drop_prob
        Of ``ShallowFBCSPNet``.
    **kw
        ``dim``, ``modalities``, ``task_set``, ``n_times`` and the fusion's parameters.
    """

    test_kwargs: ClassVar[dict] = {"n_times": 256, "dim": 8, "n_filters_time": 4, "n_filters_spat": 4, "n_heads": 2}

    def __init__(self, *, n_filters_time: int = 40, n_filters_spat: int = 40, drop_prob: float = 0.5, **kw) -> None:
        self._net_kw = {"n_filters_time": n_filters_time, "n_filters_spat": n_filters_spat, "drop_prob": drop_prob}
        super().__init__(**kw)

    def make_net(self, n_chans: int, n_outputs: int, n_times: int) -> nn.Module:
        from braindecode.models import ShallowFBCSPNet

        return ShallowFBCSPNet(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                               final_conv_length="auto", **self._net_kw)
