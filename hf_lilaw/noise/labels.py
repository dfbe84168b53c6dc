"""Label noise on an array of class ids: uniform, pair flips, random transition rows, adjacent, rule maps and noise
matrix."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .sampling import STREAM_DRAWS, STREAM_LABEL_HITS, STREAM_MATRIX, check_rate_and_seed, hit_indices
from .types import check_noise_type

# Coarse (superclass) id of each CIFAR-100 fine label, fine labels in the usual alphabetical order
# (apple, aquarium_fish, baby, ...), as in the `fine_label` / `coarse_label` columns of uoft-cs/cifar100.
CIFAR100_COARSE_LABELS = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip


def _superclass_rules(coarse: Sequence[int]) -> dict[int, tuple[int, ...]]:
    return {
        fine: tuple(other for other, c in enumerate(coarse) if c == coarse[fine] and other != fine)
        for fine in range(len(coarse))
    }


RULE_MAPS: dict[str, dict[int, tuple[int, ...]]] = {
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


def _swaps(*pairs: tuple[int, int]) -> dict[int, int]:
    return {a: b for pair in pairs for a, b in (pair, pair[::-1])}


# Partners swap, and every class has one, so every hit row changes its label (realised rate = rate).
_MNIST_PAIRS = _swaps((0, 6), (1, 7), (2, 8), (3, 5), (4, 9))
PAIR_FLIP_MAPS: dict[str, dict[int, int]] = {
    # Digits that look alike: 0<->6, 1<->7, 2<->8, 3<->5, 4<->9.
    "mnist": _MNIST_PAIRS,
    "digits": _MNIST_PAIRS,
    # T-shirt<->Shirt, Pullover<->Coat, Sneaker<->Ankle boot are the confusable pairs; Trouser<->Dress and
    # Sandal<->Bag pair the rest so that no class keeps its label.
    "fashion_mnist": _swaps((0, 6), (2, 4), (7, 9), (1, 3), (5, 8)),
    # airplane<->ship, automobile<->truck, bird<->frog, cat<->dog, deer<->horse.
    "cifar10": _swaps((0, 8), (1, 9), (2, 6), (3, 5), (4, 7)),
}


def check_labels(labels: Any, num_classes: int | None, min_classes: int = 2) -> tuple[np.ndarray, int]:
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


def warn_inferred_num_classes(num_classes: int, *, stacklevel: int) -> None:
    """Warns that K was guessed as ``max(label) + 1``: classes above the largest label present are unreachable."""
    warnings.warn(
        f"num_classes not given and the labels are plain integers: K = max(label) + 1 = {num_classes} is a guess, "
        f"and the noise never produces a class >= {num_classes}. Pass num_classes=K (or use a ClassLabel column).",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def _is_class(c: Any, num_classes: int) -> bool:
    return not isinstance(c, bool) and isinstance(c, (int, np.integer)) and 0 <= c < num_classes


def _resolve_rules(rules: Any, num_classes: int) -> dict[int, tuple[int, ...]]:
    if rules is None:
        raise ValueError(
            f"noise_type='rule_map' needs rules=: one of {sorted(RULE_MAPS)} or a map {{class: [targets]}}."
        )
    if isinstance(rules, str):
        if rules not in RULE_MAPS:
            raise ValueError(f"Unknown rule map {rules!r}; pass one of {sorted(RULE_MAPS)} or a dict.")
        rules = RULE_MAPS[rules]
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a name or a {{class: [targets]}} mapping, got {type(rules).__name__}.")
    resolved = {}
    for source, targets in rules.items():
        targets = (targets,) if isinstance(targets, (int, np.integer)) else tuple(targets)
        if not targets:
            raise ValueError(f"rules[{source!r}] is empty; give at least one target class or drop the key.")
        for c in (source, *targets):
            if not _is_class(c, num_classes):
                raise ValueError(f"rules use class {c!r}, outside [0, {num_classes}); check num_classes and the map.")
        resolved[int(source)] = tuple(int(t) for t in targets)
    return resolved


def pair_flip_partners(rules: str | Mapping[int, int] | None, num_classes: int) -> np.ndarray:
    """The partner of each class for ``pair_flip`` noise, as an array ``partner[c]``.

    Args:
        rules: A key of `PAIR_FLIP_MAPS` (for exactly its 10 classes), a ``{class: partner}`` map that permutes
            its keys (classes left out keep their label), or None for the pair flipping of Co-teaching
            (Han et al., 2018): class c goes to (c + 1) mod K.
        num_classes: K.
    """
    if rules is None:
        return (np.arange(num_classes) + 1) % num_classes
    if isinstance(rules, str):
        if rules not in PAIR_FLIP_MAPS:
            raise ValueError(f"Unknown pair flip map {rules!r}; pass one of {sorted(PAIR_FLIP_MAPS)}, a dict or None.")
        if len(PAIR_FLIP_MAPS[rules]) != num_classes:
            raise ValueError(
                f"rules={rules!r} pairs the {len(PAIR_FLIP_MAPS[rules])} classes of {rules}, but there are "
                f"num_classes={num_classes}; pass a {{class: partner}} map for these labels."
            )
        rules = PAIR_FLIP_MAPS[rules]
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a name, a {{class: partner}} mapping or None, got {type(rules).__name__}.")
    partners = np.arange(num_classes)
    for source, target in rules.items():
        for c in (source, target):
            if not _is_class(c, num_classes):
                raise ValueError(
                    f"rules map {source!r} -> {target!r}: a pair flip map takes one partner class per class, "
                    f"each in [0, {num_classes}); check num_classes and the map."
                )
        partners[source] = target
    if sorted(rules.values()) != sorted(rules):
        raise ValueError(
            f"rules must permute its classes, each listed once as a class and once as a partner (e.g. {{0: 6, 6: 0}}); "
            f"got classes {sorted(rules)} and partners {sorted(rules.values())}. "
            "For other maps use noise_type='rule_map'."
        )
    return partners


def random_transition_matrix(num_classes: int, *, seed: int) -> np.ndarray:
    """Row `i` is a Dirichlet(1, ..., 1) draw over the other classes (zero diagonal), fixed per seed.

    Args:
        num_classes: Number of classes K (>= 2).
        seed: Seed; the matrix depends on nothing else.

    Returns:
        A K x K row-stochastic matrix with a zero diagonal.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    rng = np.random.default_rng([seed, STREAM_MATRIX])
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
        with warnings.catch_warnings():  # importing cleanlab turns every warning off, process-wide, for good
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
        out = np.asarray(generate_noisy_labels(y, noise_matrix), dtype=np.int64)
    finally:
        np.random.set_state(state)
    # cleanlab rounds down the number of rows each class sends to each other class: with many classes and few
    # rows per class most of these counts round to 0, and the noise asked for is silently not added.
    asked = float(np.mean(1 - np.diag(noise_matrix)))
    realised = float(np.mean(np.bincount(y[out != y], minlength=num_classes) / counts))
    if asked - realised > 0.1 * asked:
        warnings.warn(
            f"noise_type='noise_matrix' flipped a mean per-class share of {realised:.4f} instead of {asked:.4f}: "
            f"cleanlab rounds down the number of rows each class sends to each other class, which with {num_classes} "
            f"classes of {counts.min()} to {counts.max()} rows loses {1 - realised / asked:.0%} of the noise. Use "
            "noise_type='random_transition' (exactly round(rate * N) rows hit) or fewer classes with more rows.",
            UserWarning,
            stacklevel=_stacklevel_outside_package(),
        )
    return out


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _stacklevel_outside_package() -> int:
    """The `stacklevel` that points a warning at the first caller outside hf_lilaw, for a warning raised under
    several public entry points (`noisy_labels`, `add_label_noise`) at different depths."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    return level


def _relabel(
    y: np.ndarray, k: int, noise_type: str, rate: float, seed: int, rules: Any, keep_original_draw: bool, noise_matrix: Any
) -> np.ndarray:
    if noise_type == "noise_matrix":
        return _noise_matrix_labels(y, k, rate, seed, noise_matrix)

    hits = hit_indices(len(y), rate, seed, STREAM_LABEL_HITS)
    rng = np.random.default_rng([seed, STREAM_DRAWS])
    sources = y[hits]
    if noise_type == "uniform":
        if keep_original_draw:
            new = rng.integers(0, k, size=len(hits))
        else:
            new = (sources + rng.integers(1, k, size=len(hits))) % k
    elif noise_type == "pair_flip":
        new = pair_flip_partners(rules, k)[sources]
    else:
        if noise_type == "random_transition":
            rows = random_transition_matrix(k, seed=seed)
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
    - `pair_flip`: to the partner of y, `pair_flip_partners(rules, K)[y]`. The built-in `PAIR_FLIP_MAPS`
      (`mnist`/`digits`, `fashion_mnist`, `cifar10`) swap look-alike classes and give every class a partner;
      `rules=None` is Co-teaching's pair flipping, y -> (y+1) mod K. A class without a partner (left out of
      a user map) keeps its label.
    - `random_transition` (formerly `asymmetric`): from row y of `random_transition_matrix(K, seed=seed)`,
      random Dirichlet rows fixed per seed.
    - `adjacent`: (y-1) mod K or (y+1) mod K with probability 1/2 each.
    - `rule_map` (formerly `instance`): uniform over `rules[y]`; `rules` is a key of `RULE_MAPS` or a
      `{y: [targets]}` map. Hit rows whose class has no rule keep their label, so `rate` is realised only on
      the classes that have rules: the realised rate is `rate` times the share of rows whose class has one.
      Built-in maps: H-CAT's `mnist` and `cifar10`; `cifar100` moves a class to another class of its
      superclass (`CIFAR100_COARSE_LABELS`); `fashion_mnist` is ours, among look-alikes: T-shirt<->Shirt,
      Pullover<->Coat, Dress->T-shirt, Sandal/Sneaker/Ankle boot among each other (Trouser, Bag kept).
    - `noise_matrix` (needs cleanlab): cleanlab's `generate_noisy_labels` with a matrix of trace
      K*(1-rate) from `generate_noise_matrix_from_trace`, or the given `noise_matrix` (then `rate` is
      unused). With the trace, `rate` is the mean per-class flip rate, not the share of rows: that share
      depends on the class balance and the seed (close to `rate` on balanced classes, maybe far otherwise).

    Args:
        labels: Integer class ids in [0, K).
        noise_type: One of `LABEL_NOISE_TYPES` (the old names `asymmetric` and `instance` still work, with a
            FutureWarning).
        rate: Fraction of rows to hit, in [0, 1]; for `noise_matrix`, the mean per-class flip rate.
        seed: Seed; same seed and inputs give the same output.
        num_classes: K; when None, guessed as `max(labels) + 1` with a warning (classes above the largest
            label present could never be drawn).
        rules: For `pair_flip`: a key of `PAIR_FLIP_MAPS`, a `{y: partner}` permutation or None (c -> c+1);
            for `rule_map`: a key of `RULE_MAPS` or a `{y: [targets]}` map.
        keep_original_draw: For `uniform` only, allow redrawing the original label.
        noise_matrix: For `noise_matrix` only, a K x K column-stochastic `P(noisy=i | true=j)`.

    Returns:
        The noisy labels, int64, same length as `labels`.
    """
    noise_type = check_noise_type(noise_type, label=True, stacklevel=2)
    check_rate_and_seed(rate, seed)
    y, k = check_labels(labels, num_classes)
    if rules is not None and noise_type not in ("pair_flip", "rule_map"):
        raise ValueError(f"rules= is only used by noise_type='pair_flip' or 'rule_map', not {noise_type!r}.")
    if keep_original_draw and noise_type != "uniform":
        raise ValueError(f"keep_original_draw= is only used by noise_type='uniform', not {noise_type!r}.")
    if noise_matrix is not None and noise_type != "noise_matrix":
        raise ValueError(f"noise_matrix= is only used by noise_type='noise_matrix', not {noise_type!r}.")
    out = _relabel(y, k, noise_type, rate, seed, rules, keep_original_draw, noise_matrix)
    if num_classes is None:
        warn_inferred_num_classes(k, stacklevel=2)
    return out
