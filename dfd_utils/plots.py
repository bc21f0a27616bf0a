"""Figures every notebook needs. Each function returns its figure; `Run.save_figure` saves it."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt  # importing pyplot sets up inline display in Jupyter
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_curve, roc_curve

__all__ = ["confusion", "roc_pr", "score_histogram", "scatter_by_class", "image_grid", "side_by_side", "heatmaps", "lines",
           "training_curves", "table_heatmap", "interval_bars", "reliability", "cost_vs_auroc", "robustness_curves",
           "cross_domain_bars", "CLASS_NAMES"]

CLASS_NAMES = ("REAL", "FAKE")
matplotlib.rcParams.update({"figure.dpi": 100, "axes.grid": False})


def confusion(labels, scores, threshold: float = 0.5, title: str = ""):
    """Confusion matrix as counts and row-normalised (recall per true class), side by side."""
    predicted = (np.asarray(scores) >= threshold).astype(int)
    counts = sk_confusion_matrix(labels, predicted, labels=[0, 1])
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6))
    for ax, matrix, fmt, name in ((axes[0], counts, "d", "counts"), (axes[1], rates, ".3f", "row-normalised")):
        sns.heatmap(matrix, annot=True, fmt=fmt, cmap="Blues", cbar=False, ax=ax,
                    xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES)
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(f"{title} (threshold {threshold:.3g})".strip())
    fig.tight_layout()
    plt.close(fig)
    return fig


def roc_pr(labels, scores_by_name: dict, title: str = ""):
    """ROC (log-scaled FPR, so the 1% region is visible) and precision-recall curves.

    The log axis starts at 1 / n_REAL, the smallest false-positive rate the data can show, and
    chance (TPR = FPR) is drawn as the curve it is on that axis; chance precision is the FAKE share.
    """
    labels = np.asarray(labels)
    floor = 1 / max(int((labels == 0).sum()), 1)
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, scores in scores_by_name.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        precision, recall, _ = precision_recall_curve(labels, scores)
        roc_ax.plot(np.maximum(fpr, floor), tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    chance = np.geomspace(floor, 1, 200)
    roc_ax.plot(chance, chance, ":", color="grey", label="chance (TPR = FPR)")
    pr_ax.axhline(labels.mean(), ls=":", color="grey", label="chance")
    roc_ax.set(xscale="log", xlabel="false-positive rate (REAL called FAKE)", ylabel="true-positive rate",
               title="ROC", xlim=(floor, 1), ylim=(0, 1.02))
    pr_ax.set(xlabel="recall (FAKE)", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def score_histogram(labels, scores, threshold: float | None = None, xlabel: str = "fake score",
                    title: str = "", log_x: bool = False):
    """Distribution of a score for each true class, with the decision threshold if given."""
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        ax.hist(np.asarray(scores)[labels == label], bins=60, alpha=0.55, color=color,
                label=CLASS_NAMES[label], density=True)
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    ax.set(xlabel=xlabel, ylabel="density", title=title, xscale="log" if log_x else "linear")
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def scatter_by_class(labels, x, y, xlabel: str, ylabel: str, title: str = "", log: bool = False,
                     max_points: int = 4000, seed: int = 0):
    """Two per-image quantities, coloured by true class (a random subset if there are many)."""
    labels, x, y = np.asarray(labels), np.asarray(x), np.asarray(y)
    shown = np.random.default_rng(seed).permutation(len(labels))[:max_points]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        keep = shown[labels[shown] == label]
        ax.scatter(x[keep], y[keep], s=4, alpha=0.4, color=color, label=CLASS_NAMES[label])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if log else "linear", yscale="log" if log else "linear")
    ax.legend(markerscale=3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def image_grid(images, titles=None, ncols: int = 8, title: str = "", scale: float = 1.3, cmap=None):
    """A grid of uint8 / [0, 1] images with optional per-image titles."""
    images = list(images)
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def side_by_side(columns: dict, first_titles=None, title: str = "", scale: float = 1.3):
    """One row per image: `columns` maps a column name to a sequence (row i shows item i of
    each); `first_titles` (optional) replaces the first column's name row by row."""
    names = list(columns)
    rows = len(columns[names[0]])
    first_titles = None if first_titles is None else list(first_titles)
    tiles = [columns[name][i] for i in range(rows) for name in names]
    titles = [(str(first_titles[i]) if first_titles is not None and j == 0 else name)
              for i in range(rows) for j, name in enumerate(names)]
    return image_grid(tiles, titles, ncols=len(names), title=title, scale=scale)


