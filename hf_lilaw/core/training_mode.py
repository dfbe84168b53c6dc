"""Deprecated: `set_training_mode` is ``module.train(mode)``; call that instead. This module goes once its last
importers do (``docs/benchmarks.md`` §1 has the measurement that retired its dictionary walk)."""

from __future__ import annotations

from torch import nn


def set_training_mode(module: nn.Module, mode: bool) -> None:
    """``module.train(mode)``, with ``mode`` checked to be a bool."""
    if not isinstance(mode, bool):
        raise ValueError(f"mode must be a bool, got {type(mode).__name__}.")
    module.train(mode)
