"""DIRE (Wang et al., ICCV 2023): diffusion reconstruction error, end to end on raw images.

An image is inverted to noise with deterministic DDIM, reconstructed from that noise with the
same model, and the DIRE map is |x - reconstruction|: a diffusion model reconstructs images
from its own generative distribution better than real photos. Maps stay float arrays here and
are never re-encoded lossily, so they carry no file-format trace.

The diffusion model: online, `google/ddpm-cifar10-32` (trained on CIFAR-10, the source of
CIFAKE's REAL class). Offline no pretrained diffusion model exists, so `train_ddpm` trains a
small one on REAL training images within a stated time budget; the checkpoint is kept in
`dfd_utils/checkpoints/` (safetensors, beside `training.json`) so runs do not retrain it.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import ImageSet
from ..detectors import ClassifierDetector, Detector
from ..inference import predict
from ..loaders import to_tensor
from ..metrics import bootstrap_intervals
from ..models import create_model, load_model, save_model
from ..paths import offline, project_root
from ..runtime import autocast, cpu, device as pick_device, precision as resolve_precision
from ..scores import Scores, Threshold, argmax_threshold, choose_sign
from ..training import fit, load_state, save_state
from ..weights import WeightsError

__all__ = ["METHOD", "HUB_MODEL", "CHECKPOINTS", "CHECKPOINT", "RECIPES", "Diffusion", "linear_alphas_cumprod", "diffusion_unet", "denoising_loss", "held_out_real", "train_ddpm",
           "save_diffusion", "load_diffusion", "kept_diffusion", "training_summary", "ddim_timesteps", "ddim_invert", "ddim_reconstruct", "dire", "map_set",
           "mean_map_scores", "step_study", "train_map_cnns", "DireDetector"]

METHOD = "DIRE"
HUB_MODEL = "google/ddpm-cifar10-32"
CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"  # the kept diffusion models, one folder each
CHECKPOINT = CHECKPOINTS / "ddpm_cifake_real"  # the small one `default` uses
# How each kept model is trained (`python -m dfd_utils train-ddpm --name NAME`), fixed in advance:
# the small one as it was trained (no average, no warm-up, fp32); the larger one the size the
# repository allows (<= 25 MB of safetensors), averaged and in bf16 where native, for 3 h of CPU.
RECIPES = {
    "ddpm_cifake_real": {"channels": (32, 64, 64), "layers_per_block": 1, "minutes": 12.0, "batch_size": 64,
                         "lr": 5e-4, "warmup_steps": 1, "ema_decay": 0.0, "precision": "fp32"},
    "ddpm_cifake_real_6m": {"channels": (64, 128, 128), "layers_per_block": 2, "minutes": 180.0, "batch_size": 64,
                            "lr": 4e-4, "warmup_steps": 500, "ema_decay": 0.9995, "precision": "auto"},
}
TRAIN_TIMESTEPS = 1000  # the DDPM noise schedule: linear betas 1e-4 … 0.02, as in Ho et al. 2020


@dataclass
class Diffusion:
    """A noise-predicting UNet, its schedule's cumulative alphas, and where it came from."""

    unet: nn.Module
    alphas_cumprod: torch.Tensor
    source: str
    record: dict
    location: str  # what `load_diffusion` is given to find it again: a folder, or "hub"

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())


def linear_alphas_cumprod(timesteps: int = TRAIN_TIMESTEPS) -> torch.Tensor:
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64), 0).float()


