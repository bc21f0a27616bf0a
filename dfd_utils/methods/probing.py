"""Which layers decide "fake": linear probes per layer and residual-branch ablation.

Probes are `features.linear_probe` (standardised logistic regression fitted on one set,
scored on another, so a probe's accuracy is always measured on images it was not fitted on)
on the pooled outputs of every block. For block networks — timm and CIFAR ResNets (`layerK.i`)
and timm EfficientNets (`blocks.K.i`) — features are read after the stem and after every block
through forward hooks, and `skip_branch` removes one block's residual branch to measure what
the detector loses.
"""
from __future__ import annotations

import dataclasses
import re
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import ImageSet
from ..features import features, linear_probe
from ..inference import predict
from ..metrics import evaluate
from ..robustness import perturb

__all__ = ["network_blocks", "residual_blocks", "stage_of", "probe_points", "stage_outputs", "capture",
           "stage_map_sizes", "layer_features", "probe_curve", "skip_branch", "ablation_table", "probe_scenarios", "deciding_layers", "PROTOCOLS"]


# --------------------------------------------------------------------------- block networks
BLOCK_NAME = re.compile(r"(.*\.)?(layer\d+|blocks\.\d+)\.\d+")  # ResNets: layerK.i; timm EfficientNets: blocks.K.i


def network_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The blocks in forward order, each named as in the backbone (`layer2.1`, `blocks.3.0`)."""
    return {name.split("backbone.")[-1]: module for name, module in model.named_modules() if BLOCK_NAME.fullmatch(name)}


def residual_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The blocks with a residual branch beside a shortcut: every ResNet block; in an
    EfficientNet only those with `has_skip` (a stage's first block changes shape and has none)."""
    return {name: module for name, module in network_blocks(model).items() if getattr(module, "has_skip", True)}


def stage_of(block: str) -> str:
    """`layer2.1` → `layer2`, `blocks.3.0` → `blocks.3`."""
    return block.rsplit(".", 1)[0]


def probe_points(model: nn.Module) -> dict[str, nn.Module]:
    """Where features are read: the stem's output and every block's output; for a plain CNN
    with `cam_layers` (V4), its stages."""
    blocks = network_blocks(model)
    if not blocks:
        if hasattr(model, "cam_layers"):
            return dict(model.cam_layers)
        raise ValueError(f"{type(model).__name__} has neither blocks (layerK.i, blocks.K.i) nor cam_layers")
    names = dict(model.named_modules())
    stem = next(name for name in names if name.endswith("maxpool") or name.endswith("bn1"))
    return {"stem": names[stem]} | blocks


def stage_outputs(model: nn.Module) -> dict[str, nn.Module]:
    """The last block of each stage (`layerK`, `blocks.K`; `cam_layers` for V4): Grad-CAM targets."""
    blocks = network_blocks(model)
    if not blocks:
        return dict(model.cam_layers)
    return {stage_of(name): module for name, module in blocks.items()}  # later blocks of a stage overwrite earlier ones


@torch.no_grad()
def stage_map_sizes(models: dict[str, nn.Module], images: np.ndarray) -> pd.DataFrame:
    """The spatial size of each stage's output map for 32-px inputs: where a map shrinks to 1x1,
    a probe, an ablation or a CAM there says little about the network."""
    from ..loaders import to_tensor

    rows = []
    for name, model in models.items():
        sizes: dict[str, tuple] = {}
        handles = [module.register_forward_hook(lambda _m, _i, out, stage=stage: sizes.__setitem__(stage, out.shape[-2:]))
                   for stage, module in stage_outputs(model).items()]
        try:
            model.eval()(to_tensor(images))
        finally:
            for handle in handles:
                handle.remove()
        rows += [{"model": name, "stage": stage, "map": f"{h}x{w}"} for stage, (h, w) in sizes.items()]
    return pd.DataFrame(rows)


