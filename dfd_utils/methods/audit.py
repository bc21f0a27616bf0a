"""Data audit: duplicates and train→test leakage, JPEG settings per class, pixel statistics
and Fourier spectra — the checks that say whether a benchmark can be trusted before any
detector is trained on it."""
from __future__ import annotations

import functools
import hashlib
import io
import itertools
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image, JpegImagePlugin

from ..data import CLASSES, ImageSet, Source, class_members, file_digest, pool_context, read_members
from ..scores import Scores, argmax_threshold

__all__ = ["counts_table", "file_size_detector", "pixel_statistics", "pixel_statistics_detector", "shortcut_scores", "shortcut_verdict", "file_facts", "duplicate_pairs", "duplicate_summary", "jpeg_quality", "jpeg_summary",
           "channel_statistics", "mean_log_spectrum", "radial_profile", "high_frequency_energy"]

SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0", -1: "unknown"}
# IJG's standard luminance quantisation table (quality 50), in zig-zag order like Pillow's.
_IJG_LUMA = np.array([16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22,
                      24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68,
                      87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112,
                      100, 120, 92, 101, 103, 99])


@functools.lru_cache(maxsize=256)
def jpeg_quality(luma_table: tuple) -> int:
    """The IJG quality (1-100) whose scaled standard table is closest to `luma_table`."""
    table = np.asarray(luma_table, dtype=float)
    best, best_error = 0, np.inf
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        candidate = np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)
        error = np.abs(np.sort(candidate) - np.sort(table)).sum()
        if error < best_error:
            best, best_error = quality, error
    return best


def _facts_chunk(path: str, is_zip: bool, names: list[str]) -> list[dict]:
    """Worker: header facts of each file (no pixel decoding)."""
    rows = []
    for name, data in read_members(path, is_zip, names):
        row = {"id": name, "bytes": len(data), "digest": file_digest(data)}
        try:
            image = Image.open(io.BytesIO(data))
            row["format"] = image.format
            if image.format == "JPEG":
                tables = getattr(image, "quantization", {}) or {}
                row["quant_tables"] = hashlib.md5(repr(sorted(tables.items())).encode()).hexdigest()[:8]
                row["quality"] = jpeg_quality(tuple(tables[0])) if 0 in tables else -1
                row["subsampling"] = SUBSAMPLING[JpegImagePlugin.get_sampling(image)]
                row["progressive"] = bool(image.info.get("progressive") or image.info.get("progression"))
        except Exception as error:  # noqa: BLE001 - recorded, the audit reports unreadable files
            row["format"] = f"unreadable: {type(error).__name__}"
        rows.append(row)
    return rows


def file_facts(source, split: str, workers: int | None = None) -> pd.DataFrame:
    """One row per file: split, class, size in bytes, content digest and JPEG settings."""
    src = Source(source)
    by_class = class_members(src.members(), split, src.path)
    names = by_class["REAL"] + by_class["FAKE"]
    chunks = [names[i:i + 4000] for i in range(0, len(names), 4000)]
    workers = workers or min(os.cpu_count() or 1, 8)
    with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
        rows = list(itertools.chain.from_iterable(
            pool.map(_facts_chunk, [str(src.path)] * len(chunks), [src.is_zip] * len(chunks), chunks)))
    facts = pd.DataFrame(rows)
    facts.insert(1, "split", split)
    facts.insert(2, "label", ["REAL"] * len(by_class["REAL"]) + ["FAKE"] * len(by_class["FAKE"]))
    return facts


def _place(image_set: ImageSet) -> np.ndarray:
    split = image_set.name.split("/")[-1].split("-")[0].split("[")[0]
    return np.array([f"{split}/{CLASSES[label]}" for label in image_set.labels])


