"""LiLAW: per-sample loss weights from three learned scalars, one meta step per optimizer step."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "LiLAWConfig": ".config",
    "LiLAWState": ".state",
    "LiLAWTrainer": ".trainer",
    "plot_lilaw_parameters": ".plot",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
