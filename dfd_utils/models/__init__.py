"""Architectures by name: `create_model("cifake_cnn", filters=32)`, like timm's `create_model`.

Every detector maps (N, 3, H, W) images in [0, 1] to (N, 2) logits (0 REAL, 1 FAKE), every
autoencoder maps them to reconstructions in [0, 1]; input normalisation lives inside the model
so that saved models are self-contained.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .autoencoders import TAEF2, ConvAutoencoder
from .cifar_resnet import CifarResNet
from .small_cnn import CifakeCNN, DetectorCNN
from .zoo import NoPretrainedWeights, ZooDetector, pretrained_detector

__all__ = ["create_model", "list_models", "register", "save_model", "load_model", "CifakeCNN", "DetectorCNN",
           "ConvAutoencoder", "TAEF2", "CifarResNet", "ZooDetector", "pretrained_detector", "NoPretrainedWeights"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    _REGISTRY[name] = factory


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture; unknown names or arguments are errors. The model keeps
    the call that built it (`model.model_spec`), so `save_model` needs nothing else."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {list_models()}")
    model = _REGISTRY[name](**kwargs)
    model.model_spec = {"name": name, "config": dict(kwargs)}
    return model


def save_model(model: nn.Module, folder: Path) -> Path:
    """Weights as safetensors plus the `create_model` call that rebuilds them (`model.json`)."""
    spec = getattr(model, "model_spec", None)
    if spec is None:
        raise ValueError(f"{type(model).__name__} was not built by create_model, so it cannot be rebuilt from a file")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
    return folder


def load_model(folder: Path, device: str | torch.device = "cpu") -> nn.Module:
    """One call rebuilds a model saved by `save_model`, in eval mode."""
    folder = Path(folder)
    if not (folder / "model.json").exists():
        raise FileNotFoundError(f"no saved model in {folder} (expected model.json and model.safetensors); "
                                "run the notebook that trains it first")
    spec = json.loads((folder / "model.json").read_text())
    model = create_model(spec["name"], **spec["config"])
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device).eval()


register("cifake_cnn", CifakeCNN)
register("detector_cnn", DetectorCNN)
register("conv_autoencoder", ConvAutoencoder)
register("cifar_resnet", CifarResNet)
register("zoo_detector", ZooDetector)
