"""Real time-series classification sets of the UCR (univariate) and UEA (multivariate) archives, read with aeon.

aeon (the optional extra ``timeseries``) ships a few sets inside its package, so these load offline:
ArrowHead, GunPoint, ItalyPowerDemand, OSULeaf, ACSF1 (univariate), BasicMotions, JapaneseVowels
(multivariate) and a few more; every other archive set is downloaded by aeon on first use, or read from
``extract_path``.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .registry import register_dataset
from .splits import finish_splits

_INSTALL_HINT = "pip install 'hf_lilaw[timeseries]'"


def _aeon() -> tuple[Any, dict[str, Any]]:
    try:
        from aeon.datasets import load_classification
        from aeon.datasets.tsc_datasets import tsc_zenodo
    except ImportError as err:
        raise ImportError(f"load_ucr reads the UCR/UEA archives with aeon, which is not installed: {_INSTALL_HINT}") from err
    return load_classification, tsc_zenodo


def bundled_ucr_sets() -> list[str]:
    """Classification sets that aeon ships inside its package (they load without a network)."""
    _, archive = _aeon()
    data = resources.files("aeon.datasets") / "data"
    return sorted(n for n in archive if (data / n / f"{n}_TRAIN.ts").is_file() and (data / n / f"{n}_TEST.ts").is_file())


def _resolve_name(name: str, archive: dict[str, Any], extract_path: str | os.PathLike[str] | None) -> str:
    if name in archive:
        return name
    # the user's files as spelled come before the archive's spelling, which aeon would download over them
    if extract_path is not None and any(
        os.path.isfile(os.path.join(extract_path, name, f"{name}_TRAIN.{ext}")) for ext in ("ts", "tsv")
    ):
        return name
    by_lower = {n.lower(): n for n in archive}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, list(archive), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown UCR/UEA classification set {name!r}.{hint} Offline, aeon has {', '.join(bundled_ucr_sets())}; "
        "the full list is aeon.datasets.tsc_datasets.tsc_zenodo (downloaded on first use), or pass extract_path= "
        f"to a folder holding {name}/{name}_TRAIN.ts and {name}/{name}_TEST.ts."
    )


def _declared_classes(name: str, extract_path: str | os.PathLike[str] | None) -> list[str] | None:
    """The class names of the ``@classLabel`` line of ``<name>_TRAIN.ts`` in ``extract_path`` or aeon's bundled data,
    case and order as the archive has them; None when that file is not there (sets aeon downloads to its cache)."""
    folder = resources.files("aeon.datasets") / "data" if extract_path is None else Path(extract_path)
    path = folder / name / f"{name}_TRAIN.ts"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            head = line.strip()
            if head.lower().startswith("@data"):
                return None
            if head.lower().startswith("@classlabel"):
                return head.split()[2:] or None
    return None


def _tsv_paths(name: str, extract_path: str | os.PathLike[str] | None) -> dict[str, str] | None:
    """``<name>/<name>_TRAIN.tsv`` and ``_TEST.tsv`` (the UCR 2018 archive's files) in ``extract_path`` where it
    holds them and no ``.ts`` pair; None otherwise."""
    if extract_path is None:
        return None
    folder = os.path.join(extract_path, name)
    if all(os.path.isfile(os.path.join(folder, f"{name}_{s}.ts")) for s in ("TRAIN", "TEST")):
        return None
    paths = {s: os.path.join(folder, f"{name}_{s.upper()}.tsv") for s in ("train", "test")}
    return paths if all(os.path.isfile(p) for p in paths.values()) else None


def _read_tsv(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Cases ``(1, steps)`` and labels of a UCR 2018 ``.tsv`` file, read with aeon; the NaNs that pad shorter series
    to the file's width are dropped from the end."""
    from aeon.datasets import load_from_tsv_file

    x, y = load_from_tsv_file(path)
    cases = []
    for case in x:
        finite = np.flatnonzero(np.isfinite(case[0]))
        cases.append(case[:, : finite[-1] + 1] if finite.size else case)
    if y.dtype.kind == "f" and np.all(y == np.round(y)):  # pandas reads a column of ints with a gap as floats
        y = y.astype(np.int64)
    return cases, y


def _class_order(targets: np.ndarray) -> list[str]:
    """The distinct labels of a file without a class header, numerically where they are numbers ("2" before "10")."""
    values = sorted(set(targets.tolist()))
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def _time_first(x: np.ndarray, length: int | None, z_normalise: bool) -> np.ndarray:
    """One case of aeon's ``(channels, steps)`` as ``(steps,)`` (one channel) or ``(steps, channels)``."""
    x = np.asarray(x, dtype=np.float64).T
    if length is not None and len(x) != length:
        grid = np.linspace(0, len(x) - 1, length)
        x = np.stack([np.interp(grid, np.arange(len(x)), x[:, c]) for c in range(x.shape[1])], axis=1)
    if z_normalise:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x[:, 0] if x.shape[1] == 1 else x


@register_dataset("ucr/")
def load_ucr(
    name: str,
    *,
    meta_fraction: float = 0.15,
    seed: int = 0,
    z_normalise: bool = True,
    length: int | None = None,
    extract_path: str | os.PathLike[str] | None = None,
) -> DatasetDict:
    """A UCR/UEA classification set with the archive's own train/test split, as ``train``/``meta``/``test``.

    Read with aeon's ``load_classification``, taking the archive's equal-length and no-missing-value
    versions (``_eq`` / ``_nmv`` files) where it has them, as the archive's benchmarks do (aeon bundles
    them for JapaneseVowels and PickupGestureWiimoteZ). ``test`` is the archive's test split, untouched and in file order; ``meta`` is a seeded,
    class-stratified carve of the archive's training split. Columns: ``series`` (float32; ``(steps,)`` for
    one channel, ``(steps, channels)`` for several, i.e. time first like `add_input_noise` and the
    stacked LSTM expect), ``label`` and ``sample_id``. The `ClassLabel` names and their order are those of the
    ``@classLabel`` line of the archive's ``<name>_TRAIN.ts`` where that file is in ``extract_path`` or aeon's
    bundled data; for sets aeon downloads to its cache they are aeon's ``class_values`` (lowercased, in the order
    of the file aeon read, the ``_eq`` one where there is one); for ``.tsv`` files, their labels in numeric order.
    Registered as ``"ucr/<name>"``, e.g.
    ``load_classification_dataset("ucr/ArrowHead")``.

    Args:
        name: The archive's set name, e.g. ``"ArrowHead"`` (case-insensitive for archive sets).
        meta_fraction: Share of the training split carved off as the meta split.
        seed: Seed of the meta carve.
        z_normalise: Rescales every series, channel by channel, to mean 0 and standard deviation 1 (the
            usual UCR preprocessing; most UCR sets are stored that way already). Constant channels are
            only centred.
        length: Resamples every series linearly to this many steps (before z-normalising): to shorten
            long sets (ACSF1 has 1,460 steps) or to give sets of unequal length (read from
            ``extract_path`` without an ``_eq`` version) one length. None keeps each series' own length.
        extract_path: Folder with ``<name>/<name>_TRAIN.ts`` and ``_TEST.ts``, or the UCR 2018 archive's
            ``.tsv`` pair (class first, then the steps; read with aeon's ``load_from_tsv_file``); aeon downloads
            there when both are missing. None: aeon's bundled data, then its download folder.
    """
    load_classification, archive = _aeon()
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 2):
        raise ValueError(f"length must be an int >= 2 or None, got {length!r}.")
    name = _resolve_name(name, archive, extract_path)
    splits, class_names = {}, None
    tsv = _tsv_paths(name, extract_path)
    for split in ("train", "test"):
        if tsv is None:
            cases, targets, metadata = load_classification(
                name, split=split, extract_path=extract_path, return_metadata=True, load_equal_length=True,
                load_no_missing=True,
            )  # fmt: skip
        else:
            (cases, targets), metadata = _read_tsv(tsv[split]), {}
        targets = np.char.lower(np.asarray(targets).astype(str))  # aeon lowercases them; the header keeps the case
        if class_names is None:
            declared = metadata.get("class_values")
            class_names = [str(v) for v in declared] if declared else _class_order(targets)
            header = _declared_classes(name, extract_path)
            # aeon's class_values come from the _eq file where it reads one, whose order can differ from the archive's
            if header and sorted({c.lower() for c in header}) == sorted(c.lower() for c in class_names):
                class_names = header
        lookup = {c.lower(): i for i, c in enumerate(class_names)}
        unknown = sorted(set(targets) - set(lookup))
        if unknown:
            raise ValueError(f"{name} {split} has labels {unknown} outside its declared classes {class_names}.")
        series = [_time_first(x, length, z_normalise) for x in cases]
        bad = sum(not np.isfinite(s).all() for s in series)
        if bad:
            raise ValueError(f"{name} {split}: {bad} series have missing or infinite values; impute them first.")
        multivariate = any(s.ndim == 2 for s in series)
        value = List(List(Value("float32"))) if multivariate else List(Value("float32"))
        features = Features({"series": value, "label": ClassLabel(names=class_names)})
        splits[split] = Dataset.from_dict(
            {"series": [s.astype(np.float32).tolist() for s in series], "label": [lookup[t] for t in targets]},
            features=features,
        )
    return finish_splits(DatasetDict(splits), meta_fraction=meta_fraction, seed=seed)
