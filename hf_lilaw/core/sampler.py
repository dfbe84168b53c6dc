"""Resumable streams of side batches: LiLAW's meta batches and meta label correction's clean batches.

Both trainer families draw one small batch per optimizer step from a side set (the meta set or the clean set),
independently of the training data order. Batch ``k`` of a stream depends only on ``(seed, k)``, so the whole
state of a stream is the number of batches drawn: a resumed run, or a run resumed under another number of
processes, re-derives the exact position from its seed and that count.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .rng import preserved_global_rng

logger = logging.getLogger(__name__)


def read_rows(dataset: Any, indices: Sequence[int]) -> list[Any]:
    """The rows ``indices`` of a map-style data set, in one batched ``__getitems__`` read where it has one (a
    `datasets.Dataset` then runs its format transform once for the batch, not once per row)."""
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(list(indices))
    return [dataset[i] for i in indices]


Randomness = Callable[[int], contextlib.AbstractContextManager[None]]
"""The global RNGs seeded for one draw of a side set (`SideSet.randomness`), under which a replay reads it."""

DEFAULT_BUFFER_SIZE = 1000
"""Shuffle buffer of a streamed side set (`StreamedBatches`); no trainer sets another."""


def check_saved_settings(state: dict[str, Any], current: dict[str, Any], *, name: str, setting: str) -> None:
    """Refuse a saved sampler ``state`` whose settings differ from ``current`` (the resuming sampler's): the
    position saved in it (batches drawn, stream offset) only means the same thing under the same settings, and a
    run resumed under others would silently draw other batches than the uninterrupted run."""
    mismatch = {k: (state.get(k), v) for k, v in current.items() if state.get(k) != v}
    if mismatch:
        raise ValueError(
            f"The checkpoint's {name} sampler does not match this run (saved, current): {mismatch}. Resume with the "
            f"{name}, {setting} and seed the checkpoint was saved with, or start a new run without "
            f"resume_from_checkpoint."
        )


class IndexBatchSampler:
    """Endless index batches from ``range(num_samples)``, without replacement within a pass.

    Each pass is a fresh permutation drawn from the sampler's own ``torch.Generator`` (seeded with ``seed``), so
    drawing side batches never shifts the global RNG that drives the training data order and dropout. A batch
    never straddles two passes: the ``num_samples % batch_size`` indices left at the end of a pass are skipped.

    Args:
        num_samples: size of the side set.
        batch_size: indices per batch; capped at ``num_samples`` (with a warning) unless ``strict``.
        seed: seed of the stream; give each process its own (e.g. ``seed + process_index``).
        strict: refuse a ``batch_size`` larger than the set instead of capping it.
        name: what the set is called in error messages (``"meta_dataset"``, ``"clean_dataset"``).
        setting: the user's setting behind ``batch_size`` (``"lilaw_meta_batch_size"``), named in the messages.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int,
        strict: bool = False,
        name: str = "side set",
        setting: str = "the batch size",
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"The {name} is empty; pass a non-empty {name}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if strict and batch_size > num_samples:
            raise ValueError(
                f"{setting} ({batch_size}) is larger than the {name} ({num_samples} examples): pass a smaller "
                f"batch size or a larger {name}."
            )
        if batch_size > num_samples:
            logger.warning(
                "%s (%d) is larger than the %s (%d examples): every batch is the whole %s, %d examples. Set %s to at "
                "most %d, or pass a larger %s.",
                setting, batch_size, name, num_samples, name, num_samples, setting, num_samples, name,
            )  # fmt: skip
        self.num_samples = num_samples
        self.batch_size = min(batch_size, num_samples)
        self.seed = seed
        self.name = name
        self.setting = setting
        self.batches_drawn = 0
        self._batches_per_pass = num_samples // self.batch_size
        self._generator = torch.Generator().manual_seed(seed)
        self._pass = -1
        self._permutation: torch.Tensor | None = None

    def __iter__(self) -> IndexBatchSampler:
        return self

    def __next__(self) -> list[int]:
        return self.next_batch()

    def next_batch(self) -> list[int]:
        """Indices of the next batch."""
        return self.next_indices().tolist()

    def next_indices(self) -> torch.Tensor:
        """`next_batch` as a CPU ``int64`` tensor (for indexing tensors: no list round trip)."""
        pass_index, position = divmod(self.batches_drawn, self._batches_per_pass)
        while self._pass < pass_index:  # one permutation per pass, drawn in order from the sampler's generator
            self._permutation = torch.randperm(self.num_samples, generator=self._generator)
            self._pass += 1
        self.batches_drawn += 1
        start = position * self.batch_size
        return self._permutation[start : start + self.batch_size]

    def fast_forward(self, batches_drawn: int) -> None:
        """Move to the position after ``batches_drawn`` batches of this sampler's own stream."""
        if batches_drawn < 0:
            raise ValueError(f"batches_drawn must be >= 0, got {batches_drawn}.")
        if batches_drawn // self._batches_per_pass < self._pass:  # an earlier pass: replay the generator
            self._generator.manual_seed(self.seed)
            self._pass, self._permutation = -1, None
        self.batches_drawn = batches_drawn

    def state_dict(self) -> dict[str, Any]:
        """The stream position and the settings it depends on."""
        return {
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "batches_drawn": self.batches_drawn,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream of ``state``; its settings must be this sampler's."""
        current = {k: getattr(self, k) for k in ("num_samples", "batch_size", "seed")}
        check_saved_settings(state, current, name=self.name, setting=self.setting)
        self.fast_forward(int(state["batches_drawn"]))


class StreamedBatches:
    """Batches of examples from an iterable (streamed) side set, for data without length or random access.

    Each pass over the stream is shuffled with a seeded buffer when the stream supports it
    (`datasets.IterableDataset`); a batch may straddle two passes. A stream shorter than one batch is refused at
    the end of its first pass (a batch would repeat examples). The position is ``(pass, examples consumed in
    it)``; `fast_forward` and `load_state_dict` re-derive it by replaying the stream, each draw's reads under
    ``randomness(draw)`` as the uninterrupted run read them (a `.map` runs lazily, as rows are read), so that a
    random map gives the same examples. That is exact for a stream whose passes give the same examples in the same
    order and a map that draws only from the global generators that ``randomness`` seeds, with two exceptions: a
    map with a generator or other state of its own continues from wherever the replay leaves it; and a
    `datasets.IterableDataset` maps each shard's rows one ahead on a worker thread (datasets 5), so in a pass
    longer than the shuffle buffer, pulled a row at a time as batches are drawn, the draw whose randomness a row's
    map sees depends on thread timing, in an uninterrupted run too (a pass that fits the buffer is mapped in full
    inside the draw that opens it).

    Args:
        dataset: a `datasets.IterableDataset` or any iterable of examples that can be iterated again (not an
            iterator such as a generator).
        batch_size: examples per batch.
        seed: seed of the shuffle; give each process its own.
        buffer_size: shuffle buffer of a `datasets.IterableDataset`.
        name: what the set is called in error messages.
        setting: the user's setting behind ``batch_size``, named in the messages.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        name: str = "side set",
        setting: str = "the batch size",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if isinstance(dataset, Iterator) and not isinstance(dataset, torch.utils.data.IterableDataset):
            # A stream is read again at every pass (and its first examples by the pre-flight probe): an iterator's
            # examples read once are gone, so the run dropped them, then failed at the end of the first pass. A torch
            # IterableDataset that is its own iterator may restart in __iter__, so it is left alone.
            raise ValueError(
                f"The {name} is an iterator ({type(dataset).__name__}), which can be read only once, but a streamed "
                f"{name} is read again at every pass: pass a list of examples, a datasets.IterableDataset (e.g. "
                f"datasets.IterableDataset.from_generator(<generator function>)) or any iterable whose __iter__ "
                f"returns a new iterator."
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.buffer_size = buffer_size
        self.name = name
        self.setting = setting
        self.batches_drawn = 0
        self.epoch = 0
        self.consumed = 0
        self._iterator: Any = None

    def _open(self) -> None:
        stream = self.dataset
        if hasattr(stream, "shuffle"):
            stream = stream.shuffle(seed=self.seed + self.epoch, buffer_size=self.buffer_size)
        self._iterator = iter(stream)
        for _ in range(self.consumed):
            next(self._iterator)

    def _check_pass_length(self, rows: int) -> None:
        if rows < self.batch_size:
            raise ValueError(
                f"The streamed {self.name} has {rows} examples, fewer than {self.setting} ({self.batch_size}): a batch "
                f"would hold some examples twice. Set {self.setting} to at most {rows}, or pass a larger {self.name}."
            )

    def __iter__(self) -> StreamedBatches:
        return self

    def __next__(self) -> list[Any]:
        return self.next_batch()

    def next_batch(self) -> list[Any]:
        """The next ``batch_size`` examples."""
        if self._iterator is None:
            self._open()
        batch: list[Any] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(next(self._iterator))
                self.consumed += 1
            except StopIteration:
                if self.consumed == 0:
                    raise ValueError(f"The streamed {self.name} yielded no examples; pass a non-empty {self.name}.") from None
                if self.epoch == 0:
                    self._check_pass_length(self.consumed)
                self.epoch, self.consumed = self.epoch + 1, 0
                self._open()
        self.batches_drawn += 1
        return batch

    def fast_forward(self, batches_drawn: int, *, randomness: Randomness | None = None) -> None:
        """Move to the position after ``batches_drawn`` batches of this sampler's own stream: replays it from its
        start, draw ``k``'s reads under ``randomness(k)`` (the side set's, `SideSet.randomness`)."""
        self._replay(batches_drawn, start=(0, 0, 0), randomness=randomness)

    def _replay(self, batches_drawn: int, *, start: tuple[int, int, int], randomness: Randomness | None) -> None:
        # From ``start`` = (draw, pass, examples consumed in it): the examples skipped to reach it are read outside
        # the draws (they belong to batches already drawn), then each draw's under its own randomness.
        draw, self.epoch, self.consumed = start
        self.batches_drawn, self._iterator = draw, None
        if self.consumed:
            with preserved_global_rng():
                self._open()
        for draw in range(draw, batches_drawn):
            with contextlib.nullcontext() if randomness is None else randomness(draw):
                self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "buffer_size": self.buffer_size,
            "batches_drawn": self.batches_drawn,
            "epoch": self.epoch,
            "consumed": self.consumed,
        }

    def load_state_dict(self, state: dict[str, Any], *, randomness: Randomness | None = None) -> None:
        """Continue the stream of ``state``; its batch size, seed and shuffle buffer must be this sampler's (the
        saved position counts batches of the saved size in the stream shuffled that way). Replays the current pass
        from the draw that opened it, draw ``k``'s reads under ``randomness(k)`` (see the class)."""
        current = {"batch_size": self.batch_size, "seed": self.seed, "buffer_size": self.buffer_size}
        # Older states lack the buffer size: every one was saved with the default (no trainer sets another).
        saved = {"buffer_size": DEFAULT_BUFFER_SIZE, **state}
        check_saved_settings(saved, current, name=f"streamed {self.name}", setting=self.setting)
        drawn, epoch, consumed = int(state["batches_drawn"]), int(state["epoch"]), int(state["consumed"])
        start = (0, 0, 0)  # in the first pass (or passes of uneven length): replay from the stream's start
        if epoch:
            pass_rows, uneven = divmod(drawn * self.batch_size - consumed, epoch)
            if not uneven:
                self._check_pass_length(pass_rows)
                # The current pass opened in draw ``first``, after it read the previous pass's last ``tail`` rows.
                first, tail = divmod(epoch * pass_rows, self.batch_size)
                start = (first, epoch - 1, pass_rows - tail)
        self._replay(drawn, start=start, randomness=randomness)
