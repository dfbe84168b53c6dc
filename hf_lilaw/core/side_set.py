"""`SideSet`: a small labelled set that a trainer family draws one batch from per step, beside the training data
(LiLAW's meta set, meta label correction's clean set).

One object owns what the set needs: its checks when it is received, its resumable stream of batches
(`hf_lilaw.core.sampler`), its own randomness per draw (`hf_lilaw.core.rng.side_set_rng`), the set collated
once on the device where that gives the same batches (`hf_lilaw.core.tensor_cache`), the pre-flight probe batch,
and this process's position in its stream for checkpoints. A family builds one and registers it with
`BaseTrainer.register_side_set`, which binds it to the trainer's collator and device.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import datasets
import torch
from transformers.trainer_utils import has_length

from ..functional.losses import IGNORE_INDEX
from .columns import BOOKKEEPING_COLUMNS, LABEL_COLUMNS
from .rng import PROBE_DRAW, preserved_global_rng, side_set_rng
from .sampler import IndexBatchSampler, StreamedBatches, read_rows
from .tensor_cache import TensorBatchCache
from .validation import ScanResult, check_batch, describe_rows, explain_collate_failure, label_column_of, scan_dataset

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer

__all__ = ["SideBatchSampler", "SideSet", "WithSideSets", "make_side_sampler", "split_labels"]

SideBatchSampler = IndexBatchSampler | StreamedBatches

CACHE_MODES = ("auto", "force", "off")


def make_side_sampler(
    dataset: Any, *, batch_size: int, seed: int, name: str, strict: bool = False, setting: str = "the batch size"
) -> SideBatchSampler:
    """The resumable sampler of a side set: index batches of a map-style set, example batches of a stream.

    Args:
        dataset: the side set.
        batch_size: examples per batch and process.
        seed: the stream's seed; pass ``seed + process_index`` so that processes draw different batches.
        name: the set's name in error messages (``"meta_dataset"``).
        strict: refuse a batch larger than a map-style set instead of capping it (with a warning).
        setting: the option behind ``batch_size`` (``"lilaw_meta_batch_size"``), named in the messages.
    """
    if has_length(dataset):
        return IndexBatchSampler(len(dataset), batch_size, seed=seed, strict=strict, name=name, setting=setting)
    return StreamedBatches(dataset, batch_size, seed=seed, name=name, setting=setting)


def split_labels(inputs: Mapping[str, Any], *, name: str) -> tuple[dict[str, Any], torch.Tensor]:
    """``(inputs without labels, labels)``; the labels may be named ``labels``, ``label`` or ``label_ids``."""
    inputs = dict(inputs)
    labels = inputs.pop("labels", None)
    for column in LABEL_COLUMNS:
        value = inputs.pop(column, None)
        labels = value if labels is None else labels
    if labels is None:
        raise ValueError(
            f"{name} batches have no labels: give it a 'label' or 'labels' column (and keep it through your collator)."
        )
    return inputs, labels


def refuse_dataset_dict(dataset: Any, *, name: str) -> None:
    """Refuse a `datasets.DatasetDict` (or `IterableDatasetDict`) where one split is meant: its length counts the
    splits, so the errors that followed spoke of "2 examples"."""
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(dataset)
        raise ValueError(
            f"{name} is a DatasetDict with the splits {splits}: pass one split, e.g. {name}=dataset[{splits[0]!r}]."
            if splits else f"{name} is an empty DatasetDict: pass one split of a data set."
        )


class SideSet:
    """A side set and everything drawn from it: checks, batches, randomness, cache, probe and stream position.

    Building one checks the set (`validate`) and opens its stream. Register it with
    `BaseTrainer.register_side_set` before drawing: batches are collated with the trainer's collator (the
    model's unused columns removed) and moved to its device.

    Args:
        dataset: the set: a `datasets.Dataset`, a `datasets.IterableDataset`, a list of examples, a torch data set.
        name: its name in messages and in its randomness (``"meta_dataset"``).
        batch_size: examples per batch and process.
        seed: seed of the stream; pass ``seed + process_index`` so that processes draw different batches.
        cache: ``"auto"``, ``"force"`` or ``"off"``: whether to collate the set once on the device (`batch_cache`).
        strict: refuse a batch larger than a map-style set instead of capping it (with a warning).
        setting: the option behind ``batch_size``, named in messages.
        unlabelled_batches: accept a batch whose labels are all -100 (the trainer skips such a step) from a set
            read in full up front, whose labels are known to hold labelled rows; a set read batch by batch may hold
            none, so there (and by default everywhere) such a batch is refused, naming the rows and the fix.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        name: str,
        batch_size: int,
        seed: int,
        cache: str = "off",
        strict: bool = False,
        setting: str = "the batch size",
        unlabelled_batches: bool = False,
    ) -> None:
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES} for the {name}, got {cache!r}.")
        refuse_dataset_dict(dataset, name=name)
        if has_length(dataset) and len(dataset) == 0:
            raise ValueError(f"The {name} is empty; pass a non-empty {name}.")
        self._init(dataset, name=name, cache=cache)
        self.unlabelled_batches = unlabelled_batches
        self.validate()
        self.sampler: SideBatchSampler | None = make_side_sampler(
            dataset, batch_size=batch_size, seed=seed, name=name, strict=strict, setting=setting
        )

    @classmethod
    def adopt(cls, dataset: Any, *, name: str, sampler: SideBatchSampler | None = None, cache: str = "off") -> SideSet:
        """A side set around a sampler built elsewhere (or none, for probing only), without the up-front checks."""
        side = cls.__new__(cls)
        side._init(dataset, name=name, cache=cache)
        side.sampler = sampler
        return side

    def _init(self, dataset: Any, *, name: str, cache: str) -> None:
        self.dataset = dataset
        self.name = name
        self.cache_mode = cache
        self.scan: ScanResult | None = None  # set when the set was checked in full up front
        self.unlabelled_batches = False
        self.columns: list[str] | None = None  # the columns of the examples last collated (for forward errors)
        self._trainer: BaseTrainer | None = None
        self._collator: Callable | None = None
        self._cache: TensorBatchCache | None = None
        self._cache_decided = False

    def bind(self, trainer: BaseTrainer) -> None:
        """Collate with ``trainer``'s collator, move batches to its device, check labels against its classes."""
        self._trainer = trainer

    @property
    def seed(self) -> int:
        """The stream's seed (that of this process)."""
        return self.sampler.seed

    @property
    def batches_drawn(self) -> int:
        """Batches drawn so far: the stream's position, and the number of the next draw of its randomness."""
        return self.sampler.batches_drawn

    # ---- checks -------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the set as received: a `datasets.Dataset` or a list of dicts is read in full (a label column,
        integer labels not all -100, finite values); the label range follows in the pre-flight, and any other set
        is checked batch by batch as it is read. Errors name the set, the row and the fix."""
        dataset, name = self.dataset, self.name
        if isinstance(dataset, datasets.IterableDataset) and dataset.column_names is not None:
            label_column_of(dataset, name=name)
        scan = scan_dataset(dataset, name=name)
        if scan is not None:
            self.scan = scan

    def _check_batch(self, batch: Any, *, rows: list[str], probe: bool) -> None:
        # A set scanned in full up front (columns or a list in memory) needs no check per batch, unless a transform
        # ran since (check it all) or some rows are -100 (a batch may hold no labelled row). The check runs on the
        # collator's output, on the CPU: no device sync.
        scan = self.scan
        if not isinstance(batch, Mapping) or (scan is not None and not scan.transformed and (probe or not scan.has_ignored)):
            return
        labels_only = scan is not None and not scan.transformed
        check_batch(batch, name=self.name, rows=rows, num_classes=self._bound._num_classes, labels_only=labels_only,
                    require_labelled=not (probe or (self.unlabelled_batches and scan is not None)))  # fmt: skip

    # ---- batches ------------------------------------------------------------------------------------------

    @property
    def _bound(self) -> BaseTrainer:
        if self._trainer is None:
            raise RuntimeError(f"The {self.name} side set is not registered with a trainer: call register_side_set.")
        return self._trainer

    @property
    def collator(self) -> Callable:
        """The trainer's collator with the model's unused columns removed."""
        if self._collator is None:
            trainer = self._bound
            self._collator = trainer._get_collator_with_removed_columns(trainer.data_collator, description=self.name)
        return self._collator

    def randomness(self, draw: int) -> contextlib.AbstractContextManager[None]:
        """The global RNGs seeded for draw ``draw`` of this set on this process, restored on exit
        (`hf_lilaw.core.rng.side_set_rng`): a random transform of the set gets new numbers at every draw,
        re-derived on resume from the draw's number, and the training data's stream is left untouched. Draws of
        the stream use its seed; the probe (`PROBE_DRAW`) uses the run's ``args.seed``."""
        args = self._bound.args
        seed = args.seed if draw == PROBE_DRAW else self.sampler.seed
        return side_set_rng(seed, process_index=args.process_index, name=self.name, draw=draw)

    def read_next(self) -> tuple[list[Any], list[str]]:
        """The next batch's examples (advances the stream) and how messages name them (rows, or stream positions)."""
        sampler = self.sampler
        draw = sampler.batches_drawn
        batch = sampler.next_batch()
        if isinstance(sampler, StreamedBatches):
            return batch, describe_rows(None, len(batch), batch=f"batch {draw} of the streamed {self.name}")
        return read_rows(self.dataset, batch), describe_rows(batch, len(batch), batch=self.name)

    def next_batch(self, *, use_cache: bool = True) -> tuple[dict[str, Any], torch.Tensor]:
        """``(inputs, labels)`` of the next batch, on the device, bookkeeping columns dropped.

        From the `batch_cache` where there is one (and ``use_cache``); otherwise read in one batched
        ``__getitems__`` call where the set has one, collated, and checked where the set was not checked in full
        up front, under this draw's `randomness` (the global RNGs are left as they were). Both give the same batch.
        """
        cache = self.batch_cache() if use_cache else None
        if cache is not None:
            return split_labels(cache.batch(self.sampler.next_indices()), name=self.name)
        with self.randomness(self.sampler.batches_drawn):
            examples, rows = self.read_next()
            return self.collate(lambda: examples, rows=rows, draw=None)

    def collate(
        self, read: Callable[[], list[Any]], *, rows: list[str] | None = None, draw: int | None = PROBE_DRAW
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """Collate the examples returned by ``read`` like `next_batch` does.

        Args:
            read: returns the examples.
            rows: how messages name each example (``"row 40"``); when ``None``, a probe's examples are the first
                rows of a map-style set, others are named by their position in the batch.
            draw: the draw of `randomness` that ``read`` and the collator run under; ``None`` when the caller holds
                it already, ``PROBE_DRAW`` (the default) for a probe outside the stream, whose batch may hold only
                ignored (-100) labels.
        """
        trainer = self._bound
        collator = self.collator
        with contextlib.nullcontext() if draw is None else self.randomness(draw):
            examples = read()
            if not examples:
                raise ValueError(f"{self.name} yielded no examples; pass a non-empty {self.name}.")
            if rows is None:  # a probe reads a map-style set's first rows
                first = draw == PROBE_DRAW and has_length(self.dataset)
                rows = describe_rows(range(len(examples)) if first else None, len(examples), batch=f"a batch of {self.name}")
            self.columns = list(examples[0]) if isinstance(examples[0], Mapping) else None
            try:
                batch = collator(examples)
            except Exception as error:
                problem = explain_collate_failure(examples, name=self.name, rows=rows)
                if problem is None:
                    raise
                raise ValueError(f"{problem} (The collator said: {error})") from error
            self._check_batch(batch, rows=rows, probe=draw == PROBE_DRAW)
            inputs = trainer._prepare_inputs(batch)
        for column in BOOKKEEPING_COLUMNS:
            inputs.pop(column, None)
        return split_labels(inputs, name=self.name)

    def probe_batch(self, *, inspect: Callable[[list[Any]], None] | None = None) -> tuple[dict[str, Any], torch.Tensor]:
        """``(inputs, labels)`` of the set's first two examples, collated under the probe's randomness (outside
        the stream, which does not move). ``inspect`` sees the examples as read, before they are collated."""
        dataset = self.dataset

        def first_examples() -> list[Any]:
            if has_length(dataset):
                examples = [dataset[i] for i in range(min(2, len(dataset)))]
            else:
                examples = list(itertools.islice(iter(dataset), 2))
            if inspect is not None:
                inspect(examples)
            return examples

        return self.collate(first_examples)

    def batch_cache(self, mode: str | None = None) -> TensorBatchCache | None:
        """The set collated once on the device, or ``None`` where that would not give exactly the batches
        `next_batch` reads; decided on the first call and kept.

        ``mode`` (default: the set's ``cache``): ``"auto"`` (a `datasets.Dataset` without a format transform, a
        row-wise collator, at most 64 MiB, probe batches equal), ``"force"`` (trust the data set and collator) or
        ``"off"``. Only sets whose labels are all set (no -100) qualify, so that a cached batch needs no masking.
        """
        if self._cache_decided:
            return self._cache
        mode = self.cache_mode if mode is None else mode
        cache = None
        if mode != "off" and isinstance(self.sampler, IndexBatchSampler):
            with preserved_global_rng():
                cache = TensorBatchCache.build(self.dataset, self.collator, prepare=self._bound._prepare_inputs,
                                               force=mode == "force")  # fmt: skip
            if cache is not None:
                for column in BOOKKEEPING_COLUMNS:
                    cache.columns.pop(column, None)
                labels = next((cache.columns[c] for c in ("labels", *LABEL_COLUMNS) if c in cache.columns), None)
                if labels is None or not bool((labels != IGNORE_INDEX).all()):
                    cache = None
        self._cache, self._cache_decided = cache, True
        return cache

    # ---- checkpoints ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This process's position in the stream (the sampler's state: the draw counter and the settings)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None, *, batches_drawn: int) -> None:
        """Continue from ``state`` (a `state_dict` of this process); without one (resumed under another number of
        processes) move to where this process's own stream stands after ``batches_drawn`` batches. A stream is
        replayed, each draw's reads under that draw's `randomness` (`StreamedBatches`)."""
        sampler = self.sampler
        replay = {"randomness": self.randomness} if isinstance(sampler, StreamedBatches) else {}
        if state is not None:
            sampler.load_state_dict(state, **replay)
        else:
            sampler.fast_forward(batches_drawn, **replay)


class WithSideSets:
    """A family's `TrainingState` with the positions of its side sets added to its per-process part, each under
    its key (``{"sampler": ...}`` for LiLAW's meta set, ``{"clean_sampler": ...}`` for MLC's clean set).

    On load the family's state is restored first; then each side set continues from its saved position, or,
    without a per-process part (resumed under another number of processes), moves to where its own stream stands
    after ``batches_drawn()`` batches (read from the family's restored counters).
    """

    def __init__(self, state: Any, side_sets: list[tuple[SideSet, str, Callable[[], int]]]) -> None:
        self.state = state
        self.side_sets = side_sets

    def state_dict(self) -> dict[str, Any]:
        parts = self.state.state_dict()
        per_rank = dict(parts["per_rank"] or {})
        for side, key, _ in self.side_sets:
            per_rank[key] = side.state_dict()
        return {**parts, "per_rank": per_rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        per_rank = state["per_rank"]
        keys = {key for _, key, _ in self.side_sets}
        own = None if per_rank is None else {k: v for k, v in per_rank.items() if k not in keys}
        self.state.load_state_dict({**state, "per_rank": own})
        for side, key, batches_drawn in self.side_sets:
            side.load_state_dict(None if per_rank is None else per_rank[key], batches_drawn=batches_drawn())
