"""Perturbations that damage generator artefacts: JPEG re-compression, blur, resizing, noise.

One shared definition, so that layer probing (notebook 07) and the comparison (notebook 99)
test the same damage. Every function maps uint8 (N, H, W, 3) to uint8 images of the same
shape and is deterministic for a given seed. `SEVERITIES` is the comparison's protocol (after
AIGCDetectBenchmark and "Fake or JPEG?"): each damage at three or four strengths, applied to
test images only, the detectors trained on clean images.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["SCENARIOS", "SEVERITIES", "perturb", "damage", "jpeg", "blur", "resize", "noise"]


def _each(images: np.ndarray, change) -> np.ndarray:
    return np.stack([np.asarray(change(Image.fromarray(image))) for image in images]) if len(images) else images.copy()


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode with Pillow's JPEG at `quality` (4:2:0), as a sharing platform would."""
    def encode(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return _each(images, encode)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels."""
    return _each(images, lambda image: image.filter(ImageFilter.GaussianBlur(sigma)))


def resize(images: np.ndarray, scale: float) -> np.ndarray:
    """Down to `scale` of the side (bicubic), then back up (bicubic): lost detail, same size."""
    side = images.shape[1]
    small = max(1, int(round(side * scale)))
    return _each(images, lambda image: image.resize((small, small), Image.BICUBIC).resize((side, side), Image.BICUBIC))


def noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise with standard deviation `sigma` on the 0-255 scale."""
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).round().astype(np.uint8)


SCENARIOS = {  # name → (function, strength); "clean" leaves images untouched
    "clean": (None, None),
    "jpeg_q50": (jpeg, 50),
    "blur_sigma1": (blur, 1.0),
    "resize_half": (resize, 0.5),
    "noise_sigma8": (noise, 8.0),
}


def perturb(images: np.ndarray, scenario: str, seed: int = 0) -> np.ndarray:
    """Apply one named scenario of `SCENARIOS`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {list(SCENARIOS)}")
    function, strength = SCENARIOS[scenario]
    if function is None:
        return images
    return function(images, strength, seed) if function is noise else function(images, strength)


SEVERITIES = {  # damage → (function, strengths from mild to severe, what the strength is)
    "jpeg": (jpeg, [95, 75, 50, 30], "JPEG quality"),
    "blur": (blur, [0.5, 1.0, 2.0], "Gaussian blur sigma (px)"),
    "resize": (resize, [0.75, 0.5, 0.25], "down-and-up resize scale"),
    "noise": (noise, [2.0, 5.0, 10.0], "Gaussian noise sigma (0-255)"),
}


def damage(images: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """One damage of `SEVERITIES` at one strength."""
    if kind not in SEVERITIES:
        raise ValueError(f"unknown damage {kind!r}; known: {list(SEVERITIES)}")
    function = SEVERITIES[kind][0]
    return function(images, strength, seed) if function is noise else function(images, strength)
