"""`add_label_noise` and `add_input_noise`: the noise of `labels`, `images` and `series` applied to a
`datasets.Dataset` with `Dataset.map`, keeping the clean label and a noisy flag, and refusing test splits."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value
from datasets import Image as ImageFeature
from datasets.fingerprint import Hasher

from .._version import __version__
from ..core.columns import CLEAN_LABEL_COLUMN, NOISY_FLAG_COLUMN
from .images import check_image_mode, image_noise_fn, noisy_image, noisy_pil_image
from .labels import check_labels, noisy_labels, warn_inferred_num_classes
from .sampling import STREAM_INPUT_HITS, STREAM_PER_ROW, check_rate_and_seed, hit_indices
from .series import series_noise_fn
from .types import TIME_SERIES_NOISE_TYPES, check_noise_type

logger = logging.getLogger(__name__)


def _names_test_data(split: Any) -> bool:
    """Whether a split name or expression (``"test"``, ``"test[:10%]"``, ``"train+test"``) includes test data; a
    name that is ``test`` and a qualifier (``"test_matched"``, ``"test.clean"``, ``"test-other"``, ``"test2"``)
    counts, a longer word (``"testing"``) does not."""
    if split is None:
        return False
    names = (part.split("[")[0].strip().lower() for part in str(split).split("+"))
    return any(re.fullmatch(r"test([^a-z].*)?", name) for name in names)


def _one_split(
    dataset: Dataset | DatasetDict, split: str | None, allow_test_split: bool
) -> tuple[Dataset, Callable[[Dataset], Dataset | DatasetDict]]:
    """The Dataset to noise, and the function that puts the noisy one back where it came from."""
    if isinstance(dataset, DatasetDict):
        if split is None:
            raise TypeError(
                f"Pass a single split, e.g. dataset['train'], or name the split to noise, split='train', "
                f"not a DatasetDict with {list(dataset)} alone."
            )
        if split not in dataset:
            raise ValueError(f"split={split!r} is not in the DatasetDict; it has {list(dataset)}.")
        if _names_test_data(split) and not allow_test_split:
            raise ValueError(
                f"Refusing to add noise to the {split!r} split: evaluation must stay clean. Noise the training "
                "split instead, or pass allow_test_split=True if this is intended."
            )
        return dataset[split], lambda noisy: DatasetDict({**dataset, split: noisy})
    if split is not None:
        raise ValueError(f"split={split!r} picks a split of a DatasetDict; with a single Dataset, drop split=.")
    return dataset, lambda noisy: noisy


def _check_dataset(dataset: Any, allow_test_split: bool, new_columns: Sequence[str]) -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}.")
    if _names_test_data(dataset.split) and not allow_test_split:
        raise ValueError(
            f"Refusing to add noise to the test split ({dataset.split!r}): evaluation must stay clean. "
            "Noise the training split instead, or pass allow_test_split=True if this is intended."
        )
    if len(set(new_columns)) < len(new_columns):
        raise ValueError(
            f"clean_label_column and noisy_flag_column are both {new_columns[0]!r}: the flags would overwrite the "
            "clean labels. Give them different names."
        )
    for column in new_columns:
        if column in dataset.column_names:
            raise ValueError(
                f"Column {column!r} already exists (was noise already added?). Remove it first, "
                "or pass another name via clean_label_column= / noisy_flag_column=."
            )


def _check_label_column(dataset: Dataset, label_column: str, *, optional: bool = False) -> None:
    if label_column not in dataset.column_names:
        none = ", or label_column=None for a dataset without labels" if optional else ""
        raise ValueError(
            f"Label column {label_column!r} not found; columns are {dataset.column_names}. Pass label_column=...{none}."
        )


def _dataset_labels(
    dataset: Dataset, label_column: str, num_classes: int | None, min_classes: int = 2
) -> tuple[np.ndarray, int, Any]:
    _check_label_column(dataset, label_column)
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
    y, k = check_labels(labels, num_classes, min_classes)
    if isinstance(feature, Value) and k - 1 > np.iinfo(feature.dtype).max:
        raise ValueError(
            f"Label column {label_column!r} is {feature.dtype}, which cannot hold the noisy labels up to {k - 1} "
            f"({k} classes). Cast it first, e.g. dataset.cast_column({label_column!r}, Value('int64')), or pass "
            "the right num_classes."
        )
    return y, k, feature


def _cache_fingerprint(dataset: Dataset, *args: Any) -> str:
    """`Dataset.map`'s fingerprint of a noised copy of `dataset`: `args` must hold everything that changes the
    output. The package version stands in for the algorithms' version, so an upgrade never reuses stale caches."""
    return Hasher.hash([dataset._fingerprint, "hf_lilaw", __version__, *args])


