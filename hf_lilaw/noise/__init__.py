"""Synthetic label and input noise for a `datasets.Dataset`, after H-CAT (definitions: docs/noise.md).

Every injector is seeded, hits exactly `round(rate * N)` rows drawn uniformly without replacement,
keeps the original label in `clean_label`, marks noisy rows in a boolean `is_noisy` column and refuses
test splits. Modules: `types` (the type names), `sampling` (rows hit, random streams), `labels` (label
noise on arrays), `images` and `series` (input noise on one array), `dataset` (`add_label_noise`,
`add_input_noise` on a Dataset, with `Dataset.map`).
"""

import warnings
from typing import Any

from .dataset import add_input_noise, add_label_noise, realised_noise_rate
from .labels import (
    CIFAR100_COARSE_LABELS,
    PAIR_FLIP_MAPS,
    RULE_MAPS,
    noisy_labels,
    pair_flip_partners,
    random_transition_matrix,
)
from .types import (
    DEPRECATED_LABEL_NOISE_TYPES,
    IMAGE_NOISE_TYPES,
    INPUT_NOISE_TYPES,
    LABEL_NOISE_TYPES,
    NOISE_TYPES,
    TIME_SERIES_NOISE_TYPES,
)

__all__ = [
    "CIFAR100_COARSE_LABELS",
    "DEPRECATED_LABEL_NOISE_TYPES",
    "IMAGE_NOISE_TYPES",
    "INPUT_NOISE_TYPES",
    "LABEL_NOISE_TYPES",
    "NOISE_TYPES",
    "PAIR_FLIP_MAPS",
    "RULE_MAPS",
    "TIME_SERIES_NOISE_TYPES",
    "add_input_noise",
    "add_label_noise",
    "noisy_labels",
    "pair_flip_partners",
    "random_transition_matrix",
    "realised_noise_rate",
]

# Old names of `instance` and `asymmetric` noise's helpers.
_DEPRECATED = {"INSTANCE_RULES": "RULE_MAPS", "asymmetric_transition_matrix": "random_transition_matrix"}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        warnings.warn(
            f"hf_lilaw.noise.{name} is deprecated and will be removed; use {_DEPRECATED[name]} (the same object).",
            FutureWarning,
            stacklevel=2,
        )
        return globals()[_DEPRECATED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
