"""Timing benchmarks: each prints a speed or memory figure, its target, and the CPU it ran on.

Targets live here, not in the reports; model-selection races live with the method they choose
for (`methods.detector_cnn`)."""
from __future__ import annotations

import os
import resource
import tempfile
import time

__all__ = ["bench_data", "bench_dire", "bench_training", "bench_zoo"]


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
            for split in ("train", "test"):
                data.load_cifake(split, source, progress=False)
            cached = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("DFD_CACHE")
            else:
                os.environ["DFD_CACHE"] = previous
    result = {"images": n_images, "first_load_s": first, "cached_load_s": cached,
              "array_mb": array_bytes / 2**20, "peak_memory_beyond_arrays_mb": overhead / 2**20,
              "cpu_count": os.cpu_count()}
    print(f"CIFAKE: {n_images:,} images ({result['array_mb']:.0f} MB of arrays) {_machine()}\n"
          f"  first load (decode, parallel): {first:6.1f} s   target ≤ 30 s\n"
          f"  cached load:                   {cached:6.1f} s   target ≤ 3 s\n"
          f"  peak memory beyond the arrays: {result['peak_memory_beyond_arrays_mb']:6.0f} MB  target ≤ 1024 MB")
    return result


def bench_dire(steps: int = 20, images: int = 64, batch_size: int = 64, model: str = "ddpm_cifake_real") -> dict:
    """Seconds per image for DDIM inversion + reconstruction (`steps` + `steps` UNet passes)
    with a kept diffusion model (or "hub"), on CIFAKE test images."""
    from . import data
    from .methods import dire

    diffusion = dire.load_diffusion(dire.kept_diffusion(model))
    sample = data.load_cifake("test", progress=False).per_class(images // 2).images
    dire.dire(diffusion, sample[:2], steps=2)  # warm-up: kernel selection, allocations
    _, _, seconds = dire.dire(diffusion, sample, steps=steps, batch_size=batch_size)
    result = {"model": diffusion.source, "params": diffusion.params,
              "steps": steps, "images": len(sample), "seconds_per_image": seconds, "device": _machine()}
    print(f"DIRE with {result['model']} ({result['params'] / 1e6:.2f}M parameters) {result['device']}:\n"
          f"  {steps}+{steps} DDIM steps: {seconds:.3f} s per image over {len(sample)} images   target ≤ 0.3 s (CPU)")
    return result


def _machine() -> str:
    """The line every benchmark prints first: times mean nothing without the machine."""
    from .runtime import cpu_in_words, hardware

    machine = hardware()
    return f"on {machine['device']} · CPU {cpu_in_words(machine)}"


def bench_training(images: int = 8000, batch_size: int = 128) -> dict:
    """Warm training images/s (`training.training_speed`: the first epoch's warm-up is not
    counted) of V3 (the CIFAKE paper's CNN, 2 blocks of 32 filters), V4 (its default shape) and
    V2's EfficientNet-Lite0 at 64 px (on a quarter of the images: it is about 20x slower) in fp32
    and, where the hardware runs it natively, bf16 mixed precision — the figures that show why
    `precision="fastest"` times each model rather than trusting the hardware."""
    from . import data, models
    from .methods.detector_cnn import V4_SHAPE
    from .runtime import device, precision_candidates
    from .training import training_speed

    train = data.load_cifake("train", progress=False)
    builds = {"V3 cifake_cnn": ("cifake_cnn", {}, images),
              "V4 detector_cnn w16 d2 s4": ("detector_cnn", V4_SHAPE, images),
              "V2 Lite0 at 64 px": ("zoo_detector", {"backbone": "tf_efficientnet_lite0", "input_size": 64}, images // 4)}
    precisions = precision_candidates("fastest", device())  # fp32, and bf16 where native
    rows = []
    for label, (name, config, probe_images) in builds.items():
        for used in precisions:
            speed = training_speed(models.create_model(name, **config), train, probe_images, batch_size=batch_size,
                                   lr=1e-3, augment="flip", precision=used)
            rows.append({"model": label, "precision": used, "images": probe_images, "images_per_s": speed})
    print(f"training throughput {_machine()}\n(batch {batch_size}; "
          f"bf16 {'native' if 'bf16' in precisions else 'not native here: skipped'}):")
    for row in rows:
        print(f"  {row['model']:26s} {row['precision']}: {row['images_per_s']:7,.0f} images/s ({row['images']:,} images)")
    print("  target: V3 ≥ 4,000 images/s where bf16 is native")
    return {"device": _machine(), "rows": rows}


def bench_zoo(profile: str = "full", probe_images: int = 512, source: str | None = None) -> dict:
    """Warm training images/s (`training.training_speed`) of every backbone × strategy that
    notebook 02 trains under `profile`, at its input size and in its precision, and the minutes
    its epochs take at that speed. 02 fixes epochs, not minutes (one protocol for every
    backbone), so its time scales with the machine: this says how long a run of hours will take
    here before it starts. Training only: scoring the validation and test images comes on top."""
    from . import data
    from .models import NoPretrainedWeights, pretrained_detector
    from .runner import parameters
    from .training import training_speed

    p = parameters("02_cnn_zoo", profile)
    fit_set = data.cifake_splits(source or p["DATA_SOURCE"] or None, train_per_class=p["TRAIN_PER_CLASS"],
                                 val_fraction=p["VAL_FRACTION"], seed=p["SEED"], progress=False).fit  # 02's own
    fit_images = len(fit_set)
    rows = []
    for backbone in p["BACKBONES"]:
        size = p["BACKBONE_INPUT_SIZES"].get(backbone, p["INPUT_SIZE"])
        for strategy in p["STRATEGIES"]:
            try:
                model, _ = pretrained_detector(backbone, size, strategy, p["BACKBONE_LR_SCALE"])
            except NoPretrainedWeights:
                continue  # 02 skips it too
            speed = training_speed(model, fit_set, probe_images, batch_size=p["BATCH_SIZE"], lr=p["LR"],
                                   augment=p["AUGMENT"], precision=p["PRECISION"])
            rows.append({"backbone": backbone, "strategy": strategy, "input_size": size, "images_per_s": speed,
                         "minutes": p["EPOCHS"] * fit_images / speed / 60})
    print(f"notebook 02 under `{profile}`: {p['EPOCHS']} epochs of {fit_images:,} images per model, "
          f"precision {p['PRECISION']} {_machine()}:")
    for row in rows:
        print(f"  {row['backbone']:24s} {row['strategy']:6s} {row['input_size']:4d} px "
              f"{row['images_per_s']:8,.1f} images/s  {row['minutes']:6.1f} min")
    total = sum(row["minutes"] for row in rows)
    print(f"  training in all: {total:.0f} min (scoring the validation and test images comes on top)")
    return {"device": _machine(), "fit_images": fit_images, "rows": rows, "training_minutes": total}


def bench_score(images: int = 4000, native_images: int = 128, profile: str = "default") -> dict:
    """End-to-end images/s of `dfd score` — decode the files, bring them to the input policy,
    score — for V4 on CIFAKE's 32-px JPEG files and for AEROBLADE at 256 px (the cross-domain
    set's files, when present), with the detectors saved for `profile`."""
    import zipfile

    from . import data, scoring, xdomain
    from .detectors import load

    results = {}
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(data.resolve_cifake()) as archive:
        names = [n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg")][:images]
        for name in names:
            target = os.path.join(folder, name.replace("/", "_"))
            with open(target, "wb") as handle:
                handle.write(archive.read(name))
        results["v4 · 32-px CIFAKE JPEGs"] = _time_scoring(scoring, [folder], load("v4", profile))
    found = xdomain.find()
    if found is not None:
        with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(found / "xdomain_dev256.zip") as archive:
            for name in [n for n in archive.namelist() if n.endswith(".jpg")][:native_images]:
                with open(os.path.join(folder, name.replace("/", "_")), "wb") as handle:
                    handle.write(archive.read(name))
            results["aeroblade-native · 256-px JPEGs"] = _time_scoring(scoring, [folder], load("aeroblade-native", profile))
    print(f"dfd score, end to end (decode + resize + score) {_machine()}:")
    for what, (n, speed) in results.items():
        print(f"  {what:34s} {n:6,d} images  {speed:8,.0f} images/s")
    print("  target: v4 ≥ 2,000 images/s on a 2-core CPU")
    return {"device": _machine(), "rows": {k: {"images": n, "images_per_s": s} for k, (n, s) in results.items()}}


def _time_scoring(scoring, paths: list[str], detector) -> tuple[int, float]:
    start = time.perf_counter()
    inputs = scoring.collect(paths, progress=False)
    scoring.score(inputs, [detector], progress=False)
    return len(inputs.images), len(inputs.images) / (time.perf_counter() - start)
