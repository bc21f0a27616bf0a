"""Score a trained detector on one or more test sets and write the standard records, so
every supervised notebook reports the same way in one call."""
from __future__ import annotations

import pandas as pd
from torch import nn

from .data import ImageSet
from .runs import Run
from .train import History, predict

__all__ = ["evaluate_detector"]


def evaluate_detector(run: Run, model: nn.Module, test_sets: dict[str, ImageSet], method: str,
                      variant: str, history: History | None = None, pretrained: str = "none",
                      n_boot: int = 1000, flip_average: bool = False, **extra) -> tuple[pd.DataFrame, dict]:
    """Predict every set, log one metrics entry per set, save the first set's predictions.
    `flip_average` (see `train.predict`) is recorded in each entry as `test_time_flip`.

    Returns the metrics rows as a table and the scores per set name (for plots).
    """
    rows, scores = [], {}
    for index, (split, image_set) in enumerate(test_sets.items()):
        scores[split], images_per_s = predict(model, image_set, progress=False, flip_average=flip_average)
        rows.append(run.log_metrics(
            method, variant, split, image_set.labels, scores[split], threshold=0.5,
            train_seconds=history.train_seconds if history else None, infer_images_per_s=images_per_s,
            pretrained=pretrained, n_boot=n_boot,
            train_images_per_s=history.images_per_s if history else None,
            precision=history.rows[-1].get("precision") if history else None, test_time_flip=flip_average, **extra))
        if index == 0:
            run.save_predictions(image_set.ids, image_set.labels, scores[split], variant)
    return pd.DataFrame(rows), scores
