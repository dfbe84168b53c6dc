"""Value checks shared by the families' settings classes (`LiLAWConfig`, `MetaLabelCorrectionConfig`, `ELRConfig`).

A JSON or YAML settings file, or a dict, reaches a `TrainingArguments` subclass unconverted: a quoted ``"false"`` is
a (truthy) string, ``true`` where a rate belongs a bool, ``.inf`` a float."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float: not a bool, a string, None, NaN or inf."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_flag(
    value: Any, *, name: str, allowed: Collection[Any] = (True, False), text: str = "True or False"
) -> None:
    """Refuse a flag set to anything but ``allowed`` (``text`` names them), above all a quoted ``"false"``."""
    if value not in allowed:
        raise ValueError(
            f"{name} must be {text}, got {value!r}; in a JSON or YAML file write true or false without quotes."
        )
