import numpy as np
import pytest
import torch
from torch import nn

import dfd_utils as du
from dfd_utils import inference, models, training


@pytest.mark.parametrize("blocks,filters,dense", [(1, 16, 1), (2, 32, 2), (3, 8, 3)])
def test_cifake_cnn_shapes(blocks, filters, dense):
    model = models.create_model("cifake_cnn", conv_blocks=blocks, filters=filters, dense_layers=dense)
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 2)
    assert len(model.cam_layers) == blocks
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == dense + 1


def test_detector_cnn_and_no_inplace_activations():
    model = models.create_model("detector_cnn", width=8, depth=2)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    assert list(model.cam_layers) == ["stage1", "stage2", "stage3"]
    for net in (model, models.create_model("cifake_cnn")):
        assert not any(getattr(m, "inplace", False) for m in net.modules())


def test_detector_cnn_stages_halve_the_resolution_each():
    model = models.create_model("detector_cnn", width=4, depth=1, stages=4).eval()
    sizes = {}
    hooks = [layer.register_forward_hook(lambda _m, _i, out, n=name: sizes.update({n: tuple(out.shape[1:])}))
             for name, layer in model.cam_layers.items()]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    for hook in hooks:
        hook.remove()
    assert sizes == {"stage1": (4, 32, 32), "stage2": (8, 16, 16), "stage3": (16, 8, 8), "stage4": (32, 4, 4)}
    with pytest.raises(ValueError, match="stages"):
        models.create_model("detector_cnn", stages=6)


def test_unknown_model_and_argument():
    with pytest.raises(ValueError, match="unknown model"):
        models.create_model("resnet9000")
    with pytest.raises(TypeError):
        models.create_model("cifake_cnn", colour=True)


def test_save_and_load_round_trip(tmp_path):
    model = models.create_model("detector_cnn", width=8).eval()
    models.save_model(model, tmp_path / "m")
    loaded = models.load_model(tmp_path / "m")
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(model(x), loaded(x))
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        models.load_model(tmp_path / "missing")


def test_fit_learns_a_separable_fixture(cifake_folder):
    train_set, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    du.seed_everything(0)
    model = models.create_model("cifake_cnn", conv_blocks=1, filters=8)
    history = training.fit(model, train_set, test, epochs=8, batch_size=8, lr=3e-3, progress=False)
    assert history.table.train_loss.iloc[-1] < history.table.train_loss.iloc[0]
    assert history.rows[-1]["val_acc"] >= 0.9 and history.images_per_s > 0
    scores, speed = inference.predict(model, test, batch_size=7)
    scores_big, _ = inference.predict(model, test, batch_size=1000)
    np.testing.assert_allclose(scores, scores_big, atol=1e-5)  # batching does not change scores
    assert scores.shape == (len(test),) and ((scores >= 0) & (scores <= 1)).all() and speed > 0


