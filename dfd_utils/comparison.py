"""Notebook 99's measurements: every saved detector side by side, from the records and by
re-scoring — nothing is retrained, no threshold or choice is made on a test set here.

- `recorded_scores`: a detector's own test scores, read back from its run's `predictions.csv`;
- `paired_table`: paired differences (bootstrap over the common images) and McNemar, pair by pair;
- `images_per_second`: a detector's end-to-end speed, measured here on the same images for all;
- `robustness`: AUROC and accuracy at the clean threshold under `robustness.SEVERITIES`;
- `calibration_table`: expected calibration error of the probability detectors;
- `group_accuracy`: accuracy per CIFAKE file-name group (the "(k)" suffix) and class;
- `cross_domain`: every detector on another image set, per generator family where n allows;
- `transfer_table`: what transfers — each detector's CIFAKE AUROC beside its cross-domain one.
"""
from __future__ import annotations

import itertools
import json
import re
import time

import numpy as np
import pandas as pd

from .data import ImageSet
from .detectors import SPEC_FILE, Detector, available
from .metrics import bootstrap_intervals, evaluate, expected_calibration_error, interval_verdict, paired_comparison
from .robustness import SEVERITIES, damage
from .scores import Scores, Threshold

__all__ = ["recorded_scores", "paired_table", "images_per_second", "robustness", "calibration_table", "file_groups", "group_accuracy",
           "confident_errors", "cross_domain", "transfer_table", "PROBABILITY_KINDS"]

PROBABILITY_KINDS = ("ClassifierDetector", "DireDetector", "EnsembleDetector")  # scores are FAKE probabilities


def recorded_scores(name: str, profile: str = "default", split: str = "test") -> Scores:
    """The test scores a detector's notebook recorded for its own variant (`predictions.csv`)."""
    folder = available(profile)[name]
    spec = json.loads((folder / SPEC_FILE).read_text())
    run_folder = folder.parents[1]
    predictions = pd.read_csv(run_folder / "predictions.csv", dtype={"id": str, "variant": str, "split": str})
    own = predictions[(predictions.variant == spec["variant"]) & (predictions.split == split)]
    if own.empty:
        raise LookupError(f"{run_folder}/predictions.csv has no {split!r} scores for {spec['variant']!r}")
    return Scores(spec["method"], spec["variant"], split, own.id.to_numpy(), own.score.to_numpy(),
                  Threshold(**spec["threshold"]), own.label.to_numpy(), extra={"detector": name})


def _common(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both detectors' scores on the images both scored (ids intersected, a's order)."""
    position = {image: i for i, image in enumerate(b.ids)}
    keep = np.array([image in position for image in a.ids])
    other = np.array([position[image] for image in a.ids[keep]], dtype=int)
    return a.labels[keep], a.scores[keep], b.scores[other]


def paired_table(scores: dict[str, Scores], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A − B for every pair (in the given order): accuracy and AUROC differences with paired
    bootstrap intervals on the images both scored, and McNemar's p for the accuracy."""
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(scores.items(), 2):
        labels, score_a, score_b = _common(a, b)
        result = paired_comparison(labels, score_a, score_b, a.threshold.value, b.threshold.value, n_boot, seed)
        rows.append({"a": name_a, "b": name_b, **result})
    return pd.DataFrame(rows)


def images_per_second(detector: Detector, images: np.ndarray) -> float:
    """Images per second of `detector.score` on `images` (uint8, the detector's input size),
    after a warm-up call on the first two — decoding excluded, everything the detector does
    (DIRE's inversion and reconstruction, AEROBLADE's autoencoders) included."""
    detector.score(images[:2])
    start = time.perf_counter()
    detector.score(images)
    return len(images) / max(time.perf_counter() - start, 1e-9)


def robustness(detectors: dict[str, Detector], images: dict[str, ImageSet], n_boot: int = 200,
               seed: int = 0) -> pd.DataFrame:
    """Each detector on its clean test images (`images[name]`) and on every damage × strength
    of `SEVERITIES`: AUROC with a 95% interval, and accuracy at the detector's clean
    (calibrated) threshold — what a deployed detector would actually decide."""
    rows = []
    for name, detector in detectors.items():
        image_set = images[name]
        conditions = [("clean", 0.0, image_set.images)] + [
            (kind, strength, damage(image_set.images, kind, strength, seed))
            for kind, (_, strengths, _) in SEVERITIES.items() for strength in strengths]
        for kind, strength, pixels in conditions:
            scores = detector.score(pixels)
            result = evaluate(image_set.labels, scores, detector.threshold.value, n_boot=0)
            interval = bootstrap_intervals(image_set.labels, scores, detector.threshold.value, n_boot, seed)
            rows.append({"detector": name, "damage": kind, "strength": strength, "n": len(image_set),
                         "auroc": result["auroc"], "auroc_ci_low": interval["auroc_ci_low"],
                         "auroc_ci_high": interval["auroc_ci_high"], "acc_at_clean_threshold": result["acc"],
                         "recall": result["recall"], "false_positive_rate": 1 - (2 * result["balanced_acc"] - result["recall"])})
    return pd.DataFrame(rows)


