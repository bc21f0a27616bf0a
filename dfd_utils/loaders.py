"""torch `Dataset` / `DataLoader` over an `ImageSet`, with optional augmentation.

Images stay uint8 in memory and become float tensors in [0, 1] batch by batch; a whole
batch is fetched and augmented at once (`__getitems__`), which on small images is many times
faster than item-by-item loading.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .data import ImageSet
from .runtime import seeded_generator

__all__ = ["AUGMENTATIONS", "ImageDataset", "make_loader", "to_tensor"]

AUGMENTATIONS = ("none", "flip", "flip_shift")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32 in [0, 1]."""
    return torch.tensor(np.asarray(images)).permute(0, 3, 1, 2).float().div_(255)  # copies: inputs may be read-only


def _augment(batch: torch.Tensor, how: str, generator: torch.Generator) -> torch.Tensor:
    """Horizontal flips and whole-pixel shifts (reflect-padded): they move content but never
    resample pixels, so the high-frequency traces a detector needs survive."""
    if how == "none":
        return batch
    flip = torch.rand(len(batch), generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
    if how == "flip_shift":
        pad = 2
        padded = torch.nn.functional.pad(batch, (pad,) * 4, mode="reflect")
        dx, dy = torch.randint(0, 2 * pad + 1, (2, len(batch)), generator=generator).tolist()
        h, w = batch.shape[2:]
        batch = torch.stack([padded[i, :, y:y + h, x:x + w] for i, (x, y) in enumerate(zip(dx, dy))])
    return batch


class ImageDataset(Dataset):
    """Items are (image tensor (3, H, W) in [0, 1], label); batches come from `__getitems__`."""

    def __init__(self, image_set: ImageSet, augment: str = "none", seed: int = 0):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, not {augment!r}")
        self.images, self.labels, self.augment = image_set.images, image_set.labels, augment
        self.generator = seeded_generator(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices: list[int]):
        batch = _augment(to_tensor(self.images[indices]), self.augment, self.generator)
        return batch, torch.from_numpy(self.labels[indices])


def _as_batch(batch):
    return batch


def make_loader(image_set: ImageSet, batch_size: int = 256, shuffle: bool = False,
                augment: str = "none", seed: int = 0) -> DataLoader:
    """A DataLoader yielding (images, labels) batches; shuffling uses its own seeded generator."""
    return DataLoader(ImageDataset(image_set, augment, seed), batch_size=batch_size, shuffle=shuffle,
                      generator=seeded_generator(seed), collate_fn=_as_batch)
