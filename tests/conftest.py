"""Tiny CIFAKE-shaped datasets generated on the fly, so the suite needs no download."""
from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfd_utils import weights

SHARED_CIFAKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifake.zip"


def fake_image(rng: np.random.Generator, label: int, size: int = 32) -> Image.Image:
    """REAL: noisy textures; FAKE: smooth gradients — different enough to learn from."""
    if label == 0:
        pixels = rng.integers(0, 256, (size, size, 3))
    else:
        ramp = np.linspace(0, 255, size)
        base = rng.uniform(0.2, 1.0, 3) * (ramp[:, None, None] + ramp[None, :, None]) / 2
        pixels = base + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_cifake(root: Path, n_per_class: int = 24, seed: int = 0, leaked: int = 2) -> Path:
    """A CIFAKE-layout folder: train|test / REAL|FAKE / *.jpg, with `leaked` test fakes that are
    byte-identical copies of train fakes and one duplicate pair within train/FAKE (needs n_per_class >= 2)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label, cls in enumerate(("REAL", "FAKE")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                (folder / f"{i} ({label + 1}).jpg").write_bytes(jpeg_bytes(fake_image(rng, label)))
    for i in range(leaked):
        shutil.copy(root / "train" / "FAKE" / f"{i} (2).jpg", root / "test" / "FAKE" / f"{i} (2).jpg")
    last = n_per_class - 1
    shutil.copy(root / "train" / "FAKE" / "0 (2).jpg", root / "train" / "FAKE" / f"{last} (2).jpg")
    return root


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def pytest_runtest_setup(item):
    """`@pytest.mark.needs_weights("taef2/taef2_encoder.pth", …)` skips a test unless every named
    offline weight file is found (DFD_WEIGHTS, then ../shared/weights)."""
    for marker in item.iter_markers("needs_weights"):
        missing = [name for name in marker.args if weights.find(name) is None]
        if missing:
            pytest.skip(f"offline weights not found: {', '.join(missing)} (set DFD_WEIGHTS or put ../shared beside the project)")


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path_factory, monkeypatch):
    """Every test writes its cache, results and checkpoints into temporary folders, never the project's
    (a checkpoint left in data/checkpoints/ by an interrupted run would otherwise be resumed)."""
    base = tmp_path_factory.mktemp("dfd")
    monkeypatch.setenv("DFD_CACHE", str(base / "cache"))
    monkeypatch.setenv("DFD_RESULTS", str(base / "results"))
    monkeypatch.setenv("DFD_CHECKPOINTS", str(base / "checkpoints"))
    monkeypatch.setenv("DFD_OFFLINE", "1")
    return base


@pytest.fixture(scope="session")
def cifake_folder(tmp_path_factory) -> Path:
    return make_cifake(tmp_path_factory.mktemp("cifake") / "cifake")


@pytest.fixture(scope="session")
def cifake_zip(cifake_folder, tmp_path_factory) -> Path:
    return zip_folder(cifake_folder, tmp_path_factory.mktemp("zip") / "cifake.zip")


@pytest.fixture
def real_cifake() -> Path:
    if not SHARED_CIFAKE.exists():
        pytest.skip(f"the real CIFAKE is not at {SHARED_CIFAKE}")
    return SHARED_CIFAKE
