"""`dfd score`: score any images — files, folders, zips — with any saved detector.

    python -m dfd_utils score photos/ more.zip one.png --detector v4,aeroblade-native --out scores.csv

A folder or zip whose images sit in `REAL/` and `FAKE/` folders (or `<split>/REAL|FAKE`) is
*labelled*: the summary then gives each detector's metrics with 95% intervals. Anything else is
scored without labels. Everything that can fail is checked before any scoring: a missing
path, an empty folder, an unknown or unsaved detector. Files that cannot be decoded (corrupt,
truncated, not an image) are skipped and listed — in the summary and in `<out>.skipped.csv` —
never a crash halfway. Images that are not 8-bit RGB are converted by `CONVERSION_RULE`.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from .data import CLASSES, IMAGE_SUFFIXES
from .detectors import Detector, available, duplicates, load
from .metrics import evaluate
from .runtime import interactive

__all__ = ["ScoreError", "Inputs", "CONVERSION_RULE", "to_rgb", "collect", "score", "summary"]

CONVERSION_RULE = ("EXIF orientation applied; 16-bit images scaled to 8 bits (÷257); greyscale replicated to RGB; "
                   "palette expanded; transparency composited onto white; CMYK and other modes converted by Pillow")
CHUNK = 512  # images scored per step (and per progress-bar tick)


class ScoreError(ValueError):
    """Input `dfd score` cannot use; the message names the path and what to do."""


@dataclass
class Inputs:
    """Decoded images (native size, uint8 RGB), their paths, labels where known, and what was skipped."""

    images: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and all(label is not None for label in self.labels)

    def label_array(self) -> np.ndarray | None:
        return np.array(self.labels, dtype=int) if self.labelled else None


def to_rgb(image: Image.Image) -> np.ndarray:
    """One decoded image as (H, W, 3) uint8 by `CONVERSION_RULE`."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scale = 257.0 if image.mode != "I" or np.asarray(image).max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) / scale, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _decode(data: bytes, name: str) -> tuple[np.ndarray | None, str | None]:
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image file (unknown suffix)"
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return to_rgb(image), None
    except Exception as error:  # noqa: BLE001 - PIL raises many types for broken files
        return None, f"corrupt or truncated image ({type(error).__name__}: {error})"


def _label_of(member: str) -> int | None:
    parts = member.split("/")
    return CLASSES.index(parts[-2].upper()) if len(parts) >= 2 and parts[-2].upper() in CLASSES else None


def _hidden(member: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in member.split("/"))


