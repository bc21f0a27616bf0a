import functools

import matplotlib.cbook
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter
from torch import nn

from dfd_utils import distances, weights
from dfd_utils.methods import aeroblade
from dfd_utils.loaders import to_tensor

needs_shared_weights = pytest.mark.needs_weights("taef2/taef2_encoder.pth", "lpips_squeeze/squeezenet1_1_features.pth")


def photo(size: int) -> np.ndarray:
    """A natural photo that ships with matplotlib, as uint8 (1, size, size, 3)."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC))[None]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(float) / 255 - b.astype(float) / 255) ** 2)))


@pytest.fixture(scope="module")
def squeeze():
    return distances.load_lpips("squeeze", device="cpu")[0]


@needs_shared_weights
def test_offline_lpips_backbone_is_the_local_file():
    metric, source = distances.load_lpips("auto", device="cpu")
    assert "squeeze" in source and "local" in source
    stored = weights.load_state(weights.find("lpips_squeeze/squeezenet1_1_features.pth"))
    assert torch.equal(metric.net.slice2._modules["3"].squeeze.weight, stored["3.squeeze.weight"])
    assert torch.equal(metric.net.slice7._modules["12"].expand3x3.bias, stored["12.expand3x3.bias"])


def test_offline_lpips_never_downloads_a_backbone():
    with pytest.raises(weights.WeightsError, match="offline"):
        distances.load_lpips("vgg", device="cpu")


@needs_shared_weights
def test_lpips_is_zero_to_itself_and_grows_with_noise(squeeze):
    x = to_tensor(photo(64))
    generator = torch.Generator().manual_seed(0)
    values = []
    for sigma in (0.0, 0.02, 0.1):
        noisy = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        values.append(sum(m.mean().item() for m in distances.lpips_maps(squeeze, x, noisy)))
    assert values[0] == 0 and 0 < values[1] < values[2]


@needs_shared_weights
def test_taef2_reconstructs_a_photo_better_than_a_blur():
    taef2 = distances.load_autoencoder("taef2", device="cpu")
    image = photo(256)
    with torch.inference_mode():
        reconstruction = (taef2.module(to_tensor(image))[0].permute(1, 2, 0).numpy() * 255).round()
    blurred = np.asarray(Image.fromarray(image[0]).filter(ImageFilter.GaussianBlur(1.5)))
    assert psnr(image[0], reconstruction) > 27 and psnr(image[0], reconstruction) > psnr(image[0], blurred) + 2


class Blur(nn.Module):
    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def toy_autoencoders():
    return [distances.Autoencoder("identity", nn.Identity(), "test"), distances.Autoencoder("blur", Blur(), "test")]


@needs_shared_weights
def test_score_is_the_minimum_over_autoencoders(squeeze):
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    measured = distances.measure(images, toy_autoencoders(), squeeze, batch_size=4, device="cpu")
    wide = measured.table.pivot(index="image", columns="autoencoder", values="lpips_2")
    assert (wide["identity"] == 0).all() and (wide["blur"] > 0).all()
    np.testing.assert_array_equal(distances.best_reconstruction(measured.table, "lpips_2"), wide.min(axis=1).to_numpy())
    np.testing.assert_array_equal(distances.best_reconstruction(measured.table, "lpips_2", ["blur"]), wide["blur"].to_numpy())
    psnr_wide = measured.table.pivot(index="image", columns="autoencoder", values="psnr")
    np.testing.assert_array_equal(distances.best_reconstruction(measured.table, "psnr"), psnr_wide.max(axis=1).to_numpy())


@needs_shared_weights
def test_batch_size_does_not_change_distances_and_examples_are_kept(squeeze):
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    one = distances.measure(images, toy_autoencoders()[1:], squeeze, batch_size=1, keep=3, device="cpu")
    all_ = distances.measure(images, toy_autoencoders()[1:], squeeze, batch_size=5, keep=3, device="cpu")
    np.testing.assert_allclose(one.table["lpips"], all_.table["lpips"], rtol=1e-5)
    assert one.maps["blur"].shape == (3, 7, 32, 32) and all_.reconstructions["blur"].shape == (3, 32, 32, 3)
    np.testing.assert_allclose(one.maps["blur"], all_.maps["blur"], rtol=1e-4, atol=1e-7)


@needs_shared_weights
def test_resizing_is_explicit(squeeze):
    images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    measured = distances.measure(images, toy_autoencoders()[1:], squeeze, size=64, keep=1, device="cpu")
    assert measured.size == 64 and measured.reconstructions["blur"].shape == (1, 64, 64, 3)
    fixed = distances.Autoencoder("fixed", Blur(), "test", fixed_size=32)
    with pytest.raises(ValueError, match="only takes 32x32"):
        distances.measure(images, [fixed], squeeze, size=64, device="cpu")


def test_unknown_and_hub_autoencoders_are_clear_errors():
    with pytest.raises(ValueError, match="unknown autoencoder"):
        distances.load_autoencoder("sd3", device="cpu")
    with pytest.raises(weights.WeightsError, match="offline"):
        distances.load_autoencoder("sd1-vae", device="cpu")


def test_missing_weights_name_every_place_searched(monkeypatch, tmp_path):
    monkeypatch.setenv("DFD_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DFD_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(weights.WeightsError, match=str(tmp_path / "taef2")):
        distances.load_autoencoder("taef2", device="cpu")
    assert distances.available_autoencoders() == []


def test_auto_autoencoders_need_at_least_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DFD_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(weights.WeightsError, match="no autoencoder is available"):
        distances.load_autoencoders("auto", device="cpu")
    with pytest.raises(ValueError, match="unknown autoencoder"):
        distances.load_autoencoders("taef2, sd9", device="cpu")
    blur = distances.Autoencoder("mine", Blur(), "test")
    assert [ae.name for ae in distances.load_autoencoders("auto", {"mine": blur}, device="cpu")] == ["mine"]
    assert [ae.name for ae in distances.load_autoencoders("mine", {"mine": blur}, device="cpu")] == ["mine"]


def test_measure_without_lpips_gives_mse_and_psnr_only():
    images = np.random.default_rng(3).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    measured = distances.measure(images, toy_autoencoders(), None, device="cpu")
    assert set(measured.table.columns) == {"autoencoder", "image", "mse", "psnr"}
    assert (measured.table.query("autoencoder == 'identity'")["mse"] == 0).all()


def test_signs_are_chosen_on_training_images_and_the_threshold_on_their_real_ones():
    """Blur reconstructs smooth images well: on training images where FAKE is smooth, low error
    means FAKE, so the sign must come out -1, and the threshold flag at most 25% of the REALs."""
    rng = np.random.default_rng(4)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (8, 4, 4, 3)), 8, 1), 8, 2).astype(np.uint8)
    noisy = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    images, labels = np.concatenate([noisy, smooth]), np.r_[np.zeros(8), np.ones(8)].astype(int)
    measured = distances.measure(images, toy_autoencoders()[1:], None, device="cpu")
    (scores,) = aeroblade.variant_scores(measured, labels, np.arange(16).astype(str), measured, labels, "mse", 0.25, "test")
    assert scores.extra["sign"] == -1 and scores.extra["train_auroc"] == 1.0
    assert (scores.scores[labels == 0] >= scores.threshold.value).mean() <= 0.25
    assert "REAL training images" in scores.threshold.rule


def test_resolution_study_resumes_after_the_last_finished_size(tmp_path, monkeypatch):
    """Interrupted while measuring the second size, a rerun measures only that size and returns
    what an uninterrupted study does; a checkpoint made with other sizes is refused."""
    rng = np.random.default_rng(5)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (8, 4, 4, 3)), 8, 1), 8, 2).astype(np.uint8)
    images, labels = np.concatenate([rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), smooth]), np.repeat([0, 1], 8)
    study = functools.partial(aeroblade.resolution_study, images, labels, images, labels, toy_autoencoders(), None,
                              distances=["mse"], n_boot=20)
    uninterrupted = study([16, 32])
    measured_sizes, real_measure = [], aeroblade.measure

    def measure_until_32(*args, size, **kwargs):
        measured_sizes.append(size)
        if size == 32 and len(measured_sizes) < 4:
            raise KeyboardInterrupt
        return real_measure(*args, size=size, **kwargs)

    monkeypatch.setattr(aeroblade, "measure", measure_until_32)
    with pytest.raises(KeyboardInterrupt):
        study([16, 32], checkpoint=tmp_path / "study.pt")
    resumed = study([16, 32], checkpoint=tmp_path / "study.pt")
    assert measured_sizes == [16, 16, 32, 32, 32]  # the rerun measured size 32 only (signs, then test images)
    for got, want in zip(resumed, uninterrupted):
        pd.testing.assert_frame_equal(got, want.assign(**{c: got[c] for c in got.columns if "images_per_s" in c}))
    with pytest.raises(ValueError, match="other settings"):
        study([16, 64], checkpoint=tmp_path / "study.pt")


def test_resolution_study_resumes_within_a_size_after_the_last_saved_chunk(tmp_path, monkeypatch):
    """Interrupted in the third chunk of a size's test images, a rerun measures only the chunks
    not saved yet and returns what an uninterrupted study does."""
    rng = np.random.default_rng(6)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (8, 4, 4, 3)), 8, 1), 8, 2).astype(np.uint8)
    images, labels = np.concatenate([rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), smooth]), np.repeat([0, 1], 8)
    study = functools.partial(aeroblade.resolution_study, images, labels, images[::2], labels[::2], toy_autoencoders(),
                              None, [16], ["mse"], n_boot=20, chunk=4)
    uninterrupted = study()
    measured_counts, real_measure = [], aeroblade.measure

    def measure_until_third_test_chunk(chunk_images, *args, **kwargs):
        measured_counts.append(len(chunk_images))
        if len(measured_counts) == 5:  # two chunks of training images, then the third of the test images
            raise KeyboardInterrupt
        return real_measure(chunk_images, *args, **kwargs)

    monkeypatch.setattr(aeroblade, "measure", measure_until_third_test_chunk)
    with pytest.raises(KeyboardInterrupt):
        study(checkpoint=tmp_path / "study.pt")
    resumed = study(checkpoint=tmp_path / "study.pt")
    assert measured_counts == [4, 4, 4, 4, 4, 4, 4]  # 2 training + 2 test chunks kept; the rerun measured test chunks 3 and 4
    for got, want in zip(resumed, uninterrupted):
        pd.testing.assert_frame_equal(got, want.assign(**{c: got[c] for c in got.columns if "images_per_s" in c}))


def test_measured_chunks_join_into_one_measurement():
    """`Measured.concat` of chunks equals measuring all images at once (but for timings), and
    `only` keeps the named autoencoders' rows."""
    images = np.random.default_rng(7).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    at_once = distances.measure(images, toy_autoencoders(), None, batch_size=3)
    joined = distances.Measured.concat([distances.measure(images[i:i + 4], toy_autoencoders(), None, batch_size=3)
                                        for i in range(0, 10, 4)])
    pd.testing.assert_frame_equal(joined.table, at_once.table)
    assert set(joined.seconds) == set(at_once.seconds)
    first = toy_autoencoders()[0].name
    assert set(at_once.only([first]).table["autoencoder"]) == {first}
    with pytest.raises(ValueError, match="not measured"):
        at_once.only(["nonexistent"])
