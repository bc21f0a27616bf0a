import dataclasses

import numpy as np
import pytest
import torch

import dfd_utils as du
from dfd_utils import audit, models, probing, reconstruction
from dfd_utils.train import reconstruction_loss


def test_autoencoder_learns_to_reconstruct_real_images(cifake_folder):
    train = du.load_folder(cifake_folder, "train")
    smooth = train.take(train.labels == 1)  # the fixture's REAL images are pure noise; learn the smooth ones
    real = dataclasses.replace(smooth, labels=np.zeros_like(smooth.labels), name="smooth images labelled REAL")
    untrained = models.create_model("conv_autoencoder", latent_dim=64, width=8)
    before = reconstruction_loss(untrained, real)
    model, history = reconstruction.train_autoencoder(real, real, latent_dim=64, width=8, epochs=15, batch_size=8,
                                                      lr=3e-3, progress=False)
    assert history.rows[-1]["val_loss"] < 0.5 * before
    assert "train_acc" not in history.table and history.train_seconds > 0


def test_autoencoder_refuses_fake_training_images(cifake_folder):
    with pytest.raises(ValueError, match="REAL images only"):
        reconstruction.train_autoencoder(du.load_folder(cifake_folder, "train"), epochs=1)


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
    table = reconstruction.detail_table(labels, detail, error=detail * 2)
    assert list(table["class"]) == ["REAL", "FAKE"] and np.allclose(table["spearman_detail_error"], 1)
    assert table["auroc_detail"].iloc[0] == 0.0 and table["auroc_error"].iloc[0] == 0.0  # FAKE has less detail here
    text = reconstruction.explain_failure(table)
    assert "less fine detail" in text and "is lower" in text and "tracks" in text


def test_linear_probe_fits_on_train_and_scores_test():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 2] > 0).astype(int)
    scores, probe = probing.linear_probe(x[:100], y[:100], x[100:])
    assert ((scores >= 0.5) == y[100:]).mean() > 0.9
    with pytest.raises(ValueError, match="REAL and FAKE"):
        probing.linear_probe(x[:10], np.zeros(10), x)


def test_features_stack_batches_and_layer_dicts(cifake_folder):
    images = du.load_folder(cifake_folder, "test")
    single = probing.features(lambda b: b.mean((2, 3)), images, batch_size=7)
    layered = probing.features(lambda b: {"a": b[:, :1], "b": b.amax((2, 3))}, images, batch_size=5)
    assert single.shape == (len(images), 3) and layered["a"].shape == (len(images), 32 * 32)
    np.testing.assert_allclose(single, probing.features(lambda b: b.mean((2, 3)), images, batch_size=100), rtol=1e-6)


def test_concatenate_keeps_everything_and_refuses_mixed_shapes(cifake_folder):
    test = du.load_folder(cifake_folder, "test")
    joined = du.data.concatenate([test.take(test.labels == 0), test.take(test.labels == 1)], "joined")
    assert len(joined) == len(test) and joined.n_fake == test.n_fake and joined.name == "joined"
    small = du.load_folder(cifake_folder, "test", size=16)
    with pytest.raises(du.DataError, match="different image shapes"):
        du.data.concatenate([test, small], "mixed")
