"""The fit loop shared by every trained model: AdamW or SGD, one-cycle or constant LR,
optional bf16 mixed precision, per-epoch history with throughput; training budgets in
minutes (`epochs_within`) and equal-budget sweeps."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import ImageSet
from .inference import predict
from .loaders import make_loader, to_tensor
from .runtime import autocast, interactive, precision_candidates, device as pick_device

__all__ = ["History", "fit", "fastest_precision", "training_speed", "epochs_within", "evaluate_loss", "reconstruction_loss", "sweep", "seed_spread", "plan_epochs", "save_state", "load_state"]

SCHEDULES = ("onecycle", "cosine", "constant")
OPTIMIZERS = ("adamw", "sgd")


@dataclass
class History:
    """One row per epoch; `train_seconds` and `images_per_s` cover the optimisation only."""

    rows: list[dict] = field(default_factory=list)
    precision_timing: dict[str, float] = field(default_factory=dict)  # images/s per precision, when `fastest` chose

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    @property
    def train_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.rows))

    @property
    def images_per_s(self) -> float:
        return float(sum(r["images"] for r in self.rows) / max(self.train_seconds, 1e-9))

    @property
    def precision(self) -> str | None:
        """The precision the last epoch trained in."""
        return self.rows[-1]["precision"] if self.rows else None

    @property
    def cost(self) -> dict:
        """What training cost, as `Detector.score_set` keywords: seconds, speed, precision (and
        the timed speed of each candidate precision where `fastest` chose)."""
        return {"train_seconds": self.train_seconds, "train_images_per_s": self.images_per_s,
                "train_precision": self.precision, "epochs": len(self.rows),
                **{f"probe_{name}_images_per_s": speed for name, speed in self.precision_timing.items()}}

    @property
    def precision_choice(self) -> str:
        """The precision trained in and, where `fastest` timed the candidates, their speeds."""
        used = self.precision or "-"
        timing = ", ".join(f"{name} {speed:,.0f}/s" for name, speed in self.precision_timing.items())
        return f"{used} (timed: {timing})" if timing else used


def _optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Trainable parameters only, grouped by LR multiplier (`model.lr_scales`: name prefix →
    scale, e.g. a pretrained backbone at 0.1) and by decay: biases and norms get none."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
    scales = getattr(model, "lr_scales", {})
    grouped: dict[tuple[float, bool], list] = {}
    for param_name, param in model.named_parameters():
        if param.requires_grad:
            scale = next((s for prefix, s in scales.items() if param_name.startswith(prefix)), 1.0)
            grouped.setdefault((scale, param.ndim > 1), []).append(param)
    if not grouped:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": params, "lr": lr * scale, "weight_decay": weight_decay if decay else 0.0}
              for (scale, decay), params in grouped.items()]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


def _scheduler(optimizer, name: str, steps: int):
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {name!r}")
    if name == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=steps, pct_start=0.15)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def evaluate_loss(model: nn.Module, image_set: ImageSet, batch_size: int = 1024,
                  device: str | torch.device = "auto") -> tuple[float, float]:
    """Mean cross-entropy and accuracy (threshold 0.5) on a set."""
    scores, _ = predict(model, image_set, batch_size, device)
    probs = np.clip(np.where(image_set.labels == 1, scores, 1 - scores), 1e-7, 1)
    return float(-np.log(probs).mean()), float(((scores >= 0.5) == image_set.labels).mean())


OBJECTIVES = ("classify", "reconstruct")


def plan_epochs(minutes: float, model: nn.Module, train: ImageSet, *, fixed: int = 0, most: int = 0,
                checkpoint: Path | None = None, seed: int = 0, **fit_options) -> tuple[int, float | None, str]:
    """How many epochs a fit gets, and why: an interrupted run's plan when its checkpoint
    exists (so resuming never changes the schedule), else `fixed` when > 0, else as many as fit
    in `minutes` here (`epochs_within`), capped at `most` when > 0 — so a budget sized for a CPU
    does not become hours of needless epochs on a GPU. Returns (epochs, measured images/s or
    None, how)."""
    if checkpoint is not None and Path(checkpoint).exists():
        return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["key"]["epochs"]), None, \
            "kept from the interrupted run's checkpoint"
    if fixed:
        return fixed, None, "fixed"
    epochs, speed = epochs_within(minutes, model, train, seed=seed, **fit_options)
    if most and epochs > most:
        return most, speed, f"{minutes:g}-min budget, capped at {most} epochs"
    return epochs, speed, f"{minutes:g}-min budget"


@torch.no_grad()
def reconstruction_loss(model: nn.Module, image_set: ImageSet, batch_size: int = 1024,
                        device: str | torch.device = "auto") -> float:
    """Mean squared reconstruction error of an autoencoder on a set (pixels in [0, 1])."""
    device = pick_device(str(device))
    model.to(device).eval()
    total = 0.0
    for begin in range(0, len(image_set), batch_size):
        batch = to_tensor(image_set.images[begin:begin + batch_size]).to(device)
        total += float(((model(batch) - batch) ** 2).mean((1, 2, 3)).sum())
    return total / max(len(image_set), 1)


def fit(model: nn.Module, train: ImageSet, val: ImageSet | None = None, *, epochs: int = 5,
        batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 5e-4, optimizer: str = "adamw",
        schedule: str = "onecycle", augment: str = "none", label_smoothing: float = 0.0,
        objective: str = "classify", precision: str = "fp32", seed: int = 0,
        device: str | torch.device = "auto", progress: bool | None = None,
        checkpoint: str | Path | None = None) -> History:
    """Train `model` and return the per-epoch history. `objective="classify"`: a 2-logit
    detector with cross-entropy; `"reconstruct"`: an autoencoder with MSE to its input.

    Tensors are channels-last (NHWC), which makes convolutions markedly faster on CPUs.
    `precision` is fp32, bf16 (autocast forward, fp32 weights), auto (see
    `runtime.precision_candidates`) or fastest: where bf16 is native, whichever of the two
    `fastest_precision` times faster on this model and batch, its timing kept in
    `History.precision_timing`; each history row records the one used. `progress` (default: only
    in an interactive session, never in an executed report) shows a bar per epoch.

    `checkpoint`: a file that, after every epoch, holds everything needed to go on — weights,
    optimiser, schedule, the data order's and the augmentation's random state, the history —
    written atomically. A fit given an existing checkpoint resumes after its last epoch and
    ends as the uninterrupted fit would have; one made by a fit with other arguments is an
    error, never silently reused.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    device = pick_device(str(device))
    candidates = precision_candidates(precision, device)
    model.to(device, memory_format=torch.channels_last)
    loader = make_loader(train, batch_size, shuffle=True, augment=augment, seed=seed)
    opt = _optimizer(model, optimizer, lr, weight_decay)
    sched = _scheduler(opt, schedule, epochs * len(loader))
    loss_of = _loss(objective, label_smoothing)
    history = History()
    progress = interactive() if progress is None else progress
    key = {"model": getattr(model, "model_spec", type(model).__name__), "images": len(train), "epochs": epochs,
           "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "optimizer": optimizer, "schedule": schedule,
           "augment": augment, "label_smoothing": label_smoothing, "objective": objective,
           "precision": candidates[0] if len(candidates) == 1 else precision, "seed": seed}
    parts = {"model": model, "optimizer": opt, "schedule": sched}
    done = _resume(Path(checkpoint), key, parts, loader, history) if checkpoint and Path(checkpoint).exists() else 0
    if done:  # an interrupted fit goes on in the precision it began in
        used_precision = history.precision
    elif len(candidates) == 1:
        used_precision = candidates[0]
    else:
        history.precision_timing = fastest_precision(model, train, candidates, loss_of, batch_size=batch_size,
                                                     optimizer=optimizer, device=device)
        used_precision = max(history.precision_timing, key=history.precision_timing.get)
    for epoch in range(done + 1, epochs + 1):
        model.train()
        start, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for images, labels in tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress):
            images = images.to(device, memory_format=torch.channels_last, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            output, loss = _step(model, opt, images, labels, loss_of, used_precision)
            sched.step()
            if objective == "classify":
                correct += int((output.argmax(1) == labels).sum())
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "lr": sched.get_last_lr()[0],
               "seconds": time.perf_counter() - start, "images": seen, "precision": used_precision}
        row["images_per_s"] = seen / row["seconds"]
        if objective == "classify":
            row["train_acc"] = correct / seen
        if val is not None and objective == "classify":
            row["val_loss"], row["val_acc"] = evaluate_loss(model, val, device=device)
        elif val is not None:
            row["val_loss"] = reconstruction_loss(model, val, device=device)
        history.rows.append(row)
        if checkpoint:
            _save_checkpoint(Path(checkpoint), key, parts, loader, history)
    model.eval()
    return history


