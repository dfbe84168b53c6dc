"""Side work (meta or clean batches, probe forwards) that must not move the global random streams, and the
random streams of its own that a side set's transforms draw from instead."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator

import numpy as np
import torch

PROBE_DRAW = -1
"""The draw of a side set's randomness used by probes (pre-flight forwards), outside its stream of batches."""


@contextlib.contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU) global RNGs on exit.

    Side batches may run random data transforms (augmentation); without this they would shift the stream that
    shuffles and augments the training data, and a run with side batches would see other training batches than
    a plain `Trainer` run.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def side_seed(seed: int, *, process_index: int, name: str, draw: int) -> int:
    """A 64-bit seed for draw ``draw`` of the side set ``name`` on process ``process_index`` of a run seeded with
    ``seed``: the same on every machine and Python process (no salted ``hash``), different for each argument."""
    key = f"hf_lilaw-side-set/{seed}/{process_index}/{name}/{draw}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@contextlib.contextmanager
def side_set_rng(seed: int, *, process_index: int, name: str, draw: int) -> Iterator[None]:
    """Python's, NumPy's and torch's (CPU) global RNGs seeded for one side-set draw, restored on exit.

    A random transform of a side set (``meta.with_transform(augment)``) that draws from the global generators
    then gets fresh numbers for every draw, which a checkpoint re-derives from the draw's number alone, while the
    training data's stream is left exactly where it was (`preserved_global_rng`). GPU generators are neither
    seeded nor touched.
    """
    value = side_seed(seed, process_index=process_index, name=name, draw=draw)
    with preserved_global_rng():
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.default_generator.manual_seed(value)  # not torch.manual_seed: that reseeds every CUDA device too
        yield