def diffusion_unet(channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1) -> nn.Module:
    """A diffusers `UNet2DModel` for 32x32 RGB without attention: about 1.1M parameters by
    default, 6.1M with channels (64, 128, 128) and 2 layers per block."""
    from diffusers import UNet2DModel

    blocks = len(channels)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=tuple(channels),
                       layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * blocks,
                       up_block_types=("UpBlock2D",) * blocks, norm_num_groups=min(32, min(channels) // 2))


def _eps(unet: nn.Module, x: torch.Tensor, t: int) -> torch.Tensor:
    timestep = torch.full((len(x),), t, device=x.device, dtype=torch.long)
    return unet(x, timestep).sample


def _noised(clean: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    a = alphas[t].view(-1, 1, 1, 1)
    return a.sqrt() * clean + (1 - a).sqrt() * noise


VAL_TIMESTEPS = (50, 175, 300, 425, 550, 675, 800, 925)  # where the held-out denoising loss is measured


@torch.inference_mode()
def denoising_loss(unet: nn.Module, images: np.ndarray, *, timesteps: tuple[int, ...] = VAL_TIMESTEPS,
                   batch_size: int = 256, seed: int = 0) -> float:
    """The DDPM objective (mean squared error of the predicted noise) on held-out uint8 images,
    every image at every one of `timesteps`, with noise fixed by `seed`: the same number for the
    same model every time, so two diffusion models can be compared on the same images."""
    device = next(itertools.chain(unet.parameters(), unet.buffers())).device
    alphas, generator = linear_alphas_cumprod().to(device), torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for begin in range(0, len(images), batch_size):
        clean = to_tensor(images[begin:begin + batch_size]).to(device) * 2 - 1
        for t in timesteps:
            noise = torch.randn(clean.shape, generator=generator).to(device)
            step = torch.full((len(clean),), t, device=device, dtype=torch.long)
            predicted = unet(_noised(clean, step, noise, alphas).contiguous(memory_format=torch.channels_last), step).sample
            total += nn.functional.mse_loss(predicted.float(), noise, reduction="sum").item()
            count += noise.numel()
    return total / count


def train_ddpm(images: np.ndarray, val_images: np.ndarray | None = None, *, minutes: float = 12.0,
               max_steps: int = 1_000_000, batch_size: int = 64, lr: float = 5e-4, warmup_steps: int = 200,
               channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1, ema_decay: float = 0.999,
               precision: str = "fp32", seed: int = 0, device: str | torch.device = "auto",
               checkpoint: str | Path | None = None, checkpoint_minutes: float = 10.0) -> tuple[nn.Module, dict]:
    """Train a DDPM (epsilon prediction, horizontal flips, linear warm-up then a constant rate,
    as in Ho et al. 2020) on uint8 images until `minutes` of training or `max_steps` are spent;
    returns the exponential moving average of the weights (eval mode; what DDPMs sample with)
    and a record of what was done.

    `minutes` counts over every session: with a `checkpoint` file, the state (weights, average,
    optimiser, random streams, progress) is saved every `checkpoint_minutes` and at the end, and
    a later call with the same settings resumes it until the total is spent — so a budget of
    hours survives an interrupted session. The schedule does not depend on the budget, so a
    resumed run trains exactly as an uninterrupted one would. With `val_images`, the record's
    `curve` gives the averaged model's `denoising_loss` on them at every save.
    """
    device = pick_device(str(device))
    used_precision = resolve_precision(precision, device)
    key = {"channels": list(channels), "layers_per_block": layers_per_block, "batch_size": batch_size, "lr": lr,
           "warmup_steps": warmup_steps, "ema_decay": ema_decay, "precision": used_precision, "seed": seed,
           "training_images": len(images), "val_images": 0 if val_images is None else len(val_images)}
    torch.manual_seed(seed)
    unet = diffusion_unet(channels, layers_per_block).to(device, memory_format=torch.channels_last).train()
    average = copy.deepcopy(unet).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    generator = np.random.default_rng(seed)
    progress = {"steps": 0, "train_seconds": 0.0, "loss_ema": None, "curve": [], "sessions": 0}
    if checkpoint is not None and Path(checkpoint).exists():
        progress = _resume_ddpm(Path(checkpoint), key, unet, average, optimizer, generator)
    progress["sessions"] += 1
    alphas = linear_alphas_cumprod().to(device)
    weights, averaged = list(unet.parameters()), list(average.parameters())

    def save() -> None:
        if val_images is not None:
            progress["curve"].append({"steps": progress["steps"], "train_seconds": progress["train_seconds"],
                                      "train_loss_ema": progress["loss_ema"], "val_loss": denoising_loss(average, val_images)})
        if checkpoint is not None:
            _save_ddpm(Path(checkpoint), key, unet, average, optimizer, generator, progress)

    session_start, spent_before = time.perf_counter(), progress["train_seconds"]  # restarted after every save
    while progress["steps"] < max_steps and progress["train_seconds"] < 60 * minutes:
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (progress["steps"] + 1) / warmup_steps)
        batch = to_tensor(images[generator.integers(0, len(images), batch_size)]).to(device) * 2 - 1
        loss = _denoising_step(unet, optimizer, batch, alphas, used_precision)
        decay = min(ema_decay, (1 + progress["steps"]) / (10 + progress["steps"]))  # the average warms up too
        torch._foreach_lerp_(averaged, [w.detach() for w in weights], 1 - decay)
        progress["steps"] += 1
        progress["loss_ema"] = loss if progress["loss_ema"] is None else 0.98 * progress["loss_ema"] + 0.02 * loss
        now = time.perf_counter()
        progress["train_seconds"] = spent_before + now - session_start
        if checkpoint is not None and now - session_start > 60 * checkpoint_minutes:
            save()
            session_start, spent_before = time.perf_counter(), progress["train_seconds"]  # validation is not training time
    save()
    steps, seconds = progress["steps"], progress["train_seconds"]
    record = {**key, "steps": steps, "images_seen": steps * batch_size, "train_seconds": seconds,
              "budget_minutes": minutes, "seconds_per_step": seconds / max(steps, 1),
              "final_loss_ema": progress["loss_ema"], "sessions": progress["sessions"], "curve": progress["curve"],
              "val_loss": progress["curve"][-1]["val_loss"] if progress["curve"] else None,
              "weights": f"exponential moving average (decay {ema_decay})" if ema_decay else "the last weights",
              "params": sum(p.numel() for p in unet.parameters()), "device": str(device), "cpu": cpu()["model"],
              "schedule": f"linear betas 1e-4..0.02, {TRAIN_TIMESTEPS} steps"}
    return average, record


def _denoising_step(unet: nn.Module, optimizer, batch: torch.Tensor, alphas: torch.Tensor, precision: str) -> float:
    """One optimisation step of the DDPM objective on a batch in [-1, 1] (flipped at random)."""
    batch = torch.where(torch.rand(len(batch), 1, 1, 1, device=batch.device) < 0.5, batch.flip(3), batch)
    t = torch.randint(0, TRAIN_TIMESTEPS, (len(batch),), device=batch.device)
    noise = torch.randn_like(batch)
    with autocast(precision, batch.device):
        predicted = unet(_noised(batch, t, noise, alphas).contiguous(memory_format=torch.channels_last), t).sample
    loss = nn.functional.mse_loss(predicted.float(), noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _save_ddpm(path: Path, key: dict, unet, average, optimizer, generator, progress: dict) -> None:
    save_state(path, {"key": key, "progress": progress, "unet": unet.state_dict(), "average": average.state_dict(),
                      "optimizer": optimizer.state_dict(), "numpy": generator.bit_generator.state,
                      "torch": torch.get_rng_state()})


def _resume_ddpm(path: Path, key: dict, unet, average, optimizer, generator) -> dict:
    """Load an interrupted DDPM training into its parts; returns its progress."""
    state = load_state(path, key)
    unet.load_state_dict(state["unet"])
    average.load_state_dict(state["average"])
    optimizer.load_state_dict(state["optimizer"])
    generator.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    progress = state["progress"]
    print(f"resumed DDPM training from {path}: {progress['steps']:,} steps, {progress['train_seconds'] / 60:.1f} min done")
    return progress


def held_out_real(train: ImageSet, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The REAL training images split into the DDPM's own training images and `count` held out
    (a seeded choice) on which `denoising_loss` is measured."""
    real = train.images[train.labels == 0]
    order = np.random.default_rng(seed).permutation(len(real))
    return real[np.sort(order[count:])], real[np.sort(order[:count])]


def save_diffusion(unet: nn.Module, record: dict, folder: Path = CHECKPOINT) -> Path:
    """The UNet as safetensors (diffusers layout) and `training.json` beside it."""
    folder = Path(folder)
    unet.save_pretrained(folder, safe_serialization=True)
    (folder / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def load_diffusion(folder: Path | None = CHECKPOINT, device: str | torch.device = "auto") -> Diffusion:
    """A kept diffusion model (a folder `save_diffusion` wrote), or with `folder=None` the hub's
    `google/ddpm-cifar10-32` (online only). Never one in place of the other: a missing folder is
    an error that says how to train it."""
    from diffusers import UNet2DModel

    if folder is None:
        if offline():
            raise WeightsError(f"{HUB_MODEL} cannot be fetched offline; use a kept model ({', '.join(RECIPES)})")
        unet, record, source, location = UNet2DModel.from_pretrained(HUB_MODEL), {}, f"hub: {HUB_MODEL}", "hub"
    elif (Path(folder) / "config.json").exists():
        folder = Path(folder)
        unet = UNet2DModel.from_pretrained(folder, low_cpu_mem_usage=False)
        record = json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else {}
        source, location = f"project: {_relative(folder)} (trained on CIFAKE REAL train images)", str(folder)
    else:
        how = (f"`python -m dfd_utils train-ddpm --name {Path(folder).name}` trains it (resumable)"
               if Path(folder).name in RECIPES else "`python -m dfd_utils train-ddpm` or notebook 05 with RETRAIN=True trains one")
        raise WeightsError(f"no diffusion model in {folder}: {how}")
    unet = unet.to(pick_device(str(device)), memory_format=torch.channels_last).eval().requires_grad_(False)
    return Diffusion(unet, linear_alphas_cumprod(), source, record, location)


def kept_diffusion(name: str) -> Path | None:
    """Where notebook 05's `DIFFUSION` parameter points: a kept model's folder, or None for "hub"."""
    if name == "hub":
        return None
    if name not in RECIPES:
        raise ValueError(f"unknown diffusion model {name!r}: choose one of {', '.join(RECIPES)} or 'hub'")
    return CHECKPOINTS / name


def training_summary(diffusion: Diffusion) -> str:
    """One line on how the model was trained, from its record (older records lack some fields)."""
    record = diffusion.record
    if not record:
        return f"{diffusion.params / 1e6:.1f}M parameters; no training record (not trained by this project)"
    parts = [f"{diffusion.params / 1e6:.1f}M parameters", f"{record['steps']:,} steps of {record['batch_size']}",
             f"{record['train_seconds'] / 60:.1f} min on {record.get('cpu', record['device'])}",
             f"precision {record.get('precision', 'fp32')}", record.get("weights", "the last weights")]
    if record.get("val_loss") is not None:
        parts.append(f"held-out denoising loss {record['val_loss']:.4f}")
    return "; ".join(parts)


def _relative(folder: Path) -> str:
    """A path inside the checkout as it is spelled from the project root (records stay portable)."""
    try:
        return str(Path(folder).resolve().relative_to(project_root()))
    except ValueError:
        return str(folder)


def ddim_timesteps(steps: int, total: int = TRAIN_TIMESTEPS) -> list[int]:
    """steps + 1 evenly spaced timesteps from 0 to total - 1 (each direction evaluates the UNet `steps` times)."""
    if steps < 1:
        raise ValueError(f"DDIM needs at least one step, not {steps}")
    return np.round(np.linspace(0, total - 1, steps + 1)).astype(int).tolist()


def _ddim_move(x: torch.Tensor, eps: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from noise level a_from to a_to along the predicted x0."""
    x0 = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
    return a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps


@torch.inference_mode()
def ddim_invert(diffusion: Diffusion, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Images in [-1, 1] → the noise DDIM maps them to (running the sampler backwards)."""
    ts, a = ddim_timesteps(steps), diffusion.alphas_cumprod.to(x.device)
    for t_from, t_to in zip(ts[:-1], ts[1:]):
        x = _ddim_move(x, _eps(diffusion.unet, x, t_from), a[t_from], a[t_to])
    return x


@torch.inference_mode()
def ddim_reconstruct(diffusion: Diffusion, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Noise → images in [-1, 1], with the same timesteps as `ddim_invert`."""
    ts, a = ddim_timesteps(steps), diffusion.alphas_cumprod.to(noise.device)
    x = noise
    for t_from, t_to in zip(ts[:0:-1], ts[-2::-1]):
        x = _ddim_move(x, _eps(diffusion.unet, x, t_from), a[t_from], a[t_to])
    return x


def dire(diffusion: Diffusion, images: np.ndarray, steps: int = 20, batch_size: int = 256,
         device: str | torch.device = "auto") -> tuple[np.ndarray, np.ndarray, float]:
    """Reconstructions and DIRE maps |x - reconstruction| as float32 (N, H, W, 3) in [0, 1],
    and the seconds per image spent (inversion + reconstruction)."""
    device = pick_device(str(device))
    reconstructions = []
    start = time.perf_counter()
    for begin in range(0, len(images), batch_size):
        x = (to_tensor(images[begin:begin + batch_size]).to(device) * 2 - 1).contiguous(memory_format=torch.channels_last)
        y = ddim_reconstruct(diffusion, ddim_invert(diffusion, x, steps), steps)
        reconstructions.append(((y.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).float().cpu().numpy())
    seconds = (time.perf_counter() - start) / max(len(images), 1)
    reconstructions = np.concatenate(reconstructions) if reconstructions else np.zeros((0, *images.shape[1:]), np.float32)
    return reconstructions, np.abs(images.astype(np.float32) / 255 - reconstructions), seconds


def map_set(image_set, maps: np.ndarray, name: str):
    """DIRE maps as an `ImageSet` for the CNN detector: |x - reconstruction| x 255, rounded to
    uint8 — the official DIRE stores its maps the same way, as lossless PNG."""
    return dataclasses.replace(image_set, images=_as_uint8(maps), name=name)


def mean_map_scores(test_maps: np.ndarray, test: ImageSet, train_maps: np.ndarray, train: ImageSet, steps: int,
                    threshold_of, seconds_per_image: float, pretrained: str, split: str = "test") -> Scores:
    """The training-free score: the mean of the DIRE map, signed so that higher means FAKE on
    the labelled training images (DIRE predicts that FAKE reconstructs better, i.e. a *lower*
    mean; the sign checks it). `threshold_of(signed REAL training scores)` gives the threshold."""
    train_mean, test_mean = train_maps.mean((1, 2, 3)), test_maps.mean((1, 2, 3))
    sign = choose_sign(train.labels, train_mean)
    threshold: Threshold = threshold_of(sign * train_mean[train.labels == 0])
    return Scores(METHOD, f"mean map · {steps} steps", split, test.ids, sign * test_mean, threshold, test.labels,
                  infer_images_per_s=1 / seconds_per_image, pretrained=pretrained,
                  extra={"sign": sign, "ddim_steps": steps})


def step_study(diffusion: Diffusion, images: np.ndarray, labels: np.ndarray, train_images: np.ndarray,
               train_labels: np.ndarray, steps: list[int], batch_size: int = 256, n_boot: int = 1000) -> pd.DataFrame:
    """Separation of the training-free score (signed mean DIRE, the sign chosen on the training
    images for each number of steps) with a 95% bootstrap interval, and seconds per image."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = []
    for count in steps:
        sign = choose_sign(train_labels, dire(diffusion, train_images, count, batch_size)[1].mean((1, 2, 3)))
        _, maps, seconds = dire(diffusion, images, count, batch_size)
        score = sign * maps.mean((1, 2, 3))
        interval = bootstrap_intervals(labels, score, float(np.median(score)), n_boot)
        rows.append({"steps": count, "n": len(labels), "sign": sign, "seconds_per_image": seconds,
                     "auroc_mean_dire": roc_auc_score(labels, score), "auroc_ci_low": interval["auroc_ci_low"],
                     "auroc_ci_high": interval["auroc_ci_high"], "ap_mean_dire": average_precision_score(labels, score)})
    return pd.DataFrame(rows)


def train_map_cnns(train: ImageSet, test: ImageSet, train_maps: np.ndarray, test_maps: np.ndarray,
                   diffusion: Diffusion, steps: int, map_seconds_per_image: float, *, width: int = 16,
                   name_prefix: str = "dire", **fit_options) -> dict[str, tuple[Scores, Detector]]:
    """The paper's detector (a `detector_cnn` on DIRE maps) and its control (the same CNN, same
    budget, on the raw images), each trained and scored on the test images.
    Returns name → (test `Scores`, detector); the map CNN's detector computes maps itself, so
    its images/s is end to end: `map_seconds_per_image` (computing the map) plus the CNN's time."""
    variants = {"DIRE maps": (map_set(train, train_maps, "train DIRE maps"), map_set(test, test_maps, "test DIRE maps")),
                "raw images (control)": (train, test)}
    results = {}
    for name, (fit_set, test_set) in variants.items():
        model = create_model("detector_cnn", width=width)
        history = fit(model, fit_set, **fit_options)
        on_maps = name == "DIRE maps"
        common = {"method": METHOD if on_maps else "DIRE control", "variant": f"CNN on {name}",
                  "pretrained": diffusion.source if on_maps else "none", "notebook": "05_dire"}
        scoring = ClassifierDetector(model, name=f"{name_prefix}-control", **common)
        scores = scoring.score_set(test_set, "test", **history.cost)
        if on_maps:
            scores = scores.replace(infer_images_per_s=1 / (map_seconds_per_image + 1 / scores.infer_images_per_s))
        detector = DireDetector(diffusion, steps, model, name=name_prefix, **common) if on_maps else scoring
        results[name] = (scores.replace(ids=test.ids), detector)
    return results


class DireDetector(Detector):
    """DIRE end to end: invert and reconstruct each image with the diffusion model, then score
    its DIRE map with the CNN trained on maps. 32x32 inputs (the diffusion model's size)."""

    def __init__(self, diffusion: Diffusion, steps: int, classifier: nn.Module, *, threshold: Threshold | None = None,
                 policy=None, batch_size: int = 256, **common):
        from ..detectors import InputPolicy

        super().__init__(threshold=threshold or argmax_threshold(), policy=policy or InputPolicy(32), **common)
        self.diffusion, self.steps, self.classifier, self.batch_size = diffusion, steps, classifier.eval(), batch_size

    def score(self, images: np.ndarray) -> np.ndarray:
        _, maps, _ = dire(self.diffusion, images, self.steps, self.batch_size)
        return predict(self.classifier, _as_uint8(maps))[0]

    def _options(self) -> dict:
        return {"steps": self.steps, "diffusion": _relative(Path(self.diffusion.location))
                if self.diffusion.location != "hub" else "hub", "batch_size": self.batch_size}

    def _save_parts(self, folder: Path) -> None:
        save_model(self.classifier, folder / "map_cnn")

    @classmethod
    def _load(cls, folder: Path, spec: dict, common: dict, device: str) -> "DireDetector":
        options = spec["options"]
        where = options["diffusion"]
        location = Path(where) if Path(where).is_absolute() else project_root() / where
        diffusion = load_diffusion(None if where == "hub" else location, device)
        return cls(diffusion, options["steps"], load_model(folder / "map_cnn", device),
                   batch_size=options["batch_size"], **common)


def _as_uint8(maps: np.ndarray) -> np.ndarray:
    return np.clip(np.round(maps * 255), 0, 255).astype(np.uint8)
