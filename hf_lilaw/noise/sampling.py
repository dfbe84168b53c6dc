"""Which rows a noise injector hits, and the seeded random streams every injector draws from.

Each purpose has its own stream, ``default_rng([seed, stream])`` (plus the row index for per-row input
noise), so for instance the random transition matrix depends on the seed only, not on N or the rate.
"""

from __future__ import annotations

import numpy as np

STREAM_LABEL_HITS, STREAM_INPUT_HITS, STREAM_DRAWS, STREAM_MATRIX, STREAM_PER_ROW = range(5)


def check_rate_and_seed(rate: float, seed: int) -> None:
    """Raises a ValueError unless ``rate`` is a fraction in [0, 1] and ``seed`` an int in [0, 2**32)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction in [0, 1], got {rate!r}; e.g. rate=0.2 for 20% noise.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}.")


def hit_indices(n: int, rate: float, seed: int, stream: int) -> np.ndarray:
    """Exactly ``round(rate * n)`` row indices, drawn uniformly without replacement, sorted."""
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n, size=int(round(rate * n)), replace=False))
