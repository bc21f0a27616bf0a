"""The per-profile parameter overrides in `profiles.yaml` (smoke, default, full)."""
from __future__ import annotations

from importlib import resources

import yaml

__all__ = ["PROFILES", "load_profiles", "profile_params"]

PROFILES = ("smoke", "default", "full")


def load_profiles() -> dict:
    text = resources.files("dfd_utils").joinpath("profiles.yaml").read_text()
    profiles = yaml.safe_load(text) or {}
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ValueError(f"profiles.yaml names unknown profiles {sorted(unknown)}; known: {PROFILES}")
    return profiles


def profile_params(profile: str, notebook: str) -> dict:
    """The overrides `profile` sets for `notebook` (a file stem such as '00_data_audit')."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return dict((load_profiles().get(profile) or {}).get(notebook) or {})
