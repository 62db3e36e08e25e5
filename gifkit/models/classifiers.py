"""The classifiers gifkit trains: timm models by alias (:data:`gifkit.config.ARCHS`), including the mini profile's
``mini_resnet18``."""
from __future__ import annotations

import torch
from torch import nn

from gifkit.config import ARCHS
from gifkit.models.hub import ModelUnavailable
from gifkit.models.mininet import register_arch

__all__ = ["create_model", "AMSTNet"]


def create_model(arch: str, num_classes: int, pretrained: bool = False) -> torch.nn.Module:
    """``timm.create_model`` by alias (resnet50, resnext50, wideresnet50, mobilenetv2, tiny) or any timm name."""
    import timm

    register_arch()  # the mini profile's mini_resnet18
    name = ARCHS.get(arch, arch)
    if not timm.is_model(name):
        raise ValueError(f"unknown architecture {arch!r}: use {sorted(ARCHS)} or a timm model name")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as e:
        if not pretrained:
            raise
        raise ModelUnavailable(f"pretrained weights of timm model {name!r} are not available ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}). Get them online once (they are cached "
                               f"by huggingface_hub), or train from scratch without --pretrained.") from e


class AMSTNet(nn.Module):
    """A backbone (features ``[B, D]``), a main head and ``heads`` auxiliary heads (linear, ``D -> C``).

    ``forward(x)`` returns the main head's logits; ``forward(x, all_heads=True)`` returns
    ``(main [B, C], aux [M, B, C])``.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, heads: int = 4):
        super().__init__()
        self.backbone = backbone
        self.main = nn.Linear(num_features, num_classes)
        self.aux = nn.ModuleList(nn.Linear(num_features, num_classes) for _ in range(heads))

    def forward(self, x: torch.Tensor, all_heads: bool = False):
        f = self.backbone(x)
        main = self.main(f)
        if not all_heads:
            return main
        return main, torch.stack([h(f) for h in self.aux])