def duplicate_pairs(*image_sets: ImageSet) -> pd.DataFrame:
    """Every pair of byte-identical files across the given sets, with where each one lives."""
    digests = np.concatenate([s.digests for s in image_sets])
    ids = np.concatenate([s.ids for s in image_sets])
    places = np.concatenate([_place(s) for s in image_sets])
    frame = pd.DataFrame({"digest": digests, "id": ids, "place": places})
    repeated = frame[frame.duplicated("digest", keep=False)]
    rows = []
    for digest, group in repeated.groupby("digest", sort=False):
        for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
            first, second = sorted([(a.place, a.id), (b.place, b.id)])
            rows.append({"digest": digest, "place_a": first[0], "id_a": first[1],
                         "place_b": second[0], "id_b": second[1], "group_size": len(group)})
    return pd.DataFrame(rows, columns=["digest", "place_a", "id_a", "place_b", "id_b", "group_size"])


def duplicate_summary(train: ImageSet, test: ImageSet) -> dict:
    """Pair counts by where the two copies live, unique images per split/class, leaked test files."""
    pairs = duplicate_pairs(train, test)
    by_places = (pairs.groupby(["place_a", "place_b"]).size().rename("pairs").reset_index()
                 if len(pairs) else pd.DataFrame(columns=["place_a", "place_b", "pairs"]))
    unique = {f"{name}/{CLASSES[label]}": int(len(np.unique(s.digests[s.labels == label])))
              for name, s in (("train", train), ("test", test)) for label in (0, 1)}
    leaked = np.isin(test.digests, train.digests)
    return {
        "pairs_total": int(len(pairs)),
        "pairs_by_place": by_places,
        "unique_images": unique,
        "test_files_in_train": {CLASSES[label]: int(leaked[test.labels == label].sum()) for label in (0, 1)},
        "pairs": pairs,
    }


def jpeg_summary(facts: pd.DataFrame) -> pd.DataFrame:
    """Per split and class: formats, distinct quantisation tables, quality, subsampling, sizes."""
    def describe(group: pd.DataFrame) -> pd.Series:
        return pd.Series({
            "files": len(group),
            "formats": ", ".join(sorted(group["format"].astype(str).unique())),
            "distinct_quant_tables": group["quant_tables"].nunique() if "quant_tables" in group else 0,
            "quality": ", ".join(str(q) for q in sorted(group["quality"].dropna().astype(int).unique()))
            if "quality" in group else "",
            "subsampling": ", ".join(sorted(group["subsampling"].dropna().unique())) if "subsampling" in group else "",
            "progressive_share": float(group["progressive"].mean()) if "progressive" in group else 0.0,
            "bytes_mean": group["bytes"].mean(), "bytes_std": group["bytes"].std(),
            "bytes_median": group["bytes"].median(),
        })
    return facts.groupby(["split", "label"], sort=False).apply(describe, include_groups=False).reset_index()


