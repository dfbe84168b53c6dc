"""Reading classification logits out of whatever a model's forward returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def extract_logits(outputs: Any) -> torch.Tensor:
    """Logits of shape ``(batch, num_classes)`` from a tensor, a `ModelOutput`/mapping with ``logits``, or a
    tuple whose first item is the logits."""
    if isinstance(outputs, torch.Tensor):
        logits = outputs
    elif isinstance(outputs, Mapping):
        logits = outputs.get("logits")
    elif isinstance(outputs, (tuple, list)) and outputs:
        logits = outputs[0]
    else:
        logits = None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        found = f" with logits of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else ""
        raise ValueError(
            "The trainer needs classification logits of shape (batch, num_classes) from the model's forward, as a "
            f"tensor, a tuple whose first item is the logits, or an output with a 'logits' field; got "
            f"{type(outputs).__name__}{found}. Make forward return {{'logits': ...}}."
        )
    return logits
