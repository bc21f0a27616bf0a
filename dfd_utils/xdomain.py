"""The small cross-domain evaluation set beside the project (`../shared/data/xdomain_dev/`).

247 REAL photographs and 235 images from many generators, every file re-encoded identically
(JPEG q75, 4:2:0) at 256 and 32 px, with `sources.csv` naming each FAKE's generator. It is for
**evaluation only**: nothing is trained, tuned or thresholded on it. Found by `DFD_XDOMAIN`,
then `../shared/data/xdomain_dev/`; `find()` is None when it is absent, and callers say so.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .data import ImageSet, load_folder
from .paths import shared_dir

__all__ = ["find", "load", "families", "FAMILIES"]

FAMILIES = (  # generator token prefix → family (the README's grouping), first match wins
    ("unknown-likely-midjourney", "Midjourney, likely but unconfirmed"), ("midjourney", "Midjourney, labelled"),
    ("sd", "Stable Diffusion family"), ("dalle", "DALL·E"), ("kolors", "Kolors"), ("flux", "FLUX"),
    ("imagen", "Imagen 3"), ("unknown", "unknown"),
)


def find() -> Path | None:
    """The folder holding `xdomain_dev32.zip` / `xdomain_dev256.zip`, or None."""
    folder = Path(os.environ["DFD_XDOMAIN"]) if os.environ.get("DFD_XDOMAIN") else shared_dir() / "data" / "xdomain_dev"
    return folder if (folder / "xdomain_dev32.zip").exists() else None


def load(size: int = 32, folder: Path | None = None) -> ImageSet:
    """The set at 32 or 256 px, as an `ImageSet` named `xdomain_dev<size>`."""
    folder = folder or find()
    if folder is None:
        raise FileNotFoundError("the cross-domain set is not here: set DFD_XDOMAIN or put it in ../shared/data/xdomain_dev")
    return load_folder(folder / f"xdomain_dev{size}.zip", "test", name=f"xdomain_dev{size}")


def families(image_set: ImageSet, folder: Path | None = None) -> np.ndarray:
    """Per image: "REAL" or the generator family of its FAKE (from `sources.csv`)."""
    sources = pd.read_csv((folder or find()) / "sources.csv").set_index("name")
    def family(name: str) -> str:
        generator = str(sources.loc[name, "generator"])
        if sources.loc[name, "label"] == "REAL":
            return "REAL"
        return next((f for prefix, f in FAMILIES if generator.startswith(prefix)), "other (one or a few each)")
    return np.array([family(name) for name in image_set.ids])
