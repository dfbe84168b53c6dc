"""A side set (LiLAW's meta set) collated once into tensors on the device and indexed per step.

Fetching a meta batch the general way costs, every step, a read of the rows from Arrow, the data set's
format transform, the collator and a host→device copy: a few milliseconds on a CPU, whatever the model. When
the collator maps each row to a fixed-shape slice of its output (no padding to the batch's longest row, no
randomness), collating the whole set once and indexing the result gives exactly the same batches at the cost
of one gather per column. `TensorBatchCache` is that: built once, then ``cache.batch(indices)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .sampler import read_rows

DEFAULT_MAX_BYTES = 64 * 2**20
"""Default bound on a cache's size. The cache pays off where the forward is cheap, i.e. for small inputs
(features, small images, short tokenised rows); where a meta set is larger than this its forward dominates the
step anyway, and keeping it resident would add to the peak memory that the model and optimizer set."""

# Data set formats whose row decoding draws no random numbers (a `set_transform` shows up as "custom").
_DETERMINISTIC_FORMATS = frozenset({None, "python", "numpy", "np", "torch", "pt", "arrow", "pandas"})
_PROBE_BATCHES = 2


def known_rowwise_collator(collator: Callable) -> bool:
    """Whether ``collator`` is one hf_lilaw knows to collate each row alone, deterministically, to a fixed shape.

    These are `transformers.default_data_collator`, `transformers.DefaultDataCollator` and
    `torch.utils.data.default_collate`, also when wrapped by Trainer's column-removing collator. A padding
    collator is not: it pads to the longest row of each batch, so a batch cut out of the whole set collated
    at once would carry more padding than the same batch collated alone.
    """
    from torch.utils.data import default_collate
    from transformers.data.data_collator import DefaultDataCollator, default_data_collator

    inner = getattr(collator, "data_collator", None)  # transformers' RemoveColumnsCollator
    if inner is not None and type(collator).__name__ == "RemoveColumnsCollator":
        collator = inner
    return collator in (default_data_collator, default_collate) or isinstance(collator, DefaultDataCollator)


def deterministic_rows(dataset: Any) -> bool:
    """Whether reading rows of ``dataset`` is known to be deterministic: a `datasets.Dataset` with a plain format.

    A data set with a format transform (``set_transform``/``with_transform``) may augment at random, and any
    other map-style data set may do anything in ``__getitem__``, so neither qualifies automatically.
    """
    import datasets

    return isinstance(dataset, datasets.Dataset) and dataset.format.get("type") in _DETERMINISTIC_FORMATS


def _tensor_bytes(batch: Mapping[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for v in batch.values())


def _same_batch(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if not isinstance(y, torch.Tensor) or x.dtype != y.dtype or x.shape != y.shape:
            return False
        y = y.to(x.device)
        same = torch.equal(x, y) or (x.is_floating_point() and torch.allclose(x, y, rtol=0, atol=0, equal_nan=True))
        if not same:
            return False
    return True


class TensorBatchCache:
    """A data set collated once into tensors (kept where ``prepare`` puts them), indexed per batch.

    Build it with `TensorBatchCache.build`, which returns ``None`` when the data set does not qualify.
    ``batch(indices)`` returns a new dict ``{column: tensor[indices]}`` equal to what the collator (then
    ``prepare``) gives for the rows ``indices`` read on their own: same keys, dtypes, shapes and values.
    """

    def __init__(self, columns: Mapping[str, torch.Tensor]) -> None:
        lengths = {v.shape[0] if v.ndim else None for v in columns.values()}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(
                "TensorBatchCache needs tensor columns that share their first dimension (one slice per row); got "
                + ", ".join(f"{k}: {tuple(v.shape)}" for k, v in columns.items())
            )
        self.columns = dict(columns)
        self.num_rows = lengths.pop()

    def __len__(self) -> int:
        return self.num_rows

    @property
    def nbytes(self) -> int:
        return _tensor_bytes(self.columns)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch of rows ``indices``, as the collator would have given it (already on the cache's device)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        first = next(iter(self.columns.values()))
        if index.device != first.device:
            index = index.to(first.device, non_blocking=True)
        return {key: column.index_select(0, index) for key, column in self.columns.items()}

    @classmethod
    def build(
        cls,
        dataset: Any,
        collator: Callable[[list[Any]], Mapping[str, Any]],
        *,
        prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        force: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        seed: int = 0,
    ) -> "TensorBatchCache | None":
        """Collate all of ``dataset`` once, or return ``None`` when that is not known to be exact or is too big.

        It qualifies when: it has a length; its rows are read deterministically (`deterministic_rows`) and
        ``collator`` is a known row-wise one (`known_rowwise_collator`), or ``force`` says so for a custom
        data set or collator; every collated value is a tensor with one slice per row; the result takes at
        most ``max_bytes``; and probe batches collated on their own (the first row, the last row, two random
        batches) equal the cached ones exactly, which catches padding to the batch's longest row in most data.

        Args:
            dataset: a map-style data set (``__len__`` and ``__getitem__``/``__getitems__``).
            collator: turns a list of rows into a dict of tensors (for a trainer: its meta collator).
            prepare: applied to the whole collated set once, e.g. to move it to the device
                (``trainer._prepare_inputs``'s job per step); the probes go through it too.
            force: take the collator and the data set's row reading as deterministic and row-wise.
            max_bytes: bound on the collated set's size, estimated from its first row before collating all.
            seed: seed of the probe batches' indices (a private generator: the global RNGs are not touched
                by the draw; the caller protects them around the collator if it may draw).
        """
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}.")
        if not hasattr(dataset, "__len__") or len(dataset) == 0:
            return None
        if not force and not (deterministic_rows(dataset) and known_rowwise_collator(collator)):
            return None
        prepare = prepare or (lambda batch: batch)
        num_rows = len(dataset)
        first = collator(read_rows(dataset, [0]))
        if not isinstance(first, Mapping) or not first:
            return None
        if not all(isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == 1 for v in first.values()):
            return None
        if _tensor_bytes(first) * num_rows > max_bytes:
            return None
        whole = dict(prepare(collator(read_rows(dataset, range(num_rows)))))
        if not all(isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == num_rows for v in whole.values()):
            return None
        cache = cls(whole)
        # Probes: the first and last rows alone (a row collated alone carries no padding from other rows), then
        # random batches.
        generator = torch.Generator().manual_seed(seed)
        probe_size = min(num_rows, 8)
        probes = [[0], [num_rows - 1]]
        probes += [torch.randperm(num_rows, generator=generator)[:probe_size].tolist() for _ in range(_PROBE_BATCHES)]
        for indices in probes:
            alone = dict(prepare(collator(read_rows(dataset, indices))))
            if not _same_batch(cache.batch(indices), alone):
                return None
        return cache
