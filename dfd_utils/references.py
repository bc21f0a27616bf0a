"""Published figures on CIFAKE (and the methods' own papers), in one cited table.

Every reference line and every "vs the literature" sentence in a notebook comes from here, so
two reports can never quote different numbers for the same claim. `bar=True` marks the figures
obtained under a protocol comparable to ours (the official 100k/20k split, no model or epoch
chosen on the test set); the others are listed with their caveat and never used as a bar.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

__all__ = ["Reference", "REFERENCES", "get", "table", "best_bar"]


@dataclass(frozen=True)
class Reference:
    key: str
    source: str  # who reported it, where
    model: str
    input_size: str
    protocol: str  # data split and how the reported model was chosen
    accuracy: float | None = None
    auroc: float | None = None
    ap: float | None = None
    bar: bool = False  # a fair bar for this project's CIFAKE test-split results
    caveat: str = ""


REFERENCES = (
    Reference("cifake_paper", "Bird & Lotfi, IEEE Access 12, 2024 (the CIFAKE paper)",
              "simple CNN, best of 36 topologies", "32 px", "official split: 100,000 train / 20,000 test",
              accuracy=0.9298, bar=True),
    Reference("resnet18_128px", "public fine-tuning code, clean protocol (verified for this project)",
              "ImageNet ResNet-18, fine-tuned", "128 px (upsampled)", "official split: 100,000 train / 20,000 test",
              accuracy=0.9767, auroc=0.9971, bar=True,
              caveat="the best clean-protocol figure found: the bar for fine-tuned and stronger models"),
    Reference("resnet50_32px", "public fine-tuning code, clean protocol (verified for this project)",
              "ResNet-50, fine-tuned", "32 px (native)", "official split: 100,000 train / 20,000 test",
              accuracy=0.9742, bar=True),
    Reference("pv_ism_vit", "PV-ISM, Applied Sciences 2025", "ViT", "—", "official split",
              accuracy=0.9660, bar=True),
    Reference("vit_swin_unclean", "several ViT / Swin reports", "ViT, Swin", "224 px (upsampled)",
              "other splits, or the epoch chosen on the test set", accuracy=0.987,
              caveat="98.3-98.7% reported, but not on the official split or with test-set model selection: "
                     "listed for completeness, never a bar"),
    Reference("aeroblade_paper", "Ricker, Lukovnikov & Fischer, CVPR 2024 (AEROBLADE)",
              "AEROBLADE, LPIPS-VGG layer 2, min over SD1/SD2/Kandinsky AEs", "512-1024 px (native)",
              "their own latent-diffusion generations vs LAION photos, not CIFAKE", ap=0.99,
              caveat="about 0.99 AP on full-resolution images of the generators whose autoencoders it uses; "
                     "not comparable to 32-px CIFAKE"),
)


def get(key: str) -> Reference:
    for reference in REFERENCES:
        if reference.key == key:
            return reference
    raise KeyError(f"no reference {key!r}; known: {', '.join(r.key for r in REFERENCES)}")


def table() -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in REFERENCES])


def best_bar() -> Reference:
    """The highest accuracy among the fair bars: what a strong model here should be measured against."""
    return max((r for r in REFERENCES if r.bar and r.accuracy is not None), key=lambda r: r.accuracy)
