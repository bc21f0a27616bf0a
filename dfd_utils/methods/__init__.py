"""One module per method. Each imports tools (`dfd_utils.<tool>`) only — never another method,
never the orchestration layer — and returns values (scores, tables, models, detectors) that the
caller records (`tests/test_layers.py` checks the import directions)."""
from __future__ import annotations

import importlib

METHODS = ("audit", "autoencoder", "cnn_zoo", "simple_cnn", "detector_cnn", "explain", "dire", "aeroblade", "probing")

__all__ = list(METHODS)


def __getattr__(name: str):
    if name in METHODS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dfd_utils.methods' has no attribute {name!r}")
