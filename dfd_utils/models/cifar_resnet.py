"""CIFAR-10 ResNets (He et al. 2016, section 4.2): depth 6n+2 with 16/32/64 channels.

Laid out so the pretrained files in `../shared/weights/cifar10_resnet` load key for key
(`conv1`, `bn1`, `layer1..3`, `linear`); the shortcut is "option A" (parameter-free:
subsample by 2 and zero-pad the new channels). Probing reads the blocks through hooks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CifarResNet", "DEPTHS"]

DEPTHS = (20, 32, 44, 56, 110)


class _PadShortcut(nn.Module):
    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu."""

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _PadShortcut(planes) if stride != 1 or c_in != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class CifarResNet(nn.Module):
    """`depth` in DEPTHS; `num_classes` outputs from a linear layer on globally pooled features."""

    def __init__(self, depth: int = 20, num_classes: int = 10):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"CIFAR ResNet depth must be one of {DEPTHS}, not {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.linear = nn.Linear(64, num_classes)
        self.num_features = 64

    @staticmethod
    def _stage(c_in: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*(BasicBlock(c_in if i == 0 else planes, planes, stride if i == 0 else 1)
                               for i in range(blocks)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.forward_features(x).mean((2, 3)))
