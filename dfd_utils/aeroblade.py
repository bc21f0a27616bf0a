"""AEROBLADE (Ricker et al., CVPR 2024): training-free detection by autoencoder reconstruction.

An image a latent diffusion model generated lies on its autoencoder's output manifold, so the
autoencoder reconstructs it almost perfectly; a real photo it does not. The score is the LPIPS
distance between the image and its reconstruction, minimised over several autoencoders (the
paper's best distance: the second LPIPS-VGG layer). Here every LPIPS layer, their sum, and
MSE/PSNR are measured at once, so one pass answers "which distance, which autoencoder".

Conventions: distances are low for FAKE; `score` turns them into "higher = more fake".
Images are never resized unless `size` is given (bicubic with antialiasing, stated in records).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .loaders import to_tensor
from .metrics import tpr_at_fpr
from .models import autoencoders, load_model
from .paths import offline, results_dir
from .runtime import device as pick_device
from .weights import WeightsError, find, load_state, require

__all__ = ["Autoencoder", "HUB_AUTOENCODERS", "available_autoencoders", "load_autoencoder", "load_autoencoders", "load_lpips",
           "lpips_maps", "resize", "measure", "Measured", "score", "separation_table", "log_scores",
           "resolution_study", "example_tiles"]

# name → (hub id, subfolder, diffusers class): the paper's autoencoders, loaded when online
HUB_AUTOENCODERS = {
    "sd1-vae": ("CompVis/stable-diffusion-v1-1", "vae", "AutoencoderKL"),
    "sd2-vae": ("stabilityai/stable-diffusion-2-base", "vae", "AutoencoderKL"),
    "kandinsky21-movq": ("kandinsky-community/kandinsky-2-1", "movq", "VQModel"),
    "taesd": ("madebyollin/taesd", None, "AutoencoderTiny"),
}
LOCAL_AUTOENCODERS = ("taef2", "v1")
V1_RUN = "01_autoencoder"  # notebook 01's record folder, which holds the V1 model
SQUEEZE_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 6, 12: 7}


@dataclass
class Autoencoder:
    """A reconstruction module ([0, 1] → [0, 1]) and where its weights came from."""

    name: str
    module: nn.Module
    source: str
    fixed_size: int | None = None  # the only input size it accepts, or None for any multiple of 8


class _DiffusersAutoencoder(nn.Module):
    """Wrap a diffusers VAE / VQ / tiny autoencoder ([-1, 1] convention) as [0, 1] → [0, 1].
    The latent is the distribution's mode, so reconstructions are deterministic."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.model.encode(2 * x - 1)
        latent = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
        return ((self.model.decode(latent).sample + 1) / 2).clamp(0, 1)


def _load_taef2() -> Autoencoder:
    model = autoencoders.TAEF2()
    for part in ("encoder", "decoder"):
        path = require(f"taef2/taef2_{part}.pth", "TAEF2 weights", "https://github.com/madebyollin/taesd")
        getattr(model, part).load_state_dict(load_state(path), strict=True)
    return Autoencoder("taef2", model, f"local: {path.parent}")


def _load_v1(profile: str) -> Autoencoder:
    folder = results_dir(profile) / V1_RUN / "model"
    model = load_model(folder)  # a clear error if notebook 01 has not been run for this profile
    return Autoencoder("v1", model, f"project: {folder}", fixed_size=model.image_size)


def _load_hub(name: str) -> Autoencoder:
    hub_id, subfolder, class_name = HUB_AUTOENCODERS[name]
    if offline():
        raise WeightsError(f"autoencoder {name!r} comes from the hub ({hub_id}) and this run is offline; "
                           "offline, use 'taef2' and 'v1', or unset DFD_OFFLINE/HF_HUB_OFFLINE")
    import diffusers

    model = getattr(diffusers, class_name).from_pretrained(hub_id, **({"subfolder": subfolder} if subfolder else {}))
    return Autoencoder(name, _DiffusersAutoencoder(model), f"hub: {hub_id}" + (f"/{subfolder}" if subfolder else ""))


def available_autoencoders(profile: str) -> list[str]:
    """What `AUTOENCODERS = "auto"` means here: the paper's hub models when online, TAEF2 when
    its weights are local, and V1 when notebook 01 has saved it for this profile."""
    names = [] if offline() else list(HUB_AUTOENCODERS)
    if find("taef2/taef2_encoder.pth"):
        names.append("taef2")
    if (results_dir(profile) / V1_RUN / "model" / "model.json").exists():
        names.append("v1")
    return names


