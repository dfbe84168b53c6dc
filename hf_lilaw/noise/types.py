"""The names of the noise types, the deprecated old names, and the check that a name is one of them."""

from __future__ import annotations

import warnings

LABEL_NOISE_TYPES = ("uniform", "pair_flip", "random_transition", "adjacent", "rule_map", "noise_matrix")
IMAGE_NOISE_TYPES = ("ood_covariate", "domain_shift", "far_ood", "zoom_shift", "crop_shift")
TIME_SERIES_NOISE_TYPES = ("ts_covariate", "ts_time_shift", "ts_time_zoom", "ts_far_ood")
INPUT_NOISE_TYPES = IMAGE_NOISE_TYPES + TIME_SERIES_NOISE_TYPES
NOISE_TYPES = LABEL_NOISE_TYPES + INPUT_NOISE_TYPES

DEPRECATED_LABEL_NOISE_TYPES = {"asymmetric": "random_transition", "instance": "rule_map"}
"""Old label noise names, still accepted with a FutureWarning: the same noise under a name that says what it does."""


def check_noise_type(noise_type: str, *, label: bool, stacklevel: int = 2) -> str:
    """Returns ``noise_type``'s current name; raises a ValueError unless it is a label (``label=True``) or an
    input noise type. A deprecated label noise name gives a FutureWarning at ``stacklevel`` (counted from the caller).
    """
    if label and noise_type in DEPRECATED_LABEL_NOISE_TYPES:
        new = DEPRECATED_LABEL_NOISE_TYPES[noise_type]
        warnings.warn(
            f"noise_type={noise_type!r} is deprecated and will be removed; use noise_type={new!r} (the same noise).",
            FutureWarning,
            stacklevel=stacklevel + 1,
        )
        return new
    valid, other, other_fn = (
        (LABEL_NOISE_TYPES, INPUT_NOISE_TYPES, "add_input_noise")
        if label
        else (INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, "add_label_noise")
    )
    if noise_type in valid:
        return noise_type
    if not label:
        other += tuple(DEPRECATED_LABEL_NOISE_TYPES)
    hint = f" {noise_type!r} is {'an input' if label else 'a label'} noise type: use {other_fn}." if noise_type in other else ""
    raise ValueError(f"Unknown noise_type {noise_type!r}; pass one of {', '.join(valid)}.{hint}")
