"""AEROBLADE (Ricker et al., CVPR 2024): training-free detection by autoencoder reconstruction.

An image a latent diffusion model generated lies on its autoencoder's output manifold, so the
autoencoder reconstructs it almost perfectly; a real photo it does not. The score is the LPIPS
distance between the image and its reconstruction, minimised over several autoencoders (the
paper's best distance: the second LPIPS-VGG layer). Here every LPIPS layer, their sum, and
MSE/PSNR are measured at once (`distances.measure`), so one pass answers "which distance, which
autoencoder".

The paper's direction (low distance = FAKE) is a claim about generators' own autoencoders; on
other data it may not hold, so each score's sign is chosen on labelled *training* images
(`scores.choose_sign`) and recorded, never on test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from ..distances import Autoencoder, ReconstructionDetector, best_reconstruction, measure, Measured
from ..metrics import bootstrap_intervals, tpr_at_fpr
from ..scores import Scores, calibrate_on_real, choose_sign
from ..training import load_state, save_state

__all__ = ["group_names", "choose_signs", "separation_table", "signed_scores", "variant_scores", "make_detector", "resolution_study"]

METHOD = "AEROBLADE"


def group_names(table: pd.DataFrame) -> dict[str, list[str]]:
    """Each autoencoder alone, plus the minimum over all of them when there are several."""
    names = list(dict.fromkeys(table["autoencoder"]))
    return {name: [name] for name in names} | ({"min over " + "+".join(names): names} if len(names) > 1 else {})


def signed_scores(table: pd.DataFrame, distance: str, members: list[str], sign: int) -> np.ndarray:
    """`sign` × the best reconstruction's distance: the fake-score of one variant."""
    return sign * best_reconstruction(table, distance, members)


def separation_table(table: pd.DataFrame, labels: np.ndarray, signs: dict[tuple[str, str], int],
                     distances: list[str] | None = None, n_boot: int = 1000) -> pd.DataFrame:
    """For every autoencoder group (`group_names`) and distance: the sign chosen on training
    images (`signs[(group, distance)]`), AUROC with a 95% bootstrap interval, AP and TPR at 5% FPR."""
    from sklearn.metrics import average_precision_score

    distances = distances or [c for c in table.columns if c not in ("autoencoder", "image")]
    rows = []
    for group, members in group_names(table).items():
        for distance in distances:
            s = signed_scores(table, distance, members, signs[(group, distance)])
            interval = bootstrap_intervals(labels, s, np.median(s), n_boot) if n_boot else {}
            rows.append({"autoencoder": group, "distance": distance, "sign": signs[(group, distance)],
                         "n": len(labels), "auroc": _auroc(labels, s), "auroc_ci_low": interval.get("auroc_ci_low"),
                         "auroc_ci_high": interval.get("auroc_ci_high"), "ap": average_precision_score(labels, s),
                         "tpr_at_fpr_5pct": tpr_at_fpr(labels, s, 0.05)})
    return pd.DataFrame(rows)


def _auroc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def choose_signs(training: Measured, labels: np.ndarray, distances: list[str] | None = None) -> dict[tuple[str, str], int]:
    """The sign of every (group, distance) score, chosen on labelled training images."""
    distances = distances or [c for c in training.table.columns if c not in ("autoencoder", "image")]
    return {(group, distance): choose_sign(labels, best_reconstruction(training.table, distance, members))
            for group, members in group_names(training.table).items() for distance in distances}


def variant_scores(test: Measured, test_labels: np.ndarray, test_ids: np.ndarray, training: Measured,
                   training_labels: np.ndarray, distance: str, target_fpr: float, pretrained: str,
                   split: str = "test") -> list[Scores]:
    """The `Scores` of each autoencoder alone and of the minimum over all, for one distance: the
    sign chosen on the labelled training images, the threshold on their REAL ones only; the
    training AUROC (`train_auroc`) is what a caller may choose a variant by."""
    results = []
    for group, members in group_names(test.table).items():
        sign = choose_sign(training_labels, best_reconstruction(training.table, distance, members))
        on_training = signed_scores(training.table, distance, members, sign)
        threshold = calibrate_on_real(on_training[training_labels == 0], target_fpr, "REAL training images")
        seconds = sum(test.seconds[m]["reconstruct"] + test.seconds[m]["lpips"] for m in members)
        results.append(Scores(METHOD, f"{group} · {distance}", split, test_ids,
                              signed_scores(test.table, distance, members, sign), threshold, test_labels,
                              infer_images_per_s=len(test_ids) / max(seconds, 1e-9), pretrained=pretrained,
                              extra={"distance": distance, "autoencoders": members, "sign": sign,
                                     "train_auroc": _auroc(training_labels, on_training), "target_fpr": target_fpr,
                                     "size": test.size}))
    return results


