"""Detectors load by name or folder, keep their threshold and input policy, and fail clearly."""
import json

import numpy as np
import pytest

import dfd_utils as du
from dfd_utils import detectors, models
from dfd_utils.detectors import ClassifierDetector, DetectorError, InputPolicy
from dfd_utils.scores import Threshold


def v4_like(name="v4"):
    model = models.create_model("detector_cnn", width=4, depth=1, stages=2)
    return ClassifierDetector(model, flip_average=True, name=name, method="V4 CNN", variant="tiny",
                              notebook="04_cnn_gradcam")


def test_classifier_detector_round_trip_by_folder_and_by_name(isolated_paths, cifake_folder):
    test = du.load_cifake("test", cifake_folder)
    run = du.start_run("04_cnn_gradcam", {"PROFILE": "smoke"})
    detector = v4_like()
    folder = run.save_detector(detector)
    assert folder == run.folder / "detectors" / "v4" and (folder / "detector.json").exists()
    assert detectors.available("smoke") == {"v4": folder}
    for loaded in (detectors.load(folder), detectors.load("v4", "smoke")):
        np.testing.assert_allclose(loaded.score(test.images), detector.score(test.images), rtol=1e-6)
        assert loaded.flip_average and loaded.threshold == detector.threshold and loaded.policy == InputPolicy(32)
    scores = detectors.load("v4", "smoke").score_set(test, "test")
    assert scores.split == "test" and scores.infer_images_per_s > 0 and scores.extra["detector"] == "v4"
    assert "centre-cropped" in scores.extra["input_policy"]


def test_a_detector_saved_under_two_names_is_a_duplicate_and_a_retrained_one_is_not(isolated_paths):
    run = du.start_run("04_cnn_gradcam", {"PROFILE": "smoke"})
    first = v4_like("v4")
    run.save_detector(first)
    run.save_detector(ClassifierDetector(first.model, flip_average=True, name="v4-again", method="V4 CNN", variant="tiny",
                                         notebook="04_cnn_gradcam"))
    run.save_detector(v4_like("v4-other"))  # same spec, new random weights: a different detector
    assert detectors.duplicates("smoke") == {"v4-again": "v4"}


def test_missing_and_unknown_detectors_say_what_to_do(isolated_paths):
    with pytest.raises(DetectorError, match=r"run notebook 04_cnn_gradcam first .*--profile smoke --only 04"):
        detectors.load("v4", "smoke")
    with pytest.raises(DetectorError, match="unknown detector 'v9'"):
        detectors.load("v9", "smoke")
    assert detectors.made_by("aeroblade-native") == "06_aeroblade" and detectors.made_by("v1") == "01_autoencoder"


def test_an_unreadable_spec_is_a_clear_error(tmp_path):
    folder = v4_like().save(tmp_path / "v4")
    (folder / "detector.json").write_text("{not json")
    with pytest.raises(DetectorError, match="not a readable detector spec"):
        detectors.load(folder)
    spec = v4_like().spec() | {"kind": "dfd_utils.nowhere:Nothing"}
    (folder / "detector.json").write_text(json.dumps(spec))
    with pytest.raises(DetectorError, match="nowhere"):
        detectors.load(folder)


def test_input_policy_crops_and_resizes_or_keeps_native_size():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    assert InputPolicy(32).fit(wide).shape == (32, 32, 3)
    flat = np.full((64, 64, 3), 7, np.uint8)
    assert (InputPolicy(32).fit(flat) == 7).all()  # resizing a constant image keeps it constant
    native = InputPolicy(None, multiple=8).fit(rng.integers(0, 256, (37, 70, 3), dtype=np.uint8))
    assert native.shape == (32, 64, 3)
    with pytest.raises(ValueError, match="smaller than 8"):
        InputPolicy(None, multiple=8).fit(np.zeros((5, 5, 3), np.uint8))


def test_images_of_mixed_sizes_are_scored_in_order():
    detector = v4_like()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((32, 32, 3), (64, 48, 3), (32, 32, 3))]
    mixed = detector.score_images(images)
    alone = [detector.score_images([image])[0] for image in images]
    np.testing.assert_allclose(mixed, alone, rtol=1e-6)


def test_detector_names_are_checked():
    with pytest.raises(ValueError, match="detector name"):
        v4_like(name="V 4")


def test_threshold_rule_travels_with_the_detector(tmp_path):
    detector = v4_like()
    detector.threshold = Threshold(0.7, "at most 5% of 100 held-out REAL images flagged")
    loaded = detectors.load(detector.save(tmp_path / "d"))
    assert loaded.threshold.rule.startswith("at most 5%") and loaded.threshold.value == 0.7


def test_a_set_within_one_scored_before_takes_its_scores_instead_of_scoring_again(cifake_folder, monkeypatch):
    splits = du.cifake_splits(cifake_folder)
    assert 0 < len(splits.test_dedup) < len(splits.test)  # the fixture leaks train files into test
    detector, scored = v4_like(), []
    score = ClassifierDetector.score
    monkeypatch.setattr(ClassifierDetector, "score", lambda self, images: scored.append(len(images)) or score(self, images))
    test, dedup = detector.score_sets(splits.tests)
    assert sum(scored) == len(splits.test)
    alone = detector.score_set(splits.test_dedup, "test-dedup")
    assert dedup.split == "test-dedup" and list(dedup.ids) == list(alone.ids) and list(dedup.labels) == list(alone.labels)
    np.testing.assert_allclose(dedup.scores, alone.scores, atol=1e-6)
    scored.clear()
    detector.score_sets({"test": splits.test, "train": splits.train})  # not within test: scored on its own
    assert sum(scored) == len(splits.test) + len(splits.train)
