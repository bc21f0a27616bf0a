import json

import pytest

import matplotlib
import numpy as np
import pandas as pd

import dfd_utils as du
from dfd_utils import plots
from dfd_utils.runs import notebook_params
from dfd_utils.scores import RECORD_TYPES, Scores, Threshold


def test_notebook_params_keeps_upper_case_plain_values():
    namespace = {"EPOCHS": 3, "LR": 0.1, "NAME": "x", "model": object(), "OBJ": object(), "_X": 1,
                 "SIZES": {"a": 64}, "TABLE": {"jpeg": (print, [95])}}
    assert notebook_params(namespace) == {"EPOCHS": 3, "LR": 0.1, "NAME": "x", "SIZES": {"a": 64}}


def test_run_records(isolated_paths):
    run = du.start_run("99_test", {"PROFILE": "smoke", "SEED": 7, "EPOCHS": 2})
    assert run.folder == isolated_paths / "results" / "smoke" / "99_test"
    assert json.loads((run.folder / "params.json").read_text()) == {"PROFILE": "smoke", "SEED": 7, "EPOCHS": 2}
    env = json.loads((run.folder / "env.json").read_text())
    assert {"python", "packages", "device", "cpu", "git"} <= set(env)
    assert {"commit", "dirty"} <= set(env["git"]) and env["packages"]["torch"]

    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.6, 0.7, 0.9, 0.2, 0.4])
    ids = np.array([f"id{i}" for i in range(6)])
    half = Threshold(0.5, "p >= 0.5")

    def value(variant, split, s, **extra):
        return Scores("m", variant, split, ids, s, half, labels, train_seconds=1.5, extra=extra)

    entry = run.record(value("v1", "test", scores, train_precision="bf16"), n_boot=20)
    run.record(value("v2", "test", 1 - scores), n_boot=20)
    run.record(value("v1", "test-dedup", scores), n_boot=20)
    run.record(value("v1", "test", scores, train_precision="bf16"), n_boot=20)  # replaces, not duplicates
    stored = json.loads((run.folder / "metrics.json").read_text())
    assert [(e["variant"], e["split"]) for e in stored] == [("v2", "test"), ("v1", "test-dedup"), ("v1", "test")]
    assert set(RECORD_TYPES) <= set(entry) and entry["acc"] == 4 / 6
    assert entry["precision"] == 2 / 3 and entry["train_precision"] == "bf16"  # the metric is never overwritten
    assert entry["threshold_rule"] == "p >= 0.5"

    predictions = pd.read_csv(run.folder / "predictions.csv")
    assert list(predictions.columns) == ["id", "label", "score", "variant", "split"] and len(predictions) == 18
    assert set(predictions.split) == {"test", "test-dedup"}
    assert "m · v1 · test (n = 6)" in run.summary()

    fig = run.save_figure(plots.confusion(labels, scores), "confusion")
    assert isinstance(fig, matplotlib.figure.Figure) and (run.figures / "confusion.png").stat().st_size > 1000

    again = du.start_run("99_test", {"PROFILE": "smoke"})
    assert not (again.folder / "metrics.json").exists()  # a new run never mixes with an old one


def test_every_plot_returns_a_figure():
    rng = np.random.default_rng(0)
    labels, scores = np.r_[np.zeros(20), np.ones(20)].astype(int), rng.random(40)
    figures = [plots.confusion(labels, scores), plots.roc_pr(labels, {"a": scores}),
               plots.score_histogram(labels, scores, 0.5), plots.image_grid(rng.random((5, 8, 8, 3)), list("abcde")),
               plots.heatmaps({"x": rng.random((8, 8))}), plots.lines({"a": [1, 2, 3]}, "x", "y")]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)


def test_device_and_seeding():
    import torch
    assert du.device("auto").type in ("cpu", "cuda", "mps") and du.device("cpu").type == "cpu"
    du.seed_everything(5)
    a = torch.rand(3)
    du.seed_everything(5)
    assert torch.equal(a, torch.rand(3))


def test_extra_keys_may_not_overwrite_record_keys():
    with pytest.raises(ValueError, match="precision"):
        Scores("m", "v", "test", np.array(["a"]), np.array([0.5]), Threshold(0.5, "x"), np.array([1]),
               extra={"precision": "bf16"})


def test_roc_chance_is_tpr_equal_fpr_on_the_log_axis_from_one_over_n_real():
    labels = np.r_[np.zeros(250), np.ones(50)].astype(int)
    fig = plots.roc_pr(labels, {"a": np.random.default_rng(0).random(300)})
    roc = fig.axes[0]
    chance = next(line for line in roc.lines if line.get_label().startswith("chance"))
    x, y = chance.get_data()
    assert np.allclose(x, y) and len(x) > 50 and x.min() == pytest.approx(1 / 250)
    assert roc.get_xscale() == "log" and roc.get_xlim()[0] == pytest.approx(1 / 250)
    precision_chance = next(line for line in fig.axes[1].lines if line.get_label() == "chance")
    assert np.allclose(precision_chance.get_ydata(), 50 / 300)
