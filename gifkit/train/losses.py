"""Training losses: cross-entropy (hard or soft targets), Balanced Softmax and knowledge distillation.

    balanced softmax:  CE(logits + log n_c, y)                       (Ren et al. 2020; n_c: training images of c)
    distillation:      T^2 * KL( softmax(t / T) || softmax(s / T) ),  t = log p_teacher  (Hinton et al. 2015)
"""
from __future__ import annotations

__all__ = ["balanced_softmax_loss", "kd_loss"]


def balanced_softmax_loss(logits, target, class_counts):
    """Balanced Softmax (Ren et al. 2020): cross-entropy of ``logits + log(n_c)``; ``target`` int or soft."""
    import torch
    import torch.nn.functional as F

    return F.cross_entropy(logits + torch.log(class_counts.to(logits.dtype).clamp_min(1e-12)), target)


def kd_loss(logits, teacher_probs, temperature: float):
    """Hinton's KD term ``T^2 * KL(softmax(t / T) || softmax(s / T))`` with teacher logits ``t = log p``."""
    import torch
    import torch.nn.functional as F

    t = F.log_softmax(torch.log(teacher_probs.float().clamp_min(1e-12)) / temperature, dim=-1)
    s = F.log_softmax(logits.float() / temperature, dim=-1)
    return temperature ** 2 * F.kl_div(s, t, log_target=True, reduction="batchmean")
