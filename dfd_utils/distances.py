"""Reconstruction distances, shared by every reconstruction method (V1, AEROBLADE, …).

An image goes through one or more autoencoders ([0, 1] → [0, 1]); its distance to each
reconstruction is measured as MSE, PSNR and LPIPS — every LPIPS layer and their sum — in one
pass (`measure`). `ReconstructionDetector` turns the best reconstruction's distance into a
fake-score with a sign fixed on training data, so V1 (error high = fake?) and AEROBLADE (error
low = fake, the paper's claim) are one kind of detector with two recorded choices.

LPIPS comes with its weights resolved offline-first (`load_lpips`), the pretrained
autoencoders likewise (`load_autoencoders`): TAEF2 from local weights, the Stable Diffusion
VAEs from the hub when online. Images are never resized unless `size` is given (bicubic with
antialiasing, `resize`).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .detectors import Detector
from .loaders import to_tensor
from .models import autoencoders as architectures
from .models import load_model, save_model
from .paths import offline
from .runtime import device as pick_device
from .weights import WeightsError, find, load_state, require

__all__ = ["Autoencoder", "HUB_AUTOENCODERS", "available_autoencoders", "load_autoencoder", "load_autoencoders",
           "load_lpips", "lpips_maps", "resize", "measure", "Measured", "best_reconstruction", "DISTANCES",
           "ReconstructionDetector", "example_tiles"]

# name → (hub id, subfolder, diffusers class): AEROBLADE's autoencoders, loaded when online
HUB_AUTOENCODERS = {
    "sd1-vae": ("CompVis/stable-diffusion-v1-1", "vae", "AutoencoderKL"),
    "sd2-vae": ("stabilityai/stable-diffusion-2-base", "vae", "AutoencoderKL"),
    "kandinsky21-movq": ("kandinsky-community/kandinsky-2-1", "movq", "VQModel"),
    "taesd": ("madebyollin/taesd", None, "AutoencoderTiny"),
}
SQUEEZE_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 6, 12: 7}
DISTANCES = ("mse", "psnr", "lpips")  # plus lpips_1 … lpips_L, one per LPIPS layer


@dataclass
class Autoencoder:
    """A reconstruction module ([0, 1] → [0, 1]) and where its weights came from."""

    name: str
    module: nn.Module
    source: str
    fixed_size: int | None = None  # the only input size it accepts, or None for any multiple of 8

    def frozen(self, device: str | torch.device = "auto") -> "Autoencoder":
        self.module.to(pick_device(str(device))).eval().requires_grad_(False)
        return self


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
    model = architectures.TAEF2()
    for part in ("encoder", "decoder"):
        path = require(f"taef2/taef2_{part}.pth", "TAEF2 weights", "https://github.com/madebyollin/taesd")
        getattr(model, part).load_state_dict(load_state(path), strict=True)
    return Autoencoder("taef2", model, f"local: {path.parent}")


def _load_hub(name: str) -> Autoencoder:
    hub_id, subfolder, class_name = HUB_AUTOENCODERS[name]
    if offline():
        raise WeightsError(f"autoencoder {name!r} comes from the hub ({hub_id}) and this run is offline; "
                           "offline, use 'taef2' and 'v1', or unset DFD_OFFLINE/HF_HUB_OFFLINE")
    import diffusers

    model = getattr(diffusers, class_name).from_pretrained(hub_id, **({"subfolder": subfolder} if subfolder else {}))
    return Autoencoder(name, _DiffusersAutoencoder(model), f"hub: {hub_id}" + (f"/{subfolder}" if subfolder else ""))


def available_autoencoders() -> list[str]:
    """The pretrained autoencoders reachable here: the hub models when online, TAEF2 when its
    weights are local."""
    names = [] if offline() else list(HUB_AUTOENCODERS)
    return names + (["taef2"] if find("taef2/taef2_encoder.pth") else [])


def load_autoencoder(name: str, device: str | torch.device = "auto") -> Autoencoder:
    """`taef2` (local weights) or a `HUB_AUTOENCODERS` name, in eval mode and frozen."""
    if name == "taef2":
        autoencoder = _load_taef2()
    elif name in HUB_AUTOENCODERS:
        autoencoder = _load_hub(name)
    else:
        raise ValueError(f"unknown autoencoder {name!r}; known: taef2, {', '.join(HUB_AUTOENCODERS)}")
    return autoencoder.frozen(device)


def load_autoencoders(spec: str, project: dict[str, Autoencoder] | None = None,
                      device: str | torch.device = "auto") -> list[Autoencoder]:
    """`spec` is "auto" or comma-separated names of pretrained autoencoders (`load_autoencoder`)
    and of the `project` ones the caller trained (e.g. {"v1": …}). Explicit names must all
    load; with "auto", every project autoencoder plus every reachable pretrained one, and one
    that cannot be fetched (a hub model without network) is skipped with a printed note."""
    project = project or {}
    known = ("taef2", *HUB_AUTOENCODERS, *project)
    if spec != "auto":
        names = [name.strip() for name in spec.split(",")]
        unknown = [n for n in names if n not in known]
        if unknown:  # before loading anything, so a typo costs no time
            raise ValueError(f"unknown autoencoder(s) {unknown}; known: {', '.join(known)}")
        return [project[n].frozen(device) if n in project else load_autoencoder(n, device) for n in names]
    loaded = []
    for name in available_autoencoders():
        try:
            loaded.append(load_autoencoder(name, device))
        except (OSError, WeightsError) as error:
            print(f"NOTE autoencoder {name} skipped: {type(error).__name__}: {error}")
    loaded += [autoencoder.frozen(device) for autoencoder in project.values()]
    if not loaded:
        raise WeightsError("no autoencoder is available: put TAEF2 in ../shared/weights/taef2, train one, or go online")
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
                              "reconstruct_images_per_s": n / max(s["reconstruct"], 1e-9),
                              "lpips_images_per_s": n / s["lpips"] if s["lpips"] else None}
                             for ae, s in self.seconds.items()])

    def only(self, names: list[str]) -> "Measured":
        """The measurements of the autoencoders `names` alone (no need to measure them again)."""
        missing = set(names) - set(self.seconds)
        if missing:
            raise ValueError(f"autoencoders {sorted(missing)} were not measured (measured: {sorted(self.seconds)})")
        return Measured(self.table[self.table["autoencoder"].isin(names)].reset_index(drop=True), self.size,
                        {n: m for n, m in self.maps.items() if n in names},
                        {n: r for n, r in self.reconstructions.items() if n in names},
                        {n: self.seconds[n] for n in names})

    @staticmethod
    def concat(parts: list["Measured"]) -> "Measured":
        """Consecutive chunks of one image set measured at one size, as if measured at once:
        image positions run on across chunks and timings add up (tables and timings only)."""
        if len({part.size for part in parts}) != 1 or any(part.maps or part.reconstructions for part in parts):
            raise ValueError("only chunks measured at one size, without kept examples, can be joined")
        offsets = np.cumsum([0] + [part.table["image"].nunique() for part in parts[:-1]])
        tables = [part.table.assign(image=part.table["image"] + offset) for part, offset in zip(parts, offsets)]
        names = list(parts[0].seconds)
        table = pd.concat([t[t["autoencoder"] == name] for name in names for t in tables], ignore_index=True)
        seconds = {name: {k: sum(part.seconds[name][k] for part in parts) for k in parts[0].seconds[name]}
                   for name in names}
        return Measured(table, parts[0].size, seconds=seconds)


def _timed(function, *args):
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


@torch.inference_mode()
def measure(images: np.ndarray, autoencoders: list[Autoencoder], metric: nn.Module | None, *, size: int | None = None,
            batch_size: int = 64, keep: int = 0, device: str | torch.device = "auto") -> Measured:
    """Reconstruct uint8 (N, H, W, 3) images through each autoencoder and measure every distance
    (MSE and PSNR only when `metric` is None)."""
    device = pick_device(str(device))
    if len(images) == 0:
        raise ValueError("no images to measure")
    side = size or images.shape[1]
    result = Measured(pd.DataFrame(), side)
    parts = []
    for ae in autoencoders:
        if ae.fixed_size is not None and ae.fixed_size != side:
            raise ValueError(f"autoencoder {ae.name!r} only takes {ae.fixed_size}x{ae.fixed_size} images, not {side}")
        seconds = {"reconstruct": 0.0, "lpips": 0.0}
        kept_maps, kept_recs = [], []
        for begin in range(0, len(images), batch_size):
            x = resize(to_tensor(images[begin:begin + batch_size]).to(device), size)
            y, t_rec = _timed(ae.module, x)
            maps, t_lpips = _timed(lpips_maps, metric, x, y) if metric is not None else ([], 0.0)
            seconds["reconstruct"] += t_rec
            seconds["lpips"] += t_lpips
            mse = ((x - y) ** 2).mean((1, 2, 3)).cpu().numpy().astype(np.float64)
            part = {"autoencoder": ae.name, "image": np.arange(begin, begin + len(x)), "mse": mse,
                    "psnr": -10 * np.log10(np.maximum(mse, 1e-12))}
            if maps:
                layers = torch.stack([m.mean((1, 2)) for m in maps], 1).cpu().numpy().astype(np.float64)
                part |= {"lpips": layers.sum(1), **{f"lpips_{k + 1}": layers[:, k] for k in range(layers.shape[1])}}
            parts.append(pd.DataFrame(part))
            if begin < keep:
                take = slice(0, keep - begin)
                if maps:
                    kept_maps.append(torch.stack([F.interpolate(m[take, None], size=x.shape[-2:], mode="bilinear")[:, 0]
                                                  for m in maps], 1).cpu().numpy())
                kept_recs.append(y[take].permute(0, 2, 3, 1).cpu().numpy())
        result.seconds[ae.name] = seconds
        if keep:
            result.reconstructions[ae.name] = np.concatenate(kept_recs)
            if kept_maps:
                result.maps[ae.name] = np.concatenate(kept_maps)
    result.table = pd.concat(parts, ignore_index=True)
    return result


def best_reconstruction(table: pd.DataFrame, distance: str = "lpips_2", names: list[str] | None = None) -> np.ndarray:
    """Per image, the `distance` of the autoencoder that reconstructs it best (the minimum; for
    `psnr`, a similarity, the maximum) over `names` (all measured ones if None)."""
    chosen = table if names is None else table[table["autoencoder"].isin(names)]
    if chosen.empty:
        raise ValueError(f"no measurements for autoencoders {names}")
    wide = chosen.pivot(index="image", columns="autoencoder", values=distance)
    return (wide.max(axis=1) if distance == "psnr" else wide.min(axis=1)).to_numpy()


class ReconstructionDetector(Detector):
    """Score = `sign` × the best reconstruction's `distance` over `autoencoders`.

    `sign` is +1 when a larger distance means FAKE on the training/reference images it was
    chosen on (`scores.choose_sign`), -1 otherwise (AEROBLADE's premise: a generator's own
    autoencoder reconstructs its images better). Trained autoencoders (`create_model` ones, like
    V1) are saved with the detector; pretrained ones are found again by name (`load_autoencoder`).
    """

    def __init__(self, autoencoders: list[Autoencoder], *, distance: str, sign: int, lpips_net: str | None,
                 metric: nn.Module | None = None, batch_size: int = 64, **common):
        super().__init__(**common)
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, not {sign}")
        if distance.startswith("lpips") and lpips_net is None:
            raise ValueError(f"distance {distance!r} needs an LPIPS network")
        self.autoencoders, self.distance, self.sign, self.lpips_net = autoencoders, distance, sign, lpips_net
        self.batch_size = batch_size
        self.metric = metric if metric is not None or lpips_net is None else load_lpips(lpips_net)[0]

    def score(self, images: np.ndarray) -> np.ndarray:
        measured = measure(images, self.autoencoders, self.metric, batch_size=self.batch_size)
        return self.sign * best_reconstruction(measured.table, self.distance)

    def _options(self) -> dict:
        return {"distance": self.distance, "sign": self.sign, "lpips_net": self.lpips_net, "batch_size": self.batch_size,
                "autoencoders": {ae.name: ("saved" if hasattr(ae.module, "model_spec") else "pretrained")
                                 for ae in self.autoencoders}}

    def _save_parts(self, folder: Path) -> None:
        for ae in self.autoencoders:
            if hasattr(ae.module, "model_spec"):
                save_model(ae.module, folder / "autoencoders" / ae.name)

    @classmethod
    def _load(cls, folder: Path, spec: dict, common: dict, device: str) -> "ReconstructionDetector":
        options = spec["options"]
        autoencoders = []
        for name, how in options["autoencoders"].items():
            if how == "saved":
                module = load_model(folder / "autoencoders" / name, device)
                autoencoders.append(Autoencoder(name, module, f"saved: {folder / 'autoencoders' / name}",
                                                fixed_size=getattr(module, "image_size", None)).frozen(device))
            else:
                autoencoders.append(load_autoencoder(name, device))
        metric = load_lpips(options["lpips_net"], device)[0] if options["lpips_net"] else None
        return cls(autoencoders, distance=options["distance"], sign=options["sign"], lpips_net=options["lpips_net"],
                   metric=metric, batch_size=options["batch_size"], **common)


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
