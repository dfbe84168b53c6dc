"""Input noise for time series, (steps,) or (steps, channels) float arrays: covariate, time shift, time zoom
and far OOD."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage


def _resample(x: np.ndarray, length: int) -> np.ndarray:
    grid = np.linspace(0, len(x) - 1, length)
    cols = x.reshape(len(x), -1)
    out = np.stack([np.interp(grid, np.arange(len(x)), cols[:, d]) for d in range(cols.shape[1])], axis=1)
    return out.reshape((length, *x.shape[1:]))


def series_noise_fn(
    noise_type: str, sigma: float, zoom_factor: float, shift_fraction: float, pool: Any
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The function ``(x, rng) -> noisy x`` of one series noise type.

    ``pool`` (far OOD only) has ``len()`` and ``get(i)`` returning a replacement; None for the random fallback.
    """

    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        length = len(x)
        # The range of the finite values: a NaN (a missing step, e.g. padding to a common length) would make the
        # scale NaN and spread over the whole series; missing steps stay missing where the noise keeps positions.
        finite = x[np.isfinite(x)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if noise_type == "ts_covariate":
            # A constant series has no range; fall back to unit scale so it still gets noise.
            return x + rng.standard_normal(x.shape) * sigma * ((high - low) or 1.0)
        if noise_type == "ts_time_shift":
            steps = (int(round(shift_fraction * length)),) + (0,) * (x.ndim - 1)
            return ndimage.shift(x, steps, order=0, mode="constant", cval=0.0)
        if noise_type == "ts_time_zoom":
            crop = max(2, int(length / zoom_factor))
            start = (length - crop) // 2
            return _resample(x[start : start + crop], length) if length >= 2 else x.copy()
        if pool is not None:  # ts_far_ood
            other = np.asarray(pool.get(int(rng.integers(len(pool)))), dtype=np.float64)
            other = _resample(other, length)
            if other.ndim != x.ndim or other.shape[1:] != x.shape[1:]:
                other = other.reshape(length, -1).mean(axis=1)
                other = other if x.ndim == 1 else np.repeat(other[:, None], x.shape[1], axis=1)
            return other
        walk = np.cumsum(rng.standard_normal(x.shape), axis=0)
        # Rescaled to the replaced series' range so magnitude alone does not give it away (a constant series has
        # a range of width 0, so it stays constant; a flat walk, e.g. of length 1, is not divided by 0). Channel by
        # channel: the whole series' range put a 0..1 channel beside a 100..200 one up to 100s.
        mask = np.isfinite(x)
        seen = mask.any(axis=0)
        low = np.where(seen, np.where(mask, x, np.inf).min(axis=0), 0.0)
        high = np.where(seen, np.where(mask, x, -np.inf).max(axis=0), 0.0)
        walk_low, walk_high = walk.min(axis=0), walk.max(axis=0)
        return low + (walk - walk_low) / np.where(walk_high > walk_low, walk_high - walk_low, 1.0) * (high - low)

    return apply
