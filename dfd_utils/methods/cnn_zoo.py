"""V2: fine-tune a zoo of pretrained backbones under one protocol and compare them.

Every backbone gets the same data, epochs, schedule and evaluation; the best one is chosen
on the validation split (never on the test split) and returned for saving. Rows say where
each backbone's weights came from, so the table compares like with like only within a
pretraining source (ImageNet, CIFAR-10, none).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..data import ImageSet
from ..detectors import ClassifierDetector
from ..models import NoPretrainedWeights, pretrained_detector
from ..scores import Scores
from ..training import evaluate_loss, fit

__all__ = ["METHOD", "pretraining_group", "compare_backbones"]

METHOD = "V2 fine-tuned CNN"


def pretraining_group(source: str) -> str:
    """ImageNet / CIFAR-10 / none: what a backbone's weights were pretrained on."""
    if source.startswith("none"):
        return "none (from scratch)"
    return "CIFAR-10" if "CIFAR-10" in source else "ImageNet"


def _one(backbone: str, strategy: str, fit_set: ImageSet, val_set: ImageSet, test_sets: dict[str, ImageSet],
         input_size: int, backbone_lr_scale: float, name: str, checkpoint: Path | None,
         fit_options: dict) -> tuple[dict, list[Scores], ClassifierDetector]:
    model, source = pretrained_detector(backbone, input_size, strategy, backbone_lr_scale)
    history = fit(model, fit_set, val_set, checkpoint=checkpoint, **fit_options)
    variant = f"{backbone} · {strategy} · {input_size}px"
    detector = ClassifierDetector(model, name=name, method=METHOD, variant=variant, pretrained=source,
                                  notebook="02_cnn_zoo")
    extra = {"backbone": backbone, "strategy": strategy, "input_size": input_size,
             "pretraining": pretraining_group(source), **history.cost}
    scores = detector.score_sets(test_sets, **extra)
    test = scores[0].record(n_boot=0)
    row = {"backbone": backbone, "strategy": strategy, "input_size": input_size, "pretraining": extra["pretraining"],
           "pretrained": source, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
           "train_precision": history.precision_choice, "train_minutes": history.train_seconds / 60,
           "train_images_per_s": history.images_per_s, "infer_images_per_s": scores[0].infer_images_per_s,
           "val_acc": evaluate_loss(model, val_set)[1], "test_acc": test["acc"], "test_auroc": test["auroc"]}
    return row, scores, detector


def compare_backbones(backbones: list[str], fit_set: ImageSet, val_set: ImageSet, test_sets: dict[str, ImageSet],
                      *, input_size: int = 32, input_sizes: dict[str, int] | None = None,
                      strategies: tuple[str, ...] = ("full",), backbone_lr_scale: float = 0.1,
                      name: str = "v2", checkpoints: Callable[[str], Path] | None = None,
                      **fit_options) -> tuple[pd.DataFrame, list[Scores], ClassifierDetector]:
    """Train and score every backbone × strategy, each at `input_sizes.get(backbone, input_size)`
    pixels (upsampled inside the model). Returns one table row each (sorted by
    pretraining source), the `Scores` of every model on every test set, and the detector
    with the best validation accuracy (saved under `name`). A linear probe of a backbone without pretrained
    weights is skipped, and the reason printed.

    `checkpoints(key)` (e.g. `run.checkpoint` with its `resume`) gives each model's per-epoch
    checkpoint file, so an interrupted comparison (a `full` one trains for hours) resumes the
    model it was training and retrains none that had finished."""
    rows, all_scores, best, best_val = [], [], None, -1.0
    for backbone in backbones:
        for strategy in strategies:
            size = (input_sizes or {}).get(backbone, input_size)
            checkpoint = checkpoints(f"{backbone}-{strategy}-{size}px") if checkpoints else None
            try:
                row, scores, detector = _one(backbone, strategy, fit_set, val_set, test_sets, size,
                                             backbone_lr_scale, name, checkpoint, fit_options)
            except NoPretrainedWeights as error:
                print(f"skipped {backbone} · {strategy}: {error}")
                continue
            if row["pretrained"].startswith("none"):
                print(f"NOTE {backbone}: no pretrained weights ({row['pretrained']}); trained from scratch")
            rows.append(row)
            all_scores += scores
            if row["val_acc"] > best_val:
                best, best_val = detector, row["val_acc"]
    if best is None:
        raise ValueError("no backbone could be trained; see the messages above")
    table = pd.DataFrame(rows).sort_values(["pretraining", "val_acc"], ascending=[True, False], kind="stable")
    return table.reset_index(drop=True), all_scores, best
