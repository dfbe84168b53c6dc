"""The names of the noise types, and the check that a name is one of them."""

from __future__ import annotations

LABEL_NOISE_TYPES = ("uniform", "asymmetric", "adjacent", "instance", "noise_matrix")
IMAGE_NOISE_TYPES = ("ood_covariate", "domain_shift", "far_ood", "zoom_shift", "crop_shift")
TIME_SERIES_NOISE_TYPES = ("ts_covariate", "ts_time_shift", "ts_time_zoom", "ts_far_ood")
INPUT_NOISE_TYPES = IMAGE_NOISE_TYPES + TIME_SERIES_NOISE_TYPES
NOISE_TYPES = LABEL_NOISE_TYPES + INPUT_NOISE_TYPES


def check_noise_type(noise_type: str, *, label: bool) -> None:
    """Raises a ValueError unless ``noise_type`` is a label (``label=True``) or an input noise type."""
    valid, other, other_fn = (
        (LABEL_NOISE_TYPES, INPUT_NOISE_TYPES, "add_input_noise")
        if label
        else (INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, "add_label_noise")
    )
    if noise_type in valid:
        return
    hint = f" {noise_type!r} is an {'input' if label else 'label'} noise type: use {other_fn}." if noise_type in other else ""
    raise ValueError(f"Unknown noise_type {noise_type!r}; pass one of {', '.join(valid)}.{hint}")
