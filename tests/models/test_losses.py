from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from symaffect.models.losses import MultiTaskLoss, focal_label_smoothing_ce


def _eq29_by_hand(logits, target, gamma, alpha):
    k = logits.shape[-1]
    total = 0.0
    for row, y in zip(logits.tolist(), target.tolist()):
        z = [math.exp(v - max(row)) for v in row]
        p = [v / sum(z) for v in z]
        total += -sum(
            (1 - p[i]) ** gamma * ((1 - alpha) * (i == y) + alpha / k) * math.log(p[i]) for i in range(k)
        )
    return total / len(target)


@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.1), (0.0, 0.0), (1.5, 0.3)])
def test_focal_loss_is_eq29(gamma, alpha):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 9, generator=g) * 3
    target = torch.randint(0, 9, (6,), generator=g)
    got = focal_label_smoothing_ce(logits, target, gamma=gamma, alpha=alpha)
    assert float(got) == pytest.approx(_eq29_by_hand(logits, target, gamma, alpha), rel=1e-5)


def test_gamma0_is_label_smoothed_cross_entropy_and_stable():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 2])
    got = focal_label_smoothing_ce(logits, target, gamma=0.0, alpha=0.1)
    want = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, want)


def test_ignored_targets_are_left_out():
    logits = torch.randn(4, 9)
    target = torch.tensor([1, -100, 3, -100])
    both = focal_label_smoothing_ce(logits, target)
    kept = focal_label_smoothing_ce(logits[[0, 2]], target[[0, 2]])
    torch.testing.assert_close(both, kept)


def test_learnable_weights_start_at_one_third_and_cannot_collapse():
    loss = MultiTaskLoss(weighting="learnable")
    assert loss.effective_weights() == pytest.approx({"valence": 1 / 3, "arousal": 1 / 3, "liking": 1 / 3})
    opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    fixed_task_losses = torch.tensor([2.0, 1.0, 0.5])
    for _ in range(2000):
        opt.zero_grad()
        total = (torch.exp(-loss.log_vars) * fixed_task_losses).sum() + loss.log_vars.sum()
        total.backward()
        opt.step()
    w = torch.tensor(list(loss.effective_weights().values()))
    # the optimum is exp(-s_t) = 1 / L_t: bounded away from zero, harder task lower
    torch.testing.assert_close(w, 1 / fixed_task_losses, rtol=1e-2, atol=1e-3)


def test_forward_combines_tasks_with_the_weights():
    g = torch.Generator().manual_seed(1)
    logits = {t: torch.randn(5, 9, generator=g) for t in ("valence", "arousal", "liking")}
    y = {t: torch.randint(0, 9, (5,), generator=g) for t in logits}
    fixed = MultiTaskLoss(weighting="fixed")(logits, y)
    torch.testing.assert_close(fixed["loss"], (fixed["valence"] + fixed["arousal"] + fixed["liking"]) / 3)
    learn = MultiTaskLoss(weighting="learnable")(logits, y)
    torch.testing.assert_close(learn["loss"], fixed["loss"] + 3 * math.log(3))
    soft = MultiTaskLoss(weighting="softmax")
    torch.testing.assert_close(soft(logits, y)["loss"], fixed["loss"])
    assert sum(soft.effective_weights().values()) == pytest.approx(1.0)


def test_multilabel_quadrant_uses_bce_and_single_task_has_no_weights():
    loss = MultiTaskLoss(task_set="quadrant_multilabel")
    assert not list(loss.parameters())
    logits = {"quadrant": torch.randn(4, 5)}
    y = {"quadrant": torch.tensor([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]])}
    out = loss(logits, y)
    torch.testing.assert_close(out["loss"], F.binary_cross_entropy_with_logits(logits["quadrant"], y["quadrant"].float()))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="weighting"):
        MultiTaskLoss(weighting="raw")
    with pytest.raises(ValueError, match="task_set"):
        MultiTaskLoss(task_set="valence9")
