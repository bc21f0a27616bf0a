"""`dfd score` on files, folders and zips, labelled and not, and every kind of bad input."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dfd_utils as du
from dfd_utils import models, scoring
from dfd_utils.detectors import ClassifierDetector

from conftest import fake_image, jpeg_bytes, zip_folder


@pytest.fixture
def saved_v4(isolated_paths):
    """A tiny V4-shaped detector saved for the smoke profile, where `dfd score --profile smoke` finds it."""
    run = du.start_run("04_cnn_gradcam", {"PROFILE": "smoke"})
    detector = ClassifierDetector(models.create_model("detector_cnn", width=4, depth=1, stages=2), name="v4",
                                  method="V4 CNN", variant="tiny", notebook="04_cnn_gradcam")
    run.save_detector(detector)
    return detector


@pytest.fixture
def awkward_folder(tmp_path):
    """REAL/ and FAKE/ images in every mode `CONVERSION_RULE` names, plus three unusable files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mine"
    for cls in ("REAL", "FAKE"):
        (root / cls).mkdir(parents=True)
    fake_image(rng, 0, 48).convert("L").save(root / "REAL" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8), "RGBA").save(root / "REAL" / "alpha.png")
    fake_image(rng, 0).convert("P").save(root / "REAL" / "palette.png")
    Image.fromarray(rng.integers(0, 65535, (32, 32), dtype=np.uint16)).save(root / "FAKE" / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    fake_image(rng, 1, 64).crop((0, 0, 64, 40)).save(root / "FAKE" / "rotated.jpg", exif=exif.tobytes())
    (root / "FAKE" / "ok.jpg").write_bytes(jpeg_bytes(fake_image(rng, 1)))
    (root / "FAKE" / "truncated.jpg").write_bytes(jpeg_bytes(fake_image(rng, 1))[:200])
    (root / "REAL" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "REAL" / "notes.txt").write_text("not an image")
    return root


def test_labelled_folder_with_bad_and_odd_files(saved_v4, awkward_folder, tmp_path, capsys):
    out = tmp_path / "out" / "scores.csv"
    table = scoring.run([awkward_folder], "v4", "smoke", out, n_boot=50)
    rows = pd.read_csv(out)
    assert len(rows) == 6 and set(rows.label) == {"REAL", "FAKE"} and set(rows.decision) <= {"REAL", "FAKE"}
    assert rows.threshold_rule.str.contains("argmax").all() and rows.input_policy.str.contains("32x32").all()
    skipped = pd.read_csv(out.with_name("scores.skipped.csv"))
    assert sorted(p.split("/")[-1] for p in skipped.path) == ["corrupt.png", "notes.txt", "truncated.jpg"]
    printed = capsys.readouterr().out
    assert "skipped 3 file(s)" in printed and "labelled" in printed and "auroc" in printed
    assert {"acc_ci_low", "auroc_ci_high"} <= set(table.columns)


def test_conversions_follow_the_stated_rule(awkward_folder):
    inputs = scoring.collect([awkward_folder], progress=False)
    by_name = dict(zip((p.split("/")[-1] for p in inputs.paths), inputs.images))
    assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 for image in inputs.images)
    assert by_name["rotated.jpg"].shape == (64, 40, 3)  # EXIF orientation applied: 64 wide x 40 high → 40 x 64
    grey = by_name["grey.png"]
    assert (grey[..., 0] == grey[..., 1]).all()
    sixteen = np.asarray(Image.open(awkward_folder / "FAKE" / "sixteen.png"), dtype=np.float64)
    np.testing.assert_allclose(by_name["sixteen.png"][..., 0], np.clip(sixteen / 257, 0, 255).astype(np.uint8))
    alpha = np.asarray(Image.open(awkward_folder / "REAL" / "alpha.png"))
    transparent = alpha[..., 3] == 0
    assert (by_name["alpha.png"][transparent] == 255).all()  # composited onto white


def test_zip_and_unlabelled_files(saved_v4, cifake_folder, tmp_path):
    archive = zip_folder(cifake_folder / "test", tmp_path / "test.zip")
    labelled = scoring.collect([archive], progress=False)
    assert labelled.labelled and len(labelled.images) == 48 and labelled.paths[0].startswith(f"{archive}!")
    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(3):
        (loose / f"{i}.jpg").write_bytes(jpeg_bytes(fake_image(np.random.default_rng(i), 1)))
    unlabelled = scoring.collect([loose, archive], progress=False)
    assert not unlabelled.labelled and unlabelled.label_array() is None
    table = scoring.run([loose / "0.jpg"], "v4", "smoke", tmp_path / "one.csv")
    assert list(table.columns) == ["detector", "images", "called_fake"] and table.images.iloc[0] == 1


def test_bad_paths_and_names_fail_before_any_work(saved_v4, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.zip").write_bytes(b"no zip here")
    with pytest.raises(scoring.ScoreError, match="does not exist"):
        scoring.run([tmp_path / "missing"], "v4", "smoke", tmp_path / "s.csv")
    with pytest.raises(scoring.ScoreError, match="empty folder"):
        scoring.run([tmp_path / "empty"], "v4", "smoke", tmp_path / "s.csv")
    with pytest.raises(scoring.ScoreError, match="not a zip"):
        scoring.run([tmp_path / "fake.zip"], "v4", "smoke", tmp_path / "s.csv")
    with pytest.raises(du.detectors.DetectorError, match="unknown detector 'nope'"):
        scoring.run([tmp_path / "missing"], "nope", "smoke", tmp_path / "s.csv")  # the name is checked first
    with pytest.raises(du.detectors.DetectorError, match="run notebook 03_simple_cnn"):
        scoring.run([tmp_path / "empty"], "v3", "smoke", tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_command_line_exit_status(saved_v4, cifake_folder, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "dfd_utils", "score", str(cifake_folder / "test"), "--profile", "smoke",
                         "--out", str(tmp_path / "s.csv")], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "scored 48 labelled image(s) with 1 detector(s)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "dfd_utils", "score", str(tmp_path / "missing"), "--profile", "smoke"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
