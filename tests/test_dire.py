from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dfd_utils import weights
from dfd_utils.methods import dire


class GaussianOracle(nn.Module):
    """The exact noise predictor for data ~ N(0, s²I): a smooth, known model, so DDIM inversion
    followed by reconstruction must return the input up to discretisation error."""

    def __init__(self, s: float = 0.5):
        super().__init__()
        self.s2 = s ** 2
        self.register_buffer("alphas", dire.linear_alphas_cumprod())

    def forward(self, x, t):
        a = self.alphas[t].view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(1 - a).sqrt() * x / (a * self.s2 + 1 - a))


def oracle() -> dire.Diffusion:
    return dire.Diffusion(GaussianOracle(), dire.linear_alphas_cumprod(), "oracle", {}, "hub")


def test_inversion_then_reconstruction_returns_the_input_more_closely_with_more_steps():
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    errors = [(dire.ddim_reconstruct(oracle(), dire.ddim_invert(oracle(), x, s), s) - x).abs().mean().item()
              for s in (2, 10, 50)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.25 * errors[0]  # O(1/steps) discretisation error


def test_inverted_images_look_like_noise():
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.5
    noise = dire.ddim_invert(oracle(), x, 50)
    assert 0.8 < noise.std().item() < 1.2


def test_maps_are_float_batch_independent_and_exactly_the_difference():
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    rec_a, map_a, seconds = dire.dire(oracle(), images, steps=5, batch_size=5, device="cpu")
    _, map_b, _ = dire.dire(oracle(), images, steps=5, batch_size=2, device="cpu")
    assert map_a.dtype == np.float32 and map_a.shape == images.shape and seconds > 0
    np.testing.assert_allclose(map_a, map_b, atol=1e-5)
    np.testing.assert_array_equal(map_a, np.abs(images.astype(np.float32) / 255 - rec_a))  # zero where they agree


def test_identical_inputs_give_identical_maps():
    torch.manual_seed(0)
    model = dire.Diffusion(dire.diffusion_unet((16, 32)).eval(), dire.linear_alphas_cumprod(), "random", {}, "hub")
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    _, maps, _ = dire.dire(model, image.repeat(3, 0), steps=3, device="cpu")
    # equal up to float32 round-off: CPU kernels may treat batch rows differently, and the last
    # DDIM step divides by sqrt(alpha_bar) ~ 0.006, which magnifies it
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-3)
    np.testing.assert_array_equal(maps, dire.dire(model, image.repeat(3, 0), steps=3, device="cpu")[1])  # run to run


def test_timesteps_and_bad_steps():
    assert dire.ddim_timesteps(4) == [0, 250, 500, 749, 999]
    with pytest.raises(ValueError, match="at least one step"):
        dire.ddim_timesteps(0)


def test_ddpm_training_runs_and_records_its_budget():
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    unet, record = dire.train_ddpm(images, images[:4], minutes=5, max_steps=2, batch_size=4, channels=(16, 32),
                                   device="cpu")
    assert record["steps"] == 2 and record["images_seen"] == 8 and record["final_loss_ema"] > 0
    assert record["sessions"] == 1 and record["val_loss"] == record["curve"][-1]["val_loss"] > 0
    assert not unet.training


def _tiny_ddpm(checkpoint, max_steps, **settings):
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    return dire.train_ddpm(images, minutes=5, max_steps=max_steps, batch_size=4, channels=(16, 32), device="cpu",
                           warmup_steps=2, checkpoint=checkpoint, **settings)


def test_an_interrupted_ddpm_training_resumes_to_the_uninterrupted_weights(tmp_path):
    straight, _ = _tiny_ddpm(None, 4)
    _tiny_ddpm(tmp_path / "ddpm.pt", 2)  # the first session stops after 2 steps
    resumed, record = _tiny_ddpm(tmp_path / "ddpm.pt", 4)
    assert record["steps"] == 4 and record["sessions"] == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_ddpm_checkpoint_with_other_settings_or_damaged_is_an_error(tmp_path):
    _tiny_ddpm(tmp_path / "ddpm.pt", 1)
    with pytest.raises(ValueError, match="other settings \\(lr\\)"):
        _tiny_ddpm(tmp_path / "ddpm.pt", 2, lr=1e-3)
    (tmp_path / "ddpm.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable.*delete it"):
        _tiny_ddpm(tmp_path / "ddpm.pt", 2)


