"""Autoencoders that map images in [0, 1] to reconstructions in [0, 1].

`ConvAutoencoder` is V1 (notebook 01): trained here on REAL images, with a dense bottleneck
whose size is the knob of the reconstruction/compression trade-off. `TAEF2` is a pretrained
tiny autoencoder for the FLUX.2 latent space (32 channels at 1/8 resolution); its layout is
rebuilt from `../shared/weights/taef2/README` so that the state-dict indices match exactly.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvAutoencoder", "TAEF2", "taef2_encoder", "taef2_decoder"]


class ConvAutoencoder(nn.Module):
    """conv encoder (stride-2 stages) → Linear bottleneck of `latent_dim` → mirrored decoder."""

    def __init__(self, latent_dim: int = 128, width: int = 32, image_size: int = 32):
        super().__init__()
        self.image_size, self.latent_dim = image_size, latent_dim
        side = image_size // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),            # 16x16
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),        # 8x8
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(),    # 4x4
            nn.Flatten(), nn.Linear(4 * width * side * side, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 4 * width * side * side), nn.ReLU(),
            nn.Unflatten(1, (4 * width, side, side)),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"ConvAutoencoder takes {self.image_size}x{self.image_size} images, "
                             f"got {tuple(x.shape[-2:])}; resize the images first")
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


# --------------------------------------------------------------------------- TAEF2
def _conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class _Block(nn.Module):
    """conv-ReLU-conv-ReLU-conv plus identity skip, then ReLU; the mid variant first adds
    a pooled-channel branch (`x + pool(x)`)."""

    def __init__(self, channels: int = 64, mid: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(),
                                  _conv(channels, channels))
        self.pool = nn.Sequential(nn.Conv2d(channels, 4 * channels, 1, bias=False), nn.GroupNorm(4, 4 * channels),
                                  nn.ReLU(), nn.Conv2d(4 * channels, channels, 1, bias=False)) if mid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class _Clamp(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3) * 3


def taef2_encoder() -> nn.Sequential:
    stage = lambda mid: [_conv(64, 64, stride=2, bias=False), *(_Block(mid=mid) for _ in range(3))]  # noqa: E731
    return nn.Sequential(_conv(3, 64), _Block(), *stage(False), *stage(False), *stage(True), _conv(64, 32))


def taef2_decoder() -> nn.Sequential:
    up = lambda: [nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]  # noqa: E731
    return nn.Sequential(_Clamp(), _conv(32, 64), nn.ReLU(), *(_Block(mid=True) for _ in range(3)), *up(),
                         *(_Block() for _ in range(3)), *up(), *(_Block() for _ in range(3)), *up(),
                         _Block(), _conv(64, 3))


class TAEF2(nn.Module):
    """Tiny FLUX.2 autoencoder: [0, 1] images (sides a multiple of 8) → 32-channel latents at 1/8."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = taef2_encoder(), taef2_decoder()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"TAEF2 needs image sides divisible by 8, got {tuple(x.shape[-2:])}")
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)).clamp(0, 1)
