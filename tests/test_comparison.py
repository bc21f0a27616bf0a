"""Notebook 99's measurements on small inputs whose answers are known."""
import numpy as np
import pytest

import dfd_utils as du
from dfd_utils import comparison, detectors, models
from dfd_utils.detectors import ClassifierDetector, EnsembleDetector
from dfd_utils.scores import Scores, argmax_threshold


def scores_of(ids, labels, values):
    return Scores("m", "v", "test", np.asarray(ids), np.asarray(values, float), argmax_threshold(), np.asarray(labels))


def test_paired_table_uses_the_images_both_detectors_scored():
    rng = np.random.default_rng(0)
    ids = np.array([f"i{k}" for k in range(200)])
    labels = np.r_[np.zeros(100), np.ones(100)].astype(int)
    good = scores_of(ids, labels, np.clip(labels + rng.normal(0, 0.3, 200), 0, 1))
    subset = np.r_[0:40, 100:140]
    weak = scores_of(ids[subset][::-1], labels[subset][::-1], rng.random(80))  # other order, fewer images
    row = comparison.paired_table({"good": good, "weak": weak}, n_boot=200).iloc[0]
    assert row.n == 80 and row.auroc_diff_ci_low > 0


def test_file_groups_and_group_accuracy():
    ids = ["test/REAL/0 (2).jpg", "test/REAL/5.jpg", "test/FAKE/7 (10).jpg", "test/FAKE/8 (10).jpg"]
    assert list(comparison.file_groups(ids)) == [2, 1, 10, 10]
    table = comparison.group_accuracy(scores_of(ids, [0, 0, 1, 1], [0.1, 0.9, 0.8, 0.2]))
    fake10 = table[(table["class"] == "FAKE") & (table.group == 10)].iloc[0]
    assert fake10.n == 2 and fake10.acc == 0.5
    errors = comparison.confident_errors(scores_of(ids, [0, 0, 1, 1], [0.1, 0.9, 0.8, 0.2]), 3)
    assert list(errors["REAL called FAKE"]) == ["test/REAL/5.jpg"] and list(errors["FAKE called REAL"]) == [ids[3]]


def test_calibration_error_is_zero_for_calibrated_and_large_for_overconfident():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    labels = (rng.random(20000) < p).astype(int)
    assert du.metrics.expected_calibration_error(labels, p) < 0.02
    assert du.metrics.expected_calibration_error(labels, (p > 0.5).astype(float)) > 0.2


def tiny(name, seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    return ClassifierDetector(models.create_model("detector_cnn", width=4, depth=1, stages=2), name=name,
                              method="m", variant=name)


def test_ensemble_averages_log_odds_and_reloads_its_members_by_name(isolated_paths):
    members = [tiny("a", 0), tiny("b", 1)]
    run = du.start_run("02_cnn_zoo", {"PROFILE": "smoke"})
    for member in members:
        run.save_detector(member)
    ensemble = EnsembleDetector(members, name="ensemble", method="Ensemble", variant="a + b")
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    p = [m.score(images) for m in members]
    expected = 1 / (1 + np.exp(-(np.log(p[0] / (1 - p[0])) + np.log(p[1] / (1 - p[1]))) / 2))
    np.testing.assert_allclose(ensemble.score(images), expected, rtol=1e-5)
    folder = du.start_run("99_comparison", {"PROFILE": "smoke"}).save_detector(ensemble)
    np.testing.assert_allclose(detectors.load(folder).score(images), expected, rtol=1e-5)


def test_robustness_and_cross_domain_tables(cifake_folder):
    test = du.load_cifake("test", cifake_folder)
    detector = tiny("v", 3)
    table = comparison.robustness({"v": detector}, {"v": test}, n_boot=20)
    assert len(table) == 1 + sum(len(s) for _, s, _ in du.robustness.SEVERITIES.values())
    assert set(table.damage) == {"clean", "jpeg", "blur", "resize", "noise"} and table.auroc.between(0, 1).all()
    families = np.where(test.labels == 0, "REAL", np.where(np.arange(len(test)) % 2, "X", "Y"))
    cross, scored = comparison.cross_domain({"v": detector}, {"v": test}, families, min_n=10, n_boot=20)
    assert list(cross.generators) == ["all generators", "X", "Y"] and (cross.n_real == test.n_real).all()
    assert cross.fpr_at_cifake_threshold.between(0, 1).all() and len(scored["v"]) == len(test)


def test_transfer_table_reads_its_verdicts_from_the_intervals():
    import pandas as pd
    overall = pd.DataFrame({"auroc": [0.99, 0.55, 0.50, 0.40], "auroc_ci_low": [0.98, 0.52, 0.45, 0.35],
                            "auroc_ci_high": [1.0, 0.58, 0.55, 0.45]}, index=["a", "b", "c", "d"])
    table = comparison.transfer_table({"a": 0.995, "b": 0.99, "c": 0.9}, overall).set_index("detector")
    assert list(table.against_chance) == ["above chance", "above chance", "chance", "below chance (inverted)"]
    assert table.loc["a", "against_cifake"] == "keeps its CIFAKE AUROC"
    assert table.loc["b", "against_cifake"] == "below its CIFAKE AUROC"
    assert table.loc["d", "against_cifake"] == "—"  # no CIFAKE record: no claim


def test_images_per_second_times_the_whole_detector():
    import time
    from types import SimpleNamespace

    calls = []
    slow = SimpleNamespace(score=lambda images: calls.append(len(images)) or time.sleep(0.01 * len(images)))
    speed = comparison.images_per_second(slow, np.zeros((10, 32, 32, 3), np.uint8))
    assert calls == [2, 10] and 50 < speed < 100  # warm-up on two images, then 10 images at 10 ms each
