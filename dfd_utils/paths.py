"""Where things live: the project root, data, cache, results and the shared folder beside it.

Every location can be moved with an environment variable so that tests, CI and users with
their own layout never have to edit code.
"""
from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

__all__ = [
    "project_root",
    "data_dir",
    "cache_dir",
    "results_root",
    "results_dir",
    "shared_dir",
    "notebooks_dir",
    "checkpoints_dir",
    "offline",
    "offline_by_setting",
    "hub_reachable",
]


def project_root() -> Path:
    """The checkout's root: `DFD_ROOT`, else the folder that holds `dfd_utils/`."""
    env = os.environ.get("DFD_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """`data/` in the project (downloads and extracted datasets, git-ignored)."""
    return project_root() / "data"


def cache_dir() -> Path:
    """Decoded-array cache: `DFD_CACHE`, else `data/cache/`."""
    env = os.environ.get("DFD_CACHE")
    return Path(env) if env else data_dir() / "cache"


def results_root() -> Path:
    """Root of all run records: `DFD_RESULTS`, else `results/`."""
    env = os.environ.get("DFD_RESULTS")
    return Path(env) if env else project_root() / "results"


def results_dir(profile: str) -> Path:
    """`results/<profile>/`: executed notebooks and their record folders."""
    return results_root() / profile


def shared_dir() -> Path:
    """The shared folder beside the checkout (`../shared`), used by CI and offline machines."""
    env = os.environ.get("DFD_SHARED")
    return Path(env) if env else project_root().parent / "shared"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def checkpoints_dir(owner: str) -> Path:
    """Training checkpoints of interrupted runs: `DFD_CHECKPOINTS`, else `data/checkpoints/<owner>/`
    (outside the run folders, which every run starts afresh); the owner is a profile, or a
    command such as `train-ddpm`."""
    env = os.environ.get("DFD_CHECKPOINTS")
    return (Path(env) if env else data_dir() / "checkpoints") / owner


HUB_ADDRESS = ("huggingface.co", 443)  # where pretrained weights come from when online


@functools.cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One TCP connection to the Hugging Face hub per process (at most `timeout_s`).

    Without it, an offline machine spends about a minute per model in the hub clients' retries
    before failing; with it, the run says once that it is offline and goes on with local files.
    """
    try:
        socket.create_connection(HUB_ADDRESS, timeout=timeout_s).close()
        return True
    except OSError as error:
        print(f"NOTE the Hugging Face hub ({HUB_ADDRESS[0]}) is unreachable ({error}): running offline, local "
              "weights only; set DFD_OFFLINE=1 to skip this check")
        return False


def offline_by_setting() -> bool:
    """True when `DFD_OFFLINE` or `HF_HUB_OFFLINE` is set."""
    return any(os.environ.get(var, "") not in ("", "0") for var in ("DFD_OFFLINE", "HF_HUB_OFFLINE"))


def offline() -> bool:
    """True when set offline (`offline_by_setting`) or the hub is unreachable (`hub_reachable`):
    no hub download is then even attempted."""
    return offline_by_setting() or not hub_reachable()
