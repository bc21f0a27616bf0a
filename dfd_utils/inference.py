"""Batched scoring with a trained classifier: fake-probabilities for uint8 images.

Always fp32 and in eval mode, whatever precision the model was trained in, so a detector's
scores do not depend on the machine's bf16 support.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .data import ImageSet
from .loaders import to_tensor
from .runtime import device as pick_device

__all__ = ["predict"]


@torch.no_grad()  # not inference_mode: models moved here must stay usable for Grad-CAM
def predict(model: nn.Module, images: ImageSet | np.ndarray, batch_size: int = 128,
            device: str | torch.device = "auto", flip_average: bool = False) -> tuple[np.ndarray, float]:
    """Fake-probabilities (softmax of logit 1) for every (N, H, W, 3) uint8 image, and images per second.

    `flip_average` averages each image's probability with its mirror's (test-time
    augmentation for a model trained with flips; it halves the images per second).
    Small batches are faster on a CPU, where they stay in cache: V4 scored 2,100 images/s at
    128 and 1,400 at 512 on the 2-core AVX512-BF16 Xeon of the default results.
    """
    pixels = images.images if isinstance(images, ImageSet) else np.asarray(images)
    device = pick_device(str(device))
    model.to(device, memory_format=torch.channels_last).eval()
    scores = []
    start = time.perf_counter()
    for begin in range(0, len(pixels), batch_size):
        batch = to_tensor(pixels[begin:begin + batch_size]).to(device, memory_format=torch.channels_last)
        fake = torch.softmax(model(batch).float(), 1)[:, 1]
        if flip_average:
            fake = (fake + torch.softmax(model(batch.flip(3)).float(), 1)[:, 1]) / 2
        scores.append(fake.cpu().numpy())
    seconds = time.perf_counter() - start
    return np.concatenate(scores) if scores else np.zeros(0, np.float32), len(pixels) / max(seconds, 1e-9)