def heatmaps(panels: dict, title: str = "", cmap: str = "magma", colorbar: bool = True, shared_scale: bool = False):
    """Side-by-side 2-D arrays (mean images, spectra, difference maps), one colour bar each;
    `shared_scale` puts every 2-D panel on one colour scale, so panels can be compared."""
    flat = [np.asarray(a) for a in panels.values() if np.ndim(a) == 2]
    limits = {"vmin": min(a.min() for a in flat), "vmax": max(a.max() for a in flat)} if shared_scale and flat else {}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (name, array) in zip(axes.flat, panels.items()):
        shown = ax.imshow(array, cmap=None if np.ndim(array) == 3 else cmap, interpolation="nearest",
                          **(limits if np.ndim(array) == 2 else {}))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        if colorbar and np.ndim(array) == 2:
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def lines(series: dict, xlabel: str, ylabel: str, title: str = "", log_y: bool = False, x=None,
          marker: str | None = None):
    """One line per named 1-D series (e.g. radial spectrum profiles, curves over depth), over
    positions `x`; if None, a pandas Series is drawn over its own index, an array over 0, 1, …"""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, values in series.items():
        if x is not None:
            positions = np.asarray(x)
        else:
            positions = values.index.to_numpy() if isinstance(values, pd.Series) else np.arange(len(values))
        ax.plot(positions, np.asarray(values), label=name, marker=marker)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale="log" if log_y else "linear")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def training_curves(history_table, title: str = ""):
    """Loss and accuracy per epoch (train, and validation when present; no accuracy panel for
    an autoencoder's history)."""
    columns = [c for c in ("loss", "acc") if f"train_{c}" in history_table or f"val_{c}" in history_table]
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.6), squeeze=False)
    for column, ax in zip(columns, axes.flat):
        for prefix in ("train", "val"):
            if f"{prefix}_{column}" in history_table:
                ax.plot(history_table["epoch"], history_table[f"{prefix}_{column}"], marker="o", label=prefix)
        ax.set(xlabel="epoch", ylabel=column, title=column)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def table_heatmap(table, index: str, columns: str, values: str, facet: str | None = None,
                  title: str = "", fmt: str = ".3f"):
    """A pivot of `values` over `index` x `columns`, one panel per value of `facet`."""
    facets = sorted(table[facet].unique()) if facet else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(4.2 * len(facets), 3.4), squeeze=False)
    for ax, value in zip(axes.flat, facets):
        part = table if value is None else table[table[facet] == value]
        sns.heatmap(part.pivot_table(index=index, columns=columns, values=values), annot=True, fmt=fmt,
                    cmap="viridis", ax=ax, cbar=False)
        ax.set_title(f"{facet} = {value}" if facet else values)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def interval_bars(table, x: str, y: str, low: str, high: str, hue: str, title: str = "",
                  reference: float | None = None):
    """Grouped bars of `y` with [low, high] error bars; an optional reference line."""
    groups, hues = list(dict.fromkeys(table[x])), list(dict.fromkeys(table[hue]))
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) * len(hues) / 2 + 3), 3.8))
    for i, name in enumerate(hues):
        part = table[table[hue] == name].set_index(x).reindex(groups)
        positions = np.arange(len(groups)) + (i - (len(hues) - 1) / 2) * width
        error = np.vstack([part[y] - part[low], part[high] - part[y]])
        ax.bar(positions, part[y], width, yerr=error, capsize=3, label=str(name))
    if reference is not None:
        ax.axhline(reference, color="black", ls=":", lw=1)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20, ha="right")
    ax.set(ylabel=y, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def reliability(curves: dict, bins: int = 10, title: str = ""):
    """Reliability diagram: per detector (name → (labels, FAKE probabilities)), the observed FAKE
    share against the mean predicted probability in each of `bins` equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for name, (labels, probabilities) in curves.items():
        labels, probabilities = np.asarray(labels), np.clip(np.asarray(probabilities, dtype=float), 0, 1)
        index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
        used = [b for b in range(bins) if (index == b).any()]
        ax.plot([probabilities[index == b].mean() for b in used], [labels[index == b].mean() for b in used],
                marker="o", label=name)
    ax.set(xlabel="mean predicted FAKE probability", ylabel="observed FAKE share", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def cost_vs_auroc(board):
    """Test AUROC (with its interval) against scoring speed and against training time, one
    point per detector; training-free detectors sit at zero training minutes."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    minutes = board["train_seconds"].fillna(0) / 60
    for ax, x, label, log in ((axes[0], board["infer_images_per_s"], "images scored per second (as recorded)", True),
                              (axes[1], minutes, "training minutes (0 = training-free)", False)):
        error = np.vstack([board["auroc"] - board["auroc_ci_low"], board["auroc_ci_high"] - board["auroc"]])
        ax.errorbar(x, board["auroc"], yerr=error, fmt="o", capsize=3)
        for xi, yi, name in zip(x, board["auroc"], board["detector"]):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set(xlabel=label, ylabel="test AUROC", xscale="log" if log else "linear")
        ax.axhline(0.5, ls=":", color="grey")
    fig.suptitle("cost against separation on CIFAKE test")
    fig.tight_layout()
    plt.close(fig)
    return fig


def robustness_curves(table, damage: str, what: str):
    """AUROC (with intervals) and accuracy at the clean threshold against one damage's strength,
    one line per detector; the clean score is drawn at the left as strength "clean"."""
    fig, (auroc_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, part in table.groupby("detector", sort=False):
        rows = pd.concat([part[part["damage"] == "clean"], part[part["damage"] == damage]])
        positions = np.arange(len(rows))
        auroc_ax.errorbar(positions, rows["auroc"], yerr=np.vstack([rows["auroc"] - rows["auroc_ci_low"],
                                                                     rows["auroc_ci_high"] - rows["auroc"]]),
                          marker="o", capsize=2, label=name)
        acc_ax.plot(positions, rows["acc_at_clean_threshold"], marker="o", label=name)
        ticks = ["clean"] + [f"{s:g}" for s in rows["strength"].iloc[1:]]
    for ax, label in ((auroc_ax, "AUROC"), (acc_ax, "accuracy at the clean threshold")):
        ax.set_xticks(np.arange(len(ticks)), ticks)
        ax.set(xlabel=what, ylabel=label)
        ax.axhline(0.5, ls=":", color="grey")
    acc_ax.legend(fontsize=8)
    fig.suptitle(f"robustness to {damage}")
    fig.tight_layout()
    plt.close(fig)
    return fig


def cross_domain_bars(table):
    """AUROC with 95% intervals per detector on the other image set, overall and per family."""
    shown = table.assign(label=lambda t: t["generators"] + " (" + t["n_fake"].astype(str) + " FAKE)")
    return interval_bars(shown, "detector", "auroc", "auroc_ci_low", "auroc_ci_high", "label",
                         "AUROC on the cross-domain set (REAL photos vs each group of generated images)", reference=0.5)
