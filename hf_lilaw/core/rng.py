"""Side work (meta or clean batches, probe forwards) that must not move the global random streams."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


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