def _with_format_of(out: Dataset, like: Dataset) -> Dataset:
    fmt = like.format
    columns = fmt["columns"]
    columns = None if set(columns) == set(like.column_names) else columns
    return out.with_format(fmt["type"], columns=columns, output_all_columns=fmt["output_all_columns"], **fmt["format_kwargs"])


def realised_noise_rate(dataset: Dataset, *, noisy_flag_column: str = NOISY_FLAG_COLUMN) -> float:
    """Returns the fraction of rows flagged noisy (below `rate` for `rule_map` and `pair_flip` noise when some
    classes have no rule or partner, and for `keep_original_draw`; depends on the class balance for
    `noise_matrix`)."""
    if isinstance(dataset, DatasetDict):
        # Its column_names is a dict of splits, so the check below would claim the flag column is missing.
        noised = [split for split, part in dataset.items() if noisy_flag_column in part.column_names]
        raise TypeError(
            f"realised_noise_rate takes one split, got a DatasetDict with {list(dataset)} (noised: {noised}); "
            f"pass one, e.g. realised_noise_rate(dataset[{(noised or list(dataset) or ['train'])[0]!r}])."
        )
    if noisy_flag_column not in dataset.column_names:
        raise ValueError(f"Column {noisy_flag_column!r} not found; was noise added with another noisy_flag_column?")
    flags = dataset.with_format("numpy", columns=[noisy_flag_column])[:][noisy_flag_column]
    return float(np.mean(flags)) if len(flags) else 0.0


# Why a hit row can keep its label, per noise type (the others always change it).
_KEPT_LABEL_REASONS = {
    "rule_map": "have no rule for their class, or drew their own class from its rule,",
    "pair_flip": "have no partner for their class, or are their own partner,",
    "uniform": "redrew a label equal to the original (keep_original_draw=True)",
}


def _warn_realised_rate(flags: np.ndarray, noise_type: str, rate: float, own_matrix: bool) -> None:
    """Logs a warning when the share of rows flipped is not `rate`, with both rates."""
    n = len(flags)
    if n == 0:
        return
    realised = float(flags.mean())
    if noise_type == "noise_matrix":
        # The matrix fixes the unweighted mean of the per-class flip rates, not the share of rows, which moves
        # with class balance. A tolerance of 3 binomial standard deviations (at least 0.02) keeps balanced data
        # quiet (0.387-0.392 for rate 0.4 on 600 rows) and flags the shifts that imbalance causes.
        tolerance = max(0.02, 3 * math.sqrt(rate * (1 - rate) / n))
        if not own_matrix and abs(realised - rate) > tolerance:
            logger.warning(
                "noise_matrix noise: realised rate %.4f differs from rate %.4f by more than %.4f: `rate` is the "
                "mean per-class flip rate, and the share of rows flipped depends on the class balance and the seed. "
                "Use noise_type='uniform' for an exact share of rows.",
                realised, rate, tolerance,
            )  # fmt: skip
    elif noise_type in _KEPT_LABEL_REASONS and realised < int(round(rate * n)) / n:
        logger.warning(
            "%s noise: some hit rows %s and keep their label; realised rate %.4f < rate %.4f.",
            noise_type, _KEPT_LABEL_REASONS[noise_type], realised, rate,
        )  # fmt: skip


