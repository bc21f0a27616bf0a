"""V2: fine-tune a zoo of pretrained backbones under one protocol and compare them.

Every backbone gets the same data, epochs, schedule and evaluation; the best one is chosen
on the validation split (never on the test split) and returned for saving.
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from .data import ImageSet
from .evaluation import evaluate_detector
from .models import pretrained_detector
from .runs import Run
from .train import evaluate_loss, fit

__all__ = ["compare_backbones"]


def _one(run: Run, backbone: str, strategy: str, fit_set: ImageSet, val_set: ImageSet, test_sets: dict,
         input_size: int, backbone_lr_scale: float, n_boot: int, fit_options: dict) -> tuple[dict, nn.Module]:
    model, source = pretrained_detector(backbone, input_size, strategy, backbone_lr_scale)
    history = fit(model, fit_set, val_set, progress=False, **fit_options)
    variant = f"{backbone} · {strategy} · {input_size}px"
    metrics, _ = evaluate_detector(run, model, test_sets, "V2 fine-tuned CNN", variant, history, pretrained=source,
                                   n_boot=n_boot, backbone=backbone, strategy=strategy, input_size=input_size)
    test = metrics.iloc[0]
    row = {"backbone": backbone, "strategy": strategy, "input_size": input_size, "pretrained": source,
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
           "precision": history.rows[-1]["precision"], "train_minutes": history.train_seconds / 60,
           "train_images_per_s": history.images_per_s,
           "infer_images_per_s": test.infer_images_per_s, "val_acc": evaluate_loss(model, val_set)[1],
           **{key: test[key] for key in ("acc", "acc_ci_low", "acc_ci_high", "auroc", "auroc_ci_low", "auroc_ci_high")}}
    return row, model


def compare_backbones(run: Run, backbones: list[str], fit_set: ImageSet, val_set: ImageSet, test_sets: dict,
                      *, input_size: int = 32, strategies: tuple[str, ...] = ("full",), backbone_lr_scale: float = 0.1,
                      n_boot: int = 1000, **fit_options) -> tuple[pd.DataFrame, nn.Module, dict]:
    """Train and evaluate every backbone × strategy; one table row each (test metrics with 95%
    intervals). Returns the table, the model with the best validation accuracy, and its row.
    A linear probe of a backbone without pretrained weights is skipped, and the reason printed."""
    rows, best_model, best_row = [], None, None
    for backbone in backbones:
        for strategy in strategies:
            try:
                row, model = _one(run, backbone, strategy, fit_set, val_set, test_sets, input_size,
                                  backbone_lr_scale, n_boot, fit_options)
            except ValueError as error:
                if "linear probe needs pretrained" not in str(error):
                    raise
                print(f"skipped {backbone} · {strategy}: {error}")
                continue
            if row["pretrained"].startswith("none"):
                print(f"NOTE {backbone}: no pretrained weights ({row['pretrained']}); trained from scratch")
            rows.append(row)
            if best_row is None or row["val_acc"] > best_row["val_acc"]:
                best_model, best_row = model, row
    if best_model is None:
        raise ValueError("no backbone could be trained; see the messages above")
    return pd.DataFrame(rows), best_model, best_row
