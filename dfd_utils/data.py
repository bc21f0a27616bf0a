"""CIFAKE and generic REAL/FAKE image folders or zips, decoded once into uint8 arrays.

A *source* is a folder or a zip holding `<split>/REAL/*` and `<split>/FAKE/*` (CIFAKE's
layout, optionally under one top-level folder) or just `REAL/*` and `FAKE/*`. `load_cifake`
finds CIFAKE by the resolution order of DESIGN.md; `load_folder` reads any such source.
Decoding runs in parallel and is cached in `data/cache/`, keyed by the source's size and
modification time and by the load options, so a second load takes seconds.

Bad input never passes silently: a missing path or class folder, an empty folder, a corrupt
or truncated image, a non-image file, a non-RGB image or one of another size raises
`DataError` naming the files and the option that would accept them. `skip_invalid=True`
drops such files instead, and the returned `ImageSet.skipped` lists them for the run record.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .paths import cache_dir, data_dir, offline_by_setting, shared_dir
from .runtime import interactive

__all__ = [
    "CLASSES",
    "DataError",
    "ImageSet",
    "Source",
    "class_members",
    "read_members",
    "file_digest",
    "pool_context",
    "fit_size",
    "concatenate",
    "resolve_cifake",
    "load_cifake",
    "load_folder",
    "deduplicate",
    "Splits",
    "cifake_splits",
]

CLASSES = ("REAL", "FAKE")  # index = label: 0 REAL, 1 FAKE
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
KAGGLE_HANDLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"
CACHE_VERSION = 1
CHUNK = 2000  # images per decoding task


class DataError(ValueError):
    """A dataset that cannot be read as asked; the message names the files and the fix."""


@dataclass(frozen=True)
class ImageSet:
    """Decoded images with labels (0 REAL, 1 FAKE), stable ids and file-content digests."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    ids: np.ndarray  # (N,) str: path inside the source, e.g. "test/FAKE/12 (3).jpg"
    digests: np.ndarray  # (N,) str: hash of the file's bytes (finds byte-identical files)
    name: str  # what this set is, e.g. "cifake/test" or "cifake/test-dedup"
    source: str  # where it was read from
    skipped: tuple = field(default=())  # (id, reason) of files dropped by skip_invalid

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_real(self) -> int:
        return int((self.labels == 0).sum())

    @property
    def n_fake(self) -> int:
        return int((self.labels == 1).sum())

    def take(self, index: np.ndarray, name: str | None = None) -> "ImageSet":
        """The images at `index` (indices or a boolean mask), as a new set."""
        return ImageSet(
            self.images[index], self.labels[index], self.ids[index], self.digests[index],
            name or self.name, self.source, self.skipped,
        )

    def per_class(self, n_per_class: int | None, seed: int = 0) -> "ImageSet":
        """A deterministic random subset with `n_per_class` images of each class (all if None)."""
        if n_per_class is None or n_per_class <= 0:
            return self
        rng = np.random.default_rng(seed)
        chosen = []
        for label in (0, 1):
            members = np.flatnonzero(self.labels == label)
            if n_per_class < len(members):
                members = np.sort(rng.choice(members, n_per_class, replace=False))
            chosen.append(members)
        return self.take(np.concatenate(chosen), f"{self.name}[{n_per_class}/class,seed={seed}]")

    def split(self, fraction: float, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """A stratified random split into (1 - fraction, fraction), e.g. train/validation."""
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), dtype=bool)
        for label in (0, 1):
            members = np.flatnonzero(self.labels == label)
            held[rng.choice(members, int(round(fraction * len(members))), replace=False)] = True
        return self.take(~held, f"{self.name}-fit"), self.take(held, f"{self.name}-val")

    def describe(self) -> dict:
        """What a run record needs to say which data it used."""
        return {
            "name": self.name, "source": self.source, "n": len(self), "n_real": self.n_real,
            "n_fake": self.n_fake, "image_shape": list(self.images.shape[1:]),
            "n_skipped": len(self.skipped), "skipped": [list(item) for item in self.skipped],
        }


# --------------------------------------------------------------------------- finding data
def _kaggle_download() -> Path:
    import kagglehub  # optional dependency: pip install -e .[online]

    return Path(kagglehub.dataset_download(KAGGLE_HANDLE))