def add_label_noise(
    dataset: Dataset | DatasetDict,
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
    split: str | None = None,
    allow_test_split: bool = False,
    batch_size: int = 1000,
) -> Dataset | DatasetDict:
    """Returns `dataset` with noisy labels; the original label goes to `clean_label_column`.

    See `noisy_labels` for the noise types. Only the label column is read and rewritten; a ClassLabel
    feature is kept (and copied to `clean_label_column`). `noisy_flag_column` is `label != clean_label`,
    so hit rows that keep their label (`rule_map` classes without a rule, `pair_flip` classes without a
    partner, `keep_original_draw`) are not flagged: `rate` is then realised only on the other rows, a
    warning is logged with both rates, and `realised_noise_rate` gives the resulting rate. For
    `noise_matrix`, `rate` is the mean per-class flip rate: the share of rows flipped depends on the class
    balance and the seed, and a warning gives both rates when they differ by more than sampling noise.

    Args:
        dataset: A training split, or a `DatasetDict` together with `split=`.
        noise_type: One of `LABEL_NOISE_TYPES` (the old names `asymmetric` and `instance` still work, with a
            FutureWarning).
        rate: Fraction of rows to hit, in [0, 1]; for `noise_matrix`, the mean per-class flip rate.
        seed: Seed.
        label_column: Column of ClassLabel or int class ids.
        num_classes: K; defaults to the ClassLabel's. Give it for plain int labels: otherwise K is guessed as
            `max(label) + 1`, with a warning (a split lacking the top classes would get too small a K).
        rules: For `pair_flip`: a key of `PAIR_FLIP_MAPS`, a `{y: partner}` permutation, or None for y -> y+1;
            for `rule_map`: a key of `RULE_MAPS` or a `{y: [targets]}` map.
        keep_original_draw: For `uniform`: H-CAT behaviour, may redraw the original label.
        noise_matrix: For `noise_matrix`: a K x K column-stochastic matrix instead of one from `rate`.
        clean_label_column: New column with the original labels.
        noisy_flag_column: New boolean column, True where the label was changed.
        split: With a `DatasetDict`, the name of the split to noise (the others are returned as they are);
            a split named "test" is refused like a test Dataset. The safe way to noise one half of
            `Dataset.train_test_split()`, whose halves do not carry their names.
        allow_test_split: Allow test data: a Dataset whose `split` includes "test" (e.g. "test",
            "test[:10%]", "train+test"), or `split="test"` (refused by default).
        batch_size: `Dataset.map` batch size.

    Returns:
        A new Dataset, or with `split=`, a new DatasetDict holding the noisy split.
    """
    dataset, put_back = _one_split(dataset, split, allow_test_split)
    _check_dataset(dataset, allow_test_split, (clean_label_column, noisy_flag_column))
    noise_type = check_noise_type(noise_type, label=True, stacklevel=2)
    clean, k, feature = _dataset_labels(dataset, label_column, num_classes)
    new = noisy_labels(
        clean, noise_type=noise_type, rate=rate, seed=seed, num_classes=k, rules=rules,
        keep_original_draw=keep_original_draw, noise_matrix=noise_matrix,
    )  # fmt: skip
    if num_classes is None and not isinstance(feature, ClassLabel):
        warn_inferred_num_classes(k, stacklevel=2)
    flags = new != clean
    _warn_realised_rate(flags, noise_type, rate, noise_matrix is not None)

    features = dataset.features.copy()
    features[clean_label_column] = feature
    features[noisy_flag_column] = Value("bool")

    def relabel(_: Any, indices: list[int]) -> dict[str, np.ndarray]:
        at = np.asarray(indices, dtype=np.int64)
        return {label_column: new[at], clean_label_column: clean[at], noisy_flag_column: flags[at]}

    # Mapped unformatted: a transform (set_transform, with_transform) would hide or rename the label column.
    noisy = dataset.with_format(None).map(
        relabel,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        input_columns=[label_column],
        features=features,
        new_fingerprint=_cache_fingerprint(
            dataset, "add_label_noise", noise_type, rate, seed, k, label_column, new, clean_label_column,
            noisy_flag_column,
        ),  # fmt: skip
        desc=f"{noise_type} label noise",
    )
    return put_back(_with_format_of(noisy, dataset))


def _storage_dtype(feature: Any) -> np.dtype | None:
    """The NumPy dtype of an array feature's values (its leaf `Value` / `Array*D` dtype); None for others."""
    while isinstance(feature, (list, tuple)) or hasattr(feature, "feature"):
        feature = feature[0] if isinstance(feature, (list, tuple)) else feature.feature
    dtype = getattr(feature, "dtype", None)
    try:
        return np.dtype(dtype) if isinstance(dtype, str) else None
    except (TypeError, ValueError):  # Arrow-only types: strings, timestamps, decimals, ...
        return None


class _Pool:
    """Random access to far-OOD replacements: a Dataset column, an array or a sequence."""

    def __init__(self, pool: Any, column: str) -> None:
        self.dtype: np.dtype | None = None
        if isinstance(pool, Dataset):
            if column not in pool.column_names:
                raise ValueError(f"pool has no column {column!r} (columns: {pool.column_names}); pass pool_column=...")
            self.items, self.column = pool.select_columns([column]), column
            self.fingerprint: Any = Hasher.hash([pool._fingerprint, column])
            feature = pool.features[column]
            if isinstance(feature, ImageFeature):
                check_image_mode(feature.mode, f"pool column {column!r}")
            else:
                # Rows come back as lists or int64 arrays: the stored dtype (uint16 or uint8) gives the pixel scale.
                self.dtype = _storage_dtype(feature)
        elif isinstance(pool, (np.ndarray, Sequence)) and not isinstance(pool, str):
            self.items, self.column, self.fingerprint = pool, None, Hasher.hash(pool)
        else:
            raise TypeError(f"pool must be a Dataset, an array or a list, got {type(pool).__name__}.")
        if len(self.items) == 0:
            raise ValueError("pool is empty; pass at least one replacement, or pool=None for the random fallback.")

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Any:
        if self.column is None:
            return self.items[i]
        item = self.items[i][self.column]
        return item if self.dtype is None else np.asarray(item, dtype=self.dtype)


