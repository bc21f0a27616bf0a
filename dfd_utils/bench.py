"""Benchmarks that print the speed and memory figures the issues set as targets."""
from __future__ import annotations

import os
import resource
import tempfile
import time

__all__ = ["bench_data", "bench_dire", "bench_training", "bench_v4_designs", "bench_v4_recipes", "V4_DESIGNS",
           "V4_RECIPES"]


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bench_data(source: str | None = None, workers: int | None = None) -> dict:
    """Time a first (uncached) and a cached load of all of CIFAKE, and the memory beyond the arrays.

    Uses a temporary cache folder, so it measures a true first load without touching data/cache.
    """
    from . import data

    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("DFD_CACHE")
        os.environ["DFD_CACHE"] = cache
        try:
            before = _peak_rss_bytes()
            start = time.perf_counter()
            sets = [data.load_cifake(split, source, workers=workers, progress=False) for split in ("train", "test")]
            first = time.perf_counter() - start
            array_bytes = sum(s.images.nbytes for s in sets)
            overhead = max(0, _peak_rss_bytes() - before - array_bytes)
            n_images = sum(len(s) for s in sets)
            del sets
            start = time.perf_counter()
            sets = [data.load_cifake(split, source, progress=False) for split in ("train", "test")]
            cached = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("DFD_CACHE")
            else:
                os.environ["DFD_CACHE"] = previous
    result = {"images": n_images, "first_load_s": first, "cached_load_s": cached,
              "array_mb": array_bytes / 2**20, "peak_memory_beyond_arrays_mb": overhead / 2**20,
              "cpu_count": os.cpu_count()}
    print(f"CIFAKE: {n_images:,} images ({result['array_mb']:.0f} MB of arrays) on {os.cpu_count()} CPU(s)\n"
          f"  first load (decode, parallel): {first:6.1f} s   target ≤ 30 s\n"
          f"  cached load:                   {cached:6.1f} s   target ≤ 3 s\n"
          f"  peak memory beyond the arrays: {result['peak_memory_beyond_arrays_mb']:6.0f} MB  target ≤ 1024 MB")
    return result