def _known() -> tuple[str, ...]:
    return (*LOCAL_AUTOENCODERS, *HUB_AUTOENCODERS)


def load_autoencoder(name: str, profile: str = "default", device: str | torch.device = "auto") -> Autoencoder:
    """One of `taef2`, `v1` (notebook 01's, for `profile`) or a `HUB_AUTOENCODERS` name, in eval mode."""
    if name == "taef2":
        autoencoder = _load_taef2()
    elif name == "v1":
        autoencoder = _load_v1(profile)
    elif name in HUB_AUTOENCODERS:
        autoencoder = _load_hub(name)
    else:
        raise ValueError(f"unknown autoencoder {name!r}; known: {', '.join(_known())}")
    autoencoder.module.to(pick_device(str(device))).eval().requires_grad_(False)
    return autoencoder


def load_autoencoders(spec: str, profile: str = "default", device: str | torch.device = "auto") -> list[Autoencoder]:
    """`spec` is "auto" or comma-separated names. Explicit names must all load; with "auto",
    one that cannot be fetched (e.g. a hub model without network) is skipped with a printed note."""
    if spec != "auto":
        names = [name.strip() for name in spec.split(",")]
        unknown = [n for n in names if n not in _known()]
        if unknown:  # before loading anything, so a typo costs no time
            raise ValueError(f"unknown autoencoder(s) {unknown}; known: {', '.join(_known())}")
        return [load_autoencoder(name, profile, device) for name in names]
    loaded = []
    for name in available_autoencoders(profile):
        try:
            loaded.append(load_autoencoder(name, profile, device))
        except (OSError, WeightsError) as error:
            print(f"NOTE autoencoder {name} skipped: {type(error).__name__}: {error}")
    if not loaded:
        raise WeightsError("no autoencoder is available: put TAEF2 in ../shared/weights/taef2, run notebook 01, or go online")
    return loaded


# --------------------------------------------------------------------------- LPIPS
def _load_squeeze(metric: nn.Module) -> str:
    path = find("lpips_squeeze/squeezenet1_1_features.pth")
    state = {f"slice{SQUEEZE_SLICES[int(key.split('.')[0])]}.{key}": value for key, value in load_state(path).items()}
    metric.net.load_state_dict(state, strict=True)  # every backbone key, or an error
    return f"local: {path}"


def load_lpips(net: str = "auto", device: str | torch.device = "auto") -> tuple[nn.Module, str]:
    """LPIPS with the `net` backbone and where it came from. `auto`: VGG (the paper's) online —
    or, if its download fails, SqueezeNet with a printed note — and the local SqueezeNet
    offline. Offline nothing is downloaded, and a backbone that is not local is an error, never
    a silently random one. The returned source string is what a run records."""
    import lpips

    if net == "auto":
        try:
            return load_lpips("squeeze" if offline() else "vgg", device)
        except WeightsError as error:
            print(f"NOTE LPIPS-VGG unavailable ({error}); using the local LPIPS-SqueezeNet instead")
            return load_lpips("squeeze", device)
    local_squeeze = net == "squeeze" and find("lpips_squeeze/squeezenet1_1_features.pth") is not None
    if offline() and not local_squeeze:
        raise WeightsError(f"LPIPS-{net} needs its ImageNet backbone from torchvision's hub and this run is "
                           "offline; use net='squeeze' with ../shared/weights/lpips_squeeze "
                           "(or DFD_WEIGHTS), or go online")
    try:
        with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            metric = lpips.LPIPS(net=net, pnet_rand=local_squeeze, verbose=False)
    except OSError as error:  # URLError and friends: the download failed
        raise WeightsError(f"LPIPS-{net}: downloading its backbone failed ({error}); "
                           "set DFD_OFFLINE=1 to use local copies only") from error
    source = _load_squeeze(metric) if local_squeeze else f"torchvision hub ({net})"
    return metric.to(pick_device(str(device))).eval().requires_grad_(False), f"lpips-{net} ({source})"


