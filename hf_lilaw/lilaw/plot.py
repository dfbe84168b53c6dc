"""The plot of α, β and δ over a LiLAW run (shown in its model card)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

PARAMETER_KEYS = {"alpha": "lilaw/alpha", "beta": "lilaw/beta", "delta": "lilaw/delta"}
_SYMBOLS = {"alpha": "α", "beta": "β", "delta": "δ"}


def plot_lilaw_parameters(
    log_history: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Plots α, β and δ against the optimizer step into a PNG.

    Args:
        log_history: ``trainer.state.log_history``: entries with ``step`` and any of ``lilaw/alpha``,
            ``lilaw/beta``, ``lilaw/delta``; other entries are skipped.
        path: Where to write the PNG.

    Returns:
        ``path`` as a `Path`.
    """
    history = list(log_history)
    series = {
        name: sorted((entry["step"], entry[key]) for entry in history if key in entry and "step" in entry)
        for name, key in PARAMETER_KEYS.items()
    }
    if not any(series.values()):
        raise ValueError(
            f"No entry of log_history has 'step' and one of {list(PARAMETER_KEYS.values())}; "
            "pass trainer.state.log_history from a LiLAWTrainer run."
        )
    from matplotlib.figure import Figure  # matplotlib only when a plot is drawn

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for name, points in series.items():
        if points:
            steps, values = np.asarray(points).T
            ax.plot(steps, values, marker="." if len(points) < 50 else None, label=_SYMBOLS[name])
    ax.set(xlabel="step", ylabel="value", title=title or "LiLAW parameters")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path