def bench_dire(steps: int = 20, images: int = 64, batch_size: int = 64) -> dict:
    """Seconds per image for DDIM inversion + reconstruction (`steps` + `steps` UNet passes)
    with the diffusion model `dire.load_diffusion` finds, on CIFAKE test images."""
    from . import data, dire
    from .runtime import device

    diffusion = dire.load_diffusion()
    sample = data.load_cifake("test", progress=False).per_class(images // 2).images
    dire.dire(diffusion, sample[:2], steps=2)  # warm-up: kernel selection, allocations
    _, _, seconds = dire.dire(diffusion, sample, steps=steps, batch_size=batch_size)
    result = {"model": diffusion.source, "params": sum(p.numel() for p in diffusion.unet.parameters()),
              "steps": steps, "images": len(sample), "seconds_per_image": seconds, "device": str(device())}
    print(f"DIRE with {result['model']} ({result['params'] / 1e6:.2f}M parameters) on {result['device']}:\n"
          f"  {steps}+{steps} DDIM steps: {seconds:.3f} s per image over {len(sample)} images   target ≤ 0.3 s (CPU)")
    return result


V4_OPTIONS = {"batch_size": 128, "lr": 0.004, "weight_decay": 0.05}  # notebook 04's optimiser settings

V4_RECIPES = {  # training recipes raced for V4 (its default shape): name → what each adds to V4_OPTIONS
    "flip": {"augment": "flip"},
    "flip + 2-px shifts": {"augment": "flip_shift"},  # the winner, notebook 04's default
    "flip + label smoothing 0.1": {"augment": "flip", "label_smoothing": 0.1},
    "flip + weight decay 0.1": {"augment": "flip", "weight_decay": 0.1},
}

V4_DESIGNS = {  # the shapes raced for V4: name → create_model("detector_cnn", **config)
    "w32 d2 s3": {"width": 32, "depth": 2, "stages": 3},
    "w16 d2 s3": {"width": 16, "depth": 2, "stages": 3},
    "w16 d2 s4": {"width": 16, "depth": 2, "stages": 4},
    "w24 d2 s4": {"width": 24, "depth": 2, "stages": 4},
}
V4_SHAPE = V4_DESIGNS["w16 d2 s4"]  # the race's winner: notebook 04's WIDTH, DEPTH, STAGES


def bench_training(images: int = 8000, batch_size: int = 128) -> dict:
    """Training images/s of V3 (the CIFAKE paper's CNN, 2 blocks of 32 filters) and V4 (the
    default DetectorCNN) in fp32 and in bf16 mixed precision, one epoch on CIFAKE train each."""
    from . import data, models, train
    from .runtime import device, precision

    sample = data.load_cifake("train", progress=False).per_class(images // 2)
    builds = {"V3 cifake_cnn": ("cifake_cnn", {}), "V4 detector_cnn w16 d2 s4": ("detector_cnn", V4_SHAPE)}
    precisions = ["fp32"] + (["bf16"] if precision("auto", device()) == "bf16" else [])
    rows = []
    for label, (name, config) in builds.items():
        for used in precisions:
            model = models.create_model(name, **config)
            history = train.fit(model, sample, epochs=1, batch_size=batch_size, lr=1e-3, augment="flip",
                                precision=used, progress=False)
            rows.append({"model": label, "precision": used, "images_per_s": history.images_per_s})
    print(f"training throughput on {device()} ({len(sample):,} images, batch {batch_size}; "
          f"bf16 {'native' if 'bf16' in precisions else 'not native here: skipped'}):")
    for row in rows:
        print(f"  {row['model']:24s} {row['precision']}: {row['images_per_s']:7,.0f} images/s")
    print("  target: V3 ≥ 4,000 images/s on the 2-core CPU")
    return {"device": str(device()), "rows": rows}


def bench_v4_designs(seconds: float = 200, designs: dict[str, dict] | None = None, val_per_class: int = 2000,
                     batch_size: int = 128, source: str | None = None) -> list[dict]:
    """An equal-time race: each design trains for about `seconds` on this machine (one one-cycle
    epoch over as many CIFAKE training images as its measured speed allows, at most the whole
    training split, V4's optimiser settings), then is scored on the same held-out training
    images. Faster designs see more images; the race shows which shape learns most per second
    of CPU, the budget V4 lives on. Each line prints the images and seconds actually used."""
    from . import models, train
    from .runtime import seed_everything

    fit_set, val_set = _race_sets(source, val_per_class)
    options = {**V4_OPTIONS, "batch_size": batch_size, "augment": "flip"}  # flips: the recipe when the shape was raced
    rows = []
    for name, config in (designs or V4_DESIGNS).items():
        seed_everything(0)
        model = models.create_model("detector_cnn", **config)
        subset = fit_set.per_class(max(1, int(train.training_speed(model, fit_set, **options) * seconds) // 2), seed=0)
        history = train.fit(model, subset, epochs=1, progress=False, **options)
        _, val_acc = train.evaluate_loss(model, val_set)
        rows.append({"design": name, "params": sum(p.numel() for p in model.parameters()), "images": len(subset),
                     "train_seconds": history.train_seconds, "images_per_s": history.images_per_s, "val_acc": val_acc})
        print(f"  {name:10s} {rows[-1]['params']:8,d} params  {history.images_per_s:6,.0f} images/s  "
              f"{len(subset):7,d} images in {history.train_seconds:4.0f} s  →  val acc {val_acc:.2%} "
              f"({len(val_set):,} held-out training images)", flush=True)
    return rows


def _race_sets(source: str | None, val_per_class: int):
    """The races' split of CIFAKE train: `val_per_class` held-out images per class to score, the rest to train on."""
    from . import data

    full = data.load_cifake("train", source, progress=False)
    fit_set, val_set = full.split(2 * val_per_class / len(full), seed=0)
    return fit_set, val_set.per_class(val_per_class, seed=0)


def bench_v4_recipes(per_class: int = 15000, epochs: int = 11, recipes: dict[str, dict] | None = None,
                     val_per_class: int = 5000, source: str | None = None) -> list[dict]:
    """An equal-schedule race of training recipes for V4's default shape: each trains `epochs`
    one-cycle epochs on the same `per_class` images per class, then is scored (with the test-time
    flip notebook 04 uses) on the same held-out training images.

    The default is a rehearsal of notebook 04's schedule on fewer images: as many epochs as its
    30-minute budget allows on a 2-core CPU, in about a quarter of the time, where regularisers
    show whether they pay for themselves. It needs no test image, so recipes are chosen on
    validation data only."""
    from . import models, train
    from .runtime import seed_everything

    fit_set, val_set = _race_sets(source, val_per_class)
    subset = fit_set.per_class(per_class, seed=0)
    rows = []
    for name, changes in (recipes or V4_RECIPES).items():
        seed_everything(0)
        model = models.create_model("detector_cnn", **V4_SHAPE)
        history = train.fit(model, subset, epochs=epochs, progress=False, **{**V4_OPTIONS, **changes})
        scores, _ = train.predict(model, val_set, progress=False, flip_average=True)
        val_acc = float(((scores >= 0.5) == val_set.labels).mean())
        rows.append({"recipe": name, "images": len(subset), "epochs": epochs, "train_seconds": history.train_seconds,
                     "final_train_acc": history.rows[-1]["train_acc"], "val_acc": val_acc})
        print(f"  {name:28s} {epochs} epochs on {len(subset):,} images in {history.train_seconds / 60:4.1f} min  "
              f"train acc {rows[-1]['final_train_acc']:.2%}  →  val acc {val_acc:.2%} "
              f"({len(val_set):,} held-out training images, flip-averaged)", flush=True)
    return rows
