"""Synthetic label and input noise for a `datasets.Dataset`, after H-CAT (definitions: docs/noise.md).

Every injector is seeded, hits exactly `round(rate * N)` rows drawn uniformly without replacement,
keeps the original label in `clean_label`, marks noisy rows in a boolean `is_noisy` column and refuses
test splits. Modules: `types` (the type names), `sampling` (rows hit, random streams), `labels` (label
noise on arrays), `images` and `series` (input noise on one array), `dataset` (`add_label_noise`,
`add_input_noise` on a Dataset, with `Dataset.map`).
"""

from .dataset import add_input_noise, add_label_noise, realised_noise_rate
from .labels import CIFAR100_COARSE_LABELS, INSTANCE_RULES, asymmetric_transition_matrix, noisy_labels
from .types import IMAGE_NOISE_TYPES, INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, NOISE_TYPES, TIME_SERIES_NOISE_TYPES

__all__ = [
    "CIFAR100_COARSE_LABELS",
    "IMAGE_NOISE_TYPES",
    "INPUT_NOISE_TYPES",
    "INSTANCE_RULES",
    "LABEL_NOISE_TYPES",
    "NOISE_TYPES",
    "TIME_SERIES_NOISE_TYPES",
    "add_input_noise",
    "add_label_noise",
    "asymmetric_transition_matrix",
    "noisy_labels",
    "realised_noise_rate",
]