def lpips_maps(metric: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per-layer LPIPS maps (N, h_l, w_l) for images in [0, 1]; each map's spatial mean is that
    layer's LPIPS distance, and their sum over layers is the usual LPIPS value."""
    from lpips import normalize_tensor

    features_x = metric.net(metric.scaling_layer(2 * x - 1))
    features_y = metric.net(metric.scaling_layer(2 * y - 1))
    return [lin((normalize_tensor(fx) - normalize_tensor(fy)) ** 2)[:, 0]
            for lin, fx, fy in zip(metric.lins, features_x, features_y)]


# --------------------------------------------------------------------------- measuring
def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """The one resizing policy: bicubic with antialiasing to size x size, clamped to [0, 1]."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


@dataclass
class Measured:
    """Distances for every (autoencoder, image), plus examples for figures and timings.

    `table` columns: autoencoder, image (position in the input), mse, psnr, lpips (sum of
    layers), lpips_1 … lpips_L. `maps[ae]` is (K, L, H, W): per-layer maps of the first K
    images, upsampled to the image size; `reconstructions[ae]` is (K, H, W, 3) in [0, 1].
    """

    table: pd.DataFrame
    size: int
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    reconstructions: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def images_per_s(self) -> pd.DataFrame:
        n = self.table["image"].nunique()
        return pd.DataFrame([{"autoencoder": ae, "size": self.size, "images": n,
                              "reconstruct_images_per_s": n / s["reconstruct"], "lpips_images_per_s": n / s["lpips"]}
                             for ae, s in self.seconds.items()])


def _timed(function, *args):
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


@torch.inference_mode()
def measure(images: np.ndarray, autoencoders_: list[Autoencoder], metric: nn.Module, *, size: int | None = None,
            batch_size: int = 64, keep: int = 0, device: str | torch.device = "auto") -> Measured:
    """Reconstruct uint8 (N, H, W, 3) images through each autoencoder and measure every distance."""
    device = pick_device(str(device))
    if len(images) == 0:
        raise ValueError("no images to measure")
    side = size or images.shape[1]
    result = Measured(pd.DataFrame(), side)
    rows = []
    for ae in autoencoders_:
        if ae.fixed_size is not None and ae.fixed_size != side:
            raise ValueError(f"autoencoder {ae.name!r} only takes {ae.fixed_size}x{ae.fixed_size} images, not {side}")
        seconds = {"reconstruct": 0.0, "lpips": 0.0}
        kept_maps, kept_recs = [], []
        for begin in range(0, len(images), batch_size):
            x = resize(to_tensor(images[begin:begin + batch_size]).to(device), size)
            y, t_rec = _timed(ae.module, x)
            maps, t_lpips = _timed(lpips_maps, metric, x, y)
            seconds["reconstruct"] += t_rec
            seconds["lpips"] += t_lpips
            layer_distances = torch.stack([m.mean((1, 2)) for m in maps], 1).cpu().numpy()
            mse = ((x - y) ** 2).mean((1, 2, 3)).cpu().numpy()
            for offset in range(len(x)):
                rows.append({"autoencoder": ae.name, "image": begin + offset, "mse": mse[offset],
                             "psnr": -10 * np.log10(max(mse[offset], 1e-12)), "lpips": layer_distances[offset].sum(),
                             **{f"lpips_{k + 1}": d for k, d in enumerate(layer_distances[offset])}})
            if begin < keep:
                take = slice(0, keep - begin)
                kept_maps.append(torch.stack([F.interpolate(m[take, None], size=x.shape[-2:], mode="bilinear")[:, 0]
                                              for m in maps], 1).cpu().numpy())
                kept_recs.append(y[take].permute(0, 2, 3, 1).cpu().numpy())
        result.seconds[ae.name] = seconds
        if keep:
            result.maps[ae.name], result.reconstructions[ae.name] = np.concatenate(kept_maps), np.concatenate(kept_recs)
    result.table = pd.DataFrame(rows)
    return result


def score(table: pd.DataFrame, distance: str = "lpips_2", autoencoders_: list[str] | None = None) -> np.ndarray:
    """AEROBLADE's score per image: minus the minimum `distance` over the autoencoders (higher =
    more fake). `psnr` is a similarity, so for it the maximum is taken and not negated."""
    chosen = table if autoencoders_ is None else table[table["autoencoder"].isin(autoencoders_)]
    if chosen.empty:
        raise ValueError(f"no measurements for autoencoders {autoencoders_}")
    wide = chosen.pivot(index="image", columns="autoencoder", values=distance)
    return wide.max(axis=1).to_numpy() if distance == "psnr" else -wide.min(axis=1).to_numpy()


def _groups(table: pd.DataFrame, combined_name) -> dict[str, list[str]]:
    """Each autoencoder alone, plus all of them together (named by `combined_name(names)`) when there are several."""
    names = list(dict.fromkeys(table["autoencoder"]))
    return {name: [name] for name in names} | ({combined_name(names): names} if len(names) > 1 else {})


def separation_table(table: pd.DataFrame, labels: np.ndarray, distances: list[str] | None = None) -> pd.DataFrame:
    """AUROC, AP and TPR at 5% FPR for every autoencoder alone and for the minimum over all,
    and every distance: the per-autoencoder and per-layer tables in one."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    distances = distances or [c for c in table.columns if c not in ("autoencoder", "image")]
    groups = _groups(table, lambda names: "min over all")
    rows = []
    for group, members in groups.items():
        for distance in distances:
            s = score(table, distance, members)
            rows.append({"autoencoder": group, "distance": distance, "auroc": roc_auc_score(labels, s),
                         "ap": average_precision_score(labels, s), "tpr_at_fpr_5pct": tpr_at_fpr(labels, s, 0.05)})
    return pd.DataFrame(rows)


