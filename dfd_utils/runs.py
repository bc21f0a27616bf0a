"""Run folders and the records every notebook leaves (DESIGN.md, "Records every run leaves").

`start_run` seeds everything and writes `params.json` and `env.json` at once, so a run that
later fails still says what it was asked to do and where. Metrics, predictions, figures and
tables are then saved through the returned `Run`.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import evaluate
from .paths import results_dir
from .runtime import device, environment, seed_everything

__all__ = ["Run", "start_run", "notebook_params", "RECORD_KEYS"]

RECORD_KEYS = ("method", "variant", "split", "n_real", "n_fake", "acc", "balanced_acc",
               "precision", "recall", "f1", "auroc", "ap", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct",
               "threshold", "train_seconds", "infer_images_per_s", "pretrained",
               "acc_ci_low", "acc_ci_high", "auroc_ci_low", "auroc_ci_high")
_PLAIN = (bool, int, float, str, type(None), list, tuple, dict)


def notebook_params(namespace: dict) -> dict:
    """The parameters of a notebook: its UPPER_CASE names bound to plain values.

    Passing `globals()` right after the parameters cell records exactly what papermill
    injected, without repeating every name by hand.
    """
    return {k: v for k, v in namespace.items()
            if k.isupper() and not k.startswith("_") and isinstance(v, _PLAIN)}


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _clean(value):
    """NaN/inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


@dataclass
class Run:
    """One notebook's record folder: `results/<profile>/<name>/`."""

    name: str
    profile: str
    folder: Path
    params: dict

    @property
    def figures(self) -> Path:
        return self.folder / "figures"

    def save_json(self, filename: str, payload) -> Path:
        write_json(self.folder / filename, payload)
        return self.folder / filename

    def record_data(self, *image_sets) -> None:
        """Say which data the run used (`data.json`): names, sources, counts, skipped files."""
        self.save_json("data.json", [s.describe() for s in image_sets])

    def log_metrics(self, method: str, variant: str, split: str, labels, scores,
                    threshold: float = 0.5, *, train_seconds: float | None = None,
                    infer_images_per_s: float | None = None, pretrained: str = "none",
                    n_boot: int = 1000, **extra) -> dict:
        """Evaluate and add one entry to `metrics.json` (replacing the same method/variant/split)."""
        metrics = evaluate(labels, scores, threshold, n_boot=n_boot, seed=int(self.params.get("SEED", 0)))
        entry = {"method": method, "variant": variant, "split": split, **metrics,
                 "train_seconds": train_seconds, "infer_images_per_s": infer_images_per_s,
                 "pretrained": pretrained, **extra}
        entry = {k: _clean(v) for k, v in entry.items()}
        path = self.folder / "metrics.json"
        entries = json.loads(path.read_text()) if path.exists() else []
        entries = [e for e in entries if (e["method"], e["variant"], e["split"]) != (method, variant, split)]
        self.save_json("metrics.json", entries + [entry])
        return entry

    def metrics_table(self) -> pd.DataFrame:
        path = self.folder / "metrics.json"
        return pd.DataFrame(json.loads(path.read_text()) if path.exists() else [])

    def save_predictions(self, ids, labels, scores, variant: str) -> Path:
        """Add one variant's per-image scores to `predictions.csv` (id,label,score,variant)."""
        path = self.folder / "predictions.csv"
        new = pd.DataFrame({"id": np.asarray(ids), "label": np.asarray(labels).astype(int),
                            "score": np.asarray(scores, dtype=float), "variant": variant})
        if path.exists():
            old = pd.read_csv(path, dtype={"id": str, "variant": str})
            new = pd.concat([old[old["variant"] != variant], new], ignore_index=True)
        new.to_csv(path, index=False)
        return path

    def save_figure(self, fig, name: str, dpi: int = 150):
        """Save under `figures/<name>.png` and return the figure, so the cell still shows it."""
        self.figures.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.figures / f"{name}.png", dpi=dpi, bbox_inches="tight")
        return fig

    def save_table(self, table: pd.DataFrame, name: str) -> pd.DataFrame:
        """Save a table as `<name>.csv` and return it for display."""
        self.folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.folder / f"{name}.csv", index=False)
        return table


def start_run(name: str, params: dict, profile: str | None = None) -> Run:
    """Create a fresh `results/<profile>/<name>/`, seed everything with `SEED`, record params and env.

    `params` may be a notebook's `globals()`: only its UPPER_CASE plain values are kept.
    """
    params = notebook_params(params)
    profile = profile or params.get("PROFILE", "default")
    seed_everything(int(params.get("SEED", 0)))
    run = Run(name=name, profile=profile, folder=results_dir(profile) / name, params=params)
    shutil.rmtree(run.folder, ignore_errors=True)  # records come from one run, never a mix
    run.folder.mkdir(parents=True)
    run.save_json("params.json", params)
    run.save_json("env.json", environment(device(str(params.get("DEVICE", "auto")))))
    return run