def _loss(objective: str, label_smoothing: float):
    """The training loss of `objective`: cross-entropy of the logits, or MSE to the input."""
    if objective == "classify":
        cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        return lambda output, images, labels: cross_entropy(output, labels)
    return lambda output, images, labels: nn.functional.mse_loss(output, images)


def _step(model: nn.Module, opt, images: torch.Tensor, labels: torch.Tensor, loss_of, used_precision: str):
    """One optimisation step; returns the (fp32) output and the loss."""
    with autocast(used_precision, images.device):
        output = model(images).float()
    loss = loss_of(output, images, labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return output, loss


def fastest_precision(model: nn.Module, train: ImageSet, candidates: tuple[str, ...], loss_of, *, batch_size: int,
                      optimizer: str = "adamw", device: torch.device, warmup_steps: int = 2,
                      timed_steps: int = 3) -> dict[str, float]:
    """Training images/s of each candidate precision, from `timed_steps` optimisation steps
    of a copy of `model` on one batch of `train`, after `warmup_steps` untimed ones (kernel
    selection, allocator). A few seconds decide a choice worth hours: which precision is faster
    depends on the model as much as on the hardware. `model`, the data order and every random
    state are untouched, so the fit that follows is the one a fixed precision would give."""
    images = to_tensor(train.images[:batch_size]).to(device, memory_format=torch.channels_last)
    labels = torch.as_tensor(train.labels[:batch_size], dtype=torch.long, device=device)
    speeds = {}
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        for used_precision in candidates:
            probe = copy.deepcopy(model).train()
            opt = _optimizer(probe, optimizer, 1e-4, 0.0)
            for step in range(warmup_steps + timed_steps):
                if step == warmup_steps:
                    _synchronize(device)
                    start = time.perf_counter()
                _step(probe, opt, images, labels, loss_of, used_precision)
            _synchronize(device)
            speeds[used_precision] = timed_steps * len(labels) / (time.perf_counter() - start)
    return speeds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_states(loader) -> dict:
    return {"order": loader.generator.get_state(), "augment": loader.dataset.generator.get_state(),
            "torch": torch.get_rng_state()}


def _save_checkpoint(path: Path, key: dict, parts: dict, loader, history: History) -> None:
    save_state(path, {"key": key, "rows": history.rows, "precision_timing": history.precision_timing,
                      "random": _random_states(loader),
                      **{name: part.state_dict() for name, part in parts.items()}})


def save_state(path: Path, state: dict) -> None:
    """Write a training state atomically: an interruption mid-write leaves the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path, key: dict) -> dict:
    """A state `save_state` wrote for the same `key` (the settings that must match to go on);
    a damaged file or one from other settings is an error that says what to do."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - a damaged file is reported with its fix
        raise ValueError(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); delete it to start afresh") from error
    if state["key"] != key:
        changed = sorted(k for k in key if state["key"].get(k) != key[k])
        raise ValueError(f"checkpoint {path} was made with other settings ({', '.join(changed)}); "
                         "delete it to start afresh or give this training its own checkpoint file")
    return state


def _resume(path: Path, key: dict, parts: dict, loader, history: History) -> int:
    """Load a checkpoint into the fit's parts; returns the number of epochs it had done."""
    state = load_state(path, key)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    loader.generator.set_state(state["random"]["order"])
    loader.dataset.generator.set_state(state["random"]["augment"])
    torch.set_rng_state(state["random"]["torch"])
    history.rows.extend(state["rows"])
    history.precision_timing.update(state.get("precision_timing", {}))
    print(f"resumed from {path} after epoch {len(state['rows'])} of {key['epochs']}")
    return len(state["rows"])


def training_speed(model: nn.Module, train: ImageSet, probe_images: int = 4096, seed: int = 0,
                   **fit_options) -> float:
    """Training images/s on this machine, warm: a copy of `model` trains two epochs on
    `probe_images` images of `train` with the same `fit_options` (batch size, precision,
    augmentation) and only the second is timed — the first pays for kernel selection and
    allocator warm-up, which once made the probe read 40% of the true speed. `model` itself is
    untouched."""
    probe_set = train.per_class(probe_images // 2, seed)
    history = fit(copy.deepcopy(model), probe_set, epochs=2, seed=seed, progress=False, **fit_options)
    return float(history.rows[-1]["images_per_s"])


def epochs_within(minutes: float, model: nn.Module, train: ImageSet, probe_images: int = 4096,
                  seed: int = 0, **fit_options) -> tuple[int, float]:
    """How many whole epochs over `train` fit in `minutes` of training on this machine (at
    least 1), and the `training_speed` they were derived from.

    Training budgets are stated in minutes, and machines differ several-fold in speed: this
    turns a budget into the schedule length a one-cycle LR needs up front.
    """
    if minutes <= 0:
        raise ValueError(f"minutes must be positive, not {minutes}")
    speed = training_speed(model, train, probe_images, seed, **fit_options)
    return max(1, int(minutes * 60 * speed // len(train))), speed


def sweep(make_model, configs: list[dict], train: ImageSet, val: ImageSet, *,
          checkpoint: str | Path | None = None, **fit_options) -> pd.DataFrame:
    """Train one model per config on `train`, score it on `val`; one row per config.

    `make_model(**config)` builds the model; `fit_options` go to `fit` unchanged, so every
    configuration gets the same budget. `checkpoint`: a file that, after every configuration,
    holds the rows so far and the random state, so that an interrupted sweep (a `full` one
    trains for over an hour) goes on with the next configuration and ends as the
    uninterrupted sweep would have; one made for other configs or options is an error.
    """
    key = {"configs": configs, "images": len(train), "val_images": len(val), **fit_options}
    rows = []
    if checkpoint and Path(checkpoint).exists():
        state = load_state(Path(checkpoint), key)
        rows = state["rows"]
        torch.set_rng_state(state["torch"])
    for config in tqdm(configs[len(rows):], desc="sweep", disable=not interactive()):
        model = make_model(**config)
        history = fit(model, train, **fit_options, progress=False)
        val_loss, val_acc = evaluate_loss(model, val)
        rows.append({**config, "params": sum(p.numel() for p in model.parameters()), "val_loss": val_loss,
                     "val_acc": val_acc, "train_seconds": history.train_seconds,
                     "train_images_per_s": history.images_per_s})
        if checkpoint:
            save_state(Path(checkpoint), {"key": key, "rows": rows, "torch": torch.get_rng_state()})
    return pd.DataFrame(rows)


def seed_spread(make_model, train: ImageSet, test_sets: dict[str, ImageSet], seeds: list[int], *,
                flip_average: bool = False, **fit_options) -> pd.DataFrame:
    """The same recipe trained once per seed (initialisation and shuffling), each scored on
    every test set: one row per seed × split, so a reader sees how much of a difference between
    two models one seed could make by itself."""
    from .metrics import evaluate

    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = make_model()
        history = fit(model, train, seed=seed, **fit_options)
        for split, test in test_sets.items():
            scores, _ = predict(model, test, flip_average=flip_average)
            result = evaluate(test.labels, scores, 0.5, n_boot=0)
            rows.append({"seed": seed, "split": split, "acc": result["acc"], "auroc": result["auroc"],
                         "train_seconds": history.train_seconds, "epochs": len(history.rows)})
    return pd.DataFrame(rows)
