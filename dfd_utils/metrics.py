"""Detection metrics with one set of keys everywhere, and stratified bootstrap intervals.

Labels are 0 = REAL, 1 = FAKE; scores are any real numbers where higher means "more likely
fake". Threshold-free metrics (AUROC, AP, TPR at a fixed FPR) use the scores; the others use
`score >= threshold`.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = ["evaluate", "tpr_at_fpr", "threshold_at_fpr", "bootstrap_intervals", "mean_interval", "paired_comparison",
           "interval_verdict", "expected_calibration_error", "METRIC_TYPES", "METRIC_KEYS"]

_RATE = (float,)
_MAYBE_RATE = (float, type(None))  # intervals are null when evaluated without a bootstrap
METRIC_TYPES: dict[str, tuple[type, ...]] = {  # what `evaluate` returns, key by key
    "n_real": (int,), "n_fake": (int,), "acc": _RATE, "balanced_acc": _RATE, "precision": _RATE,
    "recall": _RATE, "f1": _RATE, "auroc": _RATE, "ap": _RATE, "tpr_at_fpr_1pct": _RATE,
    "tpr_at_fpr_5pct": _RATE, "threshold": _RATE,
    "acc_ci_low": _MAYBE_RATE, "acc_ci_high": _MAYBE_RATE, "auroc_ci_low": _MAYBE_RATE, "auroc_ci_high": _MAYBE_RATE,
}
METRIC_KEYS = tuple(METRIC_TYPES)


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).astype(int).ravel(), np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.shape}) and scores ({scores.shape}) differ in length")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError("labels must be 0 (REAL) or 1 (FAKE)")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return labels, scores


def tpr_at_fpr(labels, scores, max_fpr: float) -> float:
    """The best true-positive rate whose false-positive rate does not exceed `max_fpr`."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())


def threshold_at_fpr(real_scores, max_fpr: float) -> float:
    """A threshold calibrated on REAL images only: at most `max_fpr` of them score >= it."""
    real_scores = np.sort(np.asarray(real_scores, dtype=float))
    allowed = int(np.floor(max_fpr * len(real_scores)))  # how many reals may be flagged
    if allowed == 0:
        return float(np.nextafter(real_scores[-1], np.inf))
    return float(np.nextafter(real_scores[-allowed - 1], np.inf))


