import numpy as np
import pandas as pd
import pytest
import torch

import dfd_utils as du
from dfd_utils import models, robustness
from dfd_utils.methods import probing


def test_probe_points_cover_stem_and_every_block():
    resnet = models.create_model("zoo_detector", backbone="cifar_resnet20")
    points = probing.probe_points(resnet)
    assert list(points)[:2] == ["stem", "layer1.0"] and len(points) == 1 + 9
    assert list(probing.stage_outputs(resnet)) == ["layer1", "layer2", "layer3"]
    assert list(probing.probe_points(models.create_model("detector_cnn", width=4))) == ["stage1", "stage2", "stage3"]


def test_an_efficientnet_is_probed_and_ablated_block_by_block():
    model = models.create_model("zoo_detector", backbone="tf_efficientnet_lite0", input_size=64).eval()
    points = probing.probe_points(model)
    assert list(points)[:3] == ["stem", "blocks.0.0", "blocks.1.0"] and len(points) == 1 + 16
    assert list(probing.stage_outputs(model)) == [f"blocks.{k}" for k in range(7)]
    residual = probing.residual_blocks(model)
    assert "blocks.1.1" in residual and "blocks.1.0" not in residual  # a stage's first block changes shape
    sizes = probing.stage_map_sizes({"lite0": model}, np.zeros((1, 32, 32, 3), np.uint8))
    assert sizes["map"].tolist() == ["32x32", "16x16", "8x8", "4x4", "4x4", "2x2", "2x2"]  # 32 px upsampled to 64
    block, x = residual["blocks.1.1"], torch.rand(2, 24, 16, 16)
    with probing.skip_branch(block):
        assert torch.equal(block(x), x)
    assert not torch.equal(block(x), x)
    with pytest.raises(ValueError, match="no shortcut"):
        with probing.skip_branch(model.backbone.blocks[1][0]):
            pass


def test_layer_features_match_the_network_and_hooks_are_removed(cifake_folder):
    images = du.load_folder(cifake_folder, "test")
    model = models.create_model("cifar_resnet", depth=20).eval()
    points = {"layer3.2": model.layer3[2]}
    pooled = probing.layer_features(model, images, points, batch_size=10)["layer3.2"]
    with torch.no_grad():
        expected = model.forward_features(du.loaders.to_tensor(images.images)).mean((2, 3)).numpy()
    np.testing.assert_allclose(pooled, expected, rtol=1e-4, atol=1e-5)
    assert not model.layer3[2]._forward_hooks


def test_skip_branch_keeps_only_the_shortcut_and_restores():
    model = models.create_model("cifar_resnet", depth=20).eval()
    block = model.layer2[1]
    x = torch.rand(2, 32, 16, 16)
    with probing.skip_branch(block):
        assert torch.equal(block(x), torch.relu(x))
    assert not torch.equal(block(x), torch.relu(x))


def test_probe_curve_finds_the_informative_layer():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    noise = {"early": rng.normal(size=(200, 4)), "late": rng.normal(size=(200, 4))}
    noise["late"][:, 0] += 3 * labels
    curve = probing.probe_curve({k: v[::2] for k, v in noise.items()}, labels[::2],
                                {k: v[1::2] for k, v in noise.items()}, labels[1::2], n_boot=50)
    assert list(curve["layer"]) == ["early", "late"]
    assert curve["auroc"].iloc[1] > 0.9 > 0.7 > curve["auroc"].iloc[0]
    assert {"auroc_ci_low", "auroc_ci_high"} <= set(curve)


def test_deciding_layers_reads_the_numbers():
    curves = pd.DataFrame({"model": "m", "scenario": ["clean"] * 3 + ["blur"] * 3, "depth": [0, 1, 2] * 2,
                           "layer": ["stem", "layer1.0", "layer2.0"] * 2, "auroc": [0.6, 0.95, 0.955, 0.55, 0.6, 0.8],
                           "auroc_ci_low": [0.55, 0.93, 0.94, 0.5, 0.55, 0.77],
                           "auroc_ci_high": [0.65, 0.97, 0.97, 0.6, 0.65, 0.83], "protocol": "perturbed alike"})
    ablation = pd.DataFrame({"depth": [1, 2], "block": ["layer1.0", "layer2.0"], "auroc_drop": [0.2, 0.05],
                             "acc_drop": [0.1, 0.02]})
    text = probing.deciding_layers(curves, ablation, ablated_model="m")
    assert "from layer1.0 on" in text and "within 0.01 from layer2.0 — moved" in text
    overlapping = curves.assign(auroc_ci_high=0.9)  # the clean-earliest layer's interval now reaches the new best
    assert "same within intervals" in probing.deciding_layers(overlapping)
    assert "removing layer1.0 costs the most" in text and "agree on the deciding stage" in text


@pytest.mark.parametrize("scenario", [s for s in robustness.SCENARIOS if s != "clean"])
def test_perturbations_keep_shape_and_change_pixels(scenario):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = robustness.perturb(images, scenario, seed=1)
    assert out.shape == images.shape and out.dtype == np.uint8 and not np.array_equal(out, images)
    np.testing.assert_array_equal(out, robustness.perturb(images, scenario, seed=1))


def test_unknown_scenario():
    with pytest.raises(ValueError, match="unknown scenario"):
        robustness.perturb(np.zeros((1, 8, 8, 3), np.uint8), "sepia")