def resolve_cifake(source: str | Path | None = None) -> Path:
    """Find CIFAKE: argument → $DFD_CIFAKE → data/cifake/ → data/cifake.zip →
    ../shared/data/cifake.zip → kagglehub download → a DataError saying how to provide it."""
    if source:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"CIFAKE source {path} does not exist; pass an extracted folder or the zip.")
        return path
    if os.environ.get("DFD_CIFAKE"):
        path = Path(os.environ["DFD_CIFAKE"]).expanduser()
        if not path.exists():
            raise DataError(f"DFD_CIFAKE={path} does not exist; point it at the CIFAKE folder or zip.")
        return path
    candidates = [data_dir() / "cifake", data_dir() / "cifake.zip", shared_dir() / "data" / "cifake.zip"]
    for path in candidates:
        if path.exists():
            return path
    tried = ", ".join(str(p) for p in candidates)
    why = "offline (DFD_OFFLINE or HF_HUB_OFFLINE is set)"
    if not offline_by_setting():  # Kaggle, not the Hugging Face hub: try it whatever the hub probe says
        try:
            return _kaggle_download()
        except Exception as error:  # noqa: BLE001 - any failure is reported with the fix below
            why = f"kagglehub download failed: {type(error).__name__}: {error}"
    raise DataError(
        f"CIFAKE not found. Tried: {tried}; {why}. Provide it by one of: put the extracted "
        "dataset in data/cifake/ (train/REAL, train/FAKE, test/REAL, test/FAKE) or the archive "
        "as data/cifake.zip; set DFD_CIFAKE=/path/to/folder-or-zip; or, online, "
        "pip install kagglehub and log in to Kaggle."
    )


