"""What the cost benchmarks share: the arms, the timed models and their data, the trainer of each arm and the
per-step clock (`benchmarks/cost.py` times them interleaved, `benchmarks/profile_step.py` profiles one step).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

# Before NumPy and torch: importing `benchmarks` sets the thread and offline defaults.
from benchmarks import baselines
from benchmarks.common import build_model, tensorise_images

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback

LILAW_BASE_ARMS = ("trainer", "floor")
LILAW_VARIANTS = ("lilaw", "lilaw_compiled", "lilaw_detached")
MLC_ARMS = ("ce", "lilaw", "mlc", "mlc_d", "ebomlc")
ELR_ARMS = ("trainer", "elr")
ARM_LABELS = {"trainer": "Trainer", "floor": "Trainer + meta forward", "ce": "CE (Trainer)", "lilaw": "LiLAW",
              "lilaw_compiled": "LiLAW (lilaw_compile)", "lilaw_detached": "LiLAW (detached weights)",
              "mlc": "MLC", "mlc_d": "MLC-D", "ebomlc": "EBOMLC", "elr": "ELR"}  # fmt: skip

# Input sizes chosen so that a model's interleaved timing takes a few minutes on one CPU core.
MODELS: dict[str, dict[str, Any]] = {
    "linear_probe": {"spec": {"type": "linear_probe", "features": 1280}, "batch_size": 64},
    "small_cnn": {
        "spec": {"type": "small_cnn", "width": 16, "blocks": 2, "hidden": 128},
        "image_size": 32, "channels": 1, "batch_size": 64,
    },
    # The Fashion-MNIST benchmark's MLP from scratch (784-512-512-10, batch 128), on 28-px digits.
    "mlp_784": {"spec": {"type": "mlp", "hidden": (512, 512)}, "image_size": 28, "channels": 1, "batch_size": 128},
    "efficientnet_lite0": {
        "spec": {"type": "timm", "architecture": "efficientnet_lite0"}, "image_size": 64, "channels": 3, "batch_size": 32,
    },
    "resnet18": {"spec": {"type": "timm", "architecture": "resnet18"}, "image_size": 32, "channels": 3, "batch_size": 32},
    "toy_cnn": {  # for the smoke test
        "spec": {"type": "small_cnn", "width": 4, "blocks": 1, "hidden": 16},
        "image_size": 8, "channels": 1, "batch_size": 16,
    },
    "toy_probe": {"spec": {"type": "linear_probe", "features": 32}, "batch_size": 16},  # for the smoke test
}  # fmt: skip

NUM_LABELS = 10


# ------------------------------------------------------------------------------------------------ set-up


class LinearProbe(nn.Module):
    """A linear head over precomputed features: ``{"logits": Linear(features)}``."""

    def __init__(self, *, in_features: int, num_labels: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_features, num_labels)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(features)}


def load_data(model_name: str, seed: int, *, clean_fraction: float = 0.0) -> dict[str, Any]:
    """``train``, ``meta`` (15 %) and, with ``clean_fraction``, ``clean`` splits as torch-formatted Arrow data sets.

    Images: scikit-learn's digits upscaled to the model's input size. Linear probe: 1797 rows of 1280-d
    features (Gaussian class clusters), the shape of a frozen EfficientNet-Lite0's penultimate layer.
    """
    import datasets

    from hf_lilaw.data import load_digits_images

    m = MODELS[model_name]
    if m["spec"]["type"] == "linear_probe":
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, NUM_LABELS, 1797)
        centres = rng.normal(size=(NUM_LABELS, m["spec"]["features"])).astype(np.float32)
        features = centres[labels] + rng.normal(size=(1797, m["spec"]["features"])).astype(np.float32)
        data = datasets.Dataset.from_dict({"features": features, "label": labels})
        data = data.cast_column("label", datasets.ClassLabel(num_classes=NUM_LABELS)).with_format("torch")
        split = data.train_test_split(test_size=0.15, seed=seed, stratify_by_column="label")
        splits = {"train": split["train"], "meta": split["test"]}
    else:
        size = None if m["image_size"] == 8 else m["image_size"]
        raw = load_digits_images(size=size, rgb=m["channels"] == 3, seed=seed)
        splits = {
            k: tensorise_images(raw[k], channels=m["channels"]).select_columns(["pixel_values", "label"])
            for k in ("train", "meta")
        }
    if clean_fraction:
        train = splits["train"]
        count = max(NUM_LABELS, round(clean_fraction * (len(train) + len(splits["meta"]))))
        splits["clean"] = train.shuffle(seed=seed + 1).select(range(count))
    return splits


def make_model(model_name: str, seed: int) -> nn.Module:
    from transformers import set_seed

    m = MODELS[model_name]
    set_seed(seed)
    if m["spec"]["type"] == "linear_probe":
        return LinearProbe(in_features=m["spec"]["features"], num_labels=NUM_LABELS)
    return build_model(m["spec"], num_labels=NUM_LABELS, in_channels=m["channels"], image_size=m["image_size"])


def input_key(model_name: str) -> str:
    return "features" if MODELS[model_name]["spec"]["type"] == "linear_probe" else "pixel_values"


class MetaForwardTrainer(Trainer):
    """`Trainer` plus the meta step's unavoidable work before every training step: a no-grad forward of a random
    meta batch in eval mode, indexed from tensors collated once (as LiLAW's cached meta set is)."""

    def __init__(self, *args: Any, meta_dataset: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        batch = self.data_collator(meta_dataset.__getitems__(list(range(len(meta_dataset)))))
        batch.pop("labels")
        self.meta_inputs = {k: v.to(self.args.device) for k, v in batch.items()}
        self.meta_batch_size = min(self.args.per_device_train_batch_size, len(meta_dataset))
        self.meta_generator = torch.Generator().manual_seed(self.args.seed)

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        count = len(next(iter(self.meta_inputs.values())))
        rows = torch.randperm(count, generator=self.meta_generator)[: self.meta_batch_size].to(self.args.device)
        with torch.no_grad():
            model.eval()
            with self.compute_loss_context_manager():
                model(**{k: v.index_select(0, rows) for k, v in self.meta_inputs.items()})
            model.train()
        return super().training_step(model, inputs, num_items_in_batch)


def make_trainer(arm: str, model: nn.Module, data: dict[str, Any], *, batch_size: int, steps: int,
                 args: argparse.Namespace, output_dir: str, callbacks: list[Any]) -> Any:  # fmt: skip
    from transformers import PrinterCallback, TrainingArguments, default_data_collator

    from hf_lilaw import (
        EBOMLCTrainer,
        ELRConfig,
        ELRTrainer,
        LiLAWConfig,
        LiLAWTrainer,
        MetaLabelCorrectionConfig,
        MLCDTrainer,
        MLCTrainer,
    )

    common = dict(
        output_dir=output_dir, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=1e-3,
        lr_scheduler_type="constant", logging_steps=10**9, save_strategy="no", eval_strategy="no", report_to=[],
        disable_tqdm=True, seed=args.seed, use_cpu=args.device == "cpu", bf16=args.bf16,
        remove_unused_columns=False, dataloader_num_workers=0,
    )  # fmt: skip
    shared = dict(model=model, data_collator=default_data_collator, train_dataset=data["train"], callbacks=callbacks)
    if arm in ("trainer", "ce"):
        trainer = Trainer(args=TrainingArguments(**common), compute_loss_func=baselines.cross_entropy, **shared)
    elif arm == "floor":
        trainer = MetaForwardTrainer(args=TrainingArguments(**common), compute_loss_func=baselines.cross_entropy,
                                     meta_dataset=data["meta"], **shared)  # fmt: skip
    elif arm in LILAW_VARIANTS:
        config = LiLAWConfig(**common, lilaw_warmup_steps=0, lilaw_detach_weights=arm == "lilaw_detached",
                             lilaw_compile=arm == "lilaw_compiled")  # fmt: skip
        trainer = LiLAWTrainer(args=config, meta_dataset=data["meta"], **shared)
    elif arm == "elr":
        trainer = ELRTrainer(args=ELRConfig(**common), **shared)  # sample ids added to the training set
    else:
        config = MetaLabelCorrectionConfig(**common, mlc_clean_batch_size=min(batch_size, len(data["clean"])))
        cls = {"mlc": MLCTrainer, "mlc_d": MLCDTrainer, "ebomlc": EBOMLCTrainer}[arm]
        trainer = cls(args=config, clean_dataset=data["clean"], **shared)
    trainer.remove_callback(PrinterCallback)
    return trainer


def sync_device(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class StepClock(TrainerCallback):
    """Wall and CPU time of each optimizer step, from ``on_step_begin`` to ``on_step_end``.

    The span holds the forward(s), backward(s), optimizer step and, for LiLAW, the meta step owed by the previous
    step (run at the start of ``training_step``); not the loading of the training batch. CPU time (the process's,
    one torch thread) is what the other jobs on a shared machine disturb least; on CUDA only wall time means
    anything (after ``cuda.synchronize``).
    """

    def __init__(self, *, sync_cuda: bool = False) -> None:
        self.sync_cuda = sync_cuda
        self.times: dict[str, list[float]] = {name: [] for name in CLOCKS}
        self._start: dict[str, float] = {}

    def clear(self) -> None:
        for values in self.times.values():
            values.clear()

    def on_step_begin(self, args, state, control, **kwargs):
        if self.sync_cuda:
            torch.cuda.synchronize()
        self._start = {name: clock() for name, clock in CLOCKS.items()}

    def on_step_end(self, args, state, control, **kwargs):
        if self.sync_cuda:
            torch.cuda.synchronize()
        if self._start:
            for name, clock in CLOCKS.items():
                self.times[name].append(clock() - self._start[name])
            self._start = {}
