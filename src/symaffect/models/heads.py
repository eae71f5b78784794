"""Task heads: one linear layer per task, the same module name (``heads``) on every model."""

from __future__ import annotations

from torch import Tensor, nn

from symaffect.spec import task_set as task_set_spec


class TaskHeads(nn.Module):
    """Independent linear heads, one per task of a task set.

    Parameters
    ----------
    in_features : int
        Width D of the fused embedding.
    task_set : str
        One of :data:`symaffect.spec.TASK_SETS`: ``"multitask9"`` gives three
        9-class heads (valence, arousal, liking), ``"binary_valence"`` /
        ``"binary_arousal"`` one 2-class head, ``"quadrant5"`` one 5-class head and
        ``"quadrant_multilabel"`` one head of 5 independent (sigmoid/BCE) logits.

    Shape
    -----
    z : (B, D) -> dict of task to logits (B, n_outputs)
    """

    def __init__(self, *, in_features: int, task_set: str = "multitask9") -> None:
        super().__init__()
        spec = task_set_spec(task_set)
        self.task_set = task_set
        self.layers = nn.ModuleDict(
            {t: nn.Linear(in_features, n) for t, n in spec.n_outputs.items()}
        )

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        return {t: layer(z) for t, layer in self.layers.items()}
