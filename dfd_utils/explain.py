"""Grad-CAM (through `pytorch-grad-cam`) and measurements of what a detector looks at.

The CIFAKE paper argues from pictures that its CNN looks at background imperfections, not at
the object. Here that becomes numbers: the share of CAM mass on the image border vs the
centre and on a foreground proxy vs the background (per class and correctness, with
intervals), and a faithfulness check — deleting / inserting pixels in CAM order must change
the prediction faster than in random order, or the maps do not explain the model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from .data import CLASSES
from .loaders import to_tensor

__all__ = ["outcome_groups", "grad_cam", "border_mask", "foreground_mask", "mass_ratio", "cam_mass_table",
           "deletion_insertion", "overlay", "mean_interval", "stage_cam_tiles"]


def grad_cam(model: nn.Module, layer: nn.Module, images: np.ndarray, targets: np.ndarray,
             batch_size: int = 256) -> np.ndarray:
    """(N, H, W) Grad-CAM maps in [0, 1] at input resolution, for class `targets[i]` of image i."""
    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for start in range(0, len(images), batch_size):
            batch = to_tensor(images[start:start + batch_size])
            wanted = [ClassifierOutputTarget(int(t)) for t in targets[start:start + batch_size]]
            maps.append(cam(input_tensor=batch, targets=wanted))
    return np.concatenate(maps).astype(np.float32)


def stage_cam_tiles(model: nn.Module, layers: dict[str, nn.Module], images: np.ndarray,
                    targets: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """For `plots.image_grid` with ncols = len(layers) + 1: each image, then its Grad-CAM overlay
    at every layer (for the class in `targets`)."""
    maps = {name: grad_cam(model, layer, images, targets) for name, layer in layers.items()}
    tiles, titles = [], []
    for i, image in enumerate(images):
        tiles.append(image)
        titles.append(("REAL", "FAKE")[int(targets[i])] + " (target)")
        for name in layers:
            tiles.append(overlay(image, maps[name][i]))
            titles.append(name)
    return tiles, titles


def outcome_groups(labels: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of true/false positives/negatives (positive = FAKE)."""
    return {"TP (FAKE called FAKE)": np.flatnonzero((labels == 1) & (predicted == 1)),
            "FN (FAKE called REAL)": np.flatnonzero((labels == 1) & (predicted == 0)),
            "TN (REAL called REAL)": np.flatnonzero((labels == 0) & (predicted == 0)),
            "FP (REAL called FAKE)": np.flatnonzero((labels == 0) & (predicted == 1))}


def border_mask(size: int, width: int) -> np.ndarray:
    """True on the `width`-pixel frame of a size x size image."""
    mask = np.ones((size, size), dtype=bool)
    mask[width:size - width, width:size - width] = False
    return mask


def foreground_mask(images: np.ndarray) -> np.ndarray:
    """A simple, stated foreground proxy: pixels whose colour is farther from the image's mean
    border colour (1-pixel frame) than the image's median pixel is. CIFAR-style images centre
    one object on a background that mostly reaches the frame, so this marks the object."""
    pixels = images.astype(np.float32)
    frame = border_mask(images.shape[1], 1)
    background = pixels[:, frame].mean(1)  # (N, 3)
    distance = np.linalg.norm(pixels - background[:, None, None, :], axis=3)
    return distance > np.median(distance.reshape(len(images), -1), axis=1)[:, None, None]


def mass_ratio(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: share of CAM mass inside the mask divided by the mask's share of pixels
    (1 = no preference, > 1 = the map concentrates there). `masks` is (H, W) or (N, H, W)."""
    masks = np.broadcast_to(masks, maps.shape)
    area = masks.reshape(len(maps), -1).mean(1)
    mass = (maps * masks).reshape(len(maps), -1).sum(1) / np.maximum(maps.reshape(len(maps), -1).sum(1), 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, mass / area, np.nan)


def mean_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval (NaNs dropped)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def cam_mass_table(maps: np.ndarray, images: np.ndarray, labels: np.ndarray, correct: np.ndarray,
                   border_width: int = 4, n_boot: int = 1000) -> pd.DataFrame:
    """Mass ratios (border vs centre, object vs background) per true class and correctness."""
    size = maps.shape[1]
    regions = {"border": border_mask(size, border_width), "centre": ~border_mask(size, border_width)}
    foreground = foreground_mask(images)
    ratios = {name: mass_ratio(maps, mask) for name, mask in regions.items()}
    ratios["object (proxy)"] = mass_ratio(maps, foreground)
    ratios["background (proxy)"] = mass_ratio(maps, ~foreground)
    rows = []
    for label in (0, 1):
        for is_correct in (True, False):
            chosen = (labels == label) & (correct == is_correct)
            for region, values in ratios.items():
                mean, low, high = mean_interval(values[chosen], n_boot)
                rows.append({"class": CLASSES[label], "correct": is_correct, "n": int(chosen.sum()),
                             "region": region, "mass_ratio": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


@torch.inference_mode()
def _probabilities(model: nn.Module, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(batch), 1).gather(1, targets[:, None])[:, 0]


def deletion_insertion(model: nn.Module, images: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                       steps: int = 16, seed: int = 0) -> pd.DataFrame:
    """Mean probability of the explained class as pixels are deleted (replaced by a blurred
    copy) or inserted (into the blurred copy) in the map's order, and in random order.

    Returns one row per (order, curve, fraction). A faithful map makes deletion fall faster and
    insertion rise faster than random order does: compare the areas under the curves.
    """
    model.eval()
    x = to_tensor(images)
    blurred = gaussian_blur(x, kernel_size=7, sigma=2.0)
    targets_t = torch.as_tensor(targets, dtype=torch.long)
    n, _, h, w = x.shape
    rng = np.random.default_rng(seed)
    orders = {"Grad-CAM": np.argsort(-maps.reshape(n, -1), axis=1, kind="stable"),
              "random": np.argsort(rng.random((n, h * w)), axis=1)}
    rows = []
    for order_name, order in orders.items():
        rank = torch.from_numpy(np.argsort(order, axis=1).reshape(n, 1, h, w))  # position of each pixel
        for k in range(steps + 1):
            top = rank < int(round(k / steps * h * w))  # the first k/steps of the pixels in this order
            deleted = torch.where(top, blurred, x)
            inserted = torch.where(top, x, blurred)
            for curve, batch in (("deletion", deleted), ("insertion", inserted)):
                rows.append({"order": order_name, "curve": curve, "fraction": k / steps,
                             "probability": float(_probabilities(model, batch, targets_t).mean())})
    return pd.DataFrame(rows)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with its CAM as a jet heat map on top, (H, W, 3) in [0, 1]."""
    import matplotlib

    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    return np.clip((1 - alpha) * image.astype(np.float32) / 255 + alpha * heat, 0, 1)
