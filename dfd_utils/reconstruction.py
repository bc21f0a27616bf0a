"""V1: detection by reconstruction error of an autoencoder trained on REAL images only.

The idea needs no FAKE examples: an autoencoder fitted to real photos should reconstruct
anything else badly. The threshold is therefore calibrated on held-out REAL images at a stated
false-positive rate. Errors are measured with the same code as AEROBLADE (MSE and LPIPS), so
the two notebooks report comparable distances.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from . import aeroblade
from .data import ImageSet
from .metrics import evaluate
from .models import create_model
from .train import History, fit

__all__ = ["train_autoencoder", "errors", "bottleneck_sweep", "latent_extractor", "detail_table", "explain_failure"]


def train_autoencoder(train: ImageSet, val: ImageSet | None = None, *, latent_dim: int = 128, width: int = 32,
                      **fit_options) -> tuple[nn.Module, History]:
    """A `ConvAutoencoder` fitted with MSE on `train` (meant to hold REAL images only)."""
    if train.n_fake:
        raise ValueError(f"{train.name} holds {train.n_fake} FAKE images; V1 learns from REAL images only")
    model = create_model("conv_autoencoder", latent_dim=latent_dim, width=width, image_size=train.images.shape[1])
    return model, fit(model, train, val, objective="reconstruct", **fit_options)


def errors(model: nn.Module, image_set: ImageSet, metric: nn.Module, batch_size: int = 256) -> pd.DataFrame:
    """Per-image reconstruction errors (mse, psnr, lpips and each LPIPS layer); high = FAKE."""
    v1 = aeroblade.Autoencoder("v1", model.eval(), "trained in this run", fixed_size=model.image_size)
    return aeroblade.measure(image_set.images, [v1], metric, batch_size=batch_size).table.drop(columns="autoencoder")


def bottleneck_sweep(latent_dims: list[int], train: ImageSet, val: ImageSet, metric: nn.Module,
                     width: int = 32, **fit_options) -> pd.DataFrame:
    """One autoencoder per bottleneck size: how well it reconstructs held-out images and how
    well its MSE and LPIPS errors separate the classes of the labelled `val` set."""
    rows = []
    for latent_dim in latent_dims:
        model, history = train_autoencoder(train, latent_dim=latent_dim, width=width, progress=False, **fit_options)
        table = errors(model, val, metric)
        row = {"latent_dim": latent_dim, "params": sum(p.numel() for p in model.parameters()),
               "val_real_mse": float(table["mse"][val.labels == 0].mean()),
               "val_fake_mse": float(table["mse"][val.labels == 1].mean()),
               "train_seconds": history.train_seconds}
        for distance in ("mse", "lpips"):
            row[f"auroc_{distance}"] = evaluate(val.labels, table[distance].to_numpy(), n_boot=0)["auroc"]
        rows.append(row)
    return pd.DataFrame(rows)


def latent_extractor(model: nn.Module):
    """The bottleneck code as a feature function for `probing.features`."""
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
