import numpy as np
import pytest
import torch
from torch import nn

from dfd_utils import models
from dfd_utils.methods import explain
from dfd_utils.metrics import mean_interval


class LeftHalfModel(nn.Module):
    """Sees the left half of the image only: a faithful map must point there."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.head = nn.Linear(4, 2)
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., :14] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return self.head(torch.relu(self.features(x * self.mask)).mean((2, 3)))


class LeftDetailModel(nn.Module):
    """p(FAKE) grows with the fine detail (|x - local mean|) of the left half only."""

    def forward(self, x):
        detail = (x - nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs()[..., :16].mean((1, 2, 3))
        return torch.stack([torch.zeros_like(detail), 40 * detail - 4], 1)


def test_grad_cam_shapes_and_range():
    model = models.create_model("cifake_cnn", conv_blocks=2, filters=4)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    maps = explain.grad_cam(model, model.cam_layers["conv2"], images, np.array([1, 0, 1, 0, 1]), batch_size=2)
    assert maps.shape == (5, 32, 32) and maps.min() >= 0 and maps.max() <= 1


def test_grad_cam_points_where_the_model_looks():
    torch.manual_seed(0)
    model = LeftHalfModel()
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    targets = (model(torch.rand(8, 3, 32, 32)).argmax(1)).numpy()
    maps = explain.grad_cam(model, model.features, images, targets)
    left = np.zeros((32, 32), dtype=bool)
    left[:, :16] = True
    assert np.nanmean(explain.mass_ratio(maps, left)) > 1.5


def test_mass_ratio():
    uniform = np.ones((2, 32, 32))
    border = explain.border_mask(32, 4)
    np.testing.assert_allclose(explain.mass_ratio(uniform, border), 1.0)
    frame_only = np.where(border, 1.0, 0.0)[None]
    assert explain.mass_ratio(frame_only, border)[0] == 1 / border.mean()
    assert explain.mass_ratio(frame_only, ~border)[0] == 0


def test_foreground_proxy_finds_a_centred_object():
    image = np.full((1, 32, 32, 3), 200, np.uint8)
    image[0, 8:24, 8:24] = 20  # dark square on a light background
    mask = explain.foreground_mask(image)[0]
    assert mask[8:24, 8:24].all() and not mask[:4].any()


def test_outcome_groups_partition():
    labels, predicted = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 0, 1])
    groups = explain.outcome_groups(labels, predicted)
    assert sorted(np.concatenate(list(groups.values()))) == list(range(5))
    assert list(groups["TP (FAKE called FAKE)"]) == [2, 4]


def test_deletion_insertion_curves():
    model = LeftDetailModel().eval()
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    maps = np.zeros((6, 32, 32), np.float32)
    maps[:, :, :16] = 1  # the truth for this model
    for replacement in explain.REPLACEMENTS:
        curves = explain.deletion_insertion(model, images, maps, np.ones(6, int), steps=4, replacement=replacement)
        assert len(curves) == 6 * 2 * 2 * 5  # images x orders x curves x steps
        full = curves[curves.fraction == 1.0]
        # deleting everything gives the replacement image whatever the order
        assert full.groupby(["curve", "image"]).probability.nunique().eq(1).all()
        faithful = explain.faithfulness(curves, n_boot=200).set_index("curve")
        assert faithful.loc["deletion", "ci_high"] < 0 < faithful.loc["insertion", "ci_low"]
        assert all(explain.faithfulness_verdict(row, min_effect=0.0) == "faithful" for row in faithful.reset_index().itertuples())
    random_maps = np.random.default_rng(3).random((6, 32, 32)).astype(np.float32)
    random_curves = explain.deletion_insertion(model, images, random_maps, np.ones(6, int), steps=4)
    verdicts = {explain.faithfulness_verdict(row) for row in explain.faithfulness(random_curves, n_boot=200).itertuples()}
    assert "faithful" not in verdicts  # random maps must not pass as faithful


def test_empty_cam_maps_are_counted_and_left_out_of_the_ratios():
    images = np.random.default_rng(4).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    maps = np.zeros((4, 32, 32), np.float32)
    maps[:2] = explain.border_mask(32, 4)  # two maps all on the frame, two empty
    table = explain.cam_mass_table(maps, images, np.ones(4, int), np.ones(4, bool), border_width=4, n_boot=50)
    border = table[(table["class"] == "FAKE") & table.correct & (table.region == "border")].iloc[0]
    assert border.n == 4 and border.n_empty == 2
    assert border.mass_ratio == pytest.approx(1 / explain.border_mask(32, 4).mean())  # empty maps would halve it


def test_mean_interval_contains_mean():
    mean, low, high = mean_interval(np.random.default_rng(0).normal(size=500), 300)
    assert low < mean < high
