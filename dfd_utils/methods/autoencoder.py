"""V1: detection by reconstruction error of an autoencoder trained on REAL images only.

The idea needs no FAKE examples: an autoencoder fitted to real photos should reconstruct
anything else badly. The threshold is therefore calibrated on held-out REAL images at a stated
false-positive rate, and the error's direction (does FAKE really reconstruct worse?) is
checked on labelled training images, not assumed. Errors are measured with the same code as
AEROBLADE (`distances.measure`: MSE and LPIPS), so the two notebooks report comparable distances.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from ..data import ImageSet
from ..detectors import InputPolicy
from ..distances import Autoencoder, Measured, ReconstructionDetector, measure
from ..metrics import evaluate
from ..models import create_model
from ..features import features, linear_probe
from ..scores import Scores, argmax_threshold, calibrate_on_real, choose_sign
from ..training import History, fit

__all__ = ["METHOD", "train_autoencoder", "as_autoencoder", "errors", "error_variants", "latent_probe", "make_detector", "bottleneck_sweep",
           "latent_extractor", "detail_table", "explain_failure"]

METHOD = "V1 autoencoder"
_PIXEL_DISTANCES = ("mse", "psnr")  # computed from pixels alone: no LPIPS network, its time or its weights


def train_autoencoder(train: ImageSet, val: ImageSet | None = None, *, latent_dim: int = 128, width: int = 32,
                      **fit_options) -> tuple[nn.Module, History]:
    """A `ConvAutoencoder` fitted with MSE on `train` (meant to hold REAL images only)."""
    if train.n_fake:
        raise ValueError(f"{train.name} holds {train.n_fake} FAKE images; V1 learns from REAL images only")
    model = create_model("conv_autoencoder", latent_dim=latent_dim, width=width, image_size=train.images.shape[1])
    return model, fit(model, train, val, objective="reconstruct", **fit_options)


def as_autoencoder(model: nn.Module, source: str = "trained in this run") -> Autoencoder:
    """V1 as a reconstruction module for `distances` (and for AEROBLADE's list of autoencoders)."""
    return Autoencoder("v1", model.eval(), source, fixed_size=model.image_size)


def errors(model: nn.Module, image_set: ImageSet, metric: nn.Module, batch_size: int = 256) -> Measured:
    """Per-image reconstruction errors (`table`: mse, psnr, lpips and each LPIPS layer) and the
    seconds they took, from which each variant's scoring speed is recorded."""
    return measure(image_set.images, [as_autoencoder(model)], metric, batch_size=batch_size)


def _images_per_s(measured: Measured, distance: str) -> float:
    """Scoring speed of one distance: reconstruction alone for MSE/PSNR, plus LPIPS for its distances."""
    (seconds,) = measured.seconds.values()  # one autoencoder: V1
    spent = seconds["reconstruct"] + (0.0 if distance in _PIXEL_DISTANCES else seconds["lpips"])
    return len(measured.table) / max(spent, 1e-9)


def error_variants(errors_by_split: dict[str, Measured], sets: dict[str, ImageSet], val_errors: Measured,
                   val: ImageSet, target_fpr: float, latent_dim: int, history: History, lpips_source: str,
                   distances: tuple[str, ...] = ("mse", "lpips")) -> list[Scores]:
    """For each error distance, the `Scores` on every set in `sets`: the sign (does FAKE
    reconstruct worse?) chosen on the labelled validation images `val`, the threshold on its
    REAL images at `target_fpr`, the speed measured while scoring that set; each value also
    carries its validation AUROC (`val_auroc`), which picks the distance the saved detector uses."""
    results = []
    for distance in distances:
        raw = val_errors.table[distance].to_numpy()
        sign = choose_sign(val.labels, raw)
        threshold = calibrate_on_real(sign * raw[val.labels == 0], target_fpr, "held-out REAL training images")
        pretrained = "none" if distance in _PIXEL_DISTANCES else f"none (autoencoder); {lpips_source}"
        val_auroc = evaluate(val.labels, sign * raw, n_boot=0)["auroc"]
        results += [Scores(METHOD, f"{distance} error, latent {latent_dim}", split, image_set.ids,
                           sign * errors_by_split[split].table[distance].to_numpy(), threshold, image_set.labels,
                           train_seconds=history.train_seconds,
                           infer_images_per_s=_images_per_s(errors_by_split[split], distance), pretrained=pretrained,
                           extra={"distance": distance, "sign": sign, "val_auroc": val_auroc})
                    for split, image_set in sets.items()]
    return results


def latent_probe(model: nn.Module, probe_set: ImageSet, sets: dict[str, ImageSet], history: History) -> list[Scores]:
    """The supervised variant: a standardised logistic regression on the bottleneck code, fitted
    on the labelled `probe_set` (training images), scored on every set in `sets`."""
    encode = latent_extractor(model)
    train_features = features(encode, probe_set)
    results = []
    for split, image_set in sets.items():
        scores, _ = linear_probe(train_features, probe_set.labels, features(encode, image_set))
        results.append(Scores(METHOD, f"linear probe on latent {model.latent_dim}", split, image_set.ids, scores,
                              argmax_threshold(), image_set.labels, train_seconds=history.train_seconds,
                              extra={"probe_images": len(probe_set)}))
    return results


def make_detector(model: nn.Module, scores: Scores, lpips_net: str | None, metric: nn.Module | None,
                  name: str, notebook: str) -> ReconstructionDetector:
    """The detector behind one `error_scores` value (V1 takes 32x32 images only)."""
    return ReconstructionDetector([as_autoencoder(model)], distance=scores.extra["distance"], sign=scores.extra["sign"],
                                  lpips_net=lpips_net if scores.extra["distance"] != "mse" else None,
                                  metric=metric if scores.extra["distance"] != "mse" else None, name=name, method=METHOD,
                                  variant=scores.variant, threshold=scores.threshold,
                                  policy=InputPolicy(size=model.image_size), pretrained=scores.pretrained,
                                  notebook=notebook)


def bottleneck_sweep(latent_dims: list[int], train: ImageSet, val: ImageSet, metric: nn.Module,
                     width: int = 32, checkpoints: Callable[[str], Path] | None = None, **fit_options) -> pd.DataFrame:
    """One autoencoder per bottleneck size: how well it reconstructs held-out images and how
    well its MSE and LPIPS errors separate the classes of the labelled `val` set.
    `checkpoints(key)` (e.g. `run.checkpoint` with its `resume`) gives each model's per-epoch
    checkpoint file, so an interrupted sweep (a `full` one trains for an hour or more) resumes
    the model it was training and retrains none that had finished."""
    rows = []
    for latent_dim in latent_dims:
        checkpoint = checkpoints(f"sweep-latent{latent_dim}") if checkpoints else None
        model, history = train_autoencoder(train, latent_dim=latent_dim, width=width, progress=False,
                                           checkpoint=checkpoint, **fit_options)
        table = errors(model, val, metric).table
        row = {"latent_dim": latent_dim, "params": sum(p.numel() for p in model.parameters()),
               "val_real_mse": float(table["mse"][val.labels == 0].mean()),
               "val_fake_mse": float(table["mse"][val.labels == 1].mean()),
               "train_seconds": history.train_seconds}
        for distance in ("mse", "lpips"):
            row[f"auroc_{distance}"] = evaluate(val.labels, table[distance].to_numpy(), n_boot=0)["auroc"]
        rows.append(row)
    return pd.DataFrame(rows)


def latent_extractor(model: nn.Module):
    """The bottleneck code as a feature function for `features`."""
    return lambda batch: model.encode(batch)


def detail_table(labels, detail, error) -> pd.DataFrame:
    """Per class: fine detail and reconstruction error, and their rank correlation within the
    class; plus the AUROC of the error and of detail alone as fake scores. If detail alone
    scores about as well as the error, the autoencoder is a detail meter, not an origin test."""
    from scipy.stats import spearmanr

    labels, detail, error = np.asarray(labels), np.asarray(detail), np.asarray(error)
    rows = []
    for label, name in enumerate(("REAL", "FAKE")):
        chosen = labels == label
        rows.append({"class": name, "images": int(chosen.sum()), "mean_detail": float(detail[chosen].mean()),
                     "mean_error": float(error[chosen].mean()), "median_error": float(np.median(error[chosen])),
                     "spearman_detail_error": float(spearmanr(detail[chosen], error[chosen]).statistic)})
    table = pd.DataFrame(rows)
    table["auroc_error"] = evaluate(labels, error, n_boot=0)["auroc"]
    table["auroc_detail"] = evaluate(labels, detail, n_boot=0)["auroc"]
    return table


def explain_failure(table: pd.DataFrame) -> str:
    """One paragraph, computed from `detail_table`, that says what the error measures."""
    real, fake = table.set_index("class").loc["REAL"], table.set_index("class").loc["FAKE"]
    more = "more" if fake.mean_detail > real.mean_detail else "less"
    direction = "higher" if fake.mean_error > real.mean_error else "lower"
    tracks = min(real.spearman_detail_error, fake.spearman_detail_error) >= 0.5
    verdict = "the error tracks how detailed an image is" if tracks else "detail explains the error only in part"
    return (f"FAKE test images have {more} fine detail than REAL ones (mean |Laplacian| {fake.mean_detail:.4f} vs "
            f"{real.mean_detail:.4f}), and their mean reconstruction MSE is {direction} ({fake.mean_error:.4f} vs "
            f"{real.mean_error:.4f}). Within each class the error's rank correlation with detail is "
            f"{real.spearman_detail_error:.2f} (REAL) and {fake.spearman_detail_error:.2f} (FAKE): {verdict}. "
            f"Detail alone as the fake score has AUROC {real.auroc_detail:.3f}; the reconstruction error has "
            f"{real.auroc_error:.3f}.")