def channel_statistics(image_set: ImageSet) -> pd.DataFrame:
    """Mean and standard deviation of each RGB channel (0-255) per class, plus saturation of
    the pixel range (share of 0 and 255 values) — simple statistics a detector could exploit."""
    rows = []
    for label in (0, 1):
        pixels = image_set.images[image_set.labels == label].reshape(-1, 3).astype(np.float32)
        row = {"label": CLASSES[label], "images": int((image_set.labels == label).sum())}
        for c, channel in enumerate("RGB"):
            row[f"{channel}_mean"] = float(pixels[:, c].mean())
            row[f"{channel}_std"] = float(pixels[:, c].std())
        row["share_0"] = float((pixels == 0).mean())
        row["share_255"] = float((pixels == 255).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def mean_log_spectrum(images: np.ndarray, batch: int = 5000) -> np.ndarray:
    """Mean log-magnitude 2-D Fourier spectrum of the grey-level images (centred, DC in the middle).

    Each image's mean is removed first, so the spectrum shows structure, not brightness.
    """
    total = np.zeros(images.shape[1:3], dtype=np.float64)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for start in range(0, len(images), batch):
        grey = images[start:start + batch].astype(np.float32) @ weights
        grey -= grey.mean(axis=(1, 2), keepdims=True)
        total += np.log1p(np.abs(np.fft.fft2(grey))).sum(0)
    return np.fft.fftshift(total / len(images))


def radial_profile(spectrum: np.ndarray) -> np.ndarray:
    """Average of a centred spectrum over rings of equal frequency (index = radius in bins)."""
    h, w = spectrum.shape
    y, x = np.indices((h, w))
    radius = np.hypot(y - h // 2, x - w // 2).astype(int)
    return np.bincount(radius.ravel(), spectrum.ravel()) / np.bincount(radius.ravel())


def counts_table(*image_sets: ImageSet) -> pd.DataFrame:
    """Images per set and class, with the image shape."""
    return pd.DataFrame([{"set": s.name, "label": CLASSES[label], "images": int((s.labels == label).sum()),
                          "shape": "x".join(map(str, s.images.shape[1:]))}
                         for s in image_sets for label in (0, 1)])


def file_size_detector(train_facts: pd.DataFrame, test_facts: pd.DataFrame) -> np.ndarray:
    """Fake-probability of each test file from its byte size alone (logistic regression fit on
    train). If the file format leaked the label, this detector would score well above chance."""
    from sklearn.linear_model import LogisticRegression

    def features(facts: pd.DataFrame) -> np.ndarray:
        return np.log(facts[["bytes"]].to_numpy(dtype=float))

    model = LogisticRegression().fit(features(train_facts), (train_facts["label"] == "FAKE").to_numpy())
    return model.predict_proba(features(test_facts))[:, 1]


def pixel_statistics(images: np.ndarray, batch: int = 5000) -> np.ndarray:
    """Per image: mean and standard deviation of each channel and the shares of clipped-black
    (0) and clipped-white (255) values — 8 numbers, no spatial structure at all."""
    rows = []
    for start in range(0, len(images), batch):
        pixels = images[start:start + batch].reshape(len(images[start:start + batch]), -1, 3).astype(np.float32)
        rows.append(np.column_stack([pixels.mean(1), pixels.std(1), (pixels == 0).mean((1, 2)),
                                     (pixels == 255).mean((1, 2))]))
    return np.concatenate(rows) if rows else np.zeros((0, 8), np.float32)


def pixel_statistics_detector(train: ImageSet, test: ImageSet) -> np.ndarray:
    """Fake-probability of each test image from `pixel_statistics` alone (standardised logistic
    regression fit on train): how far colour and clipping, a possible shortcut, go by themselves."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(pixel_statistics(train.images), train.labels)
    return model.predict_proba(pixel_statistics(test.images))[:, 1]


def shortcut_scores(name: str, variant: str, ids, labels, probabilities) -> Scores:
    """A trivial baseline's test scores as a `Scores` value (decided at p >= 0.5)."""
    return Scores(name, variant, "test", np.asarray(ids), np.asarray(probabilities, float), argmax_threshold(),
                  np.asarray(labels))


def shortcut_verdict(entry: dict) -> str:
    """What a trivial baseline's AUROC interval says, in words that follow the interval: chance
    only when it contains 0.5; otherwise a signal, called small below AUROC 0.6."""
    low, high, auroc = entry["auroc_ci_low"], entry["auroc_ci_high"], entry["auroc"]
    if low <= 0.5 <= high:
        return "indistinguishable from chance (the interval contains 0.5): no label signal found"
    strength = "a small but real" if abs(auroc - 0.5) < 0.1 else "a strong"
    return f"{strength} label signal (the interval excludes 0.5) — a possible shortcut a detector could exploit"


def high_frequency_energy(images: np.ndarray, batch: int = 5000) -> np.ndarray:
    """Per image, the mean absolute 3x3 Laplacian of the grey levels (0-1 scale): how much fine
    detail an image has. Smooth images score low and are easy to reconstruct."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255
    energy = []
    for start in range(0, len(images), batch):
        grey = images[start:start + batch].astype(np.float32) @ weights
        laplacian = (4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1]
                     - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:])
        energy.append(np.abs(laplacian).mean((1, 2)))
    return np.concatenate(energy) if energy else np.zeros(0, dtype=np.float32)
