"""The deep baselines of the paper's Table 3, registered in the model registry.

=================  ====================================================  ===========
registry name      encoder per modality (one token each)                 class
=================  ====================================================  ===========
``lstm``           patch embedding -> 2-layer LSTM -> last state         LSTMBaseline
``bilstm``         patch embedding -> 2-layer BiLSTM -> last states      BiLSTMBaseline
``gru``            patch embedding -> 2-layer GRU -> last state          GRUBaseline
``mlp``            patch mean / log-std per channel -> 2-layer MLP       MLPBaseline
``cnn1d``          3 conv blocks (conv, GroupNorm, GELU, max-pool) ->    CNN1DBaseline
                   mean over time
``cnn_lstm``       2 conv blocks -> LSTM -> last state                   CNNLSTMBaseline
``transformer``    patch embedding + sine positions -> 2 pre-norm        TransformerBaseline
                   Transformer blocks -> mean over patches
=================  ====================================================  ===========

"Same heads, same pipeline": every baseline is an
:class:`~symaffect.models.base.EncoderFusionModel` that differs from the paper's
:class:`~symaffect.models.symaffect.SymAffect` only in its per-modality encoder. All of
them start with the same per-channel instance norm as the DTFE (eq. 2; ``normalize=
False`` turns it off), emit one token of width ``dim`` per modality, and share the
paper's attention fusion (:class:`~symaffect.models.fusion.ModalityFusion`, eq. 24-27,
which averages only the present modalities' tokens) and
:class:`~symaffect.models.heads.TaskHeads`. So any subset of modalities works, and a
per-sample mask works, exactly as for the paper's model.

The paper gives no sizes for its baselines; the sizes here are this project's choice,
each well under 1 M parameters, so that they train in minutes on a CPU. The paper's
reference numbers for the baselines partly do not match its reference list: see the
References section of each class.

XGBoost, the eighth baseline of Table 3, is not a torch model; it lives in
:mod:`symaffect.train.xgb`.
"""

from symaffect.models.baselines.bilstm import BiLSTMBaseline
from symaffect.models.baselines.cnn1d import CNN1DBaseline
from symaffect.models.baselines.cnn_lstm import CNNLSTMBaseline
from symaffect.models.baselines.gru import GRUBaseline
from symaffect.models.baselines.lstm import LSTMBaseline
from symaffect.models.baselines.mlp import MLPBaseline
from symaffect.models.baselines.transformer import TransformerBaseline

BASELINES: tuple[str, ...] = ("lstm", "bilstm", "gru", "mlp", "cnn1d", "cnn_lstm", "transformer")
"""Registry names of the deep baselines, in the order of the paper's Table 3."""

__all__ = [
    "BASELINES",
    "BiLSTMBaseline",
    "CNN1DBaseline",
    "CNNLSTMBaseline",
    "GRUBaseline",
    "LSTMBaseline",
    "MLPBaseline",
    "TransformerBaseline",
]