@contextmanager
def capture(points: dict[str, nn.Module]):
    """Globally average-pooled outputs of `points`, refreshed by every forward pass."""
    store: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(lambda _m, _i, out, name=name: store.__setitem__(name, out.mean((2, 3))))
               for name, module in points.items()]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def layer_features(model: nn.Module, image_set: ImageSet, points: dict[str, nn.Module] | None = None,
                   batch_size: int = 256) -> dict[str, np.ndarray]:
    """Pooled features at every probe point, one (N, C) array per point, in forward order."""
    model.eval()
    with capture(points or probe_points(model)) as store:
        return features(lambda batch: (model(batch), dict(store))[1], image_set, batch_size)


def probe_curve(train: dict[str, np.ndarray], train_labels, test: dict[str, np.ndarray], test_labels,
                n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """A linear probe per layer: test accuracy and AUROC with 95% intervals, in forward order."""
    rows = []
    for depth, layer in enumerate(train):
        scores, _ = linear_probe(train[layer], train_labels, test[layer])
        rows.append({"depth": depth, "layer": layer, "dims": train[layer].shape[1],
                     **evaluate(test_labels, scores, 0.5, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


@contextmanager
def skip_branch(block: nn.Module):
    """Within the context, `block` outputs its shortcut alone: act(shortcut(x)) for a ResNet
    block, x for an EfficientNet block (whose sum has no activation after it)."""
    if hasattr(block, "has_skip"):
        if not block.has_skip:
            raise ValueError(f"{type(block).__name__} has no shortcut: its branch cannot be removed")
        replace = lambda _m, inputs, _out: inputs[0]  # noqa: E731 - the hook is the whole rule
    else:
        shortcut = getattr(block, "shortcut", None) or getattr(block, "downsample", None) or nn.Identity()
        act = getattr(block, "act3", None) or getattr(block, "act2", None) or torch.relu
        replace = lambda _m, inputs, _out: act(shortcut(inputs[0]))  # noqa: E731
    handle = block.register_forward_hook(replace)
    try:
        yield block
    finally:
        handle.remove()


def ablation_table(model: nn.Module, image_set: ImageSet) -> pd.DataFrame:
    """Accuracy and AUROC with each residual branch removed in turn, and the drop from intact."""
    def score() -> dict:
        scores, _ = predict(model, image_set)
        return evaluate(image_set.labels, scores, 0.5, n_boot=0)

    intact = score()
    rows = []
    for depth, (name, block) in enumerate(residual_blocks(model).items(), start=1):
        with skip_branch(block):
            ablated = score()
        rows.append({"depth": depth, "block": name, "acc": ablated["acc"],
                     "auroc": ablated["auroc"], "acc_drop": intact["acc"] - ablated["acc"],
                     "auroc_drop": intact["auroc"] - ablated["auroc"]})
    return pd.DataFrame(rows).assign(intact_acc=intact["acc"], intact_auroc=intact["auroc"])


PROTOCOLS = {  # how the probe's training images relate to its perturbed test images
    "perturbed alike": "probe fitted and scored on images damaged the same way: how much information survives",
    "fitted clean": "probe fitted on clean training images, scored on damaged test images: robustness",
}


def probe_scenarios(models: dict[str, nn.Module], train: ImageSet, test: ImageSet, scenarios: list[str],
                    n_boot: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probe curves for every model under every perturbation scenario, in both `PROTOCOLS`
    (the column `protocol`; for "clean" they coincide and only "perturbed alike" is kept).
    Also returns the feature-extraction cost per image for each model."""
    curves, costs, clean_train = [], [], {}
    for scenario in scenarios:
        perturbed = [dataclasses.replace(s, images=perturb(s.images, scenario, seed), name=f"{s.name} · {scenario}")
                     for s in (train, test)]
        for name, model in models.items():
            start = time.perf_counter()
            train_x, test_x = (layer_features(model, s) for s in perturbed)
            costs.append({"model": name, "scenario": scenario,
                          "ms_per_image": 1000 * (time.perf_counter() - start) / (len(train) + len(test))})
            if scenario == "clean":
                clean_train[name] = train_x
            fits = {"perturbed alike": train_x} | ({"fitted clean": clean_train[name]}
                                                   if scenario != "clean" and name in clean_train else {})
            for protocol, fit_x in fits.items():
                curve = probe_curve(fit_x, train.labels, test_x, test.labels, n_boot, seed)
                curves.append(curve.assign(model=name, scenario=scenario, protocol=protocol,
                                           relative_depth=curve["depth"] / curve["depth"].max()))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(costs)


def _moved(curve: pd.DataFrame, clean_layer: str | None, best, tolerance: float) -> str:
    """'moved' only when the clean-earliest layer's interval under the perturbation lies wholly
    below the perturbed best minus `tolerance`; otherwise the difference is within noise."""
    if clean_layer is None or clean_layer not in set(curve["layer"]):
        return "no clean curve to compare"
    at_clean = curve[curve["layer"] == clean_layer].iloc[0]
    if pd.notna(at_clean.auroc_ci_high) and at_clean.auroc_ci_high < best.auroc - tolerance:
        return f"moved (at {clean_layer}: {at_clean.auroc:.3f} [{at_clean.auroc_ci_low:.3f}, {at_clean.auroc_ci_high:.3f}])"
    return f"same within intervals (at {clean_layer}: {at_clean.auroc:.3f})"


def _robustness(curves: pd.DataFrame, model: str, scenario: str, layer: str) -> str:
    """The same layer's AUROC when the probe was fitted on clean images (train clean, test damaged)."""
    if "protocol" not in curves:
        return ""
    row = curves[(curves["model"] == model) & (curves["scenario"] == scenario) & (curves["protocol"] == "fitted clean")
                 & (curves["layer"] == layer)]
    return f"; fitted on clean images instead: {row.auroc.iloc[0]:.3f}" if len(row) else ""


def deciding_layers(curves: pd.DataFrame, ablation: pd.DataFrame | None = None, ablated_model: str | None = None,
                    tolerance: float = 0.01) -> str:
    """The answer in words, from the numbers: per model, the best probe layer and the earliest
    layer within `tolerance` AUROC of it (clean images), how that earliest layer moves under
    each perturbation, the block whose removal hurts most, and whether the measures agree."""
    lines = []
    earliest_clean = {}
    alike = curves[curves["protocol"] == "perturbed alike"] if "protocol" in curves else curves
    for model, part in alike.groupby("model", sort=False):
        for scenario, curve in part.groupby("scenario", sort=False):
            best = curve.loc[curve["auroc"].idxmax()]
            earliest = curve[curve["auroc"] >= best.auroc - tolerance].iloc[0]
            if scenario == "clean":
                earliest_clean[model] = earliest.layer
                lines.append(f"{model}: best probe layer {best.layer} (AUROC {best.auroc:.3f}); separability is within "
                             f"{tolerance} of that from {earliest.layer} on (AUROC {earliest.auroc:.3f}).")
                continue
            lines.append(f"  under {scenario}: best {best.layer} (AUROC {best.auroc:.3f}), within {tolerance} from "
                         f"{earliest.layer} — {_moved(curve, earliest_clean.get(model), best, tolerance)}"
                         + _robustness(curves, model, scenario, best.layer))
    if ablation is not None and len(ablation):
        worst = ablation.loc[ablation["auroc_drop"].idxmax()]
        lines.append(f"Ablation of the trained detector: removing {worst.block} costs the most "
                     f"(AUROC -{worst.auroc_drop:.3f}, accuracy -{worst.acc_drop:.1%}); "
                     f"{int((ablation['auroc_drop'] > tolerance).sum())} of {len(ablation)} blocks cost more than {tolerance} AUROC.")
        if worst.auroc_drop <= tolerance:
            lines.append("No single residual branch matters by itself: the decision is spread over redundant blocks, "
                         "so ablation names no deciding stage to compare with the probes.")
        elif ablated_model in earliest_clean:
            probe_stage = stage_of(earliest_clean[ablated_model])
            agree = stage_of(worst.block) == probe_stage
            lines.append(f"Probe and ablation {'agree' if agree else 'disagree'} on the deciding stage of {ablated_model}: "
                         f"{probe_stage} (probe) vs {stage_of(worst.block)} (ablation).")
    return "\n".join(lines)