def test_epochs_within_a_budget_scale_with_minutes_and_leave_the_model_alone(cifake_folder):
    train_set = du.load_cifake("train", cifake_folder)
    model = models.create_model("cifake_cnn", conv_blocks=1, filters=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    epochs, speed = training.epochs_within(1.0, model, train_set, probe_images=16, batch_size=8)
    assert speed > 0 and epochs == max(1, int(60 * speed // len(train_set)))
    assert training.epochs_within(1e-6, model, train_set, probe_images=16, batch_size=8)[0] == 1
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    with pytest.raises(ValueError, match="minutes"):
        training.epochs_within(0, model, train_set)


def test_plan_epochs_caps_a_budget_and_keeps_a_fixed_count(cifake_folder):
    train_set = du.load_cifake("train", cifake_folder)
    model = models.create_model("cifake_cnn", conv_blocks=1, filters=4)
    uncapped, speed, how = training.plan_epochs(10.0, model, train_set, batch_size=8)
    assert uncapped > 2 and "budget" in how and speed > 0  # ten minutes on a few dozen images: many epochs
    assert training.plan_epochs(10.0, model, train_set, most=2, batch_size=8)[::2] == (2, "10-min budget, capped at 2 epochs")
    assert training.plan_epochs(10.0, model, train_set, fixed=3, most=2) == (3, None, "fixed")


def test_sweep_has_one_row_per_config(cifake_folder):
    train_set = du.load_cifake("train", cifake_folder)
    fit_set, val_set = train_set.split(0.25)
    configs = [dict(conv_blocks=1, filters=4), dict(conv_blocks=2, filters=4)]
    table = training.sweep(models.CifakeCNN, configs, fit_set, val_set, epochs=1, batch_size=8)
    assert list(table.conv_blocks) == [1, 2] and table.val_acc.between(0, 1).all()


def test_an_interrupted_sweep_resumes_with_the_next_config_and_ends_like_an_uninterrupted_one(cifake_folder, tmp_path):
    fit_set, val_set = du.load_cifake("train", cifake_folder).split(0.25)
    configs = [dict(conv_blocks=1, filters=4), dict(conv_blocks=2, filters=4), dict(conv_blocks=1, filters=8)]
    options = dict(epochs=1, batch_size=8)
    built = []

    def interrupted(**config):
        if len(built) == 2:
            raise KeyboardInterrupt  # stopped while the third config starts
        built.append(config)
        return models.CifakeCNN(**config)

    checkpoint = tmp_path / "sweep.pt"
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        training.sweep(interrupted, configs, fit_set, val_set, checkpoint=checkpoint, **options)
    torch.manual_seed(123)  # the random state a resumed sweep starts from is its checkpoint's, not this one
    resumed = training.sweep(models.CifakeCNN, configs, fit_set, val_set, checkpoint=checkpoint, **options)
    torch.manual_seed(0)
    whole = training.sweep(models.CifakeCNN, configs, fit_set, val_set, **options)
    assert len(built) == 2 and len(resumed) == 3
    np.testing.assert_allclose(resumed.val_loss, whole.val_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="other settings"):
        training.sweep(models.CifakeCNN, configs[:2], fit_set, val_set, checkpoint=checkpoint, **options)


def test_bad_training_options(cifake_folder):
    train_set = du.load_cifake("train", cifake_folder)
    with pytest.raises(ValueError, match="schedule"):
        training.fit(models.create_model("cifake_cnn"), train_set, epochs=1, schedule="warp", progress=False)
    with pytest.raises(ValueError, match="precision"):
        training.fit(models.create_model("cifake_cnn"), train_set, epochs=1, precision="fp8", progress=False)


def test_bf16_training_learns_and_is_recorded(cifake_folder):
    train_set, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    du.seed_everything(0)
    model = models.create_model("detector_cnn", width=8)
    history = training.fit(model, train_set, test, epochs=6, batch_size=8, lr=3e-3, precision="bf16", progress=False)
    assert set(history.table.precision) == {"bf16"}
    assert history.table.train_loss.iloc[-1] < history.table.train_loss.iloc[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_auto_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    assert du.runtime.precision("fp32", cpu) == "fp32"
    assert du.runtime.precision("auto", cpu) == ("bf16" if du.runtime._fast_bf16(cpu) else "fp32")
    with pytest.raises(ValueError, match="precision"):
        du.runtime.precision("half", cpu)


def test_fastest_is_both_precisions_only_where_bf16_is_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(du.runtime, "_fast_bf16", lambda _device: True)
    assert du.runtime.precision_candidates("fastest", cpu) == ("fp32", "bf16")
    with pytest.raises(ValueError, match="timing"):
        du.runtime.precision("fastest", cpu)  # cannot be resolved without a model to time
    monkeypatch.setattr(du.runtime, "_fast_bf16", lambda _device: False)
    assert du.runtime.precision_candidates("fastest", cpu) == ("fp32",)
    assert du.runtime.precision("fastest", cpu) == "fp32"


def test_an_isa_limit_below_bf16_makes_bf16_not_native_and_is_recorded(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # as on the Xeon the project runs on
    for name in du.runtime.ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)
    assert du.runtime._fast_bf16(cpu) and du.runtime.cpu()["isa_limits"].get("ONEDNN_MAX_CPU_ISA") is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not du.runtime._fast_bf16(cpu)
    assert du.runtime.precision("auto", cpu) == "fp32" and du.runtime.precision_candidates("fastest", cpu) == ("fp32",)
    assert du.runtime.cpu()["isa_limits"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert du.runtime.environment(cpu)["cpu_isa_limits"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def _tiny_fit(train_set, precision, **options):
    torch.manual_seed(0)
    model = models.create_model("detector_cnn", width=4, depth=1, dropout=0.5)  # dropout draws from torch's RNG
    history = training.fit(model, train_set, epochs=2, batch_size=16, augment="flip", precision=precision,
                           progress=False, **options)
    return model, history


def test_fastest_trains_in_the_faster_precision_exactly_as_that_precision_would(cifake_folder, monkeypatch):
    """The timing probe must leave the model, the data order and every random state alone:
    a `fastest` fit is the fit of the precision it chose, weight for weight."""
    train_set = du.load_cifake("train", cifake_folder, progress=False)
    monkeypatch.setattr(du.runtime, "_fast_bf16", lambda _device: True)  # both candidates, native or not
    model, history = _tiny_fit(train_set, "fastest")
    timing = history.precision_timing
    assert set(timing) == {"fp32", "bf16"} and all(speed > 0 for speed in timing.values())
    chosen = max(timing, key=timing.get)
    assert set(history.table.precision) == {chosen}
    assert history.cost[f"probe_{chosen}_images_per_s"] == timing[chosen]
    assert history.precision_choice.startswith(f"{chosen} (timed: fp32 ")
    fixed_model, fixed = _tiny_fit(train_set, chosen)
    assert fixed.precision_timing == {} and fixed.precision_choice == chosen
    np.testing.assert_allclose(history.table.train_loss, fixed.table.train_loss, rtol=1e-6)
    for a, b in zip(model.state_dict().values(), fixed_model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_a_resumed_fastest_fit_keeps_its_precision_and_timing_without_timing_again(cifake_folder, tmp_path, monkeypatch):
    train_set = du.load_cifake("train", cifake_folder, progress=False)
    monkeypatch.setattr(du.runtime, "_fast_bf16", lambda _device: True)
    checkpoint = tmp_path / "fit.pt"
    _, first = _tiny_fit(train_set, "fastest", checkpoint=checkpoint)
    monkeypatch.setattr(training, "fastest_precision", lambda *a, **k: pytest.fail("a resumed fit timed again"))
    _, again = _tiny_fit(train_set, "fastest", checkpoint=checkpoint)
    assert again.rows == first.rows and again.precision_timing == first.precision_timing
    monkeypatch.setattr(du.runtime, "_fast_bf16", lambda _device: False)  # e.g. resumed on another machine
    with pytest.raises(ValueError, match="other settings .*precision"):
        _tiny_fit(train_set, "fastest", checkpoint=checkpoint)


class _LeftBright(nn.Module):
    """Fake-logit = mean of the left image half minus the right: flips negate it exactly."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3)) - x[..., x.shape[-1] // 2:].mean((1, 2, 3))
        return torch.stack([torch.zeros_like(left), left], 1)


def test_flip_average_is_the_mean_of_an_image_and_its_mirror(cifake_folder):
    test = du.load_cifake("test", cifake_folder)
    plain, _ = inference.predict(_LeftBright(), test)
    averaged, _ = inference.predict(_LeftBright(), test, flip_average=True)
    mirrored = 1 - plain  # sigmoid(-z) for the mirror
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(averaged, 0.5, atol=1e-6)
    assert np.abs(plain - 0.5).max() > 1e-3  # the check above is not trivially true


def test_v4_design_race_gives_each_design_its_time_and_a_validation_score(cifake_folder, capsys):
    from dfd_utils.methods import detector_cnn

    designs = {"tiny": {"width": 4, "depth": 1, "stages": 2}, "small": {"width": 8, "depth": 1, "stages": 3}}
    rows = detector_cnn.race_designs(seconds=0.05, designs=designs, val_per_class=2, batch_size=8, source=cifake_folder).to_dict("records")
    assert [row["design"] for row in rows] == ["tiny", "small"]
    assert all(0 <= row["val_acc"] <= 1 and row["images"] >= 2 and row["images_per_s"] > 0 and row["val_images"] == 4
               for row in rows)
    assert "val acc" in capsys.readouterr().out


def test_v4_recipe_race_trains_each_recipe_on_the_same_images_and_rejects_unknown_options(cifake_folder, capsys):
    from dfd_utils.methods import detector_cnn

    recipes = {"flip": {}, "smoothing": {"label_smoothing": 0.1}}
    rows = detector_cnn.race_recipes(per_class=4, epochs=1, recipes=recipes, val_per_class=2, source=cifake_folder).to_dict("records")
    assert [row["recipe"] for row in rows] == ["flip", "smoothing"]
    assert {row["images"] for row in rows} == {8} and all(0 <= row["val_acc"] <= 1 for row in rows)
    assert "flip-averaged" in capsys.readouterr().out
    with pytest.raises(ValueError, match="augment"):
        detector_cnn.race_recipes(per_class=4, epochs=1, recipes={"bad": {"augment": "rotate"}}, val_per_class=2,
                               source=cifake_folder)


class _SlowFirstCall(nn.Module):
    """A tiny classifier whose first forward pass costs half a second, like kernel warm-up."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(3, 2), 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 1:
            import time
            time.sleep(0.5)
        return self.linear(x.mean((2, 3)))


def test_training_speed_excludes_the_warm_up(cifake_folder):
    train_set = du.load_cifake("train", cifake_folder)
    speed = training.training_speed(_SlowFirstCall(), train_set, probe_images=16, batch_size=16)
    assert speed > 16 / 0.5 * 4  # the half-second first pass would have capped it at 32 images/s


def test_no_progress_bars_inside_an_executed_report(cifake_folder, monkeypatch, capsys):
    train_set = du.load_cifake("train", cifake_folder, progress=False)
    monkeypatch.setenv(du.runtime.REPORT_ENV, "1")
    training.fit(models.create_model("cifake_cnn", filters=4), train_set, epochs=1, batch_size=16)
    assert "epoch 1/1" not in capsys.readouterr().err
    monkeypatch.setenv(du.runtime.REPORT_ENV, "0")
    training.fit(models.create_model("cifake_cnn", filters=4), train_set, epochs=1, batch_size=16)
    assert "epoch 1/1" in capsys.readouterr().err


def test_notebook_04_defaults_are_the_raced_shape_and_options():
    import papermill

    from dfd_utils.methods import detector_cnn
    from dfd_utils.paths import notebooks_dir

    declared = {name: eval(p["default"]) for name, p in
                papermill.inspect_notebook(str(notebooks_dir() / "04_cnn_gradcam.ipynb")).items()}
    assert {k: declared[k.upper()] for k in detector_cnn.V4_SHAPE} == detector_cnn.V4_SHAPE
    assert declared["BATCH_SIZE"] == detector_cnn.V4_OPTIONS["batch_size"]
    assert declared["LR"] == detector_cnn.V4_OPTIONS["lr"] and declared["WEIGHT_DECAY"] == detector_cnn.V4_OPTIONS["weight_decay"]
    assert declared["AUGMENT"] == detector_cnn.V4_RECIPES[detector_cnn.V4_RECIPE]["augment"]


def test_race_verdict_names_the_winner_and_says_when_its_lead_is_noise():
    import pandas as pd

    from dfd_utils.methods import detector_cnn

    table = pd.DataFrame({"recipe": ["a", "b"], "val_images": [10000, 10000], "val_acc": [0.960, 0.955]})
    assert "notebook 04's choice, wins" in detector_cnn.race_verdict(table, "recipe", "a")
    assert "within noise" in detector_cnn.race_verdict(table, "recipe", "b")  # 0.5 points on 10,000: ± 0.56
    wide = table.assign(val_acc=[0.970, 0.950])
    assert "beyond noise" in detector_cnn.race_verdict(wide, "recipe", "b")
    assert "was not in the race" in detector_cnn.race_verdict(table, "recipe", "c")


def test_seed_spread_trains_once_per_seed_and_scores_every_split(cifake_folder):
    train_set, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    spread = training.seed_spread(lambda: models.create_model("cifake_cnn", filters=4), train_set,
                                  {"test": test, "again": test}, [0, 1], epochs=1, batch_size=16, progress=False)
    assert list(zip(spread.seed, spread.split)) == [(0, "test"), (0, "again"), (1, "test"), (1, "again")]
    assert spread.acc.between(0, 1).all()


_SLOW_FIT = """
import sys, time, torch
import dfd_utils as du
from dfd_utils import models, training
torch.manual_seed(0)
model = models.create_model("cifake_cnn", filters=4)
forward = model.forward
model.forward = lambda x: (time.sleep(0.15), forward(x))[1]  # slow enough to be killed between epochs
training.fit(model, du.load_cifake("train", sys.argv[1], progress=False), epochs=6, batch_size=16, augment="flip",
             progress=False, checkpoint=sys.argv[2])
"""


def test_a_killed_fit_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(cifake_folder, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    train_set = du.load_cifake("train", cifake_folder, progress=False)
    checkpoint = tmp_path / "fit.pt"
    child = subprocess.Popen([sys.executable, "-c", _SLOW_FIT, str(cifake_folder), str(checkpoint)])
    deadline = time.time() + 120
    while time.time() < deadline:
        if checkpoint.exists() and len(torch.load(checkpoint, weights_only=False)["rows"]) >= 2:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done = len(torch.load(checkpoint, weights_only=False)["rows"])
    assert 2 <= done < 6, f"the child was to be killed mid-training, after {done} epochs"

    def fresh():
        torch.manual_seed(0)
        return models.create_model("cifake_cnn", filters=4)

    options = dict(epochs=6, batch_size=16, augment="flip", progress=False)
    resumed_model = fresh()
    resumed = training.fit(resumed_model, train_set, checkpoint=checkpoint, **options)
    whole_model = fresh()
    whole = training.fit(whole_model, train_set, **options)
    assert [r["epoch"] for r in resumed.rows] == list(range(1, 7))
    np.testing.assert_allclose([r["train_loss"] for r in resumed.rows], [r["train_loss"] for r in whole.rows], rtol=1e-5)
    for a, b in zip(resumed_model.state_dict().values(), whole_model.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="other settings .*lr"):
        training.fit(fresh(), train_set, checkpoint=checkpoint, **(options | {"lr": 0.5}))


def test_a_finished_fit_is_picked_up_again_until_the_run_finishes(cifake_folder, isolated_paths):
    """A notebook that fails after its fit must not train again when rerun: the checkpoint of
    a finished fit stays until `run.finish()`, and a fit given it trains no further epoch."""
    train_set = du.load_cifake("train", cifake_folder, progress=False)
    run = du.start_run("99_test", {"PROFILE": "smoke"})
    checkpoint = run.checkpoint("model", resume=True)
    options = dict(epochs=2, batch_size=16, progress=False, checkpoint=checkpoint)
    torch.manual_seed(0)
    trained = models.create_model("cifake_cnn", filters=4)
    first = training.fit(trained, train_set, **options)
    again_model = models.create_model("cifake_cnn", filters=4)  # other initial weights: all must come from the file
    again = training.fit(again_model, train_set, **options)
    assert again.rows == first.rows
    for a, b in zip(trained.state_dict().values(), again_model.state_dict().values()):
        torch.testing.assert_close(a, b)
    run.finish()
    assert not checkpoint.exists() and not checkpoint.parent.exists()