def calibration_table(scores: dict[str, Scores], bins: int = 15) -> pd.DataFrame:
    """Expected calibration error of each probability detector on its test scores."""
    return pd.DataFrame([{"detector": name, "n": len(s), "ece": expected_calibration_error(s.labels, s.scores, bins),
                          "mean_probability": float(np.mean(s.scores)), "fake_share": float(np.mean(s.labels))}
                         for name, s in scores.items()])


def file_groups(ids) -> np.ndarray:
    """CIFAKE's file-name group of each image: the "(k)" suffix, 1 when there is none."""
    return np.array([int(match.group(1)) if (match := re.search(r"\((\d+)\)", str(i))) else 1 for i in ids])


def group_accuracy(scores: Scores) -> pd.DataFrame:
    """Accuracy at the detector's threshold per class and file-name group, with 95% intervals."""
    from .metrics import mean_interval

    groups, correct = file_groups(scores.ids), scores.decisions == scores.labels
    rows = []
    for label, cls in enumerate(("REAL", "FAKE")):
        for group in sorted(set(groups)):
            chosen = (scores.labels == label) & (groups == group)
            mean, low, high = mean_interval(correct[chosen].astype(float), 500)
            rows.append({"class": cls, "group": group, "n": int(chosen.sum()), "acc": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def confident_errors(scores: Scores, k: int = 8) -> dict[str, np.ndarray]:
    """Ids of the `k` most confident errors each way: REAL scored most FAKE, FAKE scored most REAL."""
    wrong = scores.decisions != scores.labels
    real_errors = np.flatnonzero(wrong & (scores.labels == 0))
    fake_errors = np.flatnonzero(wrong & (scores.labels == 1))
    return {"REAL called FAKE": scores.ids[real_errors[np.argsort(-scores.scores[real_errors])][:k]],
            "FAKE called REAL": scores.ids[fake_errors[np.argsort(scores.scores[fake_errors])][:k]]}


def cross_domain(detectors: dict[str, Detector], image_sets: dict[str, ImageSet], families: np.ndarray,
                 min_n: int = 20, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Scores]]:
    """Each detector on its version of another image set (`image_sets[name]`, same images in
    the same order): AUROC with a 95% interval, and at the CIFAKE-calibrated threshold the
    share of FAKES caught (TPR) and of REALS flagged (FPR); then per generator family with at
    least `min_n` images, each family's FAKES against all the REALS. Returns the table and the
    scores."""
    rows, all_scores = [], {}
    real = families == "REAL"
    for name, detector in detectors.items():
        result = detector.score_set(image_sets[name], image_sets[name].name)
        all_scores[name] = result
        groups = {"all generators": np.ones(len(families), bool)} | {
            family: real | (families == family) for family in sorted(set(families) - {"REAL"})
            if (families == family).sum() >= min_n}
        for group, chosen in groups.items():
            labels, scores = result.labels[chosen], result.scores[chosen]
            metrics = evaluate(labels, scores, detector.threshold.value, n_boot=n_boot, seed=seed)
            rows.append({"detector": name, "generators": group, "n_real": metrics["n_real"], "n_fake": metrics["n_fake"],
                         "auroc": metrics["auroc"], "auroc_ci_low": metrics["auroc_ci_low"],
                         "auroc_ci_high": metrics["auroc_ci_high"], "tpr_at_cifake_threshold": metrics["recall"],
                         "fpr_at_cifake_threshold": float((scores[labels == 0] >= detector.threshold.value).mean()),
                         "input": detector.policy.rule})
    return pd.DataFrame(rows), all_scores


def transfer_table(cifake_auroc: dict[str, float], overall: pd.DataFrame) -> pd.DataFrame:
    """Per detector: its CIFAKE test AUROC, its cross-domain AUROC with the interval, and two
    verdicts read from that interval — against chance (0.5) and against the CIFAKE AUROC
    ("keeps it" only when the interval reaches it). `overall` is `cross_domain`'s
    "all generators" rows indexed by detector."""
    rows = []
    for name, row in overall.iterrows():
        cifake = cifake_auroc.get(name, np.nan)
        low, high = row.auroc_ci_low, row.auroc_ci_high
        rows.append({"detector": name, "cifake_auroc": cifake, "xdomain_auroc": row.auroc,
                     "xdomain_ci_low": low, "xdomain_ci_high": high,
                     "against_chance": interval_verdict(low, high, 0.5, "above chance", "below chance (inverted)", "chance"),
                     "against_cifake": "—" if np.isnan(cifake) else interval_verdict(
                         low, high, cifake, "above its CIFAKE AUROC", "below its CIFAKE AUROC", "keeps its CIFAKE AUROC")})
    return pd.DataFrame(rows)