class Zero(nn.Module):
    """Predicts no noise at all; it has no weights, so the loss finds its device from a buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))

    def forward(self, x, t):
        return SimpleNamespace(sample=torch.zeros_like(x))


def test_the_denoising_loss_is_repeatable_and_ranks_a_good_noise_predictor_first():
    gaussian = np.random.default_rng(0).normal(0, 0.5, (64, 32, 32, 3))
    images = np.clip(np.round((gaussian + 1) / 2 * 255), 0, 255).astype(np.uint8)  # [-1, 1] ~ N(0, 0.5²)
    good, none = dire.denoising_loss(GaussianOracle(), images), dire.denoising_loss(Zero(), images)
    assert good == dire.denoising_loss(GaussianOracle(), images)
    assert abs(none - 1) < 0.01 and good < 0.8 * none  # predicting no noise costs the noise's variance, 1


def test_held_out_real_images_are_real_and_not_trained_on(cifake_folder):
    import dfd_utils as du

    train = du.load_cifake("train", cifake_folder)
    fitted, held_out = dire.held_out_real(train, 3)
    real = train.images[train.labels == 0]
    assert len(held_out) == 3 and len(fitted) + 3 == len(real)
    assert not {a.tobytes() for a in held_out} & {a.tobytes() for a in fitted}


def test_a_missing_diffusion_model_says_how_to_train_it_and_is_never_replaced(tmp_path):
    with pytest.raises(weights.WeightsError, match="RETRAIN=True"):
        dire.load_diffusion(tmp_path / "none")
    with pytest.raises(weights.WeightsError, match="train-ddpm --name ddpm_cifake_real_6m"):
        dire.load_diffusion(tmp_path / "ddpm_cifake_real_6m")


def test_kept_diffusion_names():
    assert dire.kept_diffusion("hub") is None
    assert dire.kept_diffusion("ddpm_cifake_real") == dire.CHECKPOINT
    with pytest.raises(ValueError, match="unknown diffusion model 'ddpm'.*ddpm_cifake_real_6m"):
        dire.kept_diffusion("ddpm")


@pytest.mark.parametrize("name", [name for name in dire.RECIPES if (dire.CHECKPOINTS / name / "config.json").exists()])
def test_every_kept_diffusion_model_is_the_one_its_recipe_trains(name):
    kept = dire.load_diffusion(dire.CHECKPOINTS / name, device="cpu")
    recipe = dire.RECIPES[name]
    assert kept.record["channels"] == list(recipe["channels"])
    assert kept.params == dire.diffusion_unet(recipe["channels"], recipe["layers_per_block"]).num_parameters()
    assert (dire.CHECKPOINTS / name / "diffusion_pytorch_model.safetensors").stat().st_size <= 25e6  # the repository's limit
    assert "parameters" in dire.training_summary(kept)


def test_checkpoint_round_trip(tmp_path):
    unet = dire.diffusion_unet((16, 32)).eval()
    dire.save_diffusion(unet, {"steps": 0}, tmp_path / "ckpt")
    loaded = dire.load_diffusion(tmp_path / "ckpt", device="cpu")
    x, t = torch.rand(1, 3, 32, 32), torch.tensor([10])
    with torch.no_grad():
        torch.testing.assert_close(loaded.unet(x, t).sample, unet(x, t).sample)
    assert loaded.record == {"steps": 0} and loaded.source.startswith("project:")


def test_the_map_cnn_counts_the_maps_in_its_speed_and_the_control_does_not(cifake_folder):
    import dfd_utils as du

    train, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    rng, map_seconds = np.random.default_rng(0), 0.5
    train_maps, test_maps = (rng.random((len(s), 32, 32, 3)).astype(np.float32) for s in (train, test))
    results = dire.train_map_cnns(train, test, train_maps, test_maps, oracle(), 2, map_seconds, width=4, epochs=1,
                                  batch_size=8)
    on_maps, control = (results[name][0] for name in ("DIRE maps", "raw images (control)"))
    assert on_maps.infer_images_per_s < 1 / map_seconds  # end to end: at most 2 images/s when a map costs 0.5 s
    assert control.infer_images_per_s > 1 / map_seconds


def test_the_train_ddpm_command_keeps_a_loadable_model_and_resumes(cifake_folder, tmp_path, monkeypatch):
    from dfd_utils.cli import main

    monkeypatch.setenv("DFD_CHECKPOINTS", str(tmp_path / "state"))
    command = ["train-ddpm", "--name", "tiny", "--minutes", "0.002", "--channels", "8", "16", "--batch-size", "4",
               "--held-out", "4", "--source", str(cifake_folder), "--out", str(tmp_path / "kept")]
    assert main(command) == 0 and (tmp_path / "state" / "train-ddpm" / "tiny.pt").exists()
    kept = dire.load_diffusion(tmp_path / "kept", device="cpu")
    assert kept.record["channels"] == [8, 16] and kept.record["sessions"] == 1 and kept.record["val_images"] == 4
    assert main(command[:4] + ["0.004"] + command[5:]) == 0  # a larger budget goes on from the saved state
    assert dire.load_diffusion(tmp_path / "kept", device="cpu").record["sessions"] == 2
