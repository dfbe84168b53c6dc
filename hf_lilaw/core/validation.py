"""Checks of the sets a trainer reads besides its training data: side sets (LiLAW's meta set, MLC's clean set)
and evaluation sets, whatever their type.

A set that can be read cheaply, a `datasets.Dataset` (columns) or a list of dicts (in memory), is scanned once
in full before training (`scan_dataset`). Any other set (a torch ``Dataset``, a stream) is checked batch by
batch as it is read (`check_batch`): the first bad row fails, named with the set and the fix. When a batch cannot
be collated or the model's forward refuses it, `explain_collate_failure` and `explain_forward_failure` say why in
the set's terms instead of the collator's or the model's.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch

from ..functional.losses import IGNORE_INDEX
from .columns import BOOKKEEPING_COLUMNS, LABEL_COLUMNS, column_array, has_transform
from .labels import check_class_labels, check_finite_columns, check_label_feature

__all__ = [
    "ScanResult",
    "check_batch",
    "describe_rows",
    "explain_collate_failure",
    "explain_forward_failure",
    "label_column_of",
    "scan_dataset",
]

_LABEL_FIX = "Fix the label, or give the model one output per class (num_labels, or the width of its last layer)."


def _label_fix(bad: Any, *, column: str = "label") -> str:
    """How to fix the out-of-range labels ``bad``: -1 is `datasets`' missing ClassLabel (a test split's labels)."""
    bad = np.asarray(bad)
    missing = (
        "-1 is datasets' ClassLabel value for a missing label: mark such rows -100 to skip them, or, for a set "
        f"without labels (a test split), remove the label column (dataset.remove_columns('{column}'))."
    )
    return " ".join([*([missing] if (bad == -1).any() else []), *([_LABEL_FIX] if (bad != -1).any() else [])])


@dataclass(frozen=True)
class ScanResult:
    """What a full scan of a set found (it raised on anything wrong)."""

    has_ignored: bool
    """Some rows are labelled -100 (ignored), so one batch may hold no labelled row."""
    transformed: bool
    """The set runs a format transform when read, so the values a batch sees were not the ones scanned."""


def label_column_of(dataset: Any, *, name: str) -> str:
    """The label column of a `datasets` set (``label``, ``labels`` or ``label_ids``); the error names the set."""
    names = list(dataset.column_names or [])
    column = next((c for c in LABEL_COLUMNS if c in names), None)
    if column is None:
        raise ValueError(
            f"{name} has no label column (looked for {', '.join(LABEL_COLUMNS)}; it has {names}). Rename the "
            f"column holding the class index of {name} to 'label', e.g. {name}.rename_column('<column>', 'label')."
        )
    return column


def _row_problem_for_non_mapping(row: Any, *, name: str, where: str) -> str:
    return (
        f"{name} rows must be dicts of columns such as {{'x': ..., 'label': 3}}, but {where} is a "
        f"{type(row).__name__}. Convert the set, e.g. [{{'x': x, 'label': y}} for x, y in rows] or "
        "datasets.Dataset.from_dict({'x': xs, 'label': ys}), with the input column named like the model's forward "
        "argument."
    )


def _float_array(value: Any) -> np.ndarray | None:
    """``value`` as a float array when it holds floating-point numbers (tensors, arrays, floats, lists of them)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy() if value.is_floating_point() else None
    if isinstance(value, (np.ndarray, np.floating, float)):
        array = np.asarray(value)
        return array if np.issubdtype(array.dtype, np.floating) else None
    if isinstance(value, (list, tuple)) and value:
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            return None
        return array if np.issubdtype(array.dtype, np.floating) else None
    return None


def _labels_of_rows(rows: Sequence[Any], *, name: str) -> np.ndarray:
    column = None
    labels = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(_row_problem_for_non_mapping(row, name=name, where=f"row {i}"))
        column = column or next((c for c in LABEL_COLUMNS if c in row), None)
        if column is None or column not in row:
            raise ValueError(
                f"{name} row {i} carries no label: give every row one of the keys {', '.join(LABEL_COLUMNS)} "
                f"(it has {sorted(row)})."
            )
        label = row[column]
        if label is None:
            missing = [j for j, other in enumerate(rows) if isinstance(other, Mapping) and other.get(column) is None]
            keep = f"[row for row in {name} if row['{column}'] is not None]"
            raise ValueError(_missing_label_message(name, missing, column=column, keep=keep))
        labels.append(label.item() if isinstance(label, (torch.Tensor, np.ndarray)) and np.size(label) == 1 else label)
    return np.asarray(labels)


