"""PNG plots of a run's per-sample statistics: the weights and a Data Map (α, β, δ: `hf_lilaw.lilaw.plot`).

Figures are built with `matplotlib.figure.Figure` rather than pyplot: no global backend is switched and no
figure is left registered, so plotting from a training script or a notebook has no side effects and saving
always uses the Agg renderer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_data_map", "plot_weight_histogram"]

def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_weight_histogram(
    weights: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    is_noisy: Sequence[bool] | np.ndarray | None = None,
    bins: int = 50,
    title: str | None = None,
) -> Path:
    """Histogram of per-sample weights ``W = W_α + W_β + W_δ``, clean and noisy samples overlaid when known.

    Rows with a NaN weight (never scored, e.g. LiLAW's meta split or rows labelled -100) are left out, and
    the legend counts only the rows drawn.

    Args:
        weights: One weight per sample.
        path: Where to write the PNG.
        is_noisy: One flag per sample (e.g. the ``is_noisy`` column of a noisy dataset).
        bins: Number of bins, shared by both groups.
    """
    weights = np.asarray(weights, dtype=float).ravel()
    if weights.size == 0:
        raise ValueError("weights is empty; pass one weight per training sample.")
    if is_noisy is not None:
        is_noisy = np.asarray(is_noisy, dtype=bool).ravel()
        if is_noisy.shape != weights.shape:
            raise ValueError(f"is_noisy has {is_noisy.size} flags for {weights.size} weights; pass one per sample.")
    scored = ~np.isnan(weights)
    if not scored.any():
        raise ValueError(
            f"all {weights.size} weights are NaN (no sample was scored); pass the weights of the training samples."
        )
    weights = weights[scored]
    edges = np.histogram_bin_edges(weights, bins=bins)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    if is_noisy is None:
        ax.hist(weights, bins=edges, color="tab:blue")
    else:
        is_noisy = is_noisy[scored]
        for mask, label, color in ((~is_noisy, "clean", "tab:blue"), (is_noisy, "noisy", "tab:red")):
            ax.hist(weights[mask], bins=edges, alpha=0.6, color=color, label=f"{label} (n={int(mask.sum())})")
        ax.legend()
    ax.set(xlabel="per-sample weight W", ylabel="samples", title=title or "LiLAW sample weights")
    return _save(fig, path)


def plot_data_map(
    confidence: Sequence[float] | np.ndarray,
    variability: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    color: Sequence[float] | np.ndarray | None = None,
    is_noisy: Sequence[bool] | np.ndarray | None = None,
    color_label: str = "correctness",
    title: str | None = None,
) -> Path:
    """A Data Map (Swayamdipta et al., 2020): mean gold-label probability against its spread over epochs.

    Args:
        confidence: Per-sample mean probability of the observed label across epochs (y axis).
        variability: Per-sample standard deviation of that probability (x axis).
        path: Where to write the PNG.
        color: Per-sample values for the colour scale (e.g. correctness, the fraction of epochs right).
        is_noisy: Per-sample flags; noisy samples are drawn as crosses.
        color_label: Title of the colour bar.

    Rows with a NaN confidence, variability or colour (never scored, e.g. LiLAW's meta split or rows labelled
    -100) are left out; the colour scale spans the rows drawn.
    """
    confidence = np.asarray(confidence, dtype=float).ravel()
    variability = np.asarray(variability, dtype=float).ravel()
    n = confidence.size
    if (
        variability.size != n
        or (color is not None and np.size(color) != n)
        or (is_noisy is not None and np.size(is_noisy) != n)
    ):
        raise ValueError("confidence, variability, color and is_noisy need one value per sample each.")
    values = None if color is None else np.asarray(color, dtype=float).ravel()
    noisy = np.zeros(n, dtype=bool) if is_noisy is None else np.asarray(is_noisy, dtype=bool).ravel()
    scored = ~(np.isnan(confidence) | np.isnan(variability) | (False if values is None else np.isnan(values)))
    if not scored.any():
        raise ValueError(f"all {n} samples have a NaN confidence, variability or color; none was scored.")
    confidence, variability, noisy = confidence[scored], variability[scored], noisy[scored]
    if values is not None:
        values = values[scored]
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    scatter = None
    for mask, marker, label in ((~noisy, "o", "clean"), (noisy, "x", "noisy")):
        if not mask.any():
            continue
        kwargs: dict[str, Any] = {"marker": marker, "s": 12, "alpha": 0.7, "label": label}
        if values is not None:
            kwargs.update(c=values[mask], cmap="coolwarm", vmin=values.min(), vmax=values.max())
        else:
            kwargs.update(color="tab:blue" if marker == "o" else "tab:red")
        scatter = ax.scatter(variability[mask], confidence[mask], **kwargs)
    if values is not None and scatter is not None:
        fig.colorbar(scatter, ax=ax, label=color_label)
    if is_noisy is not None:
        ax.legend()
    ax.set(xlabel="variability", ylabel="confidence", title=title or "Data Map", ylim=(-0.02, 1.02))
    return _save(fig, path)
