"""The mini experiment's classifier: ResNet-18 adapted to 28 px images, registered with timm.

``MiniResNet18``: BasicBlocks [2, 2, 2, 2] as in ResNet-18, a 3x3 stride-1 stem
and no max-pool (28 -> 28 -> 14 -> 7 -> 4 px), widths 16/32/64/128 (a quarter of
ResNet-18's, about 0.7 M parameters, so 24 training runs fit a 2-core CPU).
:func:`register_arch` makes ``arch="mini_resnet18"`` a timm model name;
:func:`gifkit.models.classifiers.create_model` calls it, so ``gifkit train --arch mini_resnet18`` builds it.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ARCH", "MiniResNet18", "mini_resnet18", "register_arch"]

ARCH = "mini_resnet18"


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class MiniResNet18(nn.Module):
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]) adapted to 28 px: 3x3 stride-1 stem, no max-pool, widths w..8w."""

    def __init__(self, num_classes: int = 10, width: int = 16, in_chans: int = 3):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        layers, cin = [], w[0]
        for i, c in enumerate(w):
            layers += [_Block(cin, c, 1 if i == 0 else 2), _Block(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.num_features = w[-1]
        self.fc = nn.Linear(w[-1], num_classes)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


def mini_resnet18(pretrained: bool = False, num_classes: int = 10, width: int = 16, **_) -> MiniResNet18:
    """timm entry point of :class:`MiniResNet18` (no pretrained weights exist)."""
    if pretrained:
        raise ValueError(f"{ARCH} has no pretrained weights; train it from scratch")
    return MiniResNet18(num_classes=num_classes, width=width)


def register_arch() -> None:
    """Make ``arch="mini_resnet18"`` known to timm (idempotent)."""
    import timm
    from timm.models import register_model

    if not timm.is_model(ARCH):
        register_model(mini_resnet18)
