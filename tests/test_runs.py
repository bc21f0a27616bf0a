import json

import matplotlib
import numpy as np
import pandas as pd

import dfd_utils as du
from dfd_utils import plots
from dfd_utils.runs import RECORD_KEYS, notebook_params


def test_notebook_params_keeps_upper_case_plain_values():
    namespace = {"EPOCHS": 3, "LR": 0.1, "NAME": "x", "model": object(), "OBJ": object(), "_X": 1}
    assert notebook_params(namespace) == {"EPOCHS": 3, "LR": 0.1, "NAME": "x"}


def test_run_records(isolated_paths):
    run = du.start_run("99_test", {"PROFILE": "smoke", "SEED": 7, "EPOCHS": 2})
    assert run.folder == isolated_paths / "results" / "smoke" / "99_test"
    assert json.loads((run.folder / "params.json").read_text()) == {"PROFILE": "smoke", "SEED": 7, "EPOCHS": 2}
    env = json.loads((run.folder / "env.json").read_text())
    assert {"python", "packages", "device", "cpu", "git"} <= set(env)
    assert {"commit", "dirty"} <= set(env["git"]) and env["packages"]["torch"]

    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.6, 0.7, 0.9, 0.2, 0.4])
    entry = run.log_metrics("m", "v1", "test", labels, scores, train_seconds=1.5, pretrained="none", n_boot=20)
    run.log_metrics("m", "v2", "test", labels, 1 - scores, n_boot=20)
    run.log_metrics("m", "v1", "test", labels, scores, n_boot=20)  # replaces, not duplicates
    stored = json.loads((run.folder / "metrics.json").read_text())
    assert [e["variant"] for e in stored] == ["v2", "v1"]
    assert set(RECORD_KEYS) <= set(entry) and entry["acc"] == 4 / 6

    run.save_predictions([f"id{i}" for i in range(6)], labels, scores, "v1")
    run.save_predictions([f"id{i}" for i in range(6)], labels, 1 - scores, "v2")
    predictions = pd.read_csv(run.folder / "predictions.csv")
    assert list(predictions.columns) == ["id", "label", "score", "variant"] and len(predictions) == 12

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
