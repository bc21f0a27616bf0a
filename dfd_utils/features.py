"""Features from any network, and the linear probe that reads them.

`features` runs a feature function over an `ImageSet` in batches; `linear_probe` fits a
standardised logistic regression on one set's features and scores another's. V1's latent
probe and the layer probes of notebook 07 share both.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .data import ImageSet
from .loaders import to_tensor
from .runtime import device as pick_device

__all__ = ["features", "linear_probe"]


@torch.inference_mode()
def features(extract: Callable[[torch.Tensor], torch.Tensor | dict], image_set: ImageSet, batch_size: int = 512,
             device: str | torch.device = "auto") -> np.ndarray | dict[str, np.ndarray]:
    """`extract` maps a (B, 3, H, W) batch in [0, 1] to (B, D) features, or to a dict of them
    (one per layer); the result has the same form with all images stacked, as float32."""
    device = pick_device(str(device))
    chunks: list = []
    for begin in range(0, len(image_set), batch_size):
        out = extract(to_tensor(image_set.images[begin:begin + batch_size]).to(device))
        chunks.append({k: v.flatten(1).float().cpu().numpy() for k, v in out.items()} if isinstance(out, dict)
                      else out.flatten(1).float().cpu().numpy())
    if not chunks:
        raise ValueError(f"{image_set.name} has no images")
    if isinstance(chunks[0], dict):
        return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    return np.concatenate(chunks)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, c: float = 1.0,
                 max_iter: int = 2000) -> tuple[np.ndarray, Pipeline]:
    """Standardise, fit L2 logistic regression (`c` = inverse strength) on the train features,
    return FAKE probabilities for `test_x` and the fitted pipeline."""
    if len(np.unique(train_y)) < 2:
        raise ValueError("a linear probe needs REAL and FAKE training examples")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    probe.fit(train_x, train_y)
    return probe.predict_proba(test_x)[:, 1], probe