def _member_names(path: Path) -> list[str]:
    """The files of a folder or zip as paths inside it (sorted, hidden clutter left out), or a lone file's name."""
    if path.is_dir():
        names = (p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
    else:
        return [path.name]
    return sorted(name for name in names if not _hidden(name))


def _read(path: Path, names: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """(display path, path inside, bytes) for each of `names`, read one at a time (a zip opened once)."""
    if path.is_dir():
        yield from ((str(path / name), name, (path / name).read_bytes()) for name in names)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield from ((f"{path}!{name}", name, archive.read(name)) for name in names)
    else:
        yield str(path), path.name, path.read_bytes()


def _check_paths(paths: list[str | Path]) -> list[Path]:
    """Every PATH exists and holds something, checked before any work."""
    if not paths:
        raise ScoreError("no PATH given: name image files, folders or zips to score")
    checked = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise ScoreError(f"{path} does not exist: give an image file, a folder or a zip")
        if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
            raise ScoreError(f"{path} is an empty folder: put images in it (REAL/ and FAKE/ subfolders make it labelled)")
        if path.is_file() and path.suffix.lower() == ".zip" and not zipfile.is_zipfile(path):
            raise ScoreError(f"{path} ends in .zip but is not a zip archive")
        checked.append(path)
    return checked


def collect(paths: list[str | Path], progress: bool | None = None) -> Inputs:
    """Decode every image under `paths`. A folder or zip is labelled when all its images sit in
    REAL/ or FAKE/ folders (at any depth, e.g. test/REAL); unusable files are skipped and listed."""
    inputs = Inputs()
    show = interactive() if progress is None else progress
    for path in _check_paths(paths):
        names = _member_names(path)
        labelled = {_label_of(n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES} == {0, 1}
        for shown, member, data in tqdm(_read(path, names), total=len(names), desc=f"decoding {path.name}", unit="img",
                                        disable=not show):
            array, reason = _decode(data, member)
            if array is None:
                inputs.skipped.append((shown, reason))
                continue
            inputs.images.append(array)
            inputs.paths.append(shown)
            inputs.labels.append(_label_of(member) if labelled else None)
    if not inputs.images:
        raise ScoreError(f"no image could be decoded under {', '.join(map(str, paths))} "
                         f"({len(inputs.skipped)} file(s) skipped; see the list above)")
    return inputs


def _resolve(names: list[str] | str, profile: str) -> list[Detector]:
    """Load every asked-for detector before any scoring ("all": every one saved for `profile`)."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if wanted == ["all"]:
        repeats = duplicates(profile)
        wanted = [name for name in available(profile) if name not in repeats]  # a detector saved twice is scored once
        if not wanted:
            raise ScoreError(f"no detector is saved for profile {profile!r}: run the method notebooks first "
                             f"(python -m dfd_utils run --profile {profile})")
    return [load(name, profile) for name in wanted]


def score(inputs: Inputs, detectors: list[Detector], progress: bool | None = None) -> pd.DataFrame:
    """One row per image and detector: path, detector, score, decision at the detector's
    calibrated threshold (and the rule that chose it), its input policy, and the label if known."""
    show = interactive() if progress is None else progress
    frames = []
    for detector in detectors:
        scores = np.concatenate([detector.score_images(inputs.images[begin:begin + CHUNK])
                                 for begin in tqdm(range(0, len(inputs.images), CHUNK), desc=f"scoring {detector.name}",
                                                   disable=not show)])
        frames.append(pd.DataFrame({
            "path": inputs.paths, "detector": detector.name, "score": scores,
            "decision": np.where(scores >= detector.threshold.value, "FAKE", "REAL"),
            "threshold": detector.threshold.value, "threshold_rule": detector.threshold.rule,
            "input_policy": detector.policy.rule,
            "label": [CLASSES[label] if label is not None else "" for label in inputs.labels]}))
    return pd.concat(frames, ignore_index=True)


def summary(rows: pd.DataFrame, inputs: Inputs, n_boot: int = 1000) -> pd.DataFrame:
    """Per detector: images, share called FAKE, and — for labelled inputs with both classes —
    accuracy, AUROC and TPR at 5% FPR with 95% intervals."""
    labels = inputs.label_array()
    both = labels is not None and len(np.unique(labels)) == 2
    records = []
    for name, part in rows.groupby("detector", sort=False):
        record = {"detector": name, "images": len(part), "called_fake": float((part.decision == "FAKE").mean())}
        if both:
            metrics = evaluate(labels, part.score.to_numpy(), float(part.threshold.iloc[0]), n_boot=n_boot)
            record |= {key: metrics[key] for key in ("n_real", "n_fake", "acc", "acc_ci_low", "acc_ci_high", "auroc",
                                                     "auroc_ci_low", "auroc_ci_high", "tpr_at_fpr_5pct")}
        records.append(record)
    return pd.DataFrame(records)


def run(paths: list[str | Path], detectors: list[str] | str = "all", profile: str = "default",
        out: str | Path = "scores.csv", n_boot: int = 1000, progress: bool | None = None) -> pd.DataFrame:
    """The whole command: check, decode, score, write `out` (and `<out>.skipped.csv`), print the summary."""
    loaded = _resolve(detectors, profile)  # unknown names fail here; `collect` checks every path before decoding
    inputs = collect(paths, progress)
    rows = score(inputs, loaded, progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False)
    skipped_file = out.with_name(f"{out.stem}.skipped.csv")
    pd.DataFrame(inputs.skipped, columns=["path", "reason"]).to_csv(skipped_file, index=False)
    table = summary(rows, inputs, n_boot)
    kind = "labelled" if inputs.labelled else "unlabelled"
    print(f"scored {len(inputs.images):,} {kind} image(s) with {len(loaded)} detector(s) → {out}")
    print(f"conversion: {CONVERSION_RULE}")
    for detector in loaded:
        print(f"  {detector.name}: {detector.method} · {detector.variant}; input: {detector.policy.rule}; "
              f"decides FAKE at score ≥ {detector.threshold.value:.4g} ({detector.threshold.rule})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if inputs.skipped:
        shown = "\n  ".join(f"{path}: {reason}" for path, reason in inputs.skipped[:10])
        more = f"\n  … and {len(inputs.skipped) - 10} more" if len(inputs.skipped) > 10 else ""
        print(f"skipped {len(inputs.skipped)} file(s) (listed in {skipped_file}):\n  {shown}{more}")
    return table