# --------------------------------------------------------------------------- listing a source
class Source:
    """Uniform listing and reading for a folder or a zip."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"{self.path} does not exist; pass a folder or a zip of REAL/ and FAKE/ images.")
        self.is_zip = self.path.is_file()
        if self.is_zip and not zipfile.is_zipfile(self.path):
            raise DataError(f"{self.path} is a file but not a zip archive; pass a folder or a .zip.")

    def members(self) -> list[str]:
        if self.is_zip:
            with zipfile.ZipFile(self.path) as archive:
                return [n for n in archive.namelist() if not n.endswith("/")]
        return [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]

    def fingerprint(self) -> dict:
        """Changes whenever the source's content may have changed (cheap: sizes and mtimes)."""
        if self.is_zip:
            stat = self.path.stat()
            return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        stats = [p.stat() for p in self.path.rglob("*") if p.is_file()]
        return {"files": len(stats), "bytes": sum(s.st_size for s in stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}


def _ignored(name: str) -> bool:
    """System clutter that is never data: hidden files and macOS resource forks."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def class_members(members: list[str], split: str | None, where: Path) -> dict[str, list[str]]:
    """Sorted member names per class for `split`, checking the folder layout."""
    by_class: dict[str, list[str]] = {c: [] for c in CLASSES}
    splits_seen = set()
    for name in members:
        parts = name.split("/")
        if _ignored(name) or len(parts) < 2 or parts[-2].upper() not in CLASSES:
            continue
        parent_split = parts[-3].lower() if len(parts) >= 3 else None
        splits_seen.add(parent_split)
        if split is None or parent_split == split.lower():
            by_class[parts[-2].upper()].append(name)
    if split is None and len(splits_seen - {None}) > 1:
        raise DataError(f"{where} holds several splits ({sorted(s for s in splits_seen if s)}); pass split=.")
    label = f"{where}/{split}" if split else str(where)
    for cls, names in by_class.items():
        if not names:
            hint = f"{sorted(s for s in splits_seen if s)}" if splits_seen - {None} else "none"
            raise DataError(
                f"No images in a {cls}/ folder under {label} (splits found: {hint}). Expected "
                f"{label}/REAL/* and {label}/FAKE/*; check the path and the split name."
            )
        names.sort()
    return by_class


# --------------------------------------------------------------------------- decoding
def fit_size(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to size x size (bicubic): the stated resize policy."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image if side == size else image.resize((size, size), Image.BICUBIC)


def _decode(data: bytes, name: str, shape: tuple[int, int] | None, resize: int | None,
            convert_mode: bool) -> tuple[np.ndarray | None, str | None]:
    """One file's bytes → (H, W, 3) uint8, or (None, reason) for a file that cannot be used."""
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image file (unknown suffix)"
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # noqa: BLE001 - PIL raises many types for broken files
        return None, f"corrupt or truncated image ({type(error).__name__}: {error})"
    if image.mode != "RGB":
        if not convert_mode:
            return None, f"mode {image.mode}, not RGB (pass convert_mode=True to convert it)"
        image = image.convert("RGBA").convert("RGB") if image.mode == "P" else image.convert("RGB")
    if resize:
        image = fit_size(image, resize)
    elif shape and image.size != (shape[1], shape[0]):
        return None, (f"size {image.size[0]}x{image.size[1]}, expected {shape[1]}x{shape[0]} "
                      "like the first image (pass size=N to centre-crop and resize)")
    return np.asarray(image, dtype=np.uint8), None


def file_digest(data: bytes) -> str:
    """Short content hash of a file's bytes: equal digests mean byte-identical files."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def read_members(path: str | Path, is_zip: bool, names: list[str]):
    """Yield (name, bytes) for members of a zip or files under a folder, opening a zip once."""
    if not is_zip:
        for name in names:
            yield name, (Path(path) / name).read_bytes()
        return
    with zipfile.ZipFile(path) as archive:
        for name in names:
            yield name, archive.read(name)


def _decode_chunk(path: str, is_zip: bool, names: list[str], shape: tuple[int, int],
                  resize: int | None, convert_mode: bool):
    """Worker: decode a list of members; returns (images, digests, failures, kept mask)."""
    images = np.zeros((len(names), *shape, 3), dtype=np.uint8)
    digests, failures, kept = [], [], np.ones(len(names), dtype=bool)
    for i, (name, data) in enumerate(read_members(path, is_zip, names)):
        digests.append(file_digest(data))
        array, reason = _decode(data, name, shape, resize, convert_mode)
        if array is None:
            failures.append((name, reason))
            kept[i] = False
        else:
            images[i] = array
    return images, digests, failures, kept


def _first_shape(source: Source, names: list[str], resize: int | None, convert_mode: bool):
    """The image shape every other image must match (the first decodable image's)."""
    if resize:
        return (resize, resize)
    for name, data in read_members(source.path, source.is_zip, names[:50]):
        array, _reason = _decode(data, name, None, None, convert_mode)
        if array is not None:
            return array.shape[:2]
    raise DataError(f"None of the first 50 files in {source.path} could be decoded (e.g. {names[0]}).")


def pool_context():
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _decode_all(source: Source, names: list[str], shape, resize, convert_mode, workers, progress):
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    args = [(str(source.path), source.is_zip, chunk, shape, resize, convert_mode) for chunk in chunks]
    bar = tqdm(total=len(names), desc=f"decoding {source.path.name}", unit="img", disable=not progress)
    results = []
    if workers <= 1 or len(chunks) == 1:
        for arg in args:
            results.append(_decode_chunk(*arg))
            bar.update(len(arg[2]))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
            for arg, result in zip(args, pool.map(_decode_chunk, *zip(*args))):
                results.append(result)
                bar.update(len(arg[2]))
    bar.close()
    return results


# --------------------------------------------------------------------------- cache
def _cache_file(source: Source, split: str | None, options: dict) -> Path:
    key = json.dumps({"path": str(source.path.resolve()), "fp": source.fingerprint(), "split": split,
                      "options": options, "version": CACHE_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{source.path.stem}-{split or 'all'}-{digest}.npz"


def _write_cache(path: Path, image_set: ImageSet) -> None:
    """Write atomically: a reader never sees a half-written cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, images=image_set.images, labels=image_set.labels, ids=image_set.ids,
                 digests=image_set.digests, meta=np.array(json.dumps(
                     {"name": image_set.name, "source": image_set.source,
                      "skipped": [list(s) for s in image_set.skipped]})))
    os.replace(tmp, path)


def _read_cache(path: Path) -> ImageSet:
    with np.load(path, allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        return ImageSet(stored["images"], stored["labels"], stored["ids"], stored["digests"],
                        meta["name"], meta["source"], tuple(tuple(s) for s in meta["skipped"]))


# --------------------------------------------------------------------------- public loaders
def load_folder(source: str | Path, split: str | None = None, *, size: int | None = None,
                convert_mode: bool = False, skip_invalid: bool = False, workers: int | None = None,
                cache: bool = True, progress: bool | None = None, name: str | None = None) -> ImageSet:
    """Load REAL/FAKE images from a folder or zip (`<split>/REAL`, `<split>/FAKE` or `REAL`, `FAKE`).

    size: centre-crop to square and resize to size x size; None requires one common size.
    convert_mode: convert grayscale / RGBA / palette images to RGB instead of failing.
    skip_invalid: drop unusable files (listed in `.skipped`) instead of raising DataError.
    progress: a decoding bar (default: in an interactive session only, never in a report).
    """
    src = Source(Path(source))
    options = {"size": size, "convert_mode": convert_mode, "skip_invalid": skip_invalid}
    cache_path = _cache_file(src, split, options)
    if cache and cache_path.exists():
        try:
            return _read_cache(cache_path)
        except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as error:
            print(f"NOTE unreadable cache {cache_path} ({type(error).__name__}: {error}); decoding {src.path} again")
            cache_path.unlink(missing_ok=True)
    by_class = class_members(src.members(), split, src.path)
    names = by_class["REAL"] + by_class["FAKE"]
    labels = np.array([0] * len(by_class["REAL"]) + [1] * len(by_class["FAKE"]), dtype=np.int64)
    shape = _first_shape(src, names, size, convert_mode)
    workers = workers or min(os.cpu_count() or 1, 8)
    results = _decode_all(src, names, shape, size, convert_mode, workers, interactive() if progress is None else progress)
    failures = [f for r in results for f in r[2]]
    if failures and not skip_invalid:
        listed = "\n  ".join(f"{src.path}/{n}: {why}" for n, why in failures[:10])
        more = f"\n  … and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise DataError(f"{len(failures)} unusable file(s):\n  {listed}{more}\nFix or remove them, "
                        "or pass skip_invalid=True to skip them (they are then listed in the run record).")
    kept = np.concatenate([r[3] for r in results])
    image_set = ImageSet(
        images=np.concatenate([r[0] for r in results])[kept], labels=labels[kept],
        ids=np.array(names)[kept], digests=np.array([d for r in results for d in r[1]])[kept],
        name=name or (f"{src.path.stem}/{split}" if split else src.path.stem),
        source=str(src.path), skipped=tuple(failures),
    )
    if cache:
        _write_cache(cache_path, image_set)
    return image_set


def load_cifake(split: str = "test", source: str | Path | None = None, **options) -> ImageSet:
    """CIFAKE's `train` or `test` split, found by `resolve_cifake` (see `load_folder` options)."""
    if split not in ("train", "test"):
        raise DataError(f"CIFAKE has splits 'train' and 'test', not {split!r}.")
    return load_folder(resolve_cifake(source), split, name=f"cifake/{split}", **options)


def concatenate(image_sets: list[ImageSet], name: str) -> ImageSet:
    """One set from several of the same image shape (e.g. held-out REAL plus some FAKE)."""
    shapes = {s.images.shape[1:] for s in image_sets}
    if len(shapes) != 1:
        raise DataError(f"cannot concatenate sets of different image shapes {sorted(shapes)}; load them with size=N")
    return ImageSet(*(np.concatenate([getattr(s, f) for s in image_sets]) for f in ("images", "labels", "ids", "digests")),
                    name, " + ".join(dict.fromkeys(s.source for s in image_sets)),
                    tuple(item for s in image_sets for item in s.skipped))


def deduplicate(image_set: ImageSet, reference: ImageSet | None = None) -> ImageSet:
    """Drop images byte-identical to one in `reference` (leakage) and repeats within the set.

    The first copy of a within-set duplicate is kept. On CIFAKE's test split against train this
    removes the test fakes that also occur in train.
    """
    leaked = np.isin(image_set.digests, reference.digests) if reference is not None else \
        np.zeros(len(image_set), dtype=bool)
    _, first = np.unique(image_set.digests, return_index=True)
    repeated = np.ones(len(image_set), dtype=bool)
    repeated[first] = False
    return image_set.take(~(leaked | repeated), f"{image_set.name}-dedup")


@dataclass(frozen=True)
class Splits:
    """The sets every CIFAKE notebook starts from, chosen one way everywhere.

    `fit` and `val` partition the (optionally subsampled) training split, stratified; `test`
    is the official test split (optionally subsampled) and `test_dedup` the same without the
    files that also occur in train or repeat within test. Model and threshold choices use
    `val` (or other training images), never a test set.
    """

    train: ImageSet  # the whole training split: the reference for de-duplication
    fit: ImageSet
    val: ImageSet
    test: ImageSet
    test_dedup: ImageSet

    @property
    def tests(self) -> dict[str, ImageSet]:
        """The evaluation sets by split name, as every metrics entry names them."""
        return {"test": self.test, "test-dedup": self.test_dedup}

    def used(self) -> tuple[ImageSet, ...]:
        """What a run says it used (`Run.record_data`)."""
        return (self.fit, self.val, self.test, self.test_dedup)


def cifake_splits(source: str | Path | None = None, *, train_per_class: int = 0, val_fraction: float = 0.0,
                  test_per_class: int = 0, seed: int = 0, **options) -> Splits:
    """Load CIFAKE once and cut it into `Splits` (0 per class = all images); `options` go to `load_folder`."""
    train = load_cifake("train", source, **options)
    test = load_cifake("test", source, **options).per_class(test_per_class, seed)
    fit, val = train.per_class(train_per_class, seed).split(val_fraction, seed)
    return Splits(train, fit, val, test, deduplicate(test, train))
