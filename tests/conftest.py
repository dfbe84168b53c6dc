"""Tiny offline models and data shared by the trainer tests."""

import logging
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

# Under pytest-xdist every worker is a busy process of its own: torch's default of one thread per core in each of
# them oversubscribes the machine and slows the whole suite, so the cores are shared out (and inherited by the
# subprocesses the tests start).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = max(1, _cores // _WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)

NUM_FEATURES, NUM_CLASSES = 8, 3


class TinyNet(nn.Module):
    """A plain nn.Module classifier over a feature vector ``x``; returns ``{"logits": ...}``."""

    def __init__(self, num_features: int = NUM_FEATURES, num_classes: int = NUM_CLASSES, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(num_features, 16), nn.Tanh(), nn.Dropout(dropout))
        self.head = nn.Linear(16, num_classes)

    def forward(self, x, labels=None):
        return {"logits": self.head(self.body(x))}


def blobs(n: int = 192, *, noise_rate: float = 0.3, seed: int = 0) -> datasets.Dataset:
    """Separable 3-class Gaussian blobs with a fraction of labels flipped to the next class."""
    centres = np.random.default_rng(1234).normal(scale=1.5, size=(NUM_CLASSES, NUM_FEATURES))
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, NUM_CLASSES, n)
    x = (centres[clean] + rng.normal(size=(n, NUM_FEATURES))).astype(np.float32)
    noisy = clean.copy()
    flip = rng.random(n) < noise_rate
    noisy[flip] = (clean[flip] + 1) % NUM_CLASSES
    return datasets.Dataset.from_dict({"x": x, "label": noisy, "clean_label": clean, "is_noisy": flip})


class StopAfter(TrainerCallback):
    """Simulates a crash right after the checkpoint of ``step`` (same schedule as the full run)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


class KillAfter(TrainerCallback):
    """A kill (``KeyboardInterrupt``) right after step ``step`` and its checkpoint: the run ends without
    on_train_end, as a killed process does."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture(scope="session")
def blob_splits():
    return {"train": blobs(192, seed=0), "meta": blobs(48, seed=1), "test": blobs(96, noise_rate=0.0, seed=2)}


@pytest.fixture(autouse=True)
def restore_process_state():
    """Tests that call a benchmark script's ``main`` in-process get the process-wide state it sets for its runs
    (threads, environment, log levels and handlers, progress bars). Restored after every test, so that no outcome
    depends on which tests ran before in the same process (pytest-xdist changes that order)."""
    threads = torch.get_num_threads()
    environ = dict(os.environ)
    for name in ("transformers", "hf_lilaw", "datasets", "accelerate"):
        logging.getLogger(name)  # a logger first made during the test would keep its level
    loggers = [logging.root, *(x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger))]
    levels = {logger: logger.level for logger in loggers}
    handlers = list(logging.root.handlers)
    bars = datasets.is_progress_bar_enabled()
    with warnings.catch_warnings():
        yield
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(environ)
    for logger, level in levels.items():
        logger.setLevel(level)
    logging.root.handlers[:] = handlers
    if bars:
        datasets.enable_progress_bars()


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


REFERENCE_ARGS = dict(per_device_train_batch_size=16, num_train_epochs=2, learning_rate=0.05, save_strategy="no",
                      report_to=[], seed=0, disable_tqdm=True)  # fmt: skip
"""The schedule of `trainer_with_cross_entropy` (add ``output_dir``)."""


def trainer_with_cross_entropy(output_dir, train_dataset, *, dropout: float = 0.0, callbacks=None) -> TinyNet:
    """A `TinyNet` (seed 0) trained by plain `transformers.Trainer` with summed cross-entropy over
    ``num_items_in_batch`` under `REFERENCE_ARGS`: what a family must equal bit for bit where it is plain CE."""
    torch.manual_seed(0)
    model = TinyNet(dropout=dropout)
    Trainer(model=model, args=TrainingArguments(output_dir=str(output_dir), **REFERENCE_ARGS), train_dataset=train_dataset,
            compute_loss_func=lambda out, labels, num_items_in_batch=None: torch.nn.functional.cross_entropy(
                out["logits"], labels, reduction="sum") / num_items_in_batch, callbacks=callbacks).train()
    return model


def plain_eval_loss(model: nn.Module, dataset: datasets.Dataset) -> float:
    """``model``'s mean cross-entropy on ``dataset`` (columns ``x`` and ``label``), computed here by hand."""
    with torch.no_grad():
        logits = model(torch.tensor(dataset["x"]))["logits"]
    return torch.nn.functional.cross_entropy(logits, torch.tensor(dataset["label"])).item()
