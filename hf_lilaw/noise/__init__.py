"""Synthetic label and input noise for a `datasets.Dataset`, after H-CAT (spec: `noise.md`).

Every injector is seeded, hits exactly `round(rate * N)` rows drawn uniformly without replacement,
keeps the original label in `clean_label`, marks noisy rows in a boolean `is_noisy` column and refuses
a test split. The array-level math lives in `noisy_labels`; `add_label_noise` / `add_input_noise`
wrap it with `Dataset.map`, so only the touched columns are read and rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value
from datasets import Image as ImageFeature
from datasets.fingerprint import Hasher
from PIL import Image as PILImage

from ..core.columns import CLEAN_LABEL_COLUMN, NOISY_FLAG_COLUMN

__all__ = [
    "CIFAR100_COARSE_LABELS",
    "CIFAR100_SUPERCLASS_NAMES",
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

logger = logging.getLogger(__name__)

LABEL_NOISE_TYPES = ("uniform", "asymmetric", "adjacent", "instance", "noise_matrix")
IMAGE_NOISE_TYPES = ("ood_covariate", "domain_shift", "far_ood", "zoom_shift", "crop_shift")
TIME_SERIES_NOISE_TYPES = ("ts_covariate", "ts_time_shift", "ts_time_zoom", "ts_far_ood")
INPUT_NOISE_TYPES = IMAGE_NOISE_TYPES + TIME_SERIES_NOISE_TYPES
NOISE_TYPES = LABEL_NOISE_TYPES + INPUT_NOISE_TYPES

# Coarse (superclass) id of each CIFAR-100 fine label, fine labels in the usual alphabetical order
# (apple, aquarium_fish, baby, ...), as in the `fine_label` / `coarse_label` columns of uoft-cs/cifar100.
CIFAR100_COARSE_LABELS = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip
CIFAR100_SUPERCLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)  # fmt: skip


def _superclass_rules(coarse: Sequence[int]) -> dict[int, tuple[int, ...]]:
    return {
        fine: tuple(other for other, c in enumerate(coarse) if c == coarse[fine] and other != fine)
        for fine in range(len(coarse))
    }


INSTANCE_RULES: dict[str, dict[int, tuple[int, ...]]] = {
    # H-CAT's maps.
    "mnist": {1: (7,), 2: (7,), 3: (8,), 5: (6,), 6: (5,), 7: (1, 2), 8: (3,), 9: (7,)},
    "cifar10": {0: (2,), 1: (9,), 2: (9,), 3: (5,), 4: (5, 7), 5: (3, 4), 7: (5,), 8: (7,)},
    # Ours, from the classes FashionMNIST models confuse most: T-shirt(0)<->Shirt(6),
    # Pullover(2)<->Coat(4), Dress(3)->T-shirt(0), Sandal(5)/Sneaker(7)/Ankle boot(9) among each other;
    # Trouser(1) and Bag(8) have no look-alike and keep their label.
    "fashion_mnist": {0: (6,), 2: (4,), 3: (0,), 4: (2,), 5: (7,), 6: (0,), 7: (5, 9), 9: (7,)},
    # Each fine class moves to one of the other 4 classes of its superclass, uniformly.
    "cifar100": _superclass_rules(CIFAR100_COARSE_LABELS),
}

# Independent random streams per seed, so e.g. the asymmetric matrix does not depend on N or rate.
_HITS_LABEL, _HITS_INPUT, _DRAWS, _MATRIX, _PER_ROW = range(5)


# ----------------------------------------------------------------------------- validation


def _check_noise_type(noise_type: str, valid: tuple[str, ...], other: tuple[str, ...], other_fn: str) -> None:
    if noise_type in valid:
        return
    hint = f" {noise_type!r} is an input noise type: use {other_fn}." if noise_type in other else ""
    raise ValueError(f"Unknown noise_type {noise_type!r}; pass one of {', '.join(valid)}.{hint}")


def _check_rate_seed(rate: float, seed: int) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction in [0, 1], got {rate!r}; e.g. rate=0.2 for 20% noise.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}.")


def _check_dataset(dataset: Any, allow_test_split: bool, new_columns: Sequence[str]) -> None:
    if isinstance(dataset, DatasetDict):
        raise TypeError(f"Pass a single split, e.g. dataset['train'], not a DatasetDict with {list(dataset)}.")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}.")
    split = str(dataset.split).split("[")[0].strip().lower() if dataset.split is not None else None
    if split == "test" and not allow_test_split:
        raise ValueError(
            f"Refusing to add noise to the test split ({dataset.split!r}): evaluation must stay clean. "
            "Noise the training split instead, or pass allow_test_split=True if this is intended."
        )
    for column in new_columns:
        if column in dataset.column_names:
            raise ValueError(
                f"Column {column!r} already exists (was noise already added?). Remove it first, "
                "or pass another name via clean_label_column= / noisy_flag_column=."
            )


def _check_labels(labels: Any, num_classes: int | None, min_classes: int = 2) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be integer class ids, got dtype {y.dtype}; "
            "map them to 0..K-1 first (e.g. dataset.class_encode_column(...))."
        )
    y = y.astype(np.int64)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if num_classes < min_classes:
        raise ValueError(f"Label noise needs at least 2 classes, got num_classes={num_classes}; pass num_classes=K.")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} labels lie outside [0, {num_classes}) (e.g. {int(y[bad][0])}); "
            "drop unlabelled rows (label -1) first, or pass the right num_classes."
        )
    return y, int(num_classes)


def _resolve_rules(rules: Any, num_classes: int) -> dict[int, tuple[int, ...]]:
    if rules is None:
        raise ValueError(
            f"noise_type='instance' needs rules=: one of {sorted(INSTANCE_RULES)} or a map {{class: [targets]}}."
        )
    if isinstance(rules, str):
        if rules not in INSTANCE_RULES:
            raise ValueError(f"Unknown instance rule map {rules!r}; pass one of {sorted(INSTANCE_RULES)} or a dict.")
        rules = INSTANCE_RULES[rules]
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a name or a {{class: [targets]}} mapping, got {type(rules).__name__}.")
    resolved = {}
    for source, targets in rules.items():
        targets = (targets,) if isinstance(targets, (int, np.integer)) else tuple(targets)
        if not targets:
            raise ValueError(f"rules[{source!r}] is empty; give at least one target class or drop the key.")
        for c in (source, *targets):
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < num_classes:
                raise ValueError(f"rules use class {c!r}, outside [0, {num_classes}); check num_classes and the map.")
        resolved[int(source)] = tuple(int(t) for t in targets)
    return resolved


# ----------------------------------------------------------------------------- label noise (array level)


def _hit_indices(n: int, rate: float, seed: int, stream: int) -> np.ndarray:
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n, size=int(round(rate * n)), replace=False))


def asymmetric_transition_matrix(num_classes: int, *, seed: int) -> np.ndarray:
    """Row `i` is a Dirichlet(1, ..., 1) draw over the other classes (zero diagonal), fixed per seed.

    Args:
        num_classes: Number of classes K (>= 2).
        seed: Seed; the matrix depends on nothing else.

    Returns:
        A K x K row-stochastic matrix with a zero diagonal.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    rng = np.random.default_rng([seed, _MATRIX])
    matrix = np.zeros((num_classes, num_classes))
    # Boolean assignment fills row by row, skipping the diagonal: the same as inserting a 0 at i.
    matrix[~np.eye(num_classes, dtype=bool)] = rng.dirichlet(np.ones(num_classes - 1), size=num_classes).ravel()
    return matrix