def _check_label_values(
    labels: np.ndarray, *, name: str, num_classes: int | None, require_labelled: bool, column: str = "label"
) -> bool:
    """Dtype, shape and range of every label of a scanned set; returns whether some are -100."""
    integer = np.issubdtype(labels.dtype, np.integer) and labels.ndim == 1
    if num_classes is None or not integer:
        if not integer:  # the dtype / shape message
            check_class_labels(labels, num_classes=num_classes or 1, name=name)
    else:
        bad = np.flatnonzero((labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes)))
        fix = _LABEL_FIX
        if len(bad):
            fix = f"The first is row {bad[0]} (label {labels[bad[0]]}). {_label_fix(labels[bad], column=column)}"
        check_class_labels(labels, num_classes=num_classes, name=name, fix=fix)
    ignored = labels == IGNORE_INDEX
    if require_labelled and len(labels) and ignored.all():
        raise ValueError(
            f"Every label of {name} is -100 (ignored), so no row of it can be used. Give {name} labelled rows "
            "(class indices in [0, num_classes)); -100 marks single rows to skip."
        )
    return bool(ignored.any())


def scan_dataset(
    dataset: Any,
    *,
    name: str,
    num_classes: int | None = None,
    finite: bool = True,
    labels_required: bool = True,
) -> ScanResult | None:
    """Check every row of ``dataset`` up front when it can be read cheaply; ``None`` when it cannot (then check
    each batch with `check_batch`).

    A `datasets.Dataset` is read column by column (no user transform runs); a list or tuple of dicts is read
    in memory. Checked: rows are dicts with a label, labels are integer class indices in ``[0, num_classes)``
    or -100 (the range only when ``num_classes`` is given), and, with ``finite``, every floating-point value is
    finite. With ``labels_required`` (a side set) the labels must be there and not all -100; without (an
    evaluation set) a set without labels passes. Errors name the set, the row and the fix.
    """
    if isinstance(dataset, datasets.Dataset):
        transformed = has_transform(dataset)
        if not labels_required and not any(c in (dataset.column_names or []) for c in LABEL_COLUMNS):
            has_ignored = False
        else:
            column = label_column_of(dataset, name=name)
            check_label_feature(dataset, name=name)
            labels = column_array(dataset, column)
            if np.issubdtype(labels.dtype, np.floating):  # an integer column with empty (None) entries reads as NaN
                missing = np.flatnonzero(np.isnan(labels)).tolist()
                if missing:
                    keep = f"{name}.filter(lambda row: row['{column}'] is not None)"
                    raise ValueError(_missing_label_message(name, missing, column=column, keep=keep))
            has_ignored = _check_label_values(
                labels, name=name, num_classes=num_classes, require_labelled=labels_required, column=column
            )
        if finite:
            check_finite_columns(dataset, name=name)
        return ScanResult(has_ignored=has_ignored, transformed=transformed)
    if isinstance(dataset, (list, tuple)):
        if not labels_required and dataset and isinstance(dataset[0], Mapping) and not any(c in dataset[0] for c in LABEL_COLUMNS):
            has_ignored = False
        else:
            labels = _labels_of_rows(dataset, name=name)
            has_ignored = _check_label_values(
                labels, name=name, num_classes=num_classes, require_labelled=labels_required
            )
        if finite:
            for i, row in enumerate(dataset):
                if not isinstance(row, Mapping):
                    raise ValueError(_row_problem_for_non_mapping(row, name=name, where=f"row {i}"))
                for key, value in row.items():
                    array = _float_array(value)
                    if array is not None and not np.isfinite(array).all():
                        raise ValueError(_non_finite_message(name, f"row {i}", key))
        return ScanResult(has_ignored=has_ignored, transformed=False)
    return None


def _missing_label_message(name: str, missing: Sequence[int], *, column: str, keep: str) -> str:
    return (
        f"{name} row {missing[0]} has no label: its '{column}' is None ({len(missing)} such rows). Drop them, e.g. "
        f"{keep}, or give each a class index (-100 to skip the row)."
    )


def _non_finite_message(name: str, row: str, key: str) -> str:
    return (
        f"{name} {row} holds a non-finite value (NaN or inf) in '{key}'. Drop or repair that row (and any like it) "
        "before training: a non-finite input makes the losses NaN, and a model trained on them."
    )


def describe_rows(indices: Sequence[int] | torch.Tensor | None, count: int, *, batch: str) -> list[str]:
    """How `check_batch` names the rows of a batch: ``"row 40"`` for a known index, else by position in ``batch``."""
    if indices is None:
        return [f"example {i} of {batch}" for i in range(count)]
    return [f"row {int(i)}" for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]


def _label_tensor(batch: Mapping[str, Any]) -> torch.Tensor | None:
    for key in ("labels", *LABEL_COLUMNS):
        value = batch.get(key)
        if isinstance(value, torch.Tensor):
            return value
    return None