def log_scores(run, test: Measured, reference: Measured, labels: np.ndarray, ids: np.ndarray, distance: str,
               target_fpr: float, pretrained: str, n_boot: int = 1000) -> pd.DataFrame:
    """The full metrics record for each autoencoder alone and for the minimum over all, with the
    threshold calibrated on REAL reference images only (at most `target_fpr` of them flagged)."""
    from .metrics import threshold_at_fpr

    groups = _groups(test.table, lambda names: "min over " + "+".join(names))
    rows = []
    for group, members in groups.items():
        scores = score(test.table, distance, members)
        threshold = threshold_at_fpr(score(reference.table, distance, members), target_fpr)
        seconds = sum(test.seconds[m]["reconstruct"] + test.seconds[m]["lpips"] for m in members)
        variant = f"{group} · {distance}"
        rows.append(run.log_metrics("AEROBLADE", variant, "test", labels, scores, threshold,
                                    infer_images_per_s=len(labels) / seconds, pretrained=pretrained, n_boot=n_boot,
                                    distance=distance, autoencoders=members, target_fpr=target_fpr, size=test.size))
        run.save_predictions(ids, labels, scores, variant)
    return pd.DataFrame(rows)


def resolution_study(images: np.ndarray, labels: np.ndarray, autoencoders_: list[Autoencoder], metric: nn.Module,
                     sizes: list[int], distances: list[str], batch_size: int = 64) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separation (AUROC/AP/TPR) and images per second at each side length; autoencoders with a
    fixed input size take part only at that size."""
    separation, speed = [], []
    for size in sizes:
        usable = [ae for ae in autoencoders_ if ae.fixed_size in (None, size)]
        measured = measure(images, usable, metric, size=size, batch_size=batch_size)
        separation.append(separation_table(measured.table, labels, distances).assign(size=size))
        speed.append(measured.images_per_s())
    return pd.concat(separation, ignore_index=True), pd.concat(speed, ignore_index=True)


def example_tiles(images: np.ndarray, labels: np.ndarray, examples: Measured, autoencoder: str,
                  distance: str = "lpips_2") -> tuple[list[np.ndarray], list[str]]:
    """Tiles for `plots.image_grid`, one row of four per kept image: input, reconstruction,
    squared-error map and the `distance` layer's LPIPS map (per image, on its own scale)."""
    layer = int(distance.split("_")[1]) - 1 if distance.startswith("lpips_") else None
    shown = distance if layer is not None else "lpips"  # MSE/PSNR scores still get the full LPIPS map
    rows = examples.table[examples.table["autoencoder"] == autoencoder].set_index("image")
    tiles, titles = [], []
    for i, reconstruction in enumerate(examples.reconstructions[autoencoder]):
        image = images[i].astype(np.float32) / 255
        lpips_map = examples.maps[autoencoder][i].sum(0) if layer is None else examples.maps[autoencoder][i][layer]
        tiles += [image, reconstruction, ((image - reconstruction) ** 2).mean(2), lpips_map]
        titles += [("REAL", "FAKE")[labels[i]], f"recon {rows.loc[i, 'psnr']:.1f} dB", "squared error",
                   f"{shown} {rows.loc[i, shown]:.3g}"]
    return tiles, titles
