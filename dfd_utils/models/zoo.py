"""Pretrained backbones with a 2-class head: timm models by name and the CIFAR-10 ResNets.

`create_model("zoo_detector", backbone=…)` builds the architecture (random weights, what
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
from ..weights import WeightsError, find, load_state, packaged_state, search_dirs
from .cifar_resnet import CifarResNet
from .small_cnn import Normalize

__all__ = ["ZooDetector", "pretrained_detector", "NoPretrainedWeights", "CIFAR_RESNET_FILES", "STRATEGIES"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # also the CIFAR ResNets' (weights README)
CIFAR_RESNET_FILES = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th",
                      56: "resnet56-4bfd9763.th"}
STRATEGIES = ("full", "linear")


def _cifar_depth(backbone: str) -> int | None:
    return int(backbone.removeprefix("cifar_resnet")) if backbone.startswith("cifar_resnet") else None


STEMS = ("imagenet", "cifar")


def _build_backbone(backbone: str, stem: str = "imagenet") -> nn.Module:
    """The feature extractor alone: (B, 3, H, W) normalised → (B, num_features) pooled.

    `stem="cifar"` replaces a timm ResNet's 7x7 stride-2 convolution and max-pool by one 3x3
    stride-1 convolution (as He et al. do for CIFAR), so a 32-px image keeps 32, 16, 8 and 4 px
    maps in its four stages instead of 8, 4, 2 and 1 — the new stem starts from random weights.
    """
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
    depth = _cifar_depth(backbone)
    if depth is not None:
        if stem != "imagenet":
            raise ValueError(f"{backbone} already has a CIFAR stem")
        net = CifarResNet(depth)
        net.linear = nn.Identity()
        return net
    import timm

    if not timm.is_model(backbone):
        raise ValueError(f"unknown backbone {backbone!r}: not a timm model and not cifar_resnet<depth>")
    net = timm.create_model(backbone, pretrained=False, num_classes=0)
    if stem == "cifar":
        if not (hasattr(net, "conv1") and hasattr(net, "maxpool")):
            raise ValueError(f"stem='cifar' needs a ResNet-style backbone (conv1 + maxpool), not {backbone!r}")
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    return net


class ZooDetector(nn.Module):
    """[0, 1] images → normalise → resize to `input_size` (bilinear, only if different) →
    backbone → linear head with 2 logits. `strategy="linear"` freezes the backbone, BN
    statistics included, and standardises the pooled features before the head (a batch norm
    without affine terms: what a logistic-regression probe on standardised features does, and
    without it the raw feature scales make AdamW's probe markedly weaker); `"full"` trains
    everything, the backbone at `lr_scales` of the LR."""

    def __init__(self, backbone: str, input_size: int = 32, strategy: str = "full", backbone_lr_scale: float = 1.0,
                 stem: str = "imagenet"):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        self.backbone_name, self.input_size, self.strategy, self.stem = backbone, input_size, strategy, stem
        self.backbone = _build_backbone(backbone, stem)
        config = getattr(self.backbone, "pretrained_cfg", {})  # timm's: what its ImageNet weights expect
        self.normalize = Normalize(config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD))
        with torch.no_grad():  # pooled width, incl. timm heads with an extra conv (e.g. MobileNetV3)
            width = self.backbone.eval()(torch.zeros(1, 3, input_size, input_size)).shape[1]
        self.head = nn.Sequential(nn.BatchNorm1d(width, affine=False), nn.Linear(width, 2)) if strategy == "linear" \
            else nn.Linear(width, 2)
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


def _load_cifar(model: ZooDetector, depth: int) -> str:
    relative = f"cifar10_resnet/{CIFAR_RESNET_FILES.get(depth, f'resnet{depth}.th')}"
    path = find(relative)
    if path is None:
        return f"none (no local {relative} in {', '.join(map(str, search_dirs()))}; these weights have no hub copy)"
    state = {k: v for k, v in load_state(path).items() if not k.startswith("linear.")}  # drop the 10-class head
    model.backbone.load_state_dict(state, strict=True)
    return f"local: {path} (CIFAR-10)"


def _timm_state(backbone: str) -> tuple[dict | None, str]:
    """ImageNet weights for a timm backbone: a local file, then timm's hub (online), then the
    weights an installed package ships; (None, "none (why)") when all fail."""
    import timm

    local = find(f"timm/{backbone}.safetensors") or find(f"timm/{backbone}.pth")
    reasons = []
    if local is not None or not offline():
        overlay = {"file": str(local)} if local else None
        try:
            state = timm.create_model(backbone, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay).state_dict()
            return state, (f"local: {local} (ImageNet)" if local else f"hub: timm/{backbone} (ImageNet)")
        except Exception as error:  # noqa: BLE001 - reported in the record, never hidden
            reasons.append(f"timm could not load ImageNet weights: {type(error).__name__}: {error}")
    else:
        reasons.append(f"offline and no local timm/{backbone}.safetensors in {', '.join(map(str, search_dirs()))}")
    try:
        full = timm.create_model(backbone, pretrained=False).state_dict()  # with its classifier, like the file
        state, source = packaged_state(backbone, full)
        return {k: v for k, v in state.items() if not k.startswith("classifier.")}, source
    except WeightsError as error:
        reasons.append(str(error))
    return None, f"none ({'; '.join(reasons)})"


def _load_timm(model: ZooDetector, backbone: str) -> str:
    state, source = _timm_state(backbone)
    if state is None:
        return source
    if model.stem == "cifar":  # every layer but the new 3x3 stem convolution
        state = {k: v for k, v in state.items() if not k.startswith("conv1.")}
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith("conv1.") for key in missing):
            raise ValueError(f"{backbone}: pretrained weights do not fit the CIFAR-stem model ({missing}, {unexpected})")
    else:
        model.backbone.load_state_dict(state, strict=True)
    return source


class NoPretrainedWeights(ValueError):
    """A linear probe was asked of a backbone that has no pretrained weights here: nothing to probe."""


def pretrained_detector(backbone: str, input_size: int = 32, strategy: str = "full", backbone_lr_scale: float = 0.1,
                        pretrained: bool = True, stem: str = "imagenet") -> tuple[ZooDetector, str]:
    """The detector and its weights' source ("none (why)" when there are none). Without
    pretrained weights the backbone must be trained, so `strategy="linear"` is refused. A CIFAR
    stem loads the pretrained weights of every layer but the new stem convolution."""
    from . import create_model  # the registry lives in the package; imported here to avoid a cycle

    model = create_model("zoo_detector", backbone=backbone, input_size=input_size, strategy=strategy,
                         backbone_lr_scale=backbone_lr_scale, stem=stem)
    if not pretrained:
        source = "none (asked for random initialisation)"
    elif _cifar_depth(backbone) is not None:
        source = _load_cifar(model, _cifar_depth(backbone))
    else:
        source = _load_timm(model, backbone)
    if source.startswith("none"):
        if strategy == "linear":
            raise NoPretrainedWeights(f"{backbone}: a linear probe needs pretrained weights, but there are {source}")
        model.lr_scales = {"backbone.": 1.0}  # a random backbone learns at the full rate
    return model, source