def _draw_from_rows(rows: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cdf = rows.cumsum(axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(sources))
    out = np.empty_like(sources)
    for c in np.unique(sources):
        at = sources == c
        # side="right" skips zero-probability entries, whose cdf equals their left neighbour's.
        out[at] = np.searchsorted(cdf[c], u[at], side="right")
    return out


def _noise_matrix_labels(y: np.ndarray, num_classes: int, rate: float, seed: int, noise_matrix: Any) -> np.ndarray:
    try:
        from cleanlab.benchmarking.noise_generation import (
            generate_noise_matrix_from_trace,
            generate_noisy_labels,
        )
    except ImportError as err:
        raise ImportError(
            "noise_type='noise_matrix' needs cleanlab: pip install hf_lilaw[cleanlab]"
        ) from err
    counts = np.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(
            f"noise_type='noise_matrix' needs every class present; classes {np.flatnonzero(counts == 0).tolist()} "
            "have no sample. Pass the right num_classes or use another noise type."
        )
    if noise_matrix is not None:
        noise_matrix = np.asarray(noise_matrix, dtype=float)
        if noise_matrix.shape != (num_classes, num_classes) or (noise_matrix < 0).any():
            raise ValueError(f"noise_matrix must be a non-negative {num_classes}x{num_classes} array.")
        if not np.allclose(noise_matrix.sum(axis=0), 1):
            raise ValueError("noise_matrix columns must sum to 1: entry [i, j] is P(noisy label = i | true label = j).")
    elif rate == 0:
        return y.copy()
    elif num_classes * (1 - rate) <= 1:
        raise ValueError(
            f"noise_type='noise_matrix' needs trace K*(1-rate) > 1, i.e. rate < {1 - 1 / num_classes:.3f} for "
            f"K={num_classes}; got rate={rate}."
        )
    # cleanlab seeds and draws from NumPy's global RNG; put the caller's state back afterwards.
    state = np.random.get_state()
    try:
        if noise_matrix is None:
            noise_matrix = generate_noise_matrix_from_trace(
                num_classes, num_classes * (1 - rate), py=counts / len(y), valid_noise_matrix=True, seed=seed
            )
            if noise_matrix is None:
                raise ValueError(f"cleanlab found no valid noise matrix for rate={rate}; try a lower rate.")
        np.random.seed(seed)
        return np.asarray(generate_noisy_labels(y, noise_matrix), dtype=np.int64)
    finally:
        np.random.set_state(state)


def noisy_labels(
    labels: Any,
    *,
    noise_type: str,
    rate: float,
    seed: int,
    num_classes: int | None = None,
    rules: str | Mapping[int, int | Sequence[int]] | None = None,
    keep_original_draw: bool = False,
    noise_matrix: Any = None,
) -> np.ndarray:
    """Returns a noisy copy of integer `labels`: the array-level math behind `add_label_noise`.

    Exactly `round(rate * N)` rows are hit, drawn uniformly without replacement, then relabelled by
    `noise_type`:

    - `uniform`: uniform over the other K-1 classes (`keep_original_draw=True`: over all K classes,
      H-CAT's behaviour, whose realised rate is `rate * (K-1) / K`).
    - `asymmetric`: from row y of `asymmetric_transition_matrix(K, seed=seed)`.
    - `adjacent`: (y-1) mod K or (y+1) mod K with probability 1/2 each.
    - `instance`: uniform over `rules[y]`; `rules` is a key of `INSTANCE_RULES` or a `{y: [targets]}` map.
      Hit rows whose class has no rule keep their label, so the realised rate can be below `rate`.
      Built-in maps: H-CAT's `mnist` and `cifar10`; `cifar100` moves a class to another class of its
      superclass (`CIFAR100_COARSE_LABELS`); `fashion_mnist` is ours, among look-alikes: T-shirt<->Shirt,
      Pullover<->Coat, Dress->T-shirt, Sandal/Sneaker/Ankle boot among each other (Trouser, Bag kept).
    - `noise_matrix` (needs cleanlab): cleanlab's `generate_noisy_labels` with a matrix of trace
      K*(1-rate) from `generate_noise_matrix_from_trace`, or the given `noise_matrix` (then `rate` is
      unused). cleanlab fixes per-class flip counts, so the realised rate is only close to `rate`.

    Args:
        labels: Integer class ids in [0, K).
        noise_type: One of `LABEL_NOISE_TYPES`.
        rate: Fraction of rows to hit, in [0, 1].
        seed: Seed; same seed and inputs give the same output.
        num_classes: K; defaults to `max(labels) + 1`.
        rules: Rule map for `instance` noise.
        keep_original_draw: For `uniform` only, allow redrawing the original label.
        noise_matrix: For `noise_matrix` only, a K x K column-stochastic `P(noisy=i | true=j)`.

    Returns:
        The noisy labels, int64, same length as `labels`.
    """
    _check_noise_type(noise_type, LABEL_NOISE_TYPES, INPUT_NOISE_TYPES, "add_input_noise")
    _check_rate_seed(rate, seed)
    y, k = _check_labels(labels, num_classes)
    if rules is not None and noise_type != "instance":
        raise ValueError(f"rules= is only used by noise_type='instance', not {noise_type!r}.")
    if keep_original_draw and noise_type != "uniform":
        raise ValueError(f"keep_original_draw= is only used by noise_type='uniform', not {noise_type!r}.")
    if noise_matrix is not None and noise_type != "noise_matrix":
        raise ValueError(f"noise_matrix= is only used by noise_type='noise_matrix', not {noise_type!r}.")
    if noise_type == "noise_matrix":
        return _noise_matrix_labels(y, k, rate, seed, noise_matrix)

    hits = _hit_indices(len(y), rate, seed, _HITS_LABEL)
    rng = np.random.default_rng([seed, _DRAWS])
    sources = y[hits]
    if noise_type == "uniform":
        if keep_original_draw:
            new = rng.integers(0, k, size=len(hits))
        else:
            new = (sources + rng.integers(1, k, size=len(hits))) % k
    else:
        if noise_type == "asymmetric":
            rows = asymmetric_transition_matrix(k, seed=seed)
        elif noise_type == "adjacent":
            rows = np.zeros((k, k))
            np.add.at(rows, (np.arange(k), (np.arange(k) - 1) % k), 0.5)
            np.add.at(rows, (np.arange(k), (np.arange(k) + 1) % k), 0.5)
        else:
            rows = np.eye(k)
            for source, targets in _resolve_rules(rules, k).items():
                rows[source] = 0
                np.add.at(rows[source], list(targets), 1.0)
        new = _draw_from_rows(rows, sources, rng)
    out = y.copy()
    out[hits] = new
    return out


# ----------------------------------------------------------------------------- Dataset helpers


def _dataset_labels(
    dataset: Dataset, label_column: str, num_classes: int | None, min_classes: int = 2
) -> tuple[np.ndarray, int, Any]:
    if label_column not in dataset.column_names:
        raise ValueError(
            f"Label column {label_column!r} not found; columns are {dataset.column_names}. Pass label_column=..."
        )
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):
        if num_classes is not None and num_classes != feature.num_classes:
            raise ValueError(
                f"num_classes={num_classes} disagrees with the ClassLabel's {feature.num_classes} classes; drop num_classes."
            )
        num_classes = feature.num_classes
    elif not (isinstance(feature, Value) and (feature.dtype.startswith("int") or feature.dtype.startswith("uint"))):
        raise ValueError(
            f"Label column {label_column!r} must be a ClassLabel or an integer Value, got {feature}; "
            f"cast it, e.g. dataset.class_encode_column({label_column!r})."
        )
    labels = dataset.with_format("numpy", columns=[label_column])[:][label_column]
    y, k = _check_labels(labels, num_classes, min_classes)
    return y, k, feature