def _has_missing_steps(value: Any) -> bool:
    """Whether a series read as Python lists has None steps."""
    return isinstance(value, list) and any(v is None or (isinstance(v, list) and None in v) for v in value)


def add_input_noise(
    dataset: Dataset | DatasetDict,
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
    split: str | None = None,
    allow_test_split: bool = False,
    batch_size: int = 1000,
) -> Dataset | DatasetDict:
    """Returns `dataset` with exactly `round(rate * N)` inputs corrupted; labels are kept.

    Images (a datasets `Image` column, or arrays (H, W), (H, W, C), (C, H, W) of uint8, uint16 or float
    in [0, 1]; other integers must lie in [0, 255], and a shape whose first and last axes could both be
    channels is refused) are noised in [0, 1] and written back in the input's feature type, layout and dtype;
    images with transparency (an alpha band, or a palette's or PNG's transparent colour: noised as LA / RGBA)
    are noised as shown over white, the alpha band kept, moved by `crop_shift` / `zoom_shift`, made opaque by
    `far_ood`. 16-bit images (uint16, PIL mode `I;16`) use the 0..65535 scale; PIL
    modes `I` and `F`, of unknown range, raise a ValueError. Time series are (T,) or (T, D) float arrays.

    - `ood_covariate`: `x + N(0, 1) * sigma * max(x)`, clamped to [0, 1].
    - `domain_shift`: `ood_covariate`, then a cartoon effect (median blur 5, adaptive-threshold edge
      mask block 9 / C 9, bilateral filter 9 / 250 / 250), in NumPy.
    - `far_ood`: replaced by a random `pool` image, transparent pixels over white, resized bilinearly, channels
      matched (mean to gray, gray repeated to RGB); uniform random noise when `pool` is None.
    - `zoom_shift`: centre crop `H / zoom_factor x W / zoom_factor`, resized back bilinearly.
    - `crop_shift`: shifted right by `round(shift_fraction * W)` pixels (left if negative), zero fill.
    - `ts_covariate`: `x + N(0, 1) * sigma * (max(x) - min(x))`.
    - `ts_time_shift`: shifted by `round(shift_fraction * T)` steps, zero fill.
    - `ts_time_zoom`: the middle `T / zoom_factor` steps resampled linearly to length T.
    - `ts_far_ood`: replaced by a random `pool` series resampled to length T; without a pool, a
      Gaussian random walk rescaled to the original series' range.

    Args:
        dataset: A training split, or a `DatasetDict` together with `split=`.
        noise_type: One of `INPUT_NOISE_TYPES`.
        rate: Fraction of rows to hit, in [0, 1].
        seed: Seed; each row's noise depends only on (seed, row index).
        input_column: Column to corrupt; defaults to "image" for image types, "series" for `ts_*`.
        sigma: Noise scale for `ood_covariate`, `domain_shift` and `ts_covariate`.
        zoom_factor: Crop factor (>= 1) for `zoom_shift` and `ts_time_zoom`.
        shift_fraction: Shift as a fraction of the width / length, in (-1, 1).
        pool: Replacements for `far_ood` / `ts_far_ood`: a Dataset, an array or a list.
        pool_column: Column of a Dataset `pool`; defaults to `input_column`.
        label_column: Label column copied as it is to `clean_label_column` (any values, e.g. -1 for unlabelled
            rows, or strings); None for a dataset without one.
        clean_label_column: New column with the (unchanged) labels.
        noisy_flag_column: New boolean column, True on the corrupted rows.
        split: With a `DatasetDict`, the name of the split to noise (the others are returned as they are);
            a split named "test" is refused like a test Dataset. The safe way to noise one half of
            `Dataset.train_test_split()`, whose halves do not carry their names.
        allow_test_split: Allow test data: a Dataset whose `split` includes "test" (e.g. "test",
            "test[:10%]", "train+test"), or `split="test"` (refused by default).
        batch_size: `Dataset.map` batch size.

    Returns:
        A new Dataset, or with `split=`, a new DatasetDict holding the noisy split.
    """
    dataset, put_back = _one_split(dataset, split, allow_test_split)
    new_columns = (noisy_flag_column,) if label_column is None else (clean_label_column, noisy_flag_column)
    _check_dataset(dataset, allow_test_split, new_columns)
    check_noise_type(noise_type, label=False)
    check_rate_and_seed(rate, seed)
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
    if is_image_feature:
        check_image_mode(feature.mode, f"Image column {input_column!r}")
    storage_dtype = None if is_image_feature else _storage_dtype(feature)
    if label_column is not None:
        _check_label_column(dataset, label_column, optional=True)
    replacements = _Pool(pool, pool_column or input_column) if pool is not None else None

    hit = np.zeros(len(dataset), dtype=bool)
    hit[hit_indices(len(dataset), rate, seed, STREAM_INPUT_HITS)] = True
    make_fn = series_noise_fn if is_series else image_noise_fn
    fn = make_fn(noise_type, sigma, zoom_factor, shift_fraction, replacements)
    decoder = ImageFeature(mode=feature.mode) if is_image_feature else None

    def corrupt_one(value: Any, index: int) -> Any:
        rng = np.random.default_rng([seed, STREAM_PER_ROW, index])
        if decoder is not None:
            image = decoder.decode_example(value)
            check_image_mode(image.mode, f"Row {index} of image column {input_column!r}")
            return ImageFeature().encode_example(noisy_pil_image(image, fn, rng))
        if not is_series:
            return noisy_image(np.asarray(value), fn, rng, what=f"Row {index} of image column {input_column!r}")
        a = np.array(value, dtype=storage_dtype or np.float64)
        if not np.issubdtype(a.dtype, np.floating) or a.ndim not in (1, 2):
            raise ValueError(
                f"{noise_type!r} needs (T,) or (T, D) float series in {input_column!r}, got dtype {a.dtype}, shape "
                f"{a.shape}; cast it, e.g. dataset.cast_column({input_column!r}, List(Value('float32')))."
            )
        noisy = fn(a.astype(np.float64), rng).astype(a.dtype)
        if not _has_missing_steps(value):
            return noisy.tolist()  # lists like the rows not hit: a float32 array beside them fails arrow's concatenation
        # a series stored with None steps keeps None where the noise leaves a step missing (moved, or spread by zoom)
        return np.where(np.isnan(noisy), None, noisy.astype(object)).tolist()

    def corrupt(column: Any, *labels_and_indices: Any) -> dict[str, Any]:
        *labels, indices = labels_and_indices
        at = np.asarray(indices, dtype=np.int64)
        values = list(column)  # read in the stored dtype (below), so rows not hit go back as they came
        for k in np.flatnonzero(hit[at]):
            values[k] = corrupt_one(values[k], int(at[k]))
        out = {input_column: values, noisy_flag_column: hit[at]}
        if labels:  # copied as they are: input noise never reads them, so -1 or strings are fine
            out[clean_label_column] = labels[0]
        return out

    features = dataset.features.copy()
    if is_image_feature:
        # Undecoded images pass through byte for byte: re-encoding a JPEG would alter rows not hit.
        features[input_column] = ImageFeature(mode=feature.mode, decode=False)
        source = dataset.cast_column(input_column, features[input_column]).with_format(None)
    elif is_series:
        # As Python lists: the numpy format reads a None step as NaN, which went back into every row, hit or not.
        source = dataset.with_format(None)
    else:
        # The numpy format's default dtype is float32 for every float: read the input column in its stored dtype, so
        # that a float64 row not hit comes back bit for bit (and a hit one is noised at full precision).
        source = dataset.with_format("numpy", columns=[input_column], output_all_columns=True,
                                     dtype=storage_dtype)  # fmt: skip
    if label_column is not None:
        features[clean_label_column] = dataset.features[label_column]
    features[noisy_flag_column] = Value("bool")
    out = source.map(
        corrupt,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        input_columns=[input_column] if label_column is None else [input_column, label_column],
        features=features,
        new_fingerprint=_cache_fingerprint(  # "stored dtype": caches written when float64 was read as float32 differ
            dataset, "add_input_noise", "stored dtype", "None steps kept", "alpha as shown", "LAB opaque", noise_type, rate, seed, input_column, sigma, zoom_factor, shift_fraction,
            replacements.fingerprint if replacements else None, label_column, clean_label_column, noisy_flag_column,
        ),  # fmt: skip
        desc=f"{noise_type} input noise",
    )
    if is_image_feature:
        out = out.cast_column(input_column, feature)
    return put_back(_with_format_of(out, dataset))
