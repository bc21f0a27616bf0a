"""The machine a run happens on: device choice, seeding, and a record of the environment."""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from importlib import metadata

import numpy as np
import torch

from .paths import project_root

__all__ = ["device", "precision", "precision_candidates", "autocast", "seed_everything", "seeded_generator", "environment", "git_state",
           "interactive", "cpu", "hardware", "measured_on", "cpu_in_words", "REPORT_ENV"]

REPORT_ENV = "DFD_REPORT"  # set by the runner: the code runs inside an executed report, not a live session


def interactive() -> bool:
    """False inside a notebook the runner executes: progress bars there would be frozen
    widgets in the report, so long work prints no bar."""
    return os.environ.get(REPORT_ENV, "") in ("", "0")

RECORDED_PACKAGES = (
    "numpy", "pillow", "pandas", "scikit-learn", "matplotlib", "seaborn", "torch",
    "torchvision", "timm", "diffusers", "lpips", "grad-cam", "papermill", "safetensors",
)


def device(preference: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; any other value is taken literally."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "fastest", "fp32", "bf16")
_ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def _fast_bf16(chosen_device: torch.device) -> bool:
    """Whether this device runs bfloat16 convolutions natively (CUDA Ampere+, or a CPU with
    AVX512-BF16 / AMX); elsewhere bf16 would be emulated and slower than fp32."""
    if chosen_device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if chosen_device.type == "cpu":
        if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in _ONEDNN_ISAS_WITHOUT_BF16:
            return False  # the CPU has it, but oneDNN was told not to use it
        cpu = torch.cpu
        return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def precision_candidates(preference: str, chosen_device: torch.device) -> tuple[str, ...]:
    """The training precisions `preference` leaves open here. `auto` is bf16 mixed precision
    where the hardware runs it natively (V3 trains 2.5-7x faster in it on AVX512-BF16 CPUs),
    fp32 otherwise. `fastest` is both where bf16 is native, for the caller to time on the model
    itself: native bf16 is not faster for every model (EfficientNet-Lite0's depthwise
    convolutions train 1.6x slower in it on that CPU); fp32 elsewhere."""
    if preference not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {preference!r}")
    native = _fast_bf16(chosen_device)
    if preference == "auto":
        return ("bf16",) if native else ("fp32",)
    if preference == "fastest":
        return ("fp32", "bf16") if native else ("fp32",)
    return (preference,)


def precision(preference: str, chosen_device: torch.device) -> str:
    """Resolve a precision that needs no timing (see `precision_candidates`); `fastest`
    between two candidates is chosen by timing the model, which `training.fit` does."""
    candidates = precision_candidates(preference, chosen_device)
    if len(candidates) > 1:
        raise ValueError(f"precision {preference!r} is chosen by timing the model being trained (training.fit does "
                         "that); here use auto, fp32 or bf16")
    return candidates[0]


def autocast(resolved_precision: str, chosen_device: torch.device):
    """Mixed precision for the forward pass: weights and optimiser state stay fp32."""
    return torch.autocast(chosen_device.type, dtype=torch.bfloat16, enabled=resolved_precision == "bf16")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def seeded_generator(seed: int) -> torch.Generator:
    """A private torch generator, so DataLoader shuffling does not depend on global state."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def git_state() -> dict:
    """The commit the code came from and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # outputs under results/ change with every run; only code and notebooks make a tree dirty
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the ones that change training speed several-fold
CPU_FLAG_NAMES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}


def _cpuinfo(field: str) -> str:
    """The first `field` line of /proc/cpuinfo (Linux), or "" where there is none."""
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith(field)), "")
    except OSError:
        return ""


# Environment variables that keep torch's kernels below what the CPU has: with
# ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 an AVX-512 machine trains as an AVX2-only one
# would (same cores and clock), which is how a speed on an older CPU can be estimated here.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def cpu() -> dict:
    """The CPU model, which of `CPU_FLAGS` it has, and any `ISA_LIMITS` in force: every time
    in a report is measured on it."""
    flags = set(_cpuinfo("flags").split())
    return {"model": _cpuinfo("model name") or platform.processor() or platform.machine(),
            "flags": {flag: flag in flags for flag in CPU_FLAGS},
            "isa_limits": {name: os.environ[name] for name in ISA_LIMITS if os.environ.get(name)}}


def measured_on(env: dict) -> str:
    """Where a run's times were measured, in words, from its `env.json` (`hardware`): the GPU,
    else `cpu_in_words` — the figures differ several-fold between machines of the same kind."""
    if str(env.get("device", "")).startswith("cuda") and env.get("gpu"):
        return env["gpu"]
    return cpu_in_words(env)


def cpu_in_words(env: dict) -> str:
    """The CPU of `env` (`hardware`): its cores, model, which `CPU_FLAGS` it has and any `ISA_LIMITS` in force."""
    flags = [CPU_FLAG_NAMES[flag] for flag in CPU_FLAGS if (env.get("cpu_flags") or {}).get(flag)]
    cores = f"{env['cpu_count']}-core " if env.get("cpu_count") else ""
    text = f"{cores}{env.get('cpu') or 'unknown CPU'}" + (f" ({', '.join(flags)})" if flags else "")
    limits = env.get("cpu_isa_limits") or {}
    return text + (f", kernels limited by {', '.join(f'{k}={v}' for k, v in sorted(limits.items()))}" if limits else "")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def hardware(chosen_device: torch.device | None = None) -> dict:
    """The machine a number is measured on, as `env.json` records it (`measured_on` says it in words)."""
    cpu_info = cpu()
    return {
        "device": str(chosen_device or device("auto")),
        "cpu": cpu_info["model"],
        "cpu_flags": cpu_info["flags"],
        "cpu_isa_limits": cpu_info["isa_limits"],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def environment(chosen_device: torch.device | None = None) -> dict:
    """Everything needed to say where a number came from: versions, hardware, code commit."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in RECORDED_PACKAGES},
        **hardware(chosen_device),
        "git": git_state(),
    }
