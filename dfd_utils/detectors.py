"""Detectors: anything that turns images into fake-scores, loadable by name outside its notebook.

A method notebook saves its detector in its record folder (`<run>/detectors/<name>/`, a
`detector.json` plus the weights it needs); `load("v4")` rebuilds it from there, for the
comparison notebook, `dfd score` or a user's own code — no notebook, no run. Each detector
states its input policy (the size it needs and how other sizes are brought to it) and its
calibrated threshold (value, and in words how it was chosen), and scores uint8 images:

    detector = du.detectors.load("v4")            # results/default/*/detectors/v4
    scores = detector.score(images)               # (N, 32, 32, 3) uint8 → (N,) higher = more fake
    result = detector.score_set(image_set)        # a `Scores` value, with ids, labels and timing

The kinds of detector are classes (`ClassifierDetector` here; the reconstruction and DIRE
detectors live with their code); `detector.json` names the class, so a new method adds a kind
without touching this module.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

from .data import ImageSet, fit_size
from .inference import predict
from .models import load_model, save_model
from .paths import notebooks_dir, results_dir
from .scores import Scores, Threshold, argmax_threshold

__all__ = ["InputPolicy", "Detector", "ClassifierDetector", "EnsembleDetector", "DetectorError", "DETECTORS_FOLDER", "SPEC_FILE",
           "detectors_folder", "available", "duplicates", "load", "made_by"]

DETECTORS_FOLDER = "detectors"  # inside a run's record folder: results/<profile>/<run>/detectors/<name>/
SPEC_FILE = "detector.json"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class DetectorError(LookupError):
    """A detector that cannot be found or loaded; the message names the notebook that makes it."""


def detectors_folder(run_folder: Path) -> Path:
    return Path(run_folder) / DETECTORS_FOLDER


@dataclass(frozen=True)
class InputPolicy:
    """What a detector needs as input and the stated rule that brings any image to it.

    `size`: the square side it needs; other images are centre-cropped to a square and resized
    with antialiasing (PIL bicubic, which filters when downscaling). `size=None`: native size,
    each side centre-cropped down to a multiple of `multiple` (an autoencoder's stride).
    """

    size: int | None = 32
    multiple: int = 1

    @property
    def rule(self) -> str:
        if self.size:
            return (f"{self.size}x{self.size}: other sizes centre-cropped to a square, then resized to "
                    f"{self.size}x{self.size} with antialiasing (bicubic)")
        return f"native size: each side centre-cropped down to a multiple of {self.multiple}"

    def fit(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 image brought to this policy."""
        if self.size:
            return image if image.shape[:2] == (self.size, self.size) else \
                np.asarray(fit_size(Image.fromarray(image), self.size))
        h, w = (side - side % self.multiple for side in image.shape[:2])
        if h == 0 or w == 0:
            raise ValueError(f"a {image.shape[1]}x{image.shape[0]} image is smaller than {self.multiple} px")
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        return image[top:top + h, left:left + w]


class Detector:
    """Scores images (higher = more likely FAKE) and decides at a calibrated threshold.

    Subclasses implement `score` for a uint8 (N, H, W, 3) batch that already meets `policy`,
    and `_save_parts` / `_load` for what they need beside `detector.json`.
    """

    def __init__(self, name: str, method: str, variant: str, threshold: Threshold, policy: InputPolicy,
                 pretrained: str = "none", notebook: str = ""):
        if not _NAME.fullmatch(name):
            raise ValueError(f"detector name {name!r}: use lower-case letters, digits, '-' and '_'")
        self.name, self.method, self.variant = name, method, variant
        self.threshold, self.policy, self.pretrained, self.notebook = threshold, policy, pretrained, notebook

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}: {self.method} · {self.variant}; {self.policy.rule})"

    def score(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Images of any size: each brought to the input policy, batched by shape, scored in order."""
        fitted = [self.policy.fit(image) for image in images]
        scores = np.zeros(len(fitted), dtype=np.float64)
        shapes: dict[tuple, list[int]] = {}
        for index, image in enumerate(fitted):
            shapes.setdefault(image.shape, []).append(index)
        for members in shapes.values():
            scores[members] = self.score(np.stack([fitted[i] for i in members]))
        return scores

    def score_set(self, image_set: ImageSet, split: str | None = None, *, train_seconds: float | None = None,
                  **extra) -> Scores:
        """Score every image of a set (brought to the input policy if needed) as a `Scores` value."""
        start = time.perf_counter()
        fits = self.policy.size is None or image_set.images.shape[1:3] == (self.policy.size,) * 2
        scores = self.score(image_set.images) if fits else self.score_images(list(image_set.images))
        seconds = time.perf_counter() - start
        return Scores(self.method, self.variant, split or image_set.name, image_set.ids, np.asarray(scores, float),
                      self.threshold, image_set.labels, train_seconds=train_seconds,
                      infer_images_per_s=len(image_set) / max(seconds, 1e-9), pretrained=self.pretrained,
                      extra={"detector": self.name, "input_policy": self.policy.rule, **extra})

    def score_sets(self, image_sets: dict[str, ImageSet], **extra) -> list[Scores]:
        """`score_set` for each split name → set (e.g. `Splits.tests`), with the same extras. A
        set whose files all stand in a set scored before it (test-dedup within test) takes their
        scores rather than scoring the same images again, which nearly halves the cost."""
        results, scored = [], []
        for split, image_set in image_sets.items():
            for earlier, earlier_scores in scored:
                index = _positions(image_set, earlier)
                if index is not None:
                    results.append(earlier_scores.take(index, split))
                    break
            else:
                results.append(self.score_set(image_set, split, **extra))
                scored.append((image_set, results[-1]))
        return results

    # ---------------------------------------------------------------- saving and loading
    def spec(self) -> dict:
        return {"name": self.name, "kind": f"{type(self).__module__}:{type(self).__qualname__}",
                "method": self.method, "variant": self.variant, "notebook": self.notebook,
                "threshold": asdict(self.threshold), "input_policy": asdict(self.policy) | {"rule": self.policy.rule},
                "pretrained": self.pretrained, "options": self._options()}

    def _options(self) -> dict:
        return {}

    def _save_parts(self, folder: Path) -> None:
        pass

    @classmethod
    def _load(cls, folder: Path, spec: dict, common: dict, device: str) -> "Detector":
        raise NotImplementedError

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_parts(folder)
        (folder / SPEC_FILE).write_text(json.dumps(self.spec(), indent=2) + "\n")
        return folder


def _positions(subset: ImageSet, superset: ImageSet) -> np.ndarray | None:
    """Where each file of `subset` stands in `superset` (the same source, id and content digest),
    or None when one does not."""
    if subset.source != superset.source:
        return None
    where = {key: i for i, key in enumerate(zip(superset.ids, superset.digests))}
    index = [where.get(key) for key in zip(subset.ids, subset.digests)]
    return None if None in index else np.asarray(index, dtype=int)


def _common(spec: dict) -> dict:
    """The constructor arguments every kind shares, read back from `detector.json`."""
    policy = {k: v for k, v in spec["input_policy"].items() if k != "rule"}
    return {"name": spec["name"], "method": spec["method"], "variant": spec["variant"],
            "threshold": Threshold(**spec["threshold"]), "policy": InputPolicy(**policy),
            "pretrained": spec["pretrained"], "notebook": spec.get("notebook", "")}


def _load_folder(folder: Path, device: str) -> Detector:
    path = Path(folder) / SPEC_FILE
    try:
        spec = json.loads(path.read_text())
        module_name, class_name = spec["kind"].split(":")
        kind = getattr(importlib.import_module(module_name), class_name)
    except FileNotFoundError as error:
        raise DetectorError(f"no saved detector in {folder} (expected {SPEC_FILE})") from error
    except (ValueError, KeyError, ImportError, AttributeError) as error:
        raise DetectorError(f"{path} is not a readable detector spec ({type(error).__name__}: {error}); "
                            "rerun the notebook that made it") from error
    return kind._load(Path(folder), spec, _common(spec), device)


def available(profile: str = "default") -> dict[str, Path]:
    """Every detector the records of `profile` hold: name → folder, in notebook order."""
    found = sorted(results_dir(profile).glob(f"*/{DETECTORS_FOLDER}/*/{SPEC_FILE}"))
    return {path.parent.name: path.parent for path in found}


def _content(folder: Path) -> tuple:
    """What a saved detector is, apart from its name: its spec and the bytes of its other files."""
    spec = {k: v for k, v in json.loads((folder / SPEC_FILE).read_text()).items() if k != "name"}
    files = tuple((str(f.relative_to(folder)), hashlib.sha256(f.read_bytes()).hexdigest())
                  for f in sorted(folder.rglob("*")) if f.is_file() and f.name != SPEC_FILE)
    return json.dumps(spec, sort_keys=True), files


def duplicates(profile: str = "default") -> dict[str, str]:
    """Saved detectors that are another one under a second name (same spec, same files):
    name → the first name it repeats. A notebook may save one detector under two names (06's
    any-size detector is its chosen one when that variant already takes any size); a
    comparison counts it once."""
    first, repeats = {}, {}
    for name, folder in available(profile).items():
        content = _content(folder)
        if content in first:
            repeats[name] = first[content]
        else:
            first[content] = name
    return repeats


def made_by(name: str) -> str | None:
    """The notebook whose parameters declare `DETECTOR = "<name>"` (the one that saves it)."""
    declared = re.compile(r'^DETECTOR(?:_[A-Z]+)?: str = "' + re.escape(name) + '"', re.MULTILINE)
    for notebook in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        if any(declared.search("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"):
            return notebook.stem
    return None


def load(name_or_folder: str | Path, profile: str = "default", device: str = "cpu") -> Detector:
    """A detector by name (from `results/<profile>/`) or from its folder, ready to score."""
    if Path(name_or_folder).is_dir():
        return _load_folder(Path(name_or_folder), device)
    name = str(name_or_folder)
    folders = available(profile)
    if name not in folders:
        notebook = made_by(name)
        if notebook is None:
            raise DetectorError(f"unknown detector {name!r}; known in profile {profile!r}: "
                                f"{', '.join(folders) or 'none yet'}")
        raise DetectorError(f"detector {name!r} is not saved for profile {profile!r}: run notebook {notebook} "
                            f"first (python -m dfd_utils run --profile {profile} --only {notebook[:2]})")
    return _load_folder(folders[name], device)


class ClassifierDetector(Detector):
    """A trained 2-logit network (V2, V3, V4, …): the score is its fake-probability, optionally
    averaged with the mirrored image's (test-time flip)."""

    def __init__(self, model: nn.Module, *, flip_average: bool = False, threshold: Threshold | None = None,
                 policy: InputPolicy | None = None, **common):
        super().__init__(threshold=threshold or argmax_threshold(), policy=policy or InputPolicy(32), **common)
        self.model, self.flip_average = model.eval(), flip_average

    def score(self, images: np.ndarray) -> np.ndarray:
        return predict(self.model, images, flip_average=self.flip_average)[0]

    def _options(self) -> dict:
        return {"flip_average": self.flip_average}

    def _save_parts(self, folder: Path) -> None:
        save_model(self.model, folder)

    @classmethod
    def _load(cls, folder: Path, spec: dict, common: dict, device: str) -> "ClassifierDetector":
        model = load_model(folder, device)
        return cls(model, flip_average=spec["options"]["flip_average"], **common)



class EnsembleDetector(Detector):
    """The mean log-odds of several probability detectors (a geometric mean of their odds):
    each member's score is its calibrated FAKE probability, so averaging on the logit scale
    weighs them alike; FAKE when the mean is at least the log-odds of `threshold` (0.5)."""

    def __init__(self, members: list[Detector], *, threshold: Threshold | None = None,
                 policy: InputPolicy | None = None, **common):
        policies = {m.policy for m in members}
        if len(members) < 2 or len(policies) != 1:
            raise ValueError("an ensemble needs two or more members with the same input policy")
        super().__init__(threshold=threshold or Threshold(0.5, "mean log-odds of the members >= 0 (their argmax)"),
                         policy=policy or policies.pop(), **common)
        self.members = members

    def score(self, images: np.ndarray) -> np.ndarray:
        logits = [np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1)) for p in
                  (member.score(images) for member in self.members)]
        return 1 / (1 + np.exp(-np.mean(logits, axis=0)))

    def _options(self) -> dict:
        return {"members": [m.name for m in self.members]}

    @classmethod
    def _load(cls, folder: Path, spec: dict, common: dict, device: str) -> "EnsembleDetector":
        profile_root = Path(folder).parents[2]  # results/<profile>/<run>/detectors/<name>
        members = []
        for name in spec["options"]["members"]:
            found = sorted(profile_root.glob(f"*/{DETECTORS_FOLDER}/{name}/{SPEC_FILE}"))
            if not found:
                raise DetectorError(f"ensemble member {name!r} is not saved in {profile_root}")
            members.append(_load_folder(found[0].parent, device))
        return cls(members, **common)
