"""Scores as values: what every method returns and what every caller records.

A method never writes records itself. It returns `Scores` — one detector's fake-scores on one
split, with the threshold it decides at (and how that threshold was chosen) and what scoring
cost — and the notebook, `dfd score` or the comparison records or compares them. The metric
entry a `Scores` value becomes is documented once, in `RECORD_TYPES`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from sklearn.metrics import roc_auc_score

from .metrics import METRIC_TYPES, evaluate, threshold_at_fpr

__all__ = ["Threshold", "Scores", "RECORD_TYPES", "argmax_threshold", "calibrate_on_real", "choose_sign"]

RECORD_TYPES: dict[str, tuple[type, ...]] = {  # every metrics.json entry has these keys, of these types
    "method": (str,), "variant": (str,), "split": (str,),
    **METRIC_TYPES,
    "threshold_rule": (str,),
    "train_seconds": (float, type(None)), "infer_images_per_s": (float, type(None)),
    "pretrained": (str,),
}


@dataclass(frozen=True)
class Threshold:
    """Where a detector decides FAKE (`score >= value`) and, in words, how `value` was chosen."""

    value: float
    rule: str


def argmax_threshold() -> Threshold:
    """The decision of a 2-class softmax trained with cross-entropy: FAKE when p(FAKE) >= 0.5."""
    return Threshold(0.5, "fake probability >= 0.5 (argmax of the trained 2-class softmax)")


def calibrate_on_real(real_scores, target_fpr: float, what: str) -> Threshold:
    """A threshold from REAL images only: at most `target_fpr` of them score at or above it.

    `what` names the images (e.g. "held-out REAL training images"); it goes into the rule, so
    every record says which data set the threshold and at what false-positive rate.
    """
    real_scores = np.asarray(real_scores, dtype=float)
    if len(real_scores) == 0:
        raise ValueError("calibrating a threshold needs at least one REAL score")
    value = threshold_at_fpr(real_scores, target_fpr)
    return Threshold(value, f"at most {target_fpr:.0%} of {len(real_scores):,} {what} flagged")


def choose_sign(labels, raw_scores) -> int:
    """+1 if higher raw values mean FAKE on these (training or reference) images, else -1.

    A training-free score has no direction of its own; fixing it on training data, never on
    test, is what keeps its test AUROC honest.
    """
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError("choosing a score's sign needs REAL and FAKE examples")
    return 1 if roc_auc_score(labels, np.asarray(raw_scores, dtype=float)) >= 0.5 else -1


@dataclass(frozen=True)
class Scores:
    """One detector's scores (higher = more likely FAKE) for one split of images."""

    method: str  # e.g. "V4 CNN"
    variant: str  # e.g. "detector_cnn w16 d2 s4"
    split: str  # e.g. "test", "test-dedup", "xdomain_dev", "test · jpeg q50"
    ids: np.ndarray
    scores: np.ndarray
    threshold: Threshold
    labels: np.ndarray | None = None  # 0 REAL, 1 FAKE; None for unlabelled images
    train_seconds: float | None = None
    infer_images_per_s: float | None = None
    pretrained: str = "none"
    extra: dict = field(default_factory=dict)  # method-specific facts; never a RECORD_TYPES key

    def __post_init__(self):
        if len(self.ids) != len(self.scores) or (self.labels is not None and len(self.labels) != len(self.scores)):
            raise ValueError(f"{self.method} · {self.split}: ids, labels and scores differ in length")
        clash = set(self.extra) & set(RECORD_TYPES)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} would overwrite documented record keys; rename them")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def decisions(self) -> np.ndarray:
        """1 (FAKE) where the score reaches the threshold."""
        return (np.asarray(self.scores) >= self.threshold.value).astype(int)

    def record(self, n_boot: int = 1000, seed: int = 0) -> dict:
        """The metrics entry (`RECORD_TYPES` keys, then `extra`); needs labels."""
        if self.labels is None:
            raise ValueError(f"{self.method} · {self.split}: unlabelled scores have no metrics")
        metrics = evaluate(self.labels, self.scores, self.threshold.value, n_boot=n_boot, seed=seed)
        entry = {"method": self.method, "variant": self.variant, "split": self.split, **metrics,
                 "threshold_rule": self.threshold.rule, "train_seconds": _number(self.train_seconds),
                 "infer_images_per_s": _number(self.infer_images_per_s), "pretrained": self.pretrained}
        return entry | self.extra

    def replace(self, **changes) -> "Scores":
        return dataclasses.replace(self, **changes)

    def take(self, index: np.ndarray, split: str) -> "Scores":
        """These scores of the images at `index`, as the scores of `split` (a subset of these images)."""
        return self.replace(split=split, ids=np.asarray(self.ids)[index], scores=np.asarray(self.scores)[index],
                            labels=None if self.labels is None else np.asarray(self.labels)[index])


def _number(value) -> float | None:
    return None if value is None else float(value)