def _with_format_of(out: Dataset, like: Dataset) -> Dataset:
    fmt = like.format
    columns = fmt["columns"]
    columns = None if set(columns) == set(like.column_names) else columns
    return out.with_format(fmt["type"], columns=columns, output_all_columns=fmt["output_all_columns"], **fmt["format_kwargs"])


def realised_noise_rate(dataset: Dataset, *, noisy_flag_column: str = NOISY_FLAG_COLUMN) -> float:
    """Returns the fraction of rows flagged noisy (may be below `rate` for `instance` noise)."""
    if noisy_flag_column not in dataset.column_names:
        raise ValueError(f"Column {noisy_flag_column!r} not found; was noise added with another noisy_flag_column?")
    flags = dataset.with_format("numpy", columns=[noisy_flag_column])[:][noisy_flag_column]
    return float(np.mean(flags)) if len(flags) else 0.0


def add_label_noise(
    dataset: Dataset,
    *,
    noise_type: str,
    rate: float,
    seed: int,
    label_column: str = "label",
    num_classes: int | None = None,
    rules: str | Mapping[int, int | Sequence[int]] | None = None,
    keep_original_draw: bool = False,
    noise_matrix: Any = None,
    clean_label_column: str = CLEAN_LABEL_COLUMN,
    noisy_flag_column: str = NOISY_FLAG_COLUMN,
    allow_test_split: bool = False,
    batch_size: int = 1000,
) -> Dataset:
    """Returns `dataset` with noisy labels; the original label goes to `clean_label_column`.

    See `noisy_labels` for the noise types. Only the label column is read and rewritten; a ClassLabel
    feature is kept (and copied to `clean_label_column`). `noisy_flag_column` is `label != clean_label`,
    so hit rows that keep their label (`instance` classes without a rule, `keep_original_draw`) are not
    flagged; `realised_noise_rate` gives the resulting rate.

    Args:
        dataset: A training split.
        noise_type: One of `LABEL_NOISE_TYPES`.
        rate: Fraction of rows to hit, in [0, 1].
        seed: Seed.
        label_column: Column of ClassLabel or int class ids.
        num_classes: K; defaults to the ClassLabel's, else `max(label) + 1`.
        rules: For `instance`: a key of `INSTANCE_RULES` or a `{y: [targets]}` map.
        keep_original_draw: For `uniform`: H-CAT behaviour, may redraw the original label.
        noise_matrix: For `noise_matrix`: a K x K column-stochastic matrix instead of one from `rate`.
        clean_label_column: New column with the original labels.
        noisy_flag_column: New boolean column, True where the label was changed.
        allow_test_split: Allow a split named "test" (refused by default).
        batch_size: `Dataset.map` batch size.

    Returns:
        A new Dataset.
    """
    _check_dataset(dataset, allow_test_split, (clean_label_column, noisy_flag_column))
    _check_noise_type(noise_type, LABEL_NOISE_TYPES, INPUT_NOISE_TYPES, "add_input_noise")
    clean, k, feature = _dataset_labels(dataset, label_column, num_classes)
    new = noisy_labels(
        clean, noise_type=noise_type, rate=rate, seed=seed, num_classes=k, rules=rules,
        keep_original_draw=keep_original_draw, noise_matrix=noise_matrix,
    )  # fmt: skip
    flags = new != clean
    if noise_type == "instance" and len(clean) and flags.mean() < int(round(rate * len(clean))) / len(clean):
        logger.warning(
            "instance noise: some hit rows have no rule for their class and keep their label; realised rate "
            "%.4f < rate %.4f.", flags.mean(), rate,
        )  # fmt: skip

    features = dataset.features.copy()
    features[clean_label_column] = feature
    features[noisy_flag_column] = Value("bool")

    def relabel(_: Any, indices: list[int]) -> dict[str, np.ndarray]:
        at = np.asarray(indices, dtype=np.int64)
        return {label_column: new[at], clean_label_column: clean[at], noisy_flag_column: flags[at]}

    return dataset.map(
        relabel,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        input_columns=[label_column],
        features=features,
        new_fingerprint=Hasher.hash(
            [dataset._fingerprint, "hf_lilaw.add_label_noise", noise_type, rate, seed, k, new, clean_label_column,
             noisy_flag_column]
        ),  # fmt: skip
        desc=f"{noise_type} label noise",
    )