def check_batch(
    batch: Mapping[str, Any],
    *,
    name: str,
    rows: Sequence[str],
    num_classes: int | None,
    labels_only: bool = False,
    require_labelled: bool = True,
) -> None:
    """Check a collated batch: labels in ``[0, num_classes)`` or -100, at least one labelled row
    (``require_labelled``), and (unless ``labels_only``) every floating-point tensor finite.

    Args:
        batch: the collator's output; on the CPU it costs no device sync (check before moving it).
        name: the set, for the message.
        rows: how to name each row of the batch (`describe_rows`).
        num_classes: the width of the model's logits; ``None`` skips the range check.
        labels_only: skip the finite check (the set's values were scanned up front).
        require_labelled: refuse a batch whose labels are all -100 (a side batch: nothing to learn from).
    """
    labels = _label_tensor(batch)
    if labels is not None and labels.ndim == 1 and not labels.is_floating_point():
        labelled = labels != IGNORE_INDEX
        if num_classes is not None:
            bad = labelled & ((labels < 0) | (labels >= num_classes))
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise ValueError(
                    f"{name} {rows[i]} has label {int(labels[i])}, but the model outputs {num_classes} classes: labels "
                    f"must lie in [0, {num_classes}) (or be -100 to skip a row). {_label_fix(labels[bad])}"
                )
        if require_labelled and len(labels) and not bool(labelled.any()):
            raise ValueError(
                f"A batch of {name} ({rows[0]}, ...) holds no labelled row: all its labels are -100 (ignored). Give "
                f"{name} labelled rows, drop the rows labelled -100 from it, or draw larger batches."
            )
    elif labels is not None:
        check_class_labels(labels, num_classes=num_classes or 1, name=name)  # the dtype / shape message
    if labels_only:
        return
    for key, value in batch.items():
        if key in BOOKKEEPING_COLUMNS or not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        if value.ndim == 0 or value.shape[0] != len(rows):
            continue
        finite = torch.isfinite(value.reshape(len(rows), -1)).all(dim=1)
        if not bool(finite.all()):
            raise ValueError(_non_finite_message(name, rows[int((~finite).nonzero()[0, 0])], key))


def explain_collate_failure(examples: Sequence[Any], *, name: str, rows: Sequence[str]) -> str | None:
    """Why the collator could not stack ``examples`` of ``name``, in the set's terms; ``None`` if not known."""
    for i, example in enumerate(examples):
        if not isinstance(example, Mapping):
            return _row_problem_for_non_mapping(example, name=name, where=rows[i] if i < len(rows) else f"row {i}")
    for key in examples[0] if examples else ():
        value = examples[0].get(key)
        if isinstance(value, str) or (isinstance(value, (list, tuple)) and value and isinstance(value[0], str)):
            # e.g. a text column kept by remove_unused_columns=False: a padding collator fails on it, not on shapes
            return (
                f"{name}'s column '{key}' holds text, which the collator cannot make a tensor of. Drop it "
                f"({name}.remove_columns('{key}')), or leave remove_unused_columns=True so that the columns the "
                "model's forward does not take are removed."
            )
    for key in examples[0] if examples else ():
        shapes = [tuple(np.shape(example.get(key))) if _is_array_like(example.get(key)) else None for example in examples]
        known = [(i, s) for i, s in enumerate(shapes) if s is not None]
        if len({s for _, s in known}) > 1:
            (i, a), (j, b) = known[0], next((j, s) for j, s in known if s != known[0][1])
            return (
                f"{name}'s '{key}' has different shapes in one batch: {rows[i]} {a}, {rows[j]} {b}. Rows of a side "
                "set are stacked into one tensor: resize or crop them to one size in the set's transform (as for "
                "train_dataset), or pass a data_collator that pads."
            )
    return None


def _is_array_like(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray, list, tuple))


def explain_forward_failure(model: Any, inputs: Mapping[str, Any], columns: Sequence[str] | None, *, name: str) -> str | None:
    """Why ``model``'s forward refused a batch of ``name``, when its input names do not match the forward's
    arguments; ``None`` when they match (the failure is something else)."""
    forward = getattr(model, "forward", None)
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return None
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = [n for n, p in parameters.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    if not named:  # forward(*args, **kwargs), e.g. a wrapper: its arguments are not known here
        return None
    required = [n for n in named if parameters[n].default is inspect.Parameter.empty]
    given = set(inputs)
    missing = [n for n in required if n not in given]
    unknown = [] if accepts_any else sorted(given - set(named))
    inputs_used = given & (set(named) - {"labels", *LABEL_COLUMNS})
    if not missing and not unknown and inputs_used:
        return None
    shown = sorted(columns) if columns is not None else sorted(given)
    takes = ", ".join(n for n in named if n not in ("labels", "return_dict")) or "no named arguments"
    wanted = missing[0] if missing else next((n for n in named if n not in ("labels", *LABEL_COLUMNS)), "<argument>")
    source = next((c for c in shown if c not in (*LABEL_COLUMNS, *BOOKKEEPING_COLUMNS, *named)), "<column>")
    return (
        f"The model cannot take {name}'s batches: its rows have the columns {shown}, the model's forward takes "
        f"({takes}){' and needs ' + ', '.join(repr(m) for m in missing) if missing else ''}. Name {name}'s input "
        f"columns like the model's forward arguments, as in train_dataset, e.g. "
        f"{name}.rename_column('{source}', '{wanted}')."
    )
