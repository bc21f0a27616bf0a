"""Grad-CAM (through `pytorch-grad-cam`) and measurements of what a detector looks at.

The CIFAKE paper argues from pictures that its CNN looks at background imperfections, not at
the object. Here that becomes numbers: the share of CAM mass on the image border vs the
centre and on a foreground proxy vs the background (per class and correctness, with
intervals, over the maps that are not empty), and a faithfulness check — deleting /
inserting pixels in CAM order must change the prediction faster than in random order on the
same images, by more than the bootstrap interval, or the maps do not explain the model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..data import CLASSES
from ..loaders import to_tensor
from ..metrics import mean_interval

__all__ = ["outcome_groups", "grad_cam", "border_mask", "foreground_mask", "mass_ratio", "cam_mass_table",
           "deletion_insertion", "faithfulness", "faithfulness_verdict", "overlay", "stage_cam_tiles",
           "outcome_tiles", "REPLACEMENTS"]


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


def outcome_tiles(images: np.ndarray, maps: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                  per_group: int) -> tuple[list[np.ndarray], list[str]]:
    """For `plots.image_grid` with ncols = 2 * per_group: per outcome group (TP, FN, TN, FP),
    up to `per_group` images, each followed by its CAM overlay."""
    tiles, titles = [], []
    for group, members in outcome_groups(labels, predicted).items():
        for i in members[:per_group]:
            tiles += [images[i], overlay(images[i], maps[i])]
            titles += [group.split()[0], "CAM"]
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


def cam_mass_table(maps: np.ndarray, images: np.ndarray, labels: np.ndarray, correct: np.ndarray,
                   border_width: int = 4, n_boot: int = 1000) -> pd.DataFrame:
    """Mass ratios (border vs centre, object vs background) per true class and correctness.

    An all-zero map (Grad-CAM's ReLU leaves nothing when no location raises the class score)
    has no mass to share out; counting it as zero everywhere would drag every ratio towards 0.
    So `n_empty` counts them per group and the ratios are means over the non-empty maps only."""
    size = maps.shape[1]
    regions = {"border": border_mask(size, border_width), "centre": ~border_mask(size, border_width)}
    foreground = foreground_mask(images)
    ratios = {name: mass_ratio(maps, mask) for name, mask in regions.items()}
    ratios["object (proxy)"] = mass_ratio(maps, foreground)
    ratios["background (proxy)"] = mass_ratio(maps, ~foreground)
    empty = maps.reshape(len(maps), -1).max(1) <= 0
    rows = []
    for label in (0, 1):
        for is_correct in (True, False):
            chosen = (labels == label) & (correct == is_correct)
            for region, values in ratios.items():
                mean, low, high = mean_interval(values[chosen & ~empty], n_boot)
                rows.append({"class": CLASSES[label], "correct": is_correct, "n": int(chosen.sum()),
                             "n_empty": int((chosen & empty).sum()), "region": region, "mass_ratio": mean,
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


@torch.inference_mode()
def _probabilities(model: nn.Module, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(batch), 1).gather(1, targets[:, None])[:, 0]


REPLACEMENTS = ("blur", "mean colour")  # what a deleted pixel becomes


def _replacement(x: torch.Tensor, how: str) -> torch.Tensor:
    if how == "blur":
        return gaussian_blur(x, kernel_size=7, sigma=2.0)
    if how == "mean colour":
        return x.mean((2, 3), keepdim=True).expand_as(x)
    raise ValueError(f"replacement must be one of {REPLACEMENTS}, not {how!r}")


def deletion_insertion(model: nn.Module, images: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                       steps: int = 16, seed: int = 0, replacement: str = "blur") -> pd.DataFrame:
    """Per image, the probability of the explained class as pixels are deleted (replaced by
    `replacement`: a blurred copy, or the image's mean colour) or inserted (into that
    replacement) in the map's order and in a random order.

    Returns one row per (image, order, curve, fraction). A faithful map makes deletion fall
    faster and insertion rise faster than random order does; `faithfulness` compares the areas
    under the curves image by image. A blurred copy keeps low frequencies, so for a model that
    reads high-frequency traces "deleting" by blur already removes most of the evidence in any
    order — the mean colour removes everything, a stricter test.
    """
    model.eval()
    x = to_tensor(images)
    replaced = _replacement(x, replacement)
    targets_t = torch.as_tensor(targets, dtype=torch.long)
    n, _, h, w = x.shape
    rng = np.random.default_rng(seed)
    orders = {"Grad-CAM": np.argsort(-maps.reshape(n, -1), axis=1, kind="stable"),
              "random": np.argsort(rng.random((n, h * w)), axis=1)}
    frames = []
    for order_name, order in orders.items():
        rank = torch.from_numpy(np.argsort(order, axis=1).reshape(n, 1, h, w))  # position of each pixel
        for k in range(steps + 1):
            top = rank < int(round(k / steps * h * w))  # the first k/steps of the pixels in this order
            for curve, batch in (("deletion", torch.where(top, replaced, x)), ("insertion", torch.where(top, x, replaced))):
                frames.append(pd.DataFrame({"image": np.arange(n), "order": order_name, "curve": curve,
                                            "fraction": k / steps, "replacement": replacement,
                                            "probability": _probabilities(model, batch, targets_t).numpy()}))
    return pd.concat(frames, ignore_index=True)


def faithfulness(curves: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per curve (and any other grouping column), the mean area under the Grad-CAM and random
    curves and their paired difference (Grad-CAM minus random, image by image) with a 95%
    bootstrap interval over images."""
    keys = [c for c in curves.columns if c not in ("image", "order", "fraction", "probability")]
    areas = curves.groupby([*keys, "image", "order"]).probability.mean().unstack("order")
    rows = []
    for group, part in areas.groupby(level=keys):
        difference = mean_interval(part["Grad-CAM"] - part["random"], n_boot, seed)
        rows.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))), "n": len(part),
                     "area_cam": part["Grad-CAM"].mean(), "area_random": part["random"].mean(),
                     "difference": difference[0], "ci_low": difference[1], "ci_high": difference[2]})
    return pd.DataFrame(rows)


def faithfulness_verdict(row, min_effect: float = 0.01) -> str:
    """'faithful' only when the paired interval excludes random order in the right direction
    (deletion below random, insertion above) and the mean difference is at least `min_effect`
    (probability × fraction of pixels); else what the interval does show."""
    better = row.ci_high < 0 if row.curve == "deletion" else row.ci_low > 0
    worse = row.ci_low > 0 if row.curve == "deletion" else row.ci_high < 0
    if (better or worse) and abs(row.difference) < min_effect:
        return f"different from random, but by less than {min_effect} (negligible)"
    return "faithful" if better else "worse than random" if worse else "not distinguishable from random"


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with its CAM as a jet heat map on top, (H, W, 3) in [0, 1]."""
    import matplotlib

    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    return np.clip((1 - alpha) * image.astype(np.float32) / 255 + alpha * heat, 0, 1)