def make_detector(scores: Scores, autoencoders: list[Autoencoder], metric: nn.Module, lpips_net: str,
                  name: str, notebook: str) -> ReconstructionDetector:
    """The detector behind one `variant_scores` value, to save and to score other images with."""
    from ..detectors import InputPolicy

    used = [ae for ae in autoencoders if ae.name in scores.extra["autoencoders"]]
    fixed = {ae.fixed_size for ae in used} - {None}
    policy = InputPolicy(size=fixed.pop()) if fixed else InputPolicy(size=None, multiple=8)
    return ReconstructionDetector(used, distance=scores.extra["distance"], sign=scores.extra["sign"], lpips_net=lpips_net,
                                  metric=metric, name=name, method=METHOD, variant=scores.variant,
                                  threshold=scores.threshold, policy=policy, pretrained=scores.pretrained,
                                  notebook=notebook)


def resolution_study(images: np.ndarray, labels: np.ndarray, training_images: np.ndarray, training_labels: np.ndarray,
                     autoencoders: list[Autoencoder], metric: nn.Module, sizes: list[int], distances: list[str],
                     batch_size: int = 64, n_boot: int = 1000, checkpoint: str | Path | None = None,
                     chunk: int = 128) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separation (AUROC with intervals, AP, TPR) and images per second at each side length, each
    score's sign chosen on the training images at that size; autoencoders with a fixed input
    size take part only at that size. `checkpoint`: a file that holds the sizes done and the
    current size's images measured so far, saved after every `chunk` images, so that an
    interrupted study (a `full` one reconstructs 1,200 images at 512 px, over an hour on a CPU)
    loses at most one chunk; one made with other settings is an error."""
    key = {"sizes": sizes, "distances": distances, "images": len(images), "training_images": len(training_images),
           "autoencoders": [ae.name for ae in autoencoders], "n_boot": n_boot, "chunk": chunk}
    resuming = checkpoint and Path(checkpoint).exists()
    state = load_state(Path(checkpoint), key) if resuming else {"key": key, "done": [], "partial": {}}

    def save():
        if checkpoint:
            save_state(Path(checkpoint), state)

    for size in sizes[len(state["done"]):]:
        usable = [ae for ae in autoencoders if ae.fixed_size in (None, size)]
        partial = state["partial"]
        on_training = _measure_in_chunks(training_images, usable, metric, size, batch_size, chunk,
                                         partial.setdefault("training", []), save)
        signs = choose_signs(on_training, training_labels, distances)
        measured = _measure_in_chunks(images, usable, metric, size, batch_size, chunk, partial.setdefault("test", []), save)
        state["done"].append((separation_table(measured.table, labels, signs, distances, n_boot).assign(size=size),
                              measured.images_per_s()))
        state["partial"] = {}
        save()
    return (pd.concat([separation for separation, _ in state["done"]], ignore_index=True),
            pd.concat([speed for _, speed in state["done"]], ignore_index=True))


def _measure_in_chunks(images: np.ndarray, autoencoders: list[Autoencoder], metric: nn.Module, size: int,
                       batch_size: int, chunk: int, parts: list[Measured], save) -> Measured:
    """`images` measured `chunk` at a time, going on after the `parts` measured before; `save`
    is called after each chunk."""
    for begin in range(len(parts) * chunk, len(images), chunk):
        parts.append(measure(images[begin:begin + chunk], autoencoders, metric, size=size, batch_size=batch_size))
        save()
    return Measured.concat(parts)