# ----------------------------------------------------------------------------- image noise (float HWC in [0, 1])


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float HWC image, channel by channel through PIL's float mode."""
    resized = []
    for c in range(x.shape[-1]):
        channel = PILImage.fromarray(np.ascontiguousarray(x[..., c], dtype=np.float32))  # mode "F"
        resized.append(np.asarray(channel.resize((width, height), PILImage.Resampling.BILINEAR)))
    return np.stack(resized, axis=-1)


def _shift(x: np.ndarray, amount: int, axis: int) -> np.ndarray:
    """Shifts `x` by `amount` steps along `axis` (right / later if positive), zero fill."""
    out = np.zeros_like(x)
    length = x.shape[axis]
    if abs(amount) >= length:
        return out
    kept = np.take(x, np.arange(max(0, -amount), length - max(0, amount)), axis=axis)
    target = [slice(None)] * x.ndim
    target[axis] = slice(max(0, amount), length - max(0, -amount))
    out[tuple(target)] = kept
    return out


def _covariate(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(x + rng.standard_normal(x.shape) * (sigma * x.max()), 0.0, 1.0)


def _windows(x: np.ndarray, size: int) -> np.ndarray:
    # Edge padding mirrors OpenCV's replicate border for medianBlur / adaptiveThreshold.
    return np.lib.stride_tricks.sliding_window_view(np.pad(x, size // 2, mode="edge"), (size, size))


def _bilateral(img: np.ndarray, diameter: int, sigma_color: float, sigma_space: float) -> np.ndarray:
    radius = diameter // 2
    padded = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    height, width = img.shape[:2]
    total = np.zeros_like(img)
    weights = np.zeros(img.shape[:2])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            neighbour = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
            colour_distance = np.abs(neighbour - img).sum(axis=-1)
            w = np.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2) - colour_distance**2 / (2 * sigma_color**2))
            total += w[..., None] * neighbour
            weights += w
    return total / weights[..., None]


def _cartoon(x: np.ndarray) -> np.ndarray:
    """H-CAT's OpenCV cartoon effect in NumPy: median blur 5, adaptive mean threshold (block 9, C 9)
    as an edge mask, bilateral filter (9, 250, 250) on the colours, masked."""
    img = x * 255.0
    gray = img[..., 0] if img.shape[-1] == 1 else img[..., :3] @ np.array([0.299, 0.587, 0.114])
    gray = np.median(_windows(np.rint(gray), 5), axis=(-2, -1))
    edges = gray > _windows(gray, 9).mean(axis=(-2, -1)) - 9
    return _bilateral(img, 9, 250.0, 250.0) * edges[..., None] / 255.0


def _match_image(item: Any, height: int, width: int, channels: int) -> np.ndarray:
    if isinstance(item, PILImage.Image) and item.mode not in ("L", "RGB"):
        item = item.convert("RGB")
    x, _ = _to_unit_hwc(np.asarray(item), check_range=False)
    if x.shape[-1] in (2, 4):
        x = x[..., :-1]
    if x.shape[-1] != channels:
        x = x.mean(axis=-1, keepdims=True) if channels == 1 else np.repeat(x[..., :1], channels, axis=-1)
    return np.clip(_resize(x, height, width), 0.0, 1.0)


def _to_unit_hwc(a: np.ndarray, check_range: bool = True) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Float HWC image in [0, 1] and the inverse mapping back to `a`'s layout and dtype."""
    layout = "hw" if a.ndim == 2 else None
    if a.ndim == 3:
        if a.shape[-1] in (1, 2, 3, 4):
            layout = "hwc"
        elif a.shape[0] in (1, 3, 4):
            layout = "chw"
    if layout is None:
        raise ValueError(f"Expected an image of shape (H, W), (H, W, C) or (C, H, W), got {a.shape}.")
    dtype = a.dtype
    if np.issubdtype(dtype, np.integer):
        scale = 65535.0 if dtype == np.uint16 else 255.0
    elif np.issubdtype(dtype, np.floating):
        scale = 1.0
        if check_range and a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(
                f"Float images must be in [0, 1] (got [{a.min():.3g}, {a.max():.3g}]): add input noise before "
                "normalisation, or store uint8 pixels."
            )
    else:
        raise ValueError(f"Unsupported image dtype {dtype}; use uint8 or float in [0, 1].")
    x = a.astype(np.float32) / scale
    x = x[..., None] if layout == "hw" else np.moveaxis(x, 0, -1) if layout == "chw" else x

    def back(y: np.ndarray) -> np.ndarray:
        y = y[..., 0] if layout == "hw" else np.moveaxis(y, -1, 0) if layout == "chw" else y
        return np.rint(y * scale).astype(dtype) if scale != 1.0 else y.astype(dtype)

    return x, back


def _image_noise_fn(
    noise_type: str, sigma: float, zoom_factor: float, shift_fraction: float, pool: _Pool | None
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width, channels = x.shape
        if noise_type == "ood_covariate":
            return _covariate(x, rng, sigma)
        if noise_type == "domain_shift":
            return _cartoon(_covariate(x, rng, sigma))
        if noise_type == "far_ood":
            if pool is None:
                return rng.random(x.shape, dtype=np.float32)
            return _match_image(pool.get(int(rng.integers(len(pool)))), height, width, channels)
        if noise_type == "zoom_shift":
            crop_h, crop_w = max(1, int(height / zoom_factor)), max(1, int(width / zoom_factor))
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            return _resize(x[top : top + crop_h, left : left + crop_w], height, width)
        return _shift(x, int(round(shift_fraction * width)), axis=1)  # crop_shift

    return apply


def _noisy_image(a: np.ndarray, fn: Callable, rng: np.random.Generator) -> np.ndarray:
    x, back = _to_unit_hwc(a)
    if x.shape[-1] in (2, 4):  # keep alpha as is
        return back(np.concatenate([np.clip(fn(x[..., :-1], rng), 0, 1), x[..., -1:]], axis=-1))
    return back(np.clip(fn(x, rng), 0.0, 1.0))


# ----------------------------------------------------------------------------- time-series noise ((T,) or (T, D))


def _resample(x: np.ndarray, length: int) -> np.ndarray:
    grid = np.linspace(0, len(x) - 1, length)
    cols = x.reshape(len(x), -1)
    out = np.stack([np.interp(grid, np.arange(len(x)), cols[:, d]) for d in range(cols.shape[1])], axis=1)
    return out.reshape((length, *x.shape[1:]))


def _series_noise_fn(
    noise_type: str, sigma: float, zoom_factor: float, shift_fraction: float, pool: _Pool | None
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        length = len(x)
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if noise_type == "ts_covariate":
            # A constant series has no range; fall back to unit scale so it still gets noise.
            return x + rng.standard_normal(x.shape) * sigma * ((high - low) or 1.0)
        if noise_type == "ts_time_shift":
            return _shift(x, int(round(shift_fraction * length)), axis=0)
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
        # Rescaled to the replaced series' range so magnitude alone does not give it away.
        walk_low, walk_high = walk.min(), walk.max()
        return low + (walk - walk_low) / ((walk_high - walk_low) or 1.0) * ((high - low) or 1.0)

    return apply


# ----------------------------------------------------------------------------- input noise (Dataset level)


class _Pool:
    """Random access to far-OOD replacements: a Dataset column, an array or a sequence."""

    def __init__(self, pool: Any, column: str) -> None:
        if isinstance(pool, Dataset):
            if column not in pool.column_names:
                raise ValueError(f"pool has no column {column!r} (columns: {pool.column_names}); pass pool_column=...")
            self.items, self.column = pool.select_columns([column]), column
            self.fingerprint: Any = pool._fingerprint
        elif isinstance(pool, (np.ndarray, Sequence)) and not isinstance(pool, str):
            self.items, self.column, self.fingerprint = pool, None, Hasher.hash(pool)
        else:
            raise TypeError(f"pool must be a Dataset, an array or a list, got {type(pool).__name__}.")
        if len(self.items) == 0:
            raise ValueError("pool is empty; pass at least one replacement, or pool=None for the random fallback.")

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Any:
        return self.items[i][self.column] if self.column is not None else self.items[i]


def add_input_noise(
    dataset: Dataset,
    *,
    noise_type: str,
    rate: float,
    seed: int,
    input_column: str | None = None,
    sigma: float = 0.5,
    zoom_factor: float = 1.75,
    shift_fraction: float = 10 / 32,
    pool: Dataset | np.ndarray | Sequence[Any] | None = None,
    pool_column: str | None = None,
    label_column: str | None = "label",
    clean_label_column: str = CLEAN_LABEL_COLUMN,
    noisy_flag_column: str = NOISY_FLAG_COLUMN,
    allow_test_split: bool = False,
    batch_size: int = 1000,
) -> Dataset:
    """Returns `dataset` with exactly `round(rate * N)` inputs corrupted; labels are kept.

    Images (a datasets `Image` column, or arrays (H, W), (H, W, C), (C, H, W) of uint8 or float in
    [0, 1]) are noised in [0, 1] and written back in the input's feature type, layout and dtype; an
    alpha channel is kept as is. Time series are (T,) or (T, D) float arrays.

    - `ood_covariate`: `x + N(0, 1) * sigma * max(x)`, clamped to [0, 1].
    - `domain_shift`: `ood_covariate`, then a cartoon effect (median blur 5, adaptive-threshold edge
      mask block 9 / C 9, bilateral filter 9 / 250 / 250), in NumPy.
    - `far_ood`: replaced by a random `pool` image, resized bilinearly, channels matched (mean to gray,
      gray repeated to RGB); uniform random noise when `pool` is None.
    - `zoom_shift`: centre crop `H / zoom_factor x W / zoom_factor`, resized back bilinearly.
    - `crop_shift`: shifted right by `round(shift_fraction * W)` pixels (left if negative), zero fill.
    - `ts_covariate`: `x + N(0, 1) * sigma * (max(x) - min(x))`.
    - `ts_time_shift`: shifted by `round(shift_fraction * T)` steps, zero fill.
    - `ts_time_zoom`: the middle `T / zoom_factor` steps resampled linearly to length T.
    - `ts_far_ood`: replaced by a random `pool` series resampled to length T; without a pool, a
      Gaussian random walk rescaled to the original series' range.

    Args:
        dataset: A training split.
        noise_type: One of `INPUT_NOISE_TYPES`.
        rate: Fraction of rows to hit, in [0, 1].
        seed: Seed; each row's noise depends only on (seed, row index).
        input_column: Column to corrupt; defaults to "image" for image types, "series" for `ts_*`.
        sigma: Noise scale for `ood_covariate`, `domain_shift` and `ts_covariate`.
        zoom_factor: Crop factor (>= 1) for `zoom_shift` and `ts_time_zoom`.
        shift_fraction: Shift as a fraction of the width / length, in (-1, 1).
        pool: Replacements for `far_ood` / `ts_far_ood`: a Dataset, an array or a list.
        pool_column: Column of a Dataset `pool`; defaults to `input_column`.
        label_column: Label column copied to `clean_label_column`; None for unlabelled data.
        clean_label_column: New column with the (unchanged) labels.
        noisy_flag_column: New boolean column, True on the corrupted rows.
        allow_test_split: Allow a split named "test" (refused by default).
        batch_size: `Dataset.map` batch size.

    Returns:
        A new Dataset.
    """
    new_columns = (noisy_flag_column,) if label_column is None else (clean_label_column, noisy_flag_column)
    _check_dataset(dataset, allow_test_split, new_columns)
    _check_noise_type(noise_type, INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, "add_label_noise")
    _check_rate_seed(rate, seed)
    is_series = noise_type in TIME_SERIES_NOISE_TYPES
    input_column = input_column or ("series" if is_series else "image")
    if input_column not in dataset.column_names:
        raise ValueError(
            f"Input column {input_column!r} not found; columns are {dataset.column_names}. Pass input_column=..."
        )
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}.")
    if not zoom_factor >= 1:
        raise ValueError(f"zoom_factor must be >= 1 (1.75 crops the middle 1/1.75), got {zoom_factor}.")
    if not -1 < shift_fraction < 1:
        raise ValueError(f"shift_fraction must be in (-1, 1), got {shift_fraction}.")
    if pool is not None and noise_type not in ("far_ood", "ts_far_ood"):
        raise ValueError(f"pool= is only used by far_ood / ts_far_ood, not {noise_type!r}.")
    feature = dataset.features[input_column]
    is_image_feature = isinstance(feature, ImageFeature)
    if is_series and is_image_feature:
        raise ValueError(f"{noise_type!r} needs a column of float sequences; {input_column!r} holds images.")
    clean = feature_label = None
    if label_column is not None:
        clean, _, feature_label = _dataset_labels(dataset, label_column, None, min_classes=0)
    replacements = _Pool(pool, pool_column or input_column) if pool is not None else None

    hit = np.zeros(len(dataset), dtype=bool)
    hit[_hit_indices(len(dataset), rate, seed, _HITS_INPUT)] = True
    make_fn = _series_noise_fn if is_series else _image_noise_fn
    fn = make_fn(noise_type, sigma, zoom_factor, shift_fraction, replacements)
    decoder = ImageFeature(mode=feature.mode) if is_image_feature else None

    def corrupt_one(value: Any, index: int) -> Any:
        rng = np.random.default_rng([seed, _PER_ROW, index])
        if decoder is not None:
            image = decoder.decode_example(value)
            if image.mode not in ("L", "LA", "RGB", "RGBA"):
                image = image.convert("RGB")
            return ImageFeature().encode_example(PILImage.fromarray(_noisy_image(np.asarray(image), fn, rng)))
        a = np.asarray(value)
        if not is_series:
            return _noisy_image(a, fn, rng)
        if not np.issubdtype(a.dtype, np.floating) or a.ndim not in (1, 2):
            raise ValueError(
                f"{noise_type!r} needs (T,) or (T, D) float series in {input_column!r}, got dtype {a.dtype}, shape "
                f"{a.shape}; cast it, e.g. dataset.cast_column({input_column!r}, List(Value('float32')))."
            )
        return fn(a.astype(np.float64), rng).astype(a.dtype)

    def corrupt(column: Any, indices: list[int]) -> dict[str, Any]:
        at = np.asarray(indices, dtype=np.int64)
        values = list(column)
        for k in np.flatnonzero(hit[at]):
            values[k] = corrupt_one(values[k], int(at[k]))
        out = {input_column: values, noisy_flag_column: hit[at]}
        if clean is not None:
            out[clean_label_column] = clean[at]
        return out

    features = dataset.features.copy()
    if is_image_feature:
        # Undecoded images pass through byte for byte: re-encoding a JPEG would alter rows not hit.
        features[input_column] = ImageFeature(mode=feature.mode, decode=False)
        source = dataset.cast_column(input_column, features[input_column]).with_format(None)
    else:
        source = dataset.with_format("numpy")
    if label_column is not None:
        features[clean_label_column] = feature_label
    features[noisy_flag_column] = Value("bool")
    out = source.map(
        corrupt,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        input_columns=[input_column],
        features=features,
        new_fingerprint=Hasher.hash(
            [dataset._fingerprint, "hf_lilaw.add_input_noise", noise_type, rate, seed, input_column, sigma,
             zoom_factor, shift_fraction, replacements.fingerprint if replacements else None, label_column,
             clean_label_column, noisy_flag_column]
        ),  # fmt: skip
        desc=f"{noise_type} input noise",
    )
    if is_image_feature:
        out = out.cast_column(input_column, feature)
    return _with_format_of(out, dataset)
