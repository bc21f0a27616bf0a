import dataclasses

import numpy as np
import pytest
import torch

import dfd_utils as du
from dfd_utils import detectors, distances, features, models
from dfd_utils.methods import audit, autoencoder
from dfd_utils.training import reconstruction_loss


def test_autoencoder_learns_to_reconstruct_real_images(cifake_folder):
    train = du.load_folder(cifake_folder, "train")
    smooth = train.take(train.labels == 1)  # the fixture's REAL images are pure noise; learn the smooth ones
    real = dataclasses.replace(smooth, labels=np.zeros_like(smooth.labels), name="smooth images labelled REAL")
    untrained = models.create_model("conv_autoencoder", latent_dim=64, width=8)
    before = reconstruction_loss(untrained, real)
    model, history = autoencoder.train_autoencoder(real, real, latent_dim=64, width=8, epochs=15, batch_size=8,
                                                   lr=3e-3, progress=False)
    assert history.rows[-1]["val_loss"] < 0.5 * before
    assert "train_acc" not in history.table and history.train_seconds > 0


def test_autoencoder_refuses_fake_training_images(cifake_folder):
    with pytest.raises(ValueError, match="REAL images only"):
        autoencoder.train_autoencoder(du.load_folder(cifake_folder, "train"), epochs=1)


def test_conv_autoencoder_shapes_and_wrong_size():
    model = models.create_model("conv_autoencoder", latent_dim=16, width=4)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert model.encode(torch.rand(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="takes 32x32"):
        model(torch.rand(1, 3, 64, 64))


def test_high_frequency_energy_orders_smooth_below_noisy():
    rng = np.random.default_rng(0)
    flat = np.full((2, 32, 32, 3), 128, dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None, None], (2, 32, 32, 3))
    noise = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    energy = [audit.high_frequency_energy(x).mean() for x in (flat, ramp, noise)]
    assert energy[0] == 0 and energy[1] < 0.01 < energy[2]


def test_detail_table_reports_what_was_measured():
    labels = np.array([0, 0, 0, 1, 1, 1])
    detail = np.array([3.0, 2.0, 1.0, 0.3, 0.2, 0.1])
    table = autoencoder.detail_table(labels, detail, error=detail * 2)
    assert list(table["class"]) == ["REAL", "FAKE"] and np.allclose(table["spearman_detail_error"], 1)
    assert table["auroc_detail"].iloc[0] == 0.0 and table["auroc_error"].iloc[0] == 0.0  # FAKE has less detail here
    text = autoencoder.explain_failure(table)
    assert "less fine detail" in text and "is lower" in text and "tracks" in text


def test_linear_probe_fits_on_train_and_scores_test():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 2] > 0).astype(int)
    scores, probe = features.linear_probe(x[:100], y[:100], x[100:])
    assert ((scores >= 0.5) == y[100:]).mean() > 0.9
    with pytest.raises(ValueError, match="REAL and FAKE"):
        features.linear_probe(x[:10], np.zeros(10), x)


def test_features_stack_batches_and_layer_dicts(cifake_folder):
    images = du.load_folder(cifake_folder, "test")
    single = features.features(lambda b: b.mean((2, 3)), images, batch_size=7)
    layered = features.features(lambda b: {"a": b[:, :1], "b": b.amax((2, 3))}, images, batch_size=5)
    assert single.shape == (len(images), 3) and layered["a"].shape == (len(images), 32 * 32)
    np.testing.assert_allclose(single, features.features(lambda b: b.mean((2, 3)), images, batch_size=100), rtol=1e-6)


def test_concatenate_keeps_everything_and_refuses_mixed_shapes(cifake_folder):
    test = du.load_folder(cifake_folder, "test")
    joined = du.data.concatenate([test.take(test.labels == 0), test.take(test.labels == 1)], "joined")
    assert len(joined) == len(test) and joined.n_fake == test.n_fake and joined.name == "joined"
    small = du.load_folder(cifake_folder, "test", size=16)
    with pytest.raises(du.DataError, match="different image shapes"):
        du.data.concatenate([test, small], "mixed")


def test_v1_sign_and_threshold_come_from_validation_images(cifake_folder):
    """Errors where FAKE reconstructs *better* must get the sign -1 from the validation set, and
    the threshold must flag at most the target share of its REAL images."""
    import pandas as pd

    val, test = du.load_folder(cifake_folder, "train"), du.load_folder(cifake_folder, "test")
    rng = np.random.default_rng(0)
    def errors_for(image_set):
        table = pd.DataFrame({"mse": rng.normal(1.0 - 0.5 * image_set.labels, 0.1)})
        return distances.Measured(table, 32, seconds={"v1": {"reconstruct": 0.5, "lpips": 2.0}})
    history = du.training.History([{"seconds": 1.0, "images": 10, "precision": "fp32"}])
    (mse,) = autoencoder.error_variants({"test": errors_for(test)}, {"test": test}, errors_for(val), val, 0.1, 16,
                                        history, "none", distances=("mse",))
    assert mse.extra["sign"] == -1 and mse.extra["val_auroc"] > 0.9
    assert mse.infer_images_per_s == pytest.approx(len(test) / 0.5)  # MSE needs no LPIPS: its time is not counted
    assert du.evaluate(test.labels, mse.scores, n_boot=0)["auroc"] > 0.9  # the sign carries over to test
    assert "held-out REAL training images" in mse.threshold.rule


def test_saved_v1_detector_scores_like_the_run(cifake_folder, tmp_path):
    train, test = du.load_folder(cifake_folder, "train"), du.load_folder(cifake_folder, "test")
    model, history = autoencoder.train_autoencoder(train.take(train.labels == 0), latent_dim=16, width=4, epochs=1,
                                                   batch_size=8, progress=False)
    errors = {"test": autoencoder.errors(model, test, None), "validation": autoencoder.errors(model, train, None)}
    (mse,) = autoencoder.error_variants(errors, {"test": test}, errors["validation"], train, 0.1, 16, history, "none",
                                        distances=("mse",))
    assert mse.infer_images_per_s > 0  # measured while the test errors were
    folder = autoencoder.make_detector(model, mse, None, None, "v1", "01_autoencoder").save(tmp_path / "v1")
    loaded = detectors.load(folder)
    np.testing.assert_allclose(loaded.score(test.images), mse.scores, rtol=1e-5)
    assert loaded.threshold == mse.threshold and loaded.policy.size == 32 and loaded.name == "v1"


@pytest.mark.needs_weights("lpips_squeeze/squeezenet1_1_features.pth")
def test_bottleneck_sweep_resumes_from_each_models_checkpoint(cifake_folder, tmp_path):
    train = du.load_folder(cifake_folder, "train")
    real = train.take(train.labels == 0, "train-REAL")
    metric = distances.load_lpips("squeeze", device="cpu")[0]
    options = dict(width=4, epochs=2, batch_size=8, checkpoints=lambda key: tmp_path / f"{key}.pt")
    first = autoencoder.bottleneck_sweep([4, 8], real, train, metric, **options)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["sweep-latent4.pt", "sweep-latent8.pt"]
    again = autoencoder.bottleneck_sweep([4, 8], real, train, metric, **options)
    # no epoch trained again: the histories (and their measured seconds) are the checkpoints'
    assert list(again.train_seconds) == list(first.train_seconds)
    np.testing.assert_allclose(again.val_real_mse, first.val_real_mse)
