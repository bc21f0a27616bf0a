import numpy as np
import pytest
from sklearn import metrics as sk

from dfd_utils.metrics import (METRIC_KEYS, _weighted_auroc, bootstrap_intervals, evaluate,
                               threshold_at_fpr, tpr_at_fpr)


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(400), np.ones(300)].astype(int)
    scores = np.round(rng.normal(labels * 1.2, 1.0), 1)  # rounding creates ties
    return labels, 1 / (1 + np.exp(-scores))


def test_evaluate_matches_scikit_learn(scored):
    labels, scores = scored
    result = evaluate(labels, scores, threshold=0.5, n_boot=200)
    predicted = scores >= 0.5
    assert set(METRIC_KEYS) <= set(result)
    assert result["acc"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert result["balanced_acc"] == pytest.approx(sk.balanced_accuracy_score(labels, predicted))
    assert result["precision"] == pytest.approx(sk.precision_score(labels, predicted))
    assert result["recall"] == pytest.approx(sk.recall_score(labels, predicted))
    assert result["f1"] == pytest.approx(sk.f1_score(labels, predicted))
    assert result["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores))
    assert result["ap"] == pytest.approx(sk.average_precision_score(labels, scores))
    assert (result["n_real"], result["n_fake"]) == (400, 300)
    assert result["acc_ci_low"] <= result["acc"] <= result["acc_ci_high"]
    assert result["auroc_ci_low"] <= result["auroc"] <= result["auroc_ci_high"]


def test_weighted_auroc_equals_auroc_of_the_resample(scored):
    labels, scores = scored
    rng = np.random.default_rng(1)
    draw = rng.integers(0, len(labels), len(labels))
    weights = np.bincount(draw, minlength=len(labels))[None, :].astype(float)
    expected = sk.roc_auc_score(labels[draw], scores[draw])
    assert _weighted_auroc(labels, scores, weights)[0] == pytest.approx(expected)


def test_tpr_at_fpr_by_brute_force(scored):
    labels, scores = scored
    best = 0.0
    for t in np.unique(scores):
        fpr = (scores[labels == 0] >= t).mean()
        if fpr <= 0.05:
            best = max(best, (scores[labels == 1] >= t).mean())
    assert tpr_at_fpr(labels, scores, 0.05) == pytest.approx(best)


def test_threshold_at_fpr_flags_at_most_that_share_of_reals():
    real = np.random.default_rng(2).normal(size=1000)
    for rate in (0.0, 0.01, 0.05, 0.2):
        threshold = threshold_at_fpr(real, rate)
        assert (real >= threshold).mean() <= rate
        assert (real >= threshold).mean() >= rate - 0.002


def test_intervals_narrow_with_more_data():
    rng = np.random.default_rng(3)
    def width(n):
        labels = np.r_[np.zeros(n), np.ones(n)].astype(int)
        scores = rng.normal(labels, 1.0)
        ci = bootstrap_intervals(labels, scores, 0.5, n_boot=300)
        return ci["auroc_ci_high"] - ci["auroc_ci_low"]
    assert width(2000) < width(100)


def test_perfect_and_inverted_detectors():
    labels = np.array([0, 0, 1, 1])
    assert evaluate(labels, [0.1, 0.2, 0.8, 0.9], n_boot=0)["auroc"] == 1.0
    assert evaluate(labels, [0.9, 0.8, 0.2, 0.1], n_boot=0)["acc"] == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        evaluate([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="differ"):
        evaluate([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="both"):
        evaluate([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 \\(REAL\\) or 1"):
        evaluate([0, 2], [0.1, 0.2])


def test_paired_comparison_resamples_images_and_mcnemar_counts_discordant_pairs():
    from dfd_utils.metrics import paired_comparison

    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(300), np.ones(300)].astype(int)
    strong = labels + rng.normal(0, 0.6, 600)
    weak = labels + rng.normal(0, 1.5, 600)
    result = paired_comparison(labels, strong, weak, 0.5, 0.5, n_boot=300)
    assert result["acc_diff_ci_low"] > 0 and result["auroc_diff_ci_low"] > 0 and result["mcnemar_p"] < 1e-3
    correct_a, correct_b = (strong >= 0.5) == labels, (weak >= 0.5) == labels
    assert result["only_a_correct"] == int((correct_a & ~correct_b).sum())
    same = paired_comparison(labels, strong, strong, 0.5, 0.5, n_boot=100)
    assert same["acc_diff"] == 0 and same["acc_diff_ci_low"] == same["acc_diff_ci_high"] == 0 and same["mcnemar_p"] == 1


def test_interval_verdict_follows_the_interval():
    from dfd_utils.metrics import interval_verdict

    assert interval_verdict(0.51, 0.52, 0.5) == "above"
    assert interval_verdict(0.40, 0.49, 0.5) == "below"
    assert interval_verdict(0.49, 0.52, 0.5) == "consistent with"


def test_sign_and_real_calibration_are_chosen_on_the_data_given():
    from dfd_utils.scores import calibrate_on_real, choose_sign

    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    lower_is_fake = -labels + np.random.default_rng(0).normal(0, 0.3, 100)
    assert choose_sign(labels, lower_is_fake) == -1 and choose_sign(labels, -lower_is_fake) == 1
    with pytest.raises(ValueError, match="REAL and FAKE"):
        choose_sign(np.zeros(5), np.arange(5))
    threshold = calibrate_on_real(np.arange(100.0), 0.05, "reference REAL images")
    assert (np.arange(100.0) >= threshold.value).sum() == 5 and threshold.rule == "at most 5% of 100 reference REAL images flagged"
