"""dfd_utils: shared, tested code behind the deepfake-detection notebooks.

Three layers (README, "Layout"): tools at the bottom (paths, runtime, weights, data, loaders,
models, training, inference, distances, metrics, scores, plots, runs, detectors, references,
robustness), one module per method above them in `dfd_utils.methods` (importing tools only),
and orchestration on top (runner, cli, bench, report).

`import dfd_utils as du` is cheap and has no side effects: submodules (and torch) load on
first use, e.g. `du.load_cifake(...)` or `du.metrics.evaluate(...)`.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

TOOLS = ("paths", "runtime", "weights", "profiles", "data", "loaders", "models", "training", "inference",
         "distances", "features", "metrics", "scores", "plots", "runs", "detectors", "references", "xdomain", "robustness")
ORCHESTRATION = ("runner", "cli", "bench", "report", "scoring", "comparison")
_SUBMODULES = (*TOOLS, "methods", *ORCHESTRATION)
_SHORTCUTS = {  # du.<name> → the module that defines it
    "device": "runtime", "seed_everything": "runtime",
    "load_cifake": "data", "load_folder": "data", "deduplicate": "data", "ImageSet": "data", "cifake_splits": "data",
    "DataError": "data", "evaluate": "metrics", "start_run": "runs", "Scores": "scores",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'dfd_utils' has no attribute {name!r}")
