"""dfd_utils: shared, tested code behind the deepfake-detection notebooks.

`import dfd_utils as du` is cheap and has no side effects: submodules (and torch) load on
first use, e.g. `du.load_cifake(...)` or `du.metrics.evaluate(...)`.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("paths", "runtime", "data", "loaders", "audit", "metrics", "plots", "runs",
               "profiles", "runner", "bench", "cli", "models", "train", "evaluation", "explain",
               "weights", "aeroblade", "probing", "reconstruction", "finetune", "robustness", "dire")
_SHORTCUTS = {  # du.<name> → the module that defines it
    "device": "runtime", "seed_everything": "runtime",
    "load_cifake": "data", "load_folder": "data", "deduplicate": "data", "ImageSet": "data",
    "DataError": "data", "evaluate": "metrics", "start_run": "runs",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'dfd_utils' has no attribute {name!r}")
