"""Run folders and the records every notebook leaves (DESIGN.md, "Records every run leaves").

`start_run` seeds everything and writes `params.json` and `env.json` at once, so a run that
later fails still says what it was asked to do and where. The notebook then records what its
methods return through the `Run`: `Scores` values (metrics and predictions), the detector,
figures and tables.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .detectors import Detector, detectors_folder
from .paths import checkpoints_dir, results_dir
from .runtime import device, environment, seed_everything
from .scores import Scores

__all__ = ["Run", "start_run", "notebook_params", "write_json", "save_race", "load_race", "RACES_FOLDER"]

RACES_FOLDER = "races"  # results/<profile>/races/: model-selection races, run apart from any notebook
_PLAIN = (bool, int, float, str, type(None), list, tuple, dict)


def notebook_params(namespace: dict) -> dict:
    """The parameters of a notebook: its UPPER_CASE names bound to plain values.

    Passing `globals()` right after the parameters cell records exactly what papermill
    injected, without repeating every name by hand.
    """
    return {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_") and _plain(v)}


def _plain(value) -> bool:
    """A JSON-able parameter value, all the way down (an imported UPPER_CASE table of functions is not one)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


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

    def record(self, scores: Scores, n_boot: int = 1000) -> dict:
        """Add one `Scores` value to the records: its metrics entry in `metrics.json` (replacing
        the same method/variant/split) and its per-image scores in `predictions.csv`."""
        entry = {k: _clean(v) for k, v in scores.record(n_boot, seed=int(self.params.get("SEED", 0))).items()}
        key = (scores.method, scores.variant, scores.split)
        path = self.folder / "metrics.json"
        entries = json.loads(path.read_text()) if path.exists() else []
        self.save_json("metrics.json", [e for e in entries if (e["method"], e["variant"], e["split"]) != key] + [entry])
        self._save_predictions(scores)
        return entry

    def record_all(self, scores: list[Scores], n_boot: int = 1000) -> pd.DataFrame:
        """`record` each value; their entries as a table."""
        return pd.DataFrame([self.record(s, n_boot) for s in scores])

    def metrics_table(self) -> pd.DataFrame:
        path = self.folder / "metrics.json"
        return pd.DataFrame(json.loads(path.read_text()) if path.exists() else [])

    def _save_predictions(self, scores: Scores) -> Path:
        """`predictions.csv`: id,label,score,variant,split for every recorded split."""
        path = self.folder / "predictions.csv"
        new = pd.DataFrame({"id": np.asarray(scores.ids), "label": np.asarray(scores.labels).astype(int),
                            "score": np.asarray(scores.scores, dtype=float), "variant": scores.variant,
                            "split": scores.split})
        if path.exists():
            old = pd.read_csv(path, dtype={"id": str, "variant": str, "split": str})
            new = pd.concat([old[(old["variant"] != scores.variant) | (old["split"] != scores.split)], new],
                            ignore_index=True)
        new.to_csv(path, index=False)
        return path

    def checkpoint(self, name: str, resume: bool) -> Path:
        """Where a long fit, sweep or study of this run keeps its checkpoint (`training.fit`/`sweep(checkpoint=…)`).
        With `resume`, one left by an interrupted run is picked up; without, it is removed first.
        The file stays until `finish()` (the notebook's last cell): a run that fails in any cell
        after the fit picks the finished fit up again instead of training it anew."""
        path = checkpoints_dir(self.profile) / self.name / f"{name}.pt"
        if not resume:
            path.unlink(missing_ok=True)
        elif path.exists():
            print(f"NOTE an interrupted training left {path}: resuming it (RESUME=False starts afresh)")
        return path

    def finish(self) -> None:
        """Every cell has run: remove this run's checkpoints, so that the next run trains afresh."""
        folder = checkpoints_dir(self.profile) / self.name
        for path in folder.glob("*.pt"):
            path.unlink()
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()

    def save_detector(self, detector: Detector) -> Path:
        """Save a detector where `detectors.load(detector.name)` finds it: `<run>/detectors/<name>/`."""
        return detector.save(detectors_folder(self.folder) / detector.name)

    def summary(self, splits: tuple[str, ...] = ("test",)) -> str:
        """One line per recorded metrics entry on `splits`: what a notebook prints last."""
        table = self.metrics_table()
        table = table[table["split"].isin(splits)] if not table.empty else table
        if table.empty:
            return f"{self.name}: no detector scores recorded."
        return "\n".join(f"- {r.method} · {r.variant} · {r.split} (n = {r.n_real + r.n_fake:,}): accuracy {r.acc:.2%}"
                         + (f" [{r.acc_ci_low:.2%}, {r.acc_ci_high:.2%}]" if pd.notna(r.acc_ci_low) else "")
                         + f", AUROC {r.auroc:.4f}"
                         + (f" [{r.auroc_ci_low:.4f}, {r.auroc_ci_high:.4f}]" if pd.notna(r.auroc_ci_low) else "")
                         for r in table.itertuples())

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


def save_race(table: pd.DataFrame, name: str, profile: str, args: dict) -> Path:
    """A model-selection race's table (`<name>.csv`) and how and where it ran (`<name>.json`)."""
    folder = results_dir(profile) / RACES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv", index=False)
    write_json(folder / f"{name}.json", {"race": name, "args": args, "env": environment(device("auto"))})
    return folder / f"{name}.csv"


def load_race(name: str, profile: str) -> tuple[pd.DataFrame, dict] | None:
    """A saved race (table and record), or None if `python -m dfd_utils race <name>` has not run for `profile`."""
    folder = results_dir(profile) / RACES_FOLDER
    if not (folder / f"{name}.csv").exists():
        return None
    return pd.read_csv(folder / f"{name}.csv"), json.loads((folder / f"{name}.json").read_text())
