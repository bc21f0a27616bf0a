"""Finding pretrained weights: a local file first, then the hub, then a clear failure.

Local copies are searched in `DFD_WEIGHTS` → `weights/` in the project → `../shared/weights/`
(DESIGN.md, "Offline and online"). Every loader returns where its weights came from, so a run
can record it; nothing here ever swaps in random weights silently.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .paths import offline, project_root, shared_dir

__all__ = ["WeightsError", "offline", "search_dirs", "find", "require", "load_state"]


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
