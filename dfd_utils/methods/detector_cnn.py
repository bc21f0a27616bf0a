"""V4: a stronger small CNN (`models.DetectorCNN`), and the races that chose its shape and recipe.

The races train on CIFAKE *training* images only and score on held-out training images, so
notebook 04's choices never touch the test split. `python -m dfd_utils race v4-designs|v4-recipes`
reruns them and saves their tables with the records (`results/<profile>/races/`), where
notebook 04 shows them.
"""
from __future__ import annotations

import pandas as pd

from ..data import load_cifake
from ..inference import predict
from ..models import create_model
from ..runtime import seed_everything
from ..training import evaluate_loss, fit, training_speed

__all__ = ["METHOD", "V4_OPTIONS", "V4_RECIPES", "V4_RECIPE", "V4_DESIGNS", "V4_SHAPE", "race_designs", "race_recipes",
           "race_verdict"]

METHOD = "V4 CNN"
V4_OPTIONS = {"batch_size": 128, "lr": 0.004, "weight_decay": 0.05}  # notebook 04's BATCH_SIZE, LR, WEIGHT_DECAY

V4_RECIPES = {  # training recipes raced for V4 (its default shape): name → what each adds to V4_OPTIONS
    "flip": {"augment": "flip"},
    "flip + 2-px shifts": {"augment": "flip_shift"},  # the winner on the AVX2 CPU, notebook 04's default
    "flip + label smoothing 0.1": {"augment": "flip", "label_smoothing": 0.1},
    "flip + weight decay 0.1": {"augment": "flip", "weight_decay": 0.1},
}

V4_DESIGNS = {  # the shapes raced for V4: name → create_model("detector_cnn", **config)
    "w32 d2 s3": {"width": 32, "depth": 2, "stages": 3},
    "w16 d2 s3": {"width": 16, "depth": 2, "stages": 3},
    "w16 d2 s4": {"width": 16, "depth": 2, "stages": 4},
    "w24 d2 s4": {"width": 24, "depth": 2, "stages": 4},
}
V4_RECIPE = "flip + 2-px shifts"  # notebook 04's AUGMENT (a test checks)
V4_SHAPE = V4_DESIGNS["w16 d2 s4"]  # the race's winner: notebook 04's WIDTH, DEPTH, STAGES (a test checks)


def race_designs(seconds: float = 200, designs: dict[str, dict] | None = None, val_per_class: int = 2000,
                     batch_size: int = 128, source: str | None = None) -> pd.DataFrame:
    """An equal-time race: each design trains for about `seconds` on this machine (one one-cycle
    epoch over as many CIFAKE training images as its measured speed allows, at most the whole
    training split, V4's optimiser settings), then is scored on the same held-out training
    images. Faster designs see more images; the race shows which shape learns most per second
    of CPU, the budget V4 lives on. Each line prints the images and seconds actually used."""
    fit_set, val_set = _race_sets(source, val_per_class)
    options = {**V4_OPTIONS, "batch_size": batch_size, "augment": "flip"}  # flips: the recipe when the shape was raced
    rows = []
    for name, config in (designs or V4_DESIGNS).items():
        seed_everything(0)
        model = create_model("detector_cnn", **config)
        subset = fit_set.per_class(max(1, int(training_speed(model, fit_set, **options) * seconds) // 2), seed=0)
        history = fit(model, subset, epochs=1, progress=False, **options)
        _, val_acc = evaluate_loss(model, val_set)
        rows.append({"design": name, "params": sum(p.numel() for p in model.parameters()), "images": len(subset),
                     "train_seconds": history.train_seconds, "images_per_s": history.images_per_s,
                     "val_images": len(val_set), "val_acc": val_acc})
        print(f"  {name:10s} {rows[-1]['params']:8,d} params  {history.images_per_s:6,.0f} images/s  "
              f"{len(subset):7,d} images in {history.train_seconds:4.0f} s  →  val acc {val_acc:.2%} "
              f"({len(val_set):,} held-out training images)", flush=True)
    return pd.DataFrame(rows)


def _race_sets(source: str | None, val_per_class: int):
    """The races' split of CIFAKE train: `val_per_class` held-out images per class to score, the rest to train on."""
    full = load_cifake("train", source, progress=False)
    fit_set, val_set = full.split(2 * val_per_class / len(full), seed=0)
    return fit_set, val_set.per_class(val_per_class, seed=0)


def race_recipes(per_class: int = 15000, epochs: int = 11, recipes: dict[str, dict] | None = None,
                     val_per_class: int = 5000, source: str | None = None) -> pd.DataFrame:
    """An equal-schedule race of training recipes for V4's default shape: each trains `epochs`
    one-cycle epochs on the same `per_class` images per class, then is scored (with the test-time
    flip notebook 04 uses) on the same held-out training images.

    The default is a rehearsal of notebook 04's schedule on fewer images: as many epochs as its
    30-minute budget allows on a 2-core CPU, in about a quarter of the time, where regularisers
    show whether they pay for themselves. It needs no test image, so recipes are chosen on
    validation data only."""
    fit_set, val_set = _race_sets(source, val_per_class)
    subset = fit_set.per_class(per_class, seed=0)
    rows = []
    for name, changes in (recipes or V4_RECIPES).items():
        seed_everything(0)
        model = create_model("detector_cnn", **V4_SHAPE)
        history = fit(model, subset, epochs=epochs, progress=False, **{**V4_OPTIONS, **changes})
        scores, _ = predict(model, val_set, flip_average=True)
        val_acc = float(((scores >= 0.5) == val_set.labels).mean())
        rows.append({"recipe": name, "images": len(subset), "epochs": epochs, "train_seconds": history.train_seconds,
                     "final_train_acc": history.rows[-1]["train_acc"], "val_images": len(val_set), "val_acc": val_acc})
        print(f"  {name:28s} {epochs} epochs on {len(subset):,} images in {history.train_seconds / 60:4.1f} min  "
              f"train acc {rows[-1]['final_train_acc']:.2%}  →  val acc {val_acc:.2%} "
              f"({len(val_set):,} held-out training images, flip-averaged)", flush=True)
    return pd.DataFrame(rows)


def race_verdict(table: pd.DataFrame, entry: str, chosen: str) -> str:
    """In words: which entry (`entry`: the table's name column) won a race, and whether its lead
    over notebook 04's `chosen` one is beyond noise — a 95% normal interval of the difference of
    two accuracies on the same held-out images, computed as if they were independent (wider than
    a paired one, so "beyond noise" is conservative)."""
    best = table.loc[table.val_acc.idxmax()]
    if chosen not in set(table[entry]):
        return f"{best[entry]!r} wins ({best.val_acc:.2%}); this run's {chosen!r} was not in the race"
    own = table.set_index(entry).loc[chosen]
    if best[entry] == chosen:
        return f"{chosen!r}, notebook 04's choice, wins ({own.val_acc:.2%} on {int(own.val_images):,} held-out training images)"
    lead = best.val_acc - own.val_acc
    half = 1.96 * ((best.val_acc * (1 - best.val_acc) + own.val_acc * (1 - own.val_acc)) / own.val_images) ** 0.5
    noise = "beyond noise" if lead > half else "within noise"
    return (f"{best[entry]!r} wins ({best.val_acc:.2%}), {lead:+.2%} over notebook 04's {chosen!r} "
            f"(± {half:.2%} at 95%): {noise}")
