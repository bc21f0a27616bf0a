import matplotlib.cbook
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torch import nn

from dfd_utils import aeroblade, weights
from dfd_utils.loaders import to_tensor

needs_shared_weights = pytest.mark.skipif(
    weights.find("taef2/taef2_encoder.pth") is None or weights.find("lpips_squeeze/squeezenet1_1_features.pth") is None,
    reason="../shared/weights (or DFD_WEIGHTS) not present")


def photo(size: int) -> np.ndarray:
    """A natural photo that ships with matplotlib, as uint8 (1, size, size, 3)."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC))[None]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(float) / 255 - b.astype(float) / 255) ** 2)))


@pytest.fixture(scope="module")
def squeeze():
    return aeroblade.load_lpips("squeeze", device="cpu")[0]


@needs_shared_weights
def test_offline_lpips_backbone_is_the_local_file():
    metric, source = aeroblade.load_lpips("auto", device="cpu")
    assert "squeeze" in source and "local" in source
    stored = weights.load_state(weights.find("lpips_squeeze/squeezenet1_1_features.pth"))
    assert torch.equal(metric.net.slice2._modules["3"].squeeze.weight, stored["3.squeeze.weight"])
    assert torch.equal(metric.net.slice7._modules["12"].expand3x3.bias, stored["12.expand3x3.bias"])


def test_offline_lpips_never_downloads_a_backbone():
    with pytest.raises(weights.WeightsError, match="offline"):
        aeroblade.load_lpips("vgg", device="cpu")


@needs_shared_weights
def test_lpips_is_zero_to_itself_and_grows_with_noise(squeeze):
    x = to_tensor(photo(64))
    generator = torch.Generator().manual_seed(0)
    distances = []
    for sigma in (0.0, 0.02, 0.1):
        noisy = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        distances.append(sum(m.mean().item() for m in aeroblade.lpips_maps(squeeze, x, noisy)))
    assert distances[0] == 0 and 0 < distances[1] < distances[2]


@needs_shared_weights
def test_taef2_reconstructs_a_photo_better_than_a_blur():
    taef2 = aeroblade.load_autoencoder("taef2", device="cpu")
    image = photo(256)
    with torch.inference_mode():
        reconstruction = (taef2.module(to_tensor(image))[0].permute(1, 2, 0).numpy() * 255).round()
    blurred = np.asarray(Image.fromarray(image[0]).filter(ImageFilter.GaussianBlur(1.5)))
    assert psnr(image[0], reconstruction) > 27 and psnr(image[0], reconstruction) > psnr(image[0], blurred) + 2


class Blur(nn.Module):
    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def toy_autoencoders():
    return [aeroblade.Autoencoder("identity", nn.Identity(), "test"), aeroblade.Autoencoder("blur", Blur(), "test")]


@needs_shared_weights
def test_score_is_the_minimum_over_autoencoders(squeeze):
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    measured = aeroblade.measure(images, toy_autoencoders(), squeeze, batch_size=4, device="cpu")
    wide = measured.table.pivot(index="image", columns="autoencoder", values="lpips_2")
    assert (wide["identity"] == 0).all() and (wide["blur"] > 0).all()
    np.testing.assert_array_equal(aeroblade.score(measured.table, "lpips_2"), -wide.min(axis=1).to_numpy())
    np.testing.assert_array_equal(aeroblade.score(measured.table, "lpips_2", ["blur"]), -wide["blur"].to_numpy())


@needs_shared_weights
def test_batch_size_does_not_change_distances_and_examples_are_kept(squeeze):
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    one = aeroblade.measure(images, toy_autoencoders()[1:], squeeze, batch_size=1, keep=3, device="cpu")
    all_ = aeroblade.measure(images, toy_autoencoders()[1:], squeeze, batch_size=5, keep=3, device="cpu")
    np.testing.assert_allclose(one.table["lpips"], all_.table["lpips"], rtol=1e-5)
    assert one.maps["blur"].shape == (3, 7, 32, 32) and all_.reconstructions["blur"].shape == (3, 32, 32, 3)
    np.testing.assert_allclose(one.maps["blur"], all_.maps["blur"], rtol=1e-4, atol=1e-7)


@needs_shared_weights
def test_resizing_is_explicit(squeeze):
    images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    measured = aeroblade.measure(images, toy_autoencoders()[1:], squeeze, size=64, keep=1, device="cpu")
    assert measured.size == 64 and measured.reconstructions["blur"].shape == (1, 64, 64, 3)
    fixed = aeroblade.Autoencoder("fixed", Blur(), "test", fixed_size=32)
    with pytest.raises(ValueError, match="only takes 32x32"):
        aeroblade.measure(images, [fixed], squeeze, size=64, device="cpu")


def test_unknown_missing_and_hub_autoencoders_are_clear_errors():
    with pytest.raises(ValueError, match="unknown autoencoder"):
        aeroblade.load_autoencoder("sd3", device="cpu")
    with pytest.raises(weights.WeightsError, match="offline"):
        aeroblade.load_autoencoder("sd1-vae", device="cpu")
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        aeroblade.load_autoencoder("v1", profile="nowhere", device="cpu")


def test_missing_weights_name_every_place_searched(monkeypatch, tmp_path):
    monkeypatch.setenv("DFD_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DFD_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(weights.WeightsError, match=str(tmp_path / "taef2")):
        aeroblade.load_autoencoder("taef2", device="cpu")
    assert aeroblade.available_autoencoders("default") == []


def test_auto_autoencoders_need_at_least_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DFD_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(weights.WeightsError, match="no autoencoder is available"):
        aeroblade.load_autoencoders("auto", profile="nowhere", device="cpu")
    with pytest.raises(ValueError, match="unknown autoencoder"):
        aeroblade.load_autoencoders("taef2, sd9", device="cpu")
