"""Pretrained backbones with a 2-class head: timm models by name and the CIFAR-10 ResNets.

`create_detector(backbone, input_size)` builds the architecture (random weights, what
`load_model` needs); `pretrained_detector` also finds weights — a local copy, then the hub
when online — and returns where they came from, or "none" with the reason. Nothing
downloads when offline, and a missing copy is never replaced silently: the caller gets
`pretrained="none"` and prints it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..paths import offline
from ..weights import find, load_state, search_dirs
from .cifar_resnet import CifarResNet
from .small_cnn import Normalize

__all__ = ["ZooDetector", "create_detector", "pretrained_detector", "CIFAR_RESNET_FILES", "STRATEGIES"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # also the CIFAR ResNets' (weights README)
CIFAR_RESNET_FILES = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th",
                      56: "resnet56-4bfd9763.th"}
STRATEGIES = ("full", "linear")


def _cifar_depth(backbone: str) -> int | None:
    return int(backbone.removeprefix("cifar_resnet")) if backbone.startswith("cifar_resnet") else None


def _build_backbone(backbone: str) -> nn.Module:
    """The feature extractor alone: (B, 3, H, W) normalised → (B, num_features) pooled."""
    depth = _cifar_depth(backbone)
    if depth is not None:
        net = CifarResNet(depth)
        net.linear = nn.Identity()
        return net
    import timm

    if not timm.is_model(backbone):
        raise ValueError(f"unknown backbone {backbone!r}: not a timm model and not cifar_resnet<depth>")
    return timm.create_model(backbone, pretrained=False, num_classes=0)


class ZooDetector(nn.Module):
    """[0, 1] images → normalise → resize to `input_size` (bilinear, only if different) →
    backbone → linear head with 2 logits. `strategy="linear"` freezes the backbone, BN
    statistics included; `"full"` trains everything, the backbone at `lr_scales` of the LR."""

    def __init__(self, backbone: str, input_size: int = 32, strategy: str = "full", backbone_lr_scale: float = 1.0):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.backbone_name, self.input_size, self.strategy = backbone, input_size, strategy
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.backbone = _build_backbone(backbone)
        with torch.no_grad():  # pooled width, incl. timm heads with an extra conv (e.g. MobileNetV3)
            width = self.backbone.eval()(torch.zeros(1, 3, input_size, input_size)).shape[1]
        self.head = nn.Linear(width, 2)
        self.lr_scales = {"backbone.": backbone_lr_scale}  # read by train.fit's optimiser
        self.backbone.requires_grad_(strategy == "full")

    def train(self, mode: bool = True):
        super().train(mode)
        if self.strategy == "linear":
            self.backbone.eval()  # a linear probe must not move BN statistics either
        return self

    def forward_backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.forward_backbone_input(x)))


def create_detector(backbone: str, input_size: int = 32, strategy: str = "full",
                    backbone_lr_scale: float = 1.0) -> ZooDetector:
    return ZooDetector(backbone, input_size, strategy, backbone_lr_scale)


def _load_cifar(model: ZooDetector, depth: int) -> str:
    relative = f"cifar10_resnet/{CIFAR_RESNET_FILES.get(depth, f'resnet{depth}.th')}"
    path = find(relative)
    if path is None:
        return f"none (no local {relative} in {', '.join(map(str, search_dirs()))}; these weights have no hub copy)"
    state = {k: v for k, v in load_state(path).items() if not k.startswith("linear.")}  # drop the 10-class head
    model.backbone.load_state_dict(state, strict=True)
    return f"local: {path} (CIFAR-10)"


def _load_timm(model: ZooDetector, backbone: str) -> str:
    import timm

    local = find(f"timm/{backbone}.safetensors") or find(f"timm/{backbone}.pth")
    if local is None and offline():
        return f"none (offline and no local timm/{backbone}.safetensors in {', '.join(map(str, search_dirs()))})"
    overlay = {"file": str(local)} if local else None
    try:
        pretrained = timm.create_model(backbone, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    except Exception as error:  # noqa: BLE001 - reported in the record, never hidden
        return f"none (timm could not load ImageNet weights: {type(error).__name__}: {error})"
    model.backbone.load_state_dict(pretrained.state_dict(), strict=True)
    return f"local: {local} (ImageNet)" if local else f"hub: timm/{backbone} (ImageNet)"


def pretrained_detector(backbone: str, input_size: int = 32, strategy: str = "full", backbone_lr_scale: float = 0.1,
                        pretrained: bool = True) -> tuple[ZooDetector, str]:
    """The detector and its weights' source ("none (why)" when there are none). Without
    pretrained weights the backbone must be trained, so `strategy="linear"` is refused."""
    model = create_detector(backbone, input_size, strategy, backbone_lr_scale)
    if not pretrained:
        source = "none (asked for random initialisation)"
    elif _cifar_depth(backbone) is not None:
        source = _load_cifar(model, _cifar_depth(backbone))
    else:
        source = _load_timm(model, backbone)
    if source.startswith("none"):
        if strategy == "linear":
            raise ValueError(f"{backbone}: a linear probe needs pretrained weights, but there are {source}")
        model.lr_scales = {"backbone.": 1.0}  # a random backbone learns at the full rate
    return model, source