def _weighted_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC for each row of `weights` (B, N) — bootstrap resamples as multiplicities, ties 1/2."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_scores) != 0])  # groups of equal score
    w = weights[:, order]
    pos = np.add.reduceat(w * sorted_labels, starts, axis=1)
    neg = np.add.reduceat(w * (1 - sorted_labels), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    return (pos * (neg_below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1))


def bootstrap_intervals(labels, scores, threshold: float, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict:
    """Percentile intervals of accuracy and AUROC, resampling within each class (fixed n)."""
    labels, scores = _check(labels, scores)
    rng = np.random.default_rng(seed)
    correct = ((scores >= threshold).astype(int) == labels).astype(float)
    accs, aurocs = [], []
    for start in range(0, n_boot, 100):  # chunks keep memory at 100 x N
        size = min(100, n_boot - start)
        weights = np.zeros((size, len(labels)))
        for label in (0, 1):
            members = np.flatnonzero(labels == label)
            draws = rng.integers(0, len(members), (size, len(members)))
            np.add.at(weights, (np.arange(size)[:, None], members[draws]), 1.0)
        accs.append(weights @ correct / len(labels))
        aurocs.append(_weighted_auroc(labels, scores, weights))
    tail = 100 * (1 - level) / 2
    acc_lo, acc_hi = np.percentile(np.concatenate(accs), [tail, 100 - tail])
    auc_lo, auc_hi = np.percentile(np.concatenate(aurocs), [tail, 100 - tail])
    return {"acc_ci_low": float(acc_lo), "acc_ci_high": float(acc_hi),
            "auroc_ci_low": float(auc_lo), "auroc_ci_high": float(auc_hi)}


def evaluate(labels, scores, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every metric of the run record (`METRIC_KEYS`) for one set of labels and fake-scores."""
    labels, scores = _check(labels, scores)
    if len(np.unique(labels)) < 2:
        raise ValueError("evaluation needs both REAL and FAKE images")
    predicted = (scores >= threshold).astype(int)
    tp = int(((predicted == 1) & (labels == 1)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    result = {
        "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
        "acc": (tp + tn) / len(labels),
        "balanced_acc": (recall + tn / (tn + fp)) / 2,
        "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auroc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "tpr_at_fpr_1pct": tpr_at_fpr(labels, scores, 0.01),
        "tpr_at_fpr_5pct": tpr_at_fpr(labels, scores, 0.05),
        "threshold": float(threshold),
    }
    result.update(bootstrap_intervals(labels, scores, threshold, n_boot, seed) if n_boot else
                  dict.fromkeys(("acc_ci_low", "acc_ci_high", "auroc_ci_low", "auroc_ci_high")))
    return result


def mean_interval(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of per-item values (NaNs dropped; all NaN → NaNs)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def _mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar test: the discordant pairs are Binomial(n, 1/2) if A and B are equally accurate."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)


def paired_comparison(labels, scores_a, scores_b, threshold_a: float, threshold_b: float, n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> dict:
    """A minus B on the same images: accuracy and AUROC differences with a paired bootstrap
    interval (the images are resampled, within each class, and both detectors are scored on the
    same resample) and McNemar's exact test for the accuracy difference."""
    labels, scores_a = _check(labels, scores_a)
    _, scores_b = _check(labels, scores_b)
    correct_a = (scores_a >= threshold_a).astype(int) == labels
    correct_b = (scores_b >= threshold_b).astype(int) == labels
    rng = np.random.default_rng(seed)
    acc_diffs, auroc_diffs = [], []
    for start in range(0, n_boot, 100):
        size = min(100, n_boot - start)
        weights = np.zeros((size, len(labels)))
        for label in (0, 1):
            members = np.flatnonzero(labels == label)
            np.add.at(weights, (np.arange(size)[:, None], members[rng.integers(0, len(members), (size, len(members)))]), 1.0)
        acc_diffs.append(weights @ (correct_a.astype(float) - correct_b) / len(labels))
        auroc_diffs.append(_weighted_auroc(labels, scores_a, weights) - _weighted_auroc(labels, scores_b, weights))
    tail = 100 * (1 - level) / 2
    acc_low, acc_high = np.percentile(np.concatenate(acc_diffs), [tail, 100 - tail])
    auroc_low, auroc_high = np.percentile(np.concatenate(auroc_diffs), [tail, 100 - tail])
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((correct_b & ~correct_a).sum())
    return {"n": int(len(labels)), "acc_diff": float(correct_a.mean() - correct_b.mean()),
            "acc_diff_ci_low": float(acc_low), "acc_diff_ci_high": float(acc_high),
            "auroc_diff": float(roc_auc_score(labels, scores_a) - roc_auc_score(labels, scores_b)),
            "auroc_diff_ci_low": float(auroc_low), "auroc_diff_ci_high": float(auroc_high),
            "only_a_correct": a_only, "only_b_correct": b_only, "mcnemar_p": _mcnemar_p(a_only, b_only)}


def interval_verdict(low: float, high: float, reference: float, above: str = "above", below: str = "below",
                     within: str = "consistent with") -> str:
    """Which side of `reference` an interval lies on, in words; `within` when it contains it."""
    if low > reference:
        return above
    if high < reference:
        return below
    return within



def expected_calibration_error(labels, probabilities, bins: int = 15) -> float:
    """ECE of FAKE probabilities: the mean |observed FAKE share − mean probability| over equal-
    width bins, weighted by how many images fall in each (0 = perfectly calibrated)."""
    labels, probabilities = _check(labels, probabilities)
    if probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError("calibration needs probabilities in [0, 1]")
    index = np.clip(np.digitize(probabilities, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    gaps = [abs(labels[index == b].mean() - probabilities[index == b].mean()) * (index == b).mean()
            for b in range(bins) if (index == b).any()]
    return float(np.sum(gaps))